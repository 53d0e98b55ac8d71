"""The logit lens of a whole batch, streamed: per-position Fisher–Rao steps and entropies for every layer.

What it costs is dominated by the unembedding matmul, [rows x d] @ [d x vocab] per layer, and by the passes over
the [rows x vocab] result. Three things keep it close to the matmul alone (BENCHMARKS.md measures them):

- **Reused buffers.** Logits, sqrt p (two: this layer's and the previous one's) and one work tensor are allocated
  once per trace and written with `out=`: a fresh [rows x vocab] tensor per layer costs page faults (on one CPU
  thread, 100 x 49,152 float32: +16 % on the matmul; +30 % or more for larger chunks).
- **Several layers per matmul.** The normalised rows of k consecutive layers are stacked so the matmul sees
  ~256 rows: it streams the (vocab x d) unembedding once for all k (one thread: 836 µs/row at 100 rows,
  709 µs/row at 200).
- **One exponential per element** (`scores.lens_point_`), in place in the logits buffer.

Chunks of positions are small enough for their [rows x vocab] buffers to stay in the CPU's last-level cache
(`_ROWS_BUDGET` elements, 85 rows at vocab 49,152), which also makes the peak memory independent of the batch width.
Models whose unembedding is not a plain `nn.Linear` in float32/float64 (half precision, custom heads) take the
generic route: `architectures.lens_logits` (the model's own modules), copied into the float32 buffer.

With a tuned lens (`tuned=`, capture/tuned_lens.py) every layer's rows first go through `states(layer, rows)`, its
affine translator, and then through the same final norm and unembedding: every lens-derived quantity computed here
(or from `states`) is then the tuned lens's. Without one, `states` is the identity and the logit lens is unchanged.
"""
from __future__ import annotations

from typing import Any

import torch

from ..scores import fisher_rao_sqrt, lens_point_, to_final_
from .architectures import Architecture, get_path, lens_logits, model_dtype, unwrap

# elements of one [rows x vocab] buffer: a chunk of positions fits the last-level cache on CPU; on GPUs bigger
# chunks mean fewer kernel launches
_ROWS_BUDGET = {"cpu": 1 << 22, "other": 1 << 25}
_MATMUL_ROWS = 256  # rows per unembedding matmul (several layers stacked), up to _LOGITS_BUDGET elements
_LOGITS_BUDGET = {"cpu": 1 << 24, "other": 1 << 26}


