"""Recipes of the lab builds: frozen dataclasses, hashed into the cache key (change a field → a new checkpoint).

``RECIPES["demo"]`` is the offline lab pair of ``spinal demo`` (a few minutes on 2 CPU cores); ``RECIPES["tiny"]``
builds in seconds for tests. ``SMOLLM2_DPO`` continues SmolLM2-135M-Instruct with DPO on the same kind of pairs.
Timings measured are in the docstrings of :func:`spinal_nb.lab.build_lab_pair` / :func:`build_smollm2_pair`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

# Bump when the code that turns a recipe into weights changes meaning (invalidates every cached lab checkpoint).
LAB_VERSION = 1


@dataclass(frozen=True)
class PretrainRecipe:
    """Byte-level BPE on the Brown ``train`` documents + a Llama-style decoder trained from scratch on them.

    Fixed step count (not wall time), so a build is reproducible: same seed, same steps, same weights (one thread).
    ``train_docs`` limits the documents used (None = all 300 ``train`` documents, 686 K words).
    """
    vocab_size: int = 4096
    n_layers: int = 8
    d_model: int = 128
    n_heads: int = 4
    d_ff: int = 384
    context: int = 128
    batch_size: int = 16
    steps: int = 360
    lr: float = 2e-3
    warmup: int = 30
    weight_decay: float = 0.1
    train_docs: int | None = None
    val_windows: int = 32
    seed: int = 0


@dataclass(frozen=True)
class PairsRecipe:
    """Sentiment preference pairs on real Brown prompts (see :mod:`spinal_nb.lab.preferences`).

    DPO training prompts come from the ``dpo`` documents, evaluation prompts from the disjoint ``dpo_eval``
    documents; evaluation is reported with the training words ("seen words") and with held-out words
    ("unseen words"). Neutral text for KL/LM-loss drift comes from the ``valid`` documents.
    """
    n_train: int = 2000
    n_eval: int = 200
    n_neutral: int = 64
    seed: int = 0


@dataclass(frozen=True)
class DPORecipe:
    """Hand-written DPO (sigmoid loss, frozen reference = the base), AdamW, linear warm-up then constant lr."""
    steps: int = 200
    batch_size: int = 16
    lr: float = 5e-6
    beta: float = 0.1
    warmup: int = 10
    seed: int = 0


@dataclass(frozen=True)
class LabRecipe:
    name: str
    pretrain: PretrainRecipe = field(default_factory=PretrainRecipe)
    pairs: PairsRecipe = field(default_factory=PairsRecipe)
    dpo: DPORecipe = field(default_factory=DPORecipe)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SmolLM2Recipe:
    """DPO continuation of SmolLM2-135M-Instruct (fp32 copy of the packaged GGUF). Raw text, no chat template; the
    tokenizer's BOS (``<|im_start|>``) is prefixed to every sequence."""
    pairs: PairsRecipe = field(default_factory=lambda: PairsRecipe(n_train=2000, n_eval=100, n_neutral=32))
    dpo: DPORecipe = field(default_factory=lambda: DPORecipe(steps=60, batch_size=8, lr=5e-6, beta=0.1, warmup=0))
    name: str = "smollm2"

    def to_dict(self) -> dict:
        return asdict(self)


# Training-seed replicates: the same recipe with another DPO seed (the order the preference pairs are drawn in; the
# models have no dropout), so a comparison can say how much a second run of the same training would differ.
DEMO_SEEDS = 3


def seed_variant(recipe, seed: int):
    """``recipe`` (a LabRecipe or SmolLM2Recipe) with DPO seed ``seed``; everything else, the base included, equal."""
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"a DPO seed is an int ≥ 0, got {seed!r}")
    return replace(recipe, dpo=replace(recipe.dpo, seed=seed))


RECIPES: dict[str, LabRecipe] = {
    "demo": LabRecipe("demo"),
    "tiny": LabRecipe(
        "tiny",
        pretrain=PretrainRecipe(vocab_size=384, n_layers=3, d_model=32, n_heads=2, d_ff=64, context=32,
                                batch_size=16, steps=80, lr=1e-2, warmup=5, train_docs=8, val_windows=8),
        pairs=PairsRecipe(n_train=256, n_eval=64, n_neutral=16),
        dpo=DPORecipe(steps=40, batch_size=16, lr=2e-3, beta=0.1, warmup=2),
    ),
}
SMOLLM2_DPO = SmolLM2Recipe()
# A smoke-test size of the same continuation (what the tests run notebook 03 with, QUICK = True): 6 steps, a larger
# lr so the preference still moves, evidence on 16 held-out pairs. Not an audit: too short to say what DPO does.
SMOLLM2_QUICK = SmolLM2Recipe(pairs=PairsRecipe(n_train=64, n_eval=16, n_neutral=4),
                              dpo=DPORecipe(steps=6, batch_size=8, lr=2e-5, beta=0.1, warmup=0), name="smollm2-quick")
