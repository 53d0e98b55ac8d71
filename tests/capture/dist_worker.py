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


# a real model (SmolLM2-135M-Instruct, 30 layers, d = 576): 20 English sentences, 2 per batch (whole groups)
REAL_PROMPTS = [f"{a} {b}" for a in ("The committee said on Friday that", "She opened the letter and found",
                                     "In the spring of that year the farmers", "The new bridge across the river",
                                     "After the long meeting, the mayor")
                for b in ("the results were better than expected.", "nobody had noticed the change.",
                          "the town would have to wait another year.", "it was time to go home.")]
REAL_KW = {"batch_size": 2}


def real_model(out: str, folder: str) -> None:
    from spinal_nb.lab import load_checkpoint

    rank = dist.get_rank()
    model, tok = load_checkpoint(folder)
    seen = []
    model.model.layers[0].register_forward_hook(lambda m, i, o: seen.append(int(i[0].shape[0])))
    frame = trace(model, REAL_PROMPTS, tokenizer=tok, progress=False, **REAL_KW)
    res = {"prompts_run": sum(seen), **{c: frame.data[c].to_list() for c in COLUMNS}}
    with open(f"{out}/real{rank}.json", "w") as f:
        json.dump(res, f)


def main() -> None:
    out = sys.argv[1]
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    if len(sys.argv) > 2:  # a real model's folder
        real_model(out, sys.argv[2])
        dist.destroy_process_group()
        return
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
