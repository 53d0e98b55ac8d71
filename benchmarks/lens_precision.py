"""Precision of the lens entropy and Fisher–Rao steps in float32, against float64, on real SmolLM2 lens logits.

spinal-nb's in-place route (`scores.lens_point_`: one exp, H = log Z - 2 sum e^2 y / Z) and the allocating route a
hand-written cell uses (`log_softmax`, H = -sum p log p in float32) are both compared to float64 on the same logits.

    python benchmarks/lens_precision.py --prompts 16
"""
from __future__ import annotations

import argparse

import torch
from _bench import load_model, pin_threads, real_prompts

from spinal_nb.capture.architectures import lens_logits, resolve_architecture
from spinal_nb.scores import fisher_rao_sqrt, lens_point_


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--prompts", type=int, default=16)
    args = ap.parse_args()
    pin_threads(1)
    model, tok = load_model(args.model)
    arch = resolve_architecture(model)
    enc = tok(real_prompts(args.prompts), return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
        keep = enc["attention_mask"].bool()
        err = {"new H": 0.0, "hand H": 0.0, "new step": 0.0}
        prev64 = prev32 = None
        for h in out.hidden_states[:-1]:  # the last entry is after the final norm in HF; the lens adds it
            z = lens_logits(model, arch, h[keep]).float()
            lp64 = torch.log_softmax(z.double(), -1)
            h64 = -(lp64.exp() * lp64).sum(-1)
            lp = torch.log_softmax(z, -1)
            hand = -(lp.exp() * lp).sum(-1).double()
            s = torch.empty_like(z)
            new = lens_point_(z.clone(), s, torch.empty_like(z))
            err["new H"] = max(err["new H"], float((new - h64).abs().max()))
            err["hand H"] = max(err["hand H"], float((hand - h64).abs().max()))
            s64 = (0.5 * lp64).exp()
            if prev64 is not None:
                ref = 4 * torch.asin((prev64 - s64).norm(dim=-1) / 2)
                got = fisher_rao_sqrt(prev32, s, scratch=torch.empty_like(s))
                err["new step"] = max(err["new step"], float(((got - ref).abs() / ref.clamp_min(1e-12)).max()))
            prev64, prev32 = s64, s
        print(f"{int(keep.sum())} positions x {len(out.hidden_states) - 1} layers, vocab {z.shape[-1]}")
        print(f"max |entropy - float64|: spinal-nb (lens_point_) {err['new H']:.2e} nats, "
              f"hand-written float32 log_softmax {err['hand H']:.2e} nats")
        print(f"max relative error of the Fisher–Rao step vs float64: {err['new step']:.2e}")


if __name__ == "__main__":
    main()
