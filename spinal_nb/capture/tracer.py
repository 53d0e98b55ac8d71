"""`trace()`: one call from a model and prompts to a TraceFrame (docs/method.md), local or on NDIF.

The call, in order: load the model and tokenize the prompts (load.py); run the prompts jackknife group by group
(positions.group_major), a batch at a time: one nnsight trace reads the input of block 1 and every block's raw output
at the selected positions (positions.py), and the rows go straight into the streaming accumulators (spinal_nb.scores)
and are dropped (batch.py), so memory stays flat in the number of prompts. A finished group's accumulators are
spilled to disk (spill.py), so what stays in memory is about one group's worth whatever the number of prompts; with
`save_to` the partial sums are saved every `save_every` batches and a new call resumes there (resume.py). The
logit lens (lens.LensEngine) is evaluated on the selected rows only, a cache-sized chunk of positions at a time, in
buffers reused for the whole trace: nothing of size tokens × vocab × layers ever exists. Then the scores are
finalized (spinal_nb.scores.finalize) and, with `lens_prompts`, the top-k lens tokens of a few prompts are added
(lens_table.py).

Remote (`remote=True`, NDIF): the same trace runs on the server, which also evaluates the lens there and sends back,
per layer, only the selected rows (as XOR-delta byte planes, lossless, batch.capture_remote) and per position one
squared Hellinger sum (the Fisher–Rao step is finished here) and one entropy — never the vocabulary-sized
lens. (Per-group Gram sums would be d² per group per layer, larger than the rows whenever a batch holds fewer than
d·groups positions, which is always the case for the large models NDIF serves, so the Gram is summed here.)
`remote="local"` runs that exact code path through nnsight's local simulation (serialize → deserialize → run).
A model placed by accelerate (`device_map`) is traced as loaded: rows are moved to the accumulators' device.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..data.prompts import as_texts
from ..errors import InputError, SpinalError
from ..frame import TraceFrame
from ..params import SpinalParams
from ..progress import bar as progress_bar
from ..progress import line_based, quiet_transformers
from ..scores import GramAccumulator, TransportAccumulator, finalize
from . import distributed
from .architectures import Architecture, hidden_size, model_dtype, n_blocks
from .batch import capture_local, capture_remote, reduce_batch, reduce_remote, remote_error, remote_errors
from .lens import LensEngine
from .lens_table import lens_indices, lens_table
from .load import (
    as_dtype,
    context_length,
    forward_kwargs,
    load_model,
    model_device,
    model_fingerprint,
    pad_id,
    remote_wanted,
    require_ndif_key,
    tokenize,
    versions,
)
from .positions import Batch, group_major, make_batch
from .resume import ResumeState
from .spill import SpillFolder, private_spill_dir, spill_finished
from .tuned_lens import LOGIT, lens_tag


def _params(params: SpinalParams | None, spec_parameters: dict[str, Any]) -> SpinalParams:
    if params is not None and not isinstance(params, SpinalParams):
        raise InputError(f"params must be a SpinalParams, got {type(params).__name__}.")
    base = params or SpinalParams()
    return base.replace(**spec_parameters) if spec_parameters else base


def trace(model: Any, prompts: Any, *, tokenizer: Any = None, checkpoint: str | None = None, batch_size: int = 8,
          device: Any = None, dtype: Any = None, remote: bool | str = False, progress: bool = True,
          save_to: str | os.PathLike | None = None, save_every: int = 10, trust_remote_code: bool = False,
          revision: str | None = None, text_column: str = "text", max_length: int | None = None,
          lens_prompts: int | Sequence[int] | None = None, lens_top_k: int = 5,
          architecture: Architecture | None = None, params: SpinalParams | None = None, keep_spectra: bool = True,
          load_kwargs: dict[str, Any] | None = None, finalize_workers: int | None = None, lens: Any = None,
          **spec_parameters: Any) -> TraceFrame:
    """SPINAL depth trace (contraction α_ℓ and transport 𝓛_ℓ per layer, with intervals) of one model on prompts.

    model: a Hugging Face id or local folder (loaded with transformers, `trust_remote_code` off unless you turn it
    on; `load_kwargs` go to `from_pretrained`, e.g. `{"gguf_file": ...}`), a loaded `...ForCausalLM`, or an nnsight
    `NNsight` / `TransformersModel`. A loaded model is moved to `device` / cast to `dtype` *in place* when given.
    prompts: list of str, or a `datasets.Dataset` / iterable of dicts with a `text_column`. Empty or whitespace
    prompts are refused; prompts longer than the model's context (or `max_length`) are truncated with a warning.
    SPINAL parameters (docs/method.md) come as keywords (`skip_first=1`, `n_groups=10`, `top_k=None`, ...) or `params=`.
    `save_to=folder` saves the partial sums every `save_every` batches; calling again with the same
    arguments resumes there (and returns at once when the run had finished). Prompts run jackknife group by group,
    and each finished group's float64 accumulators (≥ 16 MiB) are spilled to disk — to `save_to/spill/`, else to a
    private folder under `$SPINAL_SPILL_DIR` or the user cache, removed when the call ends — so memory holds about
    one group whatever the number of prompts (the scores are bit-identical either way). `lens_prompts` (an int n: the first n
    prompts, or a list of indices) adds the top-`lens_top_k` lens tokens per layer and position as `frame.lens`.
    `remote=True` runs on NDIF (Hub ids only; needs NDIF_API_KEY); `remote="local"` simulates it offline.
    The spectra are computed on the accumulators' GPU, else on `finalize_workers` CPU threads (None: every core).
    Under torch.distributed (torchrun ...), each rank traces its share of the prompt groups and every rank returns
    the same complete frame (spinal_nb.capture.distributed).
    `lens=` a TunedLens (spinal_nb.fit_tuned_lens, TunedLens.load) reads every layer through its translators for 𝓛,
    entropy and the lens table; its tag goes into the parameters (`lens`), so frames under different lenses never
    combine. The default (None) is the logit lens. A tuned lens is refused with `remote` (the server does not run it).

    >>> # frame = spinal_nb.trace("HuggingFaceTB/SmolLM2-135M-Instruct", prompts, checkpoint="instruct")
    """
    params = _params(params, spec_parameters)
    tag = lens_tag(lens)
    if tag == LOGIT and params.lens != LOGIT:
        raise InputError(f"params.lens is {params.lens!r} but no lens was passed: pass the lens itself, "
                         "trace(..., lens=TunedLens.load(path)).")
    if tag != LOGIT and params.lens not in (LOGIT, tag):
        raise InputError(f"params.lens is {params.lens!r} but lens= is {tag!r}: leave params.lens unset.")
    params = params.replace(lens=tag)
    tuned = lens if tag != LOGIT else None
    if tag != LOGIT and remote:  # NDIF, and its local simulation (the same server-side code)
        raise InputError("A tuned lens runs locally only: NDIF would need its translators inside the server-side "
                         "trace, which spinal-nb does not send. Trace with remote=False, or remote=True without lens=.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be a positive int, got {batch_size!r}.")
    if not isinstance(save_every, int) or save_every < 1:
        raise InputError(f"save_every must be a positive int, got {save_every!r}.")
    if remote not in (False, True, "local", None) and not (isinstance(remote, str) and remote.startswith("http")):
        raise InputError(f"remote must be False, True, 'local' or an NDIF host URL, got {remote!r}.")
    if max_length is not None and (not isinstance(max_length, int) or max_length < 1):
        raise InputError(f"max_length must be a positive int or None, got {max_length!r}.")
    if not isinstance(lens_top_k, int) or lens_top_k < 1:
        raise InputError(f"lens_top_k must be a positive int, got {lens_top_k!r}.")
    texts = as_texts(prompts, text_column)
    dt = as_dtype(dtype)
    if remote_wanted(remote):
        require_ndif_key()
    with quiet_transformers(not progress or line_based()):  # its "Loading weights" bar: off with ours, or in a log
        nn_model, raw, tok, name, rev, arch = load_model(
            model, tokenizer, device=device, dtype=dt, remote=remote, revision=revision,
            trust_remote_code=trust_remote_code, load_kwargs=dict(load_kwargs or {}), architecture=architecture)
    checkpoint = checkpoint or Path(name).name or name
    # a tuned lens reads its own model or a fine-tuned copy of it: how far this model's unembedding moved is recorded
    lens_change = tuned.check_model(raw, arch) if tuned is not None else None
    L, d = n_blocks(raw, arch), hidden_size(raw, arch)
    limit = min(x for x in (context_length(raw), max_length) if x is not None) \
        if (context_length(raw) or max_length) else None
    token_ids, n_truncated = tokenize(tok, texts, limit)
    lens_idx = lens_indices(lens_prompts, len(texts))
    pad = pad_id(tok)
    n_prompts = len(texts)
    dev = model_device(raw) if not remote_wanted(remote) else torch.device("cpu")
    acc_device = dev if dev.type == "cuda" else torch.device("cpu")  # float64 is slow or absent on MPS and friends
    fwd = forward_kwargs(raw)
    order, last = group_major(n_prompts, params.n_groups)
    call = {"model": model_fingerprint(raw), "tokens": hashlib.sha256(json.dumps(token_ids).encode()).hexdigest(),
            "params": params.to_dict(), "batch_size": batch_size, "arch": arch.to_dict(),
            "dtype": str(model_dtype(raw)), "server": bool(remote)}
    ranks = distributed.context()  # (rank, world) under torch.distributed: this rank runs its groups only
    if ranks is not None:
        distributed.check_same_call(call, params.n_groups, ranks[1])
        order, last = distributed.my_share(order, params.n_groups, *ranks)
        finalize_workers = distributed.finalize_workers(finalize_workers)
        call["rank"] = list(ranks)
        save_to = Path(save_to) / f"rank-{ranks[0]}-of-{ranks[1]}" if save_to is not None else None
    n_run = len(order)
    server = bool(remote)
    lens_engine = None if server else LensEngine(raw, arch, params.temperature, tuned)  # buffers: whole trace

    prompts_sha = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    done = 0
    saved = merged_spill = None
    if save_to is not None:
        saved = ResumeState(save_to, hashlib.sha256(json.dumps(call, sort_keys=True).encode()).hexdigest())
        spill = SpillFolder(saved.spill_dir)  # spilled groups are part of the saved partial results
    else:
        spill = SpillFolder(private_spill_dir(), fsync=False)  # removed when this call ends, however it ends
    gram = GramAccumulator(L + 1, d, params.n_groups, row_normalize=params.row_normalize, device=acc_device,
                           store=spill)
    transport = TransportAccumulator(L + 1, params.n_groups)
    if saved is not None:
        state = saved.load(gram, transport)
        done = int(state["prompts_done"]) if state else 0

    try:
        was_training = raw.training
        raw.eval()  # dropout off: the states must be the model's deterministic ones
        try:
            with torch.no_grad(), progress_bar(total=n_run, initial=done,
                                               disable=not progress or (ranks is not None and ranks[0] > 0),
                                               unit="prompt", desc=f"spinal trace {checkpoint}") as bar:
                n_batches = 0
                spill_finished(gram, last, done)  # a resumed run: groups finished before the last save
                for start in range(done, n_run, batch_size):
                    end = min(start + batch_size, n_run)
                    idx = order[start:end]
                    batch = make_batch([token_ids[i] for i in idx], idx, pad_id=pad, skip_first=params.skip_first,
                                       stride=params.position_stride, n_groups=params.n_groups)
                    if batch.n_selected:
                        _run_batch(nn_model, raw, arch, batch, fwd, params, remote, dev, gram, transport, lens_engine)
                    spill_finished(gram, last, end)
                    n_batches += 1
                    bar.update(len(idx))
                    if saved is not None and (n_batches % save_every == 0 or end == n_run):
                        saved.save(gram, transport, end, n_run, {"n_truncated": n_truncated})
                lens = None
                if lens_idx:
                    lens = lens_table(nn_model, arch, tok, texts, token_ids, lens_idx, checkpoint, fwd, lens_top_k,
                                       params.temperature, remote, dev, params.n_groups, pad,
                                       tuned=tuned)
        except SpinalError:
            raise
        except Exception as e:
            if remote_wanted(remote) and isinstance(e, remote_errors()):
                raise remote_error(e, name) from e
            raise
        finally:
            raw.train(was_training)

        if ranks is not None:  # every rank gets every group: the same TraceFrame on all of them
            merged_spill = SpillFolder(private_spill_dir(), fsync=False)
            gram, transport = distributed.merge(gram, transport, *ranks, merged_spill)
        if gram.n_rows(0) == 0:
            raise InputError(f"No token positions to score: every prompt has at most skip_first={params.skip_first} "
                             "tokens. Use longer prompts or a smaller skip_first.")
        cols = finalize(gram, transport, params, keep_spectra=keep_spectra, workers=finalize_workers)
        info = {"model": name, "revision": rev, "dtype": str(model_dtype(raw)).replace("torch.", ""),
                "device": "ndif" if remote_wanted(remote) else str(dev), "n_prompts": n_prompts,
                "prompts_sha256": prompts_sha, "n_layers": L, "d_model": d,
                "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "versions": versions(),
                "extra": {"architecture": arch.family, "model_class": type(raw).__name__, "batch_size": batch_size,
                          "n_truncated": n_truncated, "max_length": limit, "remote": remote or False,
                          "n_positions": gram.n_rows(0), "resumed_from": done or None,
                          "world_size": ranks[1] if ranks else 1}}
        if lens_change is not None:
            info["extra"]["lens_unembed_change"] = lens_change
        return TraceFrame.from_columns(cols, checkpoint, params, info, lens=lens)
    finally:
        if saved is None:
            shutil.rmtree(spill.folder, ignore_errors=True)
        if merged_spill is not None:
            shutil.rmtree(merged_spill.folder, ignore_errors=True)


def _run_batch(nn_model: Any, raw: torch.nn.Module, arch: Architecture, batch: Batch, fwd: dict[str, Any],
               params: SpinalParams, remote: Any, dev: torch.device, gram: GramAccumulator,
               transport: TransportAccumulator, lens: LensEngine | None = None) -> None:
    if remote:
        rows, steps, ents, final = capture_remote(nn_model, arch, batch, fwd, params, remote)
        reduce_remote(arch, rows, steps, ents, batch.groups, gram, transport, final)
    else:
        rows = capture_local(nn_model, arch, batch, fwd, dev)
        reduce_batch(raw, arch, rows, batch.groups, gram, transport, params, lens)
