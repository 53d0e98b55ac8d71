"""Build (or load from the cache) the lab pairs and print their evidence and timings.

    python -m spinal_nb.lab demo        # the Brown-trained Llama pair (~4 min the first time)
    python -m spinal_nb.lab smollm2     # SmolLM2-135M-Instruct → + DPO (~5-7 min the first time)
    python -m spinal_nb.lab tiny        # seconds
    python -m spinal_nb.lab ship-base   # pre-train the demo base from scratch and rewrite the copy in the package
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from ..errors import SpinalError
from .build import build_lab_base, build_lab_pair
from .checkpoint import read_lab_json
from .recipes import RECIPES
from .shipped import ship_base, shipped_folder
from .smollm2 import build_smollm2_pair


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spinal_nb.lab", description=__doc__.splitlines()[0])
    p.add_argument("which", choices=[*RECIPES, "smollm2", "ship-base"])
    p.add_argument("--recipe", default="demo", help="ship-base: the lab recipe whose base to ship (default demo)")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is safest on a busy 2-core machine)")
    a = p.parse_args(argv)
    if a.threads:
        import torch
        torch.set_num_threads(a.threads)
    t = time.perf_counter()
    try:
        if a.which == "ship-base":
            built = build_lab_base(a.recipe, a.cache_dir, from_scratch=True)
            dest = ship_base(built, shipped_folder(RECIPES[a.recipe]))
            print(json.dumps({"built": str(built), "shipped": str(dest), "wall_s": round(time.perf_counter() - t, 1),
                              "timings_s": read_lab_json(built).get("timings_s")}, indent=1))
            return 0
        pair = (build_smollm2_pair(a.cache_dir) if a.which == "smollm2" else build_lab_pair(a.which, a.cache_dir))
    except SpinalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"base_dir": str(pair.base_dir), "dpo_dir": str(pair.dpo_dir), "from_cache": pair.from_cache,
                      "wall_s": round(time.perf_counter() - t, 1),
                      "timings_s": {"base": read_lab_json(pair.base_dir).get("timings_s"),
                                    "dpo": read_lab_json(pair.dpo_dir).get("timings_s")},
                      "evidence": pair.evidence}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
