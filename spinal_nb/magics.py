"""IPython extension: `%load_ext spinal_nb` gives the `%spinal` / `%%spinal` magics and shows a TraceFrame as the dashboard.

    %load_ext spinal_nb
    %spinal trace HuggingFaceTB/SmolLM2-135M-Instruct --prompts prompts --as instruct   # prompts: a list or a file
    %%spinal trace ./my-dpo-checkpoint --as dpo --batch-size 4
    The first prompt, one per line.
    The second prompt.

    %spinal compare instruct dpo          # two TraceFrame variables, or Parquet files, or one with --reference/...
    %spinal show dpo                      # the dashboard; a bare TraceFrame at the end of a cell shows it too
    %spinal report instruct dpo --out audit.html

The options are the `spinal` command line's (spinal_nb.cli builds both parsers); `%spinal --help` and
`%spinal trace --help` list them. Where the command line takes a file, the magic also takes the name of a notebook
variable (a model, a tokenizer, a list of prompts, a TraceFrame). Errors spinal-nb raises on purpose show as one line.
"""
from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.display import display

from . import cli
from .data.prompts import prompts_from_text, read_prompts
from .errors import SpinalError
from .frame import TraceFrame, combine, pick_pair
from .widgets import report, show


def dashboard(frame: TraceFrame) -> Any:
    """The linked dashboard of `frame` (spinal_nb.widgets.show)."""
    return show(frame)


def _display_traceframe(frame: TraceFrame) -> None:
    display(dashboard(frame))


@magics_class
class SpinalMagics(Magics):
    """`%spinal` (line) and `%%spinal` (cell; the body holds the prompts of `trace`, one per line)."""

    @line_cell_magic
    def spinal(self, line: str, cell: str | None = None) -> Any:
        try:
            argv = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"%spinal: {e}") from None
        parser = cli.build_parser(magic=True)
        if not argv:
            parser.print_help()
            return None
        try:
            args = parser.parse_args(argv)
        except cli.ArgumentError as e:
            raise UsageError(str(e)) from None
        except SystemExit:  # --help / --version printed their text
            return None
        if cell is not None and args.command != "trace":
            raise UsageError(f"%%spinal {args.command} takes no cell body; only %%spinal trace does (its prompts).")
        try:
            return getattr(self, f"_{args.command}")(args, cell)
        except SpinalError as e:
            raise UsageError(f"{type(e).__name__}: {e}") from None

    # -- names in the notebook ------------------------------------------------------------------------------------
    def _lookup(self, name: str) -> tuple[bool, Any]:
        ns = self.shell.user_ns if self.shell is not None else {}
        if name.isidentifier() and name in ns:
            return True, ns[name]
        return False, None

    def _object_or_path(self, spec: str | None) -> Any:
        """A notebook variable's value when `spec` names one, else `spec` itself (a path or Hub id)."""
        if spec is None:
            return None
        found, value = self._lookup(spec)
        return value if found else spec

    def _prompts(self, args: argparse.Namespace, cell: str | None) -> Any:
        if cell is not None:
            if args.prompts is not None:
                raise UsageError("Give the prompts either in the cell body or with --prompts, not both.")
            return prompts_from_text(cell)
        if args.prompts is None:
            raise UsageError("%spinal trace needs --prompts (a variable holding a list of strings, or a file), "
                             "or use %%spinal trace with one prompt per line in the cell.")
        found, value = self._lookup(args.prompts)
        if not found:
            return read_prompts(args.prompts, args.text_column)
        if isinstance(value, (str, os.PathLike)):
            return prompts_from_text(value) if "\n" in str(value) or not Path(value).is_file() \
                else read_prompts(str(value), args.text_column)
        return value  # a list, a datasets.Dataset, ...: the tracer checks it

    def _frames(self, specs: list[str]) -> list[TraceFrame]:
        frames = []
        for spec in specs:
            found, value = self._lookup(spec)
            if found:
                if not isinstance(value, TraceFrame):
                    raise UsageError(f"{spec} is a {type(value).__name__}, not a TraceFrame.")
                frames.append(value)
            else:
                frames.append(TraceFrame.read_parquet(spec))
        return frames

    def _store(self, args: argparse.Namespace, value: Any, what: str) -> Any:
        """With --as NAME: store, print one line, return nothing (no display). Without: return it (displayed)."""
        if args.as_name is None:
            return value
        if not args.as_name.isidentifier():
            raise UsageError(f"--as {args.as_name!r}: a notebook variable name is needed (letters, digits, _).")
        self.shell.user_ns[args.as_name] = value
        print(f"{args.as_name} = {what}")
        return None

    # -- commands -------------------------------------------------------------------------------------------------
    def _trace(self, args: argparse.Namespace, cell: str | None) -> Any:
        model = self._object_or_path(args.model)
        tokenizer = self._object_or_path(args.tokenizer)
        frame = cli.run_trace(args, model, self._prompts(args, cell), tokenizer)
        names = ", ".join(frame.checkpoints)
        saved = f", written to {args.out}" if args.out else ""
        return self._store(args, frame, f"TraceFrame [{names}] ({frame.n_layers(frame.checkpoints[-1])} layers"
                                        f"{saved})")

    def _compare(self, args: argparse.Namespace, cell: str | None) -> Any:
        frame = combine(self._frames(args.traces), args.force)
        cmp = frame.compare(*pick_pair(frame.checkpoints, args.reference, args.candidate),
                            terminal_depth=args.terminal_depth,
                            on=args.on)
        if args.json:
            print(cmp.to_json())
            return self._store(args, cmp, f"Comparison {cmp.candidate!r} − {cmp.reference!r}") if args.as_name \
                else None
        return self._store(args, cmp, f"Comparison {cmp.candidate!r} − {cmp.reference!r}")

    def _report(self, args: argparse.Namespace, cell: str | None) -> None:
        path = report(combine(self._frames(args.traces), args.force), args.out, reference=args.reference,
                      terminal_depth=args.terminal_depth)
        print(f"wrote {path}")

    def _show(self, args: argparse.Namespace, cell: str | None) -> Any:
        return dashboard(self._frames([args.trace])[0])


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext spinal_nb`: register the magics and the TraceFrame display (the dashboard)."""
    ipython.register_magics(SpinalMagics)
    ipython.display_formatter.ipython_display_formatter.for_type(TraceFrame, _display_traceframe)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext spinal_nb`: a TraceFrame displays as its plain table again (the magics stay, as IPython does)."""
    ipython.display_formatter.ipython_display_formatter.type_printers.pop(TraceFrame, None)
