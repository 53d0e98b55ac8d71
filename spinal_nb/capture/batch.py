"""One batch of a trace: capture the selected rows of every layer in one nnsight trace (locally, or on NDIF with the
lens reduced on the server) and reduce them into the streaming accumulators (Gram per layer; lens steps and
entropies per layer pair). Non-finite states or logits stop the trace with a NumericsError naming the layer.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from ..errors import NumericsError, RemoteError
from ..params import SpinalParams
from ..scores import (
    GramAccumulator,
    TransportAccumulator,
    check_entropy_finite,
    lens_point,
    lens_step,
    to_final,
)
from .architectures import Architecture, block_state, get_path, lens_logits, n_blocks, unwrap
from .lens import LensEngine
from .load import is_transformers_model
from .positions import Batch

LENS_ROWS_BUDGET = 1 << 24  # positions x vocab per top-k lens chunk (16M floats = 64 MB in float32)


def trace_inputs(nn_model: Any, batch: Batch, device: torch.device) -> tuple[tuple, dict[str, Any]]:
    ids, mask = batch.input_ids.to(device), batch.attention_mask.to(device)
    if is_transformers_model(nn_model):
        return ({"input_ids": ids, "attention_mask": mask},), {}
    return (ids,), {"attention_mask": mask}


def capture_local(nn_model: Any, arch: Architecture, batch: Batch, fwd: dict[str, Any],
                   device: torch.device) -> list[torch.Tensor]:
    """Selected rows [N, d] of layers 0..L (input of block 1, then each block's raw output), in one trace."""
    import nnsight

    args, kwargs = trace_inputs(nn_model, batch, device)
    select = batch.select.to(device)
    blocks = get_path(nn_model, arch.blocks)
    with nn_model.trace(*args, **kwargs, **fwd) as tracer:
        rows = nnsight.save([])
        rows.append(blocks[0].input[select])
        for block in blocks:
            rows.append(block_state(block.output)[select])
        # the rest of the forward (final norm, the model's own logits over every position) is not needed: the lens
        # of layer L is computed on the selected rows; stopping saves one vocabulary-sized matmul per batch
        tracer.stop()
    # a model split across devices (accelerate device_map) gives each layer's rows on its block's device: bring them
    # to the accumulators' device (a no-op on one device)
    return [r.to(device) for r in rows]


def capture_remote(nn_model: Any, arch: Architecture, batch: Batch, fwd: dict[str, Any], params: SpinalParams,
                    remote: Any) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], Any]:
    """Server-side version: the lens, its Fisher–Rao steps and entropies are computed inside the trace.

    Returns (rows per layer, steps per layer pair, entropies per layer, final), each over the selected positions;
    final is (KL to the final layer [L + 1, N] float64, top-1 agreement [L + 1, N] bool), or None when
    params.lens_metrics is off. The body
    uses torch only (the server has no spinal-nb) and mirrors scores.lens_point / fisher_rao_sqrt (and lens_step
    for top-k) operation by operation. What comes back is `wire` (below): the states as byte planes, the squared
    Hellinger sums and entropies in the lens precision; `unpack_wire` rebuilds the same values bit for bit.
    """
    import nnsight

    raw = unwrap(nn_model)
    args, kwargs = trace_inputs(nn_model, batch, torch.device("cpu"))
    select = batch.select
    n_layers = n_blocks(raw, arch) + 1
    blocks = get_path(nn_model, arch.blocks)
    norm = get_path(nn_model, arch.final_norm) if get_path(raw, arch.final_norm) is not None else None
    proj = get_path(nn_model, arch.output_proj) if get_path(raw, arch.output_proj) is not None else None
    unembed = get_path(nn_model, arch.unembed)
    scale = float(getattr(raw, arch.logit_scale_attr)) if arch.logit_scale_attr else None
    divisor = float(getattr(raw.config, arch.logit_divisor_attr)) if arch.logit_divisor_attr else None
    cap = getattr(raw.config, arch.softcap_attr, None) if arch.softcap_attr else None
    temperature, top_k = float(params.temperature), params.top_k
    final = params.lens_metrics
    with nn_model.trace(*args, remote=remote, **kwargs, **fwd):
        rows = []
        for i in range(n_layers):
            h = blocks[0].input if i == 0 else blocks[i - 1].output
            if isinstance(h, (tuple, list)):
                h = h[0]
            rows.append(h[select.to(h.device)])
        # the lens of the final layer first when the lens metrics are on (KL to it, its top-1 token), then 0..L-1
        order = [n_layers - 1, *range(n_layers - 1)] if final else list(range(n_layers))
        hell2, ents, kls, agrees = [None] * (n_layers - 1), [None] * n_layers, [None] * n_layers, [None] * n_layers
        zs, sqs, lp_last = [None] * n_layers, [None] * n_layers, None
        for i in order:
            x = rows[i]
            if norm is not None:
                x = norm(x)
            if proj is not None:
                x = proj(x)
            z = unembed(x)
            if scale is not None:
                z = z * scale
            if divisor is not None:
                z = z / divisor
            if cap is not None:
                z = torch.tanh(z / cap) * cap
            if z.dtype not in (torch.float32, torch.float64):
                z = z.float()
            lp = torch.log_softmax(z / temperature if temperature != 1.0 else z, dim=-1)
            sq = lp.mul(0.5).exp_()  # sqrt p, shared by the steps to both neighbours (scores.lens_point)
            ents[i] = -(sq * sq).mul_(lp).sum(-1)  # float64 here (as scores.lens_point) is exact: done locally
            if final:
                if lp_last is None:
                    lp_last, p_last, top = lp, sq * sq, z.argmax(-1, keepdim=True)
                # KL(p_L || p_i) and agreement as scores.to_final (here in the lens precision)
                kls[i] = (p_last * (lp_last - lp)).sum(-1).clamp_(min=0.0)
                agrees[i] = z.gather(-1, top).squeeze(-1) >= z.amax(-1)
            zs[i], sqs[i] = z, sq
            for a, b in ((i - 1, i), (i, i + 1)):  # each step once, as soon as both of its layers are there
                if a < 0 or b >= n_layers or hell2[a] is not None or sqs[a] is None or sqs[b] is None:
                    continue
                if top_k is not None:
                    za, zb = zs[a], zs[b]
                    k = min(top_k, zb.shape[-1])
                    keep = torch.zeros_like(za, dtype=torch.bool)
                    keep.scatter_(-1, za.topk(k, dim=-1).indices, True)
                    keep.scatter_(-1, zb.topk(k, dim=-1).indices, True)
                    neg = torch.finfo(za.dtype).min
                    za = za.masked_fill(~keep, neg)
                    zb = zb.masked_fill(~keep, neg)
                    la = torch.log_softmax(za / temperature if temperature != 1.0 else za, dim=-1)
                    lb = torch.log_softmax(zb / temperature if temperature != 1.0 else zb, dim=-1)
                    sa, sb = la.mul_(0.5).exp_(), lb.mul_(0.5).exp_()
                else:
                    sa, sb = sqs[a], sqs[b]
                hell2[a] = (sa - sb).square_().sum(-1)  # sqrt and arc in float64: locally (unpack_wire)
            if i > 0 and i - 1 != n_layers - 1:  # layer i - 1 has both steps now: free its [rows x vocab]
                zs[i - 1] = sqs[i - 1] = None
        # one tensor per kind; the states as each layer's bits XOR the previous layer's (the residual stream changes
        # little from one layer to the next: sign, exponent and top mantissa bits mostly cancel), split into byte
        # planes (all first bytes, then all second bytes, ...). The server zstd-compresses the result, and these
        # planes compress better than the interleaved values; no bit is lost (BENCHMARKS.md, "NDIF traffic")
        here = rows[0].device  # a model split over several GPUs on the server: its rows live on their blocks' GPUs
        states = torch.stack([r.to(here) for r in rows])
        bits = states.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[states.element_size()])
        delta = torch.cat([bits[:1], torch.bitwise_xor(bits[1:], bits[:-1])])
        wire = nnsight.save({"planes": delta.view(torch.uint8).reshape(-1, states.element_size()).t().contiguous(),
                             "dtype": str(states.dtype), "shape": list(states.shape),
                             "hell2": torch.stack([x.to(here) for x in hell2]) if hell2 else None,
                             "ents": torch.stack([x.to(here) for x in ents]),
                             "kl": torch.stack([x.to(here) for x in kls]) if final else None,
                             "agree": torch.stack([x.to(here) for x in agrees]) if final else None})
    return unpack_wire(wire)


