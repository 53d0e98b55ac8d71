"""The NDIF code path, offline: nnsight's remote="local" simulation, and every failure mode as one RemoteError."""
import pytest
from support import make_model, make_prompts, make_tokenizer

from spinal_nb.capture import trace
from spinal_nb.errors import RemoteError

SCORES = ("contraction", "contraction_lo", "contraction_hi", "transport", "transport_lo", "transport_hi", "entropy",
          "entropy_lo", "entropy_hi", "effective_rank", "kl_to_final", "top1_agreement", "top1_agreement_lo")


def _assert_close(f1, f2, tol=1e-6):
    assert f1.data["n_tokens"].to_list() == f2.data["n_tokens"].to_list()
    for col in SCORES:
        for a, b in zip(f1.data[col].to_list(), f2.data[col].to_list(), strict=True):
            assert (a is None and b is None) or abs(a - b) <= tol * max(1.0, abs(b)), (col, a, b)


@pytest.mark.parametrize("family,kw", [
    ("gpt2", {}), ("gemma2", {"temperature": 2.0}), ("opt", {"top_k": 5}), ("opt_postln", {}), ("phi", {}),
    ("granite", {}), ("cohere", {"top_k": 20, "skip_first": 2}), ("qwen2_moe", {}),
])
def test_server_side_reduction_equals_the_local_trace(family, kw):
    model, tok, prompts = make_model(family), make_tokenizer(), make_prompts(18, seed=21)
    local = trace(model, prompts, tokenizer=tok, batch_size=6, progress=False, **kw)
    simulated = trace(model, prompts, tokenizer=tok, batch_size=6, progress=False, remote="local", **kw)
    _assert_close(simulated, local)
    assert simulated.params == local.params


def test_simulated_remote_lens_detail_and_resume(tmp_path):
    model, tok, prompts = make_model("llama"), make_tokenizer(), make_prompts(12, seed=22)
    local = trace(model, prompts, tokenizer=tok, batch_size=4, progress=False, lens_prompts=2)
    sim = trace(model, prompts, tokenizer=tok, batch_size=4, progress=False, lens_prompts=2, remote="local",
                save_to=tmp_path)
    _assert_close(sim, local)
    assert sim.lens.select("prompt_index", "position", "layer", "rank", "token_id").equals(
        local.lens.select("prompt_index", "position", "layer", "rank", "token_id"))
    again = trace(model, prompts, tokenizer=tok, batch_size=4, progress=False, remote="local", save_to=tmp_path)
    assert again.data.equals(sim.data, null_equal=True)


@pytest.fixture
def api_key(monkeypatch):
    from nnsight import CONFIG
    monkeypatch.setattr(CONFIG.API, "APIKEY", "spinal-test-key")


def test_no_api_key(monkeypatch):
    from nnsight import CONFIG
    monkeypatch.setattr(CONFIG.API, "APIKEY", None)
    with pytest.raises(RemoteError, match="No NDIF API key.*NDIF_API_KEY"):
        trace("openai-community/gpt2", ["the old man"], remote=True, progress=False)


def test_local_model_is_not_a_hub_model(api_key):
    with pytest.raises(RemoteError, match="needs a Hugging Face Hub id"):
        trace(make_model("gpt2"), ["the old man"], tokenizer=make_tokenizer(), remote=True, progress=False)


def test_local_path_is_not_a_hub_model(api_key, tmp_path):
    with pytest.raises(RemoteError, match="local path"):
        trace(str(tmp_path), ["the old man"], remote=True, progress=False)


def test_hub_unreachable(api_key):
    with pytest.raises(RemoteError, match="Could not prepare 'openai-community/gpt2' for NDIF"):
        trace("openai-community/gpt2", ["the old man"], remote=True, progress=False)


def _hub_like_model():
    import nnsight
    tm = nnsight.TransformersModel(make_model("gpt2"), tokenizer=make_tokenizer())
    tm.repo_id = "openai-community/gpt2"
    return tm


def test_model_key_lookup_offline(api_key):
    with pytest.raises(RemoteError, match="NDIF run of 'openai-community/gpt2' failed"):
        trace(_hub_like_model(), ["the old man"], remote="http://127.0.0.1:9", progress=False)


def test_connection_refused(api_key, monkeypatch):
    from nnsight.modeling.mixins.remotable import Remotable
    monkeypatch.setattr(Remotable, "to_model_key", lambda self: "nnsight.modeling.transformers.TransformersModel:{}")
    with pytest.raises(RemoteError, match="failed") as e:
        trace(_hub_like_model(), ["the old man"], remote="http://127.0.0.1:9", progress=False)
    assert isinstance(e.value.__cause__, OSError)


@pytest.mark.parametrize("make_exc", [
    lambda: __import__("nnsight.intervention.backends.remote", fromlist=["RemoteError"]).RemoteError(
        "Model openai-community/gpt2 is not hosted"),
    lambda: __import__("websocket").WebSocketAddressException("[Errno -2] Name or service not known"),
])
def test_server_side_failures(api_key, monkeypatch, make_exc):
    from nnsight.intervention.backends.remote import RemoteBackend

    def fail(self, tracer):
        raise make_exc()

    monkeypatch.setattr(RemoteBackend, "__call__", fail)
    from nnsight.modeling.mixins.remotable import Remotable
    monkeypatch.setattr(Remotable, "to_model_key", lambda self: "key")
    with pytest.raises(RemoteError, match="NDIF run"):
        trace(_hub_like_model(), ["the old man"], remote=True, progress=False)
