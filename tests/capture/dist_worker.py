"""One rank of tests/capture/test_distributed.py, launched by torchrun: traces under a gloo process group and writes
what it returned (score columns, prompts its model saw, or the error) to <out>/rank<r>.json."""
import json
import sys

import torch
import torch.distributed as dist
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.errors import InputError

COLUMNS = ("n_tokens", "contraction", "contraction_lo", "contraction_hi", "contraction_jk", "transport",
           "transport_lo", "transport_hi", "transport_jk", "entropy", "entropy_jk", "spectrum")
# name -> (number of prompts, trace keywords): 120 prompts (every group stored as its Gram), 20 (as rows). Batches
# hold whole groups, so that the single-process trace pads the same prompts together: the float32 forward of a
# prompt changes in its last bits with the padded width of its batch (1e-10 on the scores here, as a different
# batch_size does without any rank), which is not what these tests are about.
CASES = {"grams": (120, {"batch_size": 6}), "rows": (20, {"batch_size": 2}),
         "save": (40, {"n_groups": 4, "batch_size": 5})}


def main() -> None:
    out = sys.argv[1]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    model, tok = make_model("llama"), make_tokenizer()
    seen = []
    model.model.layers[0].register_forward_hook(lambda m, i, o: seen.append(int(i[0].shape[0])))
    res = {}
    for name, (n, kw) in CASES.items():
        seen.clear()
        if name == "save":
            kw = {**kw, "save_to": f"{out}/save"}
        frame = trace(model, make_prompts(n, seed=3), tokenizer=tok, progress=False, **kw)
        res[name] = {"prompts_run": sum(seen), "world": next(iter(frame.meta["checkpoints"].values()))["extra"]["world_size"],
                     **{c: frame.data[c].to_list() for c in COLUMNS}}
        if name == "save":  # the same call again: each rank resumes from its own folder, runs nothing, same frame
            seen.clear()
            again = trace(model, make_prompts(n, seed=3), tokenizer=tok, progress=False, **kw)
            extra = next(iter(again.meta["checkpoints"].values()))["extra"]
            res["resumed"] = {"prompts_run": sum(seen), "resumed_from": extra["resumed_from"],
                              "same": all(again.data[c].to_list() == frame.data[c].to_list() for c in COLUMNS)}
    prompts = make_prompts(30, seed=4)
    try:
        trace(model, prompts[:-1] if rank == 1 else prompts, tokenizer=tok, progress=False)
        res["mismatch"] = None
    except InputError as e:
        res["mismatch"] = str(e)
    with open(f"{out}/rank{rank}.json", "w") as f:
        json.dump(res, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