def unpack_wire(wire: dict[str, Any]) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor], Any]:
    """(rows per layer, steps per layer pair, entropies per layer, final or None) from what `capture_remote`'s trace
    sends back: the same values, bit for bit, as the steps and entropies computed in float64 on the server."""
    dtype = getattr(torch, wire["dtype"].removeprefix("torch."))
    planes = wire["planes"]
    bits = planes.t().contiguous().view(-1).view({2: torch.int16, 4: torch.int32, 8: torch.int64}[planes.shape[0]])
    bits = bits.reshape(wire["shape"])
    for layer in range(1, bits.shape[0]):  # undo the XOR with the previous layer, in order
        bits[layer] ^= bits[layer - 1]
    states = bits.view(dtype)
    steps: list[torch.Tensor] = []
    if wire["hell2"] is not None:
        hell = wire["hell2"].to(torch.float64).sqrt()  # as scores.fisher_rao_sqrt
        steps = list((4.0 * torch.asin((hell / 2.0).clamp(max=1.0))).clamp(0.0, math.pi))
    final = None if wire.get("kl") is None else (wire["kl"].to(torch.float64), wire["agree"])
    return list(states), steps, list(wire["ents"].to(torch.float64)), final


def layer_name(arch: Architecture, layer: int) -> str:
    return f"layer {layer} (input of {arch.blocks}.0)" if layer == 0 else \
        f"layer {layer} (output of {arch.blocks}.{layer - 1})"