class LensEngine:
    """Per-position lens steps [L, N] and entropies [L + 1, N] (float64) of a batch's selected rows, layer 0..L.

    >>> # steps, ents = LensEngine(model, arch, temperature=1.0).reduce(rows)   # rows: list of [N, d], one per layer
    """

    def __init__(self, model: Any, arch: Architecture, temperature: float = 1.0, tuned: Any = None):
        self.raw = unwrap(model)
        self.tuned = tuned  # a TunedLens (translators applied by `states`), or None: the logit lens
        self.arch = arch
        self.temperature = float(temperature)
        self.norm = get_path(self.raw, arch.final_norm) if arch.final_norm else None
        self.proj = get_path(self.raw, arch.output_proj) if arch.output_proj else None
        unembed = get_path(self.raw, arch.unembed)
        w = getattr(unembed, "weight", None)
        # the fast route: a plain Linear in a precision the lens is computed in (float32 / float64), with its weights
        # in place: modules dispatched by accelerate (device_map; hooks that load offloaded weights and move inputs)
        # are called as modules instead
        hooked = any(m is not None and hasattr(m, "_hf_hook") for m in (self.norm, self.proj, unembed))
        self.linear = type(unembed) is torch.nn.Linear and w is not None and w.dtype in (torch.float32, torch.float64) \
            and not hooked and w.device.type != "meta"
        self.weight = w if self.linear else None
        self.bias = unembed.bias if self.linear else None
        self.dtype = w.dtype if self.linear else (torch.float64 if model_dtype(self.raw) == torch.float64
                                                  else torch.float32)
        self.vocab = w.shape[0] if self.linear else None
        self._buf: dict[str, torch.Tensor] = {}

    # -- buffers --------------------------------------------------------------------------------------------------
    def _buffer(self, name: str, rows: int, vocab: int, device: torch.device) -> torch.Tensor:
        b = self._buf.get(name)
        if b is None or b.shape[0] < rows or b.shape[1] != vocab or b.device != device:
            b = torch.empty(rows, vocab, dtype=self.dtype, device=device)
            self._buf[name] = b
        return b[:rows]

    def _plan(self, n: int, n_layers: int, vocab: int, device: torch.device) -> tuple[int, int]:
        """(rows per chunk, layers per matmul) for n selected positions."""
        kind = "cpu" if device.type == "cpu" else "other"
        cap = max(1, _ROWS_BUDGET[kind] // vocab)
        n_chunks = -(-n // cap)
        chunk = -(-n // n_chunks)  # equal chunks: 100 rows at a cap of 85 -> 2 x 50, not 85 + 15
        k = max(1, min(n_layers, _MATMUL_ROWS // chunk, _LOGITS_BUDGET[kind] // (chunk * vocab)))
        return chunk, k

    # -- the lens's input -----------------------------------------------------------------------------------------
    def states(self, layer: int, h: torch.Tensor) -> torch.Tensor:
        """What the lens reads for rows `h` of `layer`: h itself (logit lens) or the tuned lens's translation."""
        return h if self.tuned is None else self.tuned.translate(layer, h)

    # -- logits ---------------------------------------------------------------------------------------------------
    def _logits(self, hs: list[torch.Tensor], out_rows: int, device: torch.device) -> torch.Tensor:
        """Lens logits of the stacked rows `hs` (consecutive layers) in the logits buffer: [sum rows, vocab]."""
        x = torch.cat(hs) if len(hs) > 1 else hs[0]
        if not self.linear:
            z = lens_logits(self.raw, self.arch, x)
            buf = self._buffer("z", out_rows, z.shape[-1], device)[:x.shape[0]]
            return buf.copy_(z)
        if self.norm is not None:
            x = self.norm(x)
        if self.proj is not None:
            x = self.proj(x)
        x = x.to(self.dtype)
        buf = self._buffer("z", out_rows, self.weight.shape[0], device)[:x.shape[0]]
        if self.bias is not None:
            torch.addmm(self.bias, x, self.weight.t(), out=buf)
        else:
            torch.mm(x, self.weight.t(), out=buf)
        return _postprocess_(self.raw, self.arch, buf)

    # -- the reduction --------------------------------------------------------------------------------------------
    def reduce(self, rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(steps [L, N], entropies [L + 1, N]), float64 on the rows' device, for rows[l] = [N, d] of layer l."""
        steps, ents, _, _ = self._reduce(rows, to_final=False)
        return steps, ents

    def reduce_all(self, rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """`reduce` plus KL(p_L ‖ p_l) [L + 1, N] (float64) and top-1 agreement with layer L [L + 1, N] (bool).

        The final layer goes first in each chunk of positions (its sqrt p and p in two more reused buffers), then
        layers 0..L-1: each layer's KL is one more pass over its buffer (scores.to_final_), its agreement a gather.
        """
        return self._reduce(rows, to_final=True)

    def _reduce(self, rows: list[torch.Tensor], to_final: bool):
        n, n_layers, device = rows[0].shape[0], len(rows), rows[0].device
        if self.vocab is None:  # generic route: learn the width from one row, once per trace
            self.vocab = lens_logits(self.raw, self.arch, rows[-1][:1]).shape[-1]
        vocab, last = self.vocab, n_layers - 1
        steps = torch.empty(n_layers - 1, n, dtype=torch.float64, device=device)
        ents = torch.empty(n_layers, n, dtype=torch.float64, device=device)
        kl = torch.zeros(n_layers, n, dtype=torch.float64, device=device) if to_final else None
        agree = torch.ones(n_layers, n, dtype=torch.bool, device=device) if to_final else None
        order = [last, *range(last)] if to_final else list(range(n_layers))
        chunk, k = self._plan(n, n_layers, vocab, device)
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            c = stop - start
            sq = [self._buffer("s0", chunk, vocab, device)[:c], self._buffer("s1", chunk, vocab, device)[:c]]
            scratch = self._buffer("scratch", chunk, vocab, device)[:c]
            if to_final:
                s_last, p_last = self._buffer("sL", chunk, vocab, device)[:c], self._buffer("pL", chunk, vocab, device)[:c]
                log_z = torch.empty(c, dtype=torch.float64, device=device)
                z_max = torch.empty(c, dtype=self.dtype, device=device)
            for first in range(0, n_layers, k):
                layers = order[first:first + k]
                z = self._logits([self.states(i, rows[i][start:stop]) for i in layers], chunk * k, device)
                for j, layer in enumerate(layers):
                    zl = z[j * c:(j + 1) * c]
                    if not to_final:
                        s = sq[layer % 2]
                        ents[layer, start:stop] = lens_point_(zl, s, scratch, self.temperature)
                    elif layer == last:  # first: p_L, its entropy and top-1 token stay for the layers below
                        s = s_last
                        top = zl.argmax(-1, keepdim=True)
                        ents[layer, start:stop] = ent_last = lens_point_(zl, s, scratch, self.temperature)
                        torch.mul(s, s, out=p_last)
                        continue
                    else:
                        s = sq[layer % 2]
                        at_top = zl.gather(-1, top).squeeze(-1)  # before lens_point_ overwrites the logits
                        ents[layer, start:stop] = lens_point_(zl, s, scratch, self.temperature, log_z, z_max)
                        agree[layer, start:stop] = at_top >= z_max
                        kl[layer, start:stop] = to_final_(zl, log_z, p_last, ent_last, scratch)
                    if layer > 0:
                        steps[layer - 1, start:stop] = fisher_rao_sqrt(sq[(layer - 1) % 2], s, scratch=scratch)
                    if to_final and layer == last - 1:
                        steps[layer, start:stop] = fisher_rao_sqrt(s, s_last, scratch=scratch)
        return steps, ents, kl, agree


def _postprocess_(raw: torch.nn.Module, arch: Architecture, z: torch.Tensor) -> torch.Tensor:
    """architectures.postprocess_logits, in place on the logits buffer (same operations, same order)."""
    if arch.logit_scale_attr is not None:
        z.mul_(getattr(raw, arch.logit_scale_attr))
    if arch.logit_divisor_attr is not None:
        z.div_(getattr(raw.config, arch.logit_divisor_attr))
    if arch.softcap_attr is not None:
        cap = getattr(raw.config, arch.softcap_attr, None)
        if cap is not None:
            z.div_(cap).tanh_().mul_(cap)
    return z