def check_finite(x: torch.Tensor, arch: Architecture, layer: int, what: str = "hidden states") -> None:
    if not torch.isfinite(x).all():
        raise NumericsError(f"NaN or Inf in the {what} at {layer_name(arch, layer)}. In float16 this is usually an "
                            "overflow: trace in bfloat16 or float32 (dtype=...); otherwise check the model's weights.")


def check_rows(rows: list[torch.Tensor], arch: Architecture) -> None:
    """One device sync for all layers; the message names the first layer with NaN/Inf."""
    ok = torch.stack([torch.isfinite(h).all() for h in rows])
    if not bool(ok.all()):
        check_finite(rows[int((~ok).nonzero()[0, 0])], arch, int((~ok).nonzero()[0, 0]))


def reduce_batch(raw: torch.nn.Module, arch: Architecture, rows: list[torch.Tensor], groups: torch.Tensor,
                  gram: GramAccumulator, transport: TransportAccumulator, params: SpinalParams,
                  lens: LensEngine | None = None) -> None:
    """Feed one batch's selected rows into the accumulators: Gram per layer, lens steps and entropies per pair.

    The exact lens goes through `LensEngine` (capture/lens.py: reused buffers, several layers per unembedding
    matmul, one exponential per element); its entropies double as the NaN/Inf check of the logits (a non-finite
    logit makes its row's entropy NaN). The top-k knob needs both layers' logits for its mask and goes through
    scores.lens_step.
    """
    check_rows(rows, arch)
    for layer, h in enumerate(rows):
        gram.update(layer, h, groups.to(gram.device))
    n = rows[0].shape[0]
    if n == 0:
        return
    lens = lens or LensEngine(raw, arch, params.temperature)
    if params.top_k is None:
        if params.lens_metrics:
            steps, ent_all, kl, agree = lens.reduce_all(rows)
        else:
            steps, ent_all = lens.reduce(rows)
        check_entropies(ent_all, arch)
        transport.update_all(steps, ent_all, groups)
        if params.lens_metrics:
            transport.update_final(kl, agree, groups)
        return
    vocab = raw.config.vocab_size if isinstance(getattr(raw.config, "vocab_size", None), int) else 50_000
    chunk = max(1, LENS_ROWS_BUDGET // max(vocab, 1))
    for start in range(0, n, chunk):
        ents: list[torch.Tensor] = []
        steps_: list[torch.Tensor] = []
        finals: list[tuple[torch.Tensor, torch.Tensor]] = []
        # the full (not top-k restricted) distributions, as for the entropy: the final layer's first
        lp_last = _log_probs(lens_logits(raw, arch, lens.states(len(rows) - 1, rows[-1][start:start + chunk])),
                             params.temperature) \
            if params.lens_metrics else None
        prev_z = None
        for layer, h in enumerate(rows):
            z = lens_logits(raw, arch, lens.states(layer, h[start:start + chunk]))
            _, ent = lens_point(z, params.temperature)
            ents.append(ent)
            check_entropy_finite(ent, layer_name(arch, layer))  # lens_step needs finite logits: name the layer
            if lp_last is not None:
                finals.append(to_final(lp_last, _log_probs(z, params.temperature)))
            if prev_z is not None:
                steps_.append(lens_step(prev_z, z, params.temperature, params.top_k,
                                        what=f"{layer_name(arch, layer - 1)} -> {layer}"))
            prev_z = z
        del prev_z, z
        transport.update_all(torch.stack(steps_), torch.stack(ents), groups[start:start + chunk])
        if finals:
            transport.update_final(torch.stack([f[0] for f in finals]), torch.stack([f[1] for f in finals]),
                                   groups[start:start + chunk])


def _log_probs(z: torch.Tensor, temperature: float) -> torch.Tensor:
    z = z if z.dtype in (torch.float32, torch.float64) else z.float()
    return torch.log_softmax(z / temperature if temperature != 1.0 else z, dim=-1)


def check_entropies(ent_all: torch.Tensor, arch: Architecture) -> None:
    """One device sync: NumericsError naming the first layer whose lens entropies (hence logits) are not finite."""
    ok = torch.isfinite(ent_all).all(dim=1)
    if not bool(ok.all()):
        bad = int((~ok).nonzero()[0, 0])
        check_entropy_finite(ent_all[bad], layer_name(arch, bad))


def reduce_remote(arch: Architecture, rows: list[torch.Tensor], steps: list[torch.Tensor],
                   ents: list[torch.Tensor], groups: torch.Tensor, gram: GramAccumulator,
                   transport: TransportAccumulator, final: Any = None) -> None:
    check_rows(rows, arch)
    for layer, h in enumerate(rows):
        gram.update(layer, h, groups.to(gram.device))
    for layer, e in enumerate(ents):
        check_finite(e, arch, layer, "logit-lens entropies")
        transport.update_entropy(layer, e, groups)
    for layer, s in enumerate(steps):
        transport.update(layer, s, groups)
    if final is not None:
        transport.update_final(final[0], final[1], groups)


def remote_errors() -> tuple[type[BaseException], ...]:
    errs: list[type[BaseException]] = [OSError, RuntimeError, ConnectionError, TimeoutError]
    try:
        from nnsight.intervention.backends.remote import RemoteError as NnsightRemoteError
        errs.append(NnsightRemoteError)
    except ImportError:  # pragma: no cover
        pass
    for mod, attr in (("websocket", "WebSocketException"), ("httpx", "HTTPError"),
                      ("huggingface_hub.errors", "HFValidationError")):
        try:
            errs.append(getattr(__import__(mod, fromlist=[attr]), attr))
        except (ImportError, AttributeError):  # pragma: no cover
            pass
    return tuple(errs)


def remote_error(e: BaseException, name: str) -> RemoteError:
    return RemoteError(f"The NDIF run of '{name}' failed ({type(e).__name__}: {e}). Check the network, NDIF's status "
                       "(nnsight.status()), your API key (NDIF_API_KEY) and that NDIF hosts this exact model id; "
                       "or trace locally with remote=False.")
