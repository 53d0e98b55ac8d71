"""SpinalCallback on real (tiny) training runs: TRL DPOTrainer and a plain HF Trainer, and driven step by step."""
from __future__ import annotations

import types
import warnings

import polars as pl
import pytest
import torch
import transformers as T
from support import dpo_trainer, make_policy, make_tokenizer, probe_prompts

import spinal_nb.capture
from spinal_nb.errors import InputError, NumericsError
from spinal_nb.frame import TraceFrame
from spinal_nb.monitor import (
    AlertRule,
    SpinalAlertWarning,
    SpinalCallback,
    ordered_by_step,
    read_events,
    read_training_trace,
)

T.logging.set_verbosity_error()
PROBES = probe_prompts(40)


def _train(trainer) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        trainer.train()
    return [x for x in w if issubclass(x.category, SpinalAlertWarning)]


class ModeSpy(T.TrainerCallback):
    """Runs after SpinalCallback at every step end: records the train/eval flags it left behind."""

    def __init__(self):
        self.seen = []

    def on_step_end(self, args, state, control, model=None, **kw):
        self.seen.append((state.global_step, model.training, all(m.training for m in model.modules())))


def test_dpo_run_records_steps_restores_modes_and_stays_quiet_at_a_sane_lr(tmp_path, monkeypatch):
    tok, model = make_tokenizer(), make_policy()
    inside = []
    real = spinal_nb.capture.trace

    def spy(m, *a, **kw):
        inside.append((m.training, any(x.training for x in m.modules()), torch.is_grad_enabled()))
        return real(m, *a, **kw)
    monkeypatch.setattr(spinal_nb.capture, "trace", spy)
    cb = SpinalCallback(PROBES, every_n_steps=5, path=tmp_path / "trace", max_overhead=None)
    mode = ModeSpy()
    trainer = dpo_trainer(model, tok, lr=1e-5, steps=12, output_dir=tmp_path / "out", callbacks=[cb, mode])
    alerts = _train(trainer)

    assert not alerts and not cb.alerts
    assert inside == [(False, False, False)] * 4  # eval mode, no module training, no grad while tracing
    assert [s for s, *_ in mode.seen] == list(range(1, 13))
    assert all(train and every for _, train, every in mode.seen)  # train mode back on every module
    frame = read_training_trace(tmp_path / "trace")
    assert frame.checkpoints == ["step-000000", "step-000005", "step-000010", "step-000012"]
    assert ordered_by_step(frame) and frame.data.get_column("step").unique().sort().to_list() == [0, 5, 10, 12]
    assert frame.data.height == 4 * 5  # L = 4: layers 0..4 per evaluation
    assert frame.data.equals(cb.frame.data)
    ev = frame.meta["monitor"]["evaluations"]
    assert [e["reason"] for e in ev] == ["start", "periodic", "periodic", "end"]
    assert all(e["trace_seconds"] > 0 for e in ev) and ev[-1]["overhead"] == pytest.approx(
        ev[-1]["trace_seconds_total"] / ev[-1]["train_seconds"])
    assert [e["event"] for e in read_events(tmp_path / "trace")] == ["start", "end"]
    # the last evaluation's alert record: compared with the start, inside the band
    last = ev[-1]["alert"]
    assert last["reference"] == "step-000000" and not last["out"]
    assert frame.meta["checkpoints"]["step-000012"]["prompts_sha256"] == \
        frame.meta["checkpoints"]["step-000000"]["prompts_sha256"]


def test_absurd_learning_rate_fires_and_stops_training(tmp_path):
    tok, model = make_tokenizer(), make_policy()
    cb = SpinalCallback(PROBES, every_n_steps=4, path=tmp_path / "trace", max_overhead=None, stop_on_alert=True,
                        alert=AlertRule(patience=2))
    trainer = dpo_trainer(model, tok, lr=1.0, steps=40, output_dir=tmp_path / "out", callbacks=[cb])
    alerts = _train(trainer)

    assert len(alerts) == 1 and "SPINAL alert at step 8" in str(alerts[0].message)
    assert trainer.state.global_step == 8  # stopped at the alert, long before max_steps
    frame = read_training_trace(tmp_path / "trace")
    assert frame.checkpoints == ["step-000000", "step-000004", "step-000008"]
    assert [a["step"] for a in frame.meta["monitor"]["alerts"]] == [8]
    rec = frame.meta["monitor"]["evaluations"][-1]["alert"]
    assert rec["fired"] and rec["streak"] == 2
    # independent check: the change of the terminal-window mean, from the frame itself
    cmp = frame.compare("step-000000", "step-000008")
    out = [s for s, r in rec["scores"].items() if r["out"]]
    assert out
    for s in out:
        w = cmp.summary[f"window_{s}"]
        assert rec["scores"][s]["delta"] == pytest.approx(w["mean"])
        assert w["lo"] > rec["scores"][s]["band"] or w["hi"] < -rec["scores"][s]["band"]


def test_monitoring_does_not_change_the_training_trajectory(tmp_path):
    """Same seed with and without the callback: bit-identical weights (no RNG drawn, no state touched)."""
    weights = []
    for callbacks in ([], [SpinalCallback(PROBES, every_n_steps=2, path=tmp_path / "t", max_overhead=None)]):
        tok, model = make_tokenizer(), make_policy()
        for layer in model.model.layers:  # dropout on: the trace must not consume the training RNG
            layer.self_attn.attention_dropout = 0.1
        _train(dpo_trainer(model, tok, lr=1e-3, steps=6, output_dir=tmp_path / "o", callbacks=callbacks,
                           disable_dropout=False))
        weights.append({k: v.clone() for k, v in model.state_dict().items()})
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_plain_trainer_language_modelling(tmp_path):
    """Any Trainer works: a causal-LM Trainer, tokenizer from processing_class, default path under output_dir."""
    tok, model = make_tokenizer(), make_policy()
    enc = tok(PROBES[:32])
    data = [{"input_ids": ids, "labels": ids} for ids in enc["input_ids"]]
    args = T.TrainingArguments(output_dir=str(tmp_path / "out"), per_device_train_batch_size=1, max_steps=6,
                               learning_rate=1e-4, report_to="none", use_cpu=True, save_strategy="no",
                               disable_tqdm=True, logging_steps=1000)
    cb = SpinalCallback(PROBES, every_n_steps=3, max_overhead=None)
    T.Trainer(model=model, args=args, train_dataset=data, processing_class=tok, callbacks=[cb]).train()
    frame = read_training_trace(tmp_path / "out" / "spinal-trace")
    assert frame.checkpoints == ["step-000000", "step-000003", "step-000006"]


# -- the callback driven by hand: deterministic clocks, NaN weights, resume, errors ----------------------------------
class Run:
    """Drives a SpinalCallback like a Trainer would, with a fake clock: each step costs `step_s` seconds."""

    def __init__(self, cb, tmp_path, model=None, step_s=1.0, start_step=0):
        self.cb, self.model = cb, model if model is not None else make_policy()
        self.now = 0.0
        cb.clock = lambda: self.now
        self.args = types.SimpleNamespace(output_dir=str(tmp_path))
        self.state = T.TrainerState()
        self.state.global_step = start_step
        self.control = T.TrainerControl()
        self.step_s = step_s
        self.model.train()

    def begin(self):
        self.cb.on_train_begin(self.args, self.state, self.control, model=self.model,
                               processing_class=make_tokenizer())

    def step(self):
        self.now += self.step_s
        self.state.global_step += 1
        self.control = self.cb.on_step_end(self.args, self.state, self.control, model=self.model)

    def end(self):
        self.cb.on_train_end(self.args, self.state, self.control, model=self.model)


def fake_trace(run, seconds):
    """A trace that takes `seconds` on the fake clock and returns a small real TraceFrame."""
    from spinal_nb.synthetic import synthetic_trace

    def trace(model, prompts, *, checkpoint, **kw):
        run.now += seconds
        return synthetic_trace(checkpoint, n_layers=4, d=16, vocab=32, n_prompts=20, tokens_per_prompt=12)
    return trace


@pytest.mark.parametrize("f, trace_s, step_s", [(0.1, 2.0, 1.0), (0.25, 1.0, 0.5), (0.05, 0.3, 1.0)])
def test_max_overhead_bounds_the_tracing_share(tmp_path, monkeypatch, f, trace_s, step_s):
    cb = SpinalCallback(PROBES, every_n_steps=2, path=tmp_path / "t", max_overhead=f)
    run = Run(cb, tmp_path, step_s=step_s)
    monkeypatch.setattr(spinal_nb.capture, "trace", fake_trace(run, trace_s))
    run.begin()
    evaluated, skipped = [], []
    for _ in range(200):
        before = len(cb._frames)
        run.step()
        if run.state.global_step % 2 == 0:
            (evaluated if len(cb._frames) > before else skipped).append(run.state.global_step)
            train_s = run.state.global_step * step_s
            n_traces = 1 + len(evaluated)
            # independent bookkeeping: after an evaluation the share is within f; a skip was needed to stay within
            if len(cb._frames) > before:
                assert n_traces * trace_s <= f * train_s + 1e-9
            else:
                assert (n_traces + 1) * trace_s > f * train_s - 1e-9
    run.end()
    assert skipped == cb.skipped and evaluated and skipped
    total = (1 + len(evaluated) + (200 not in evaluated)) * trace_s  # start + periodic + end (unless just done)
    assert cb.overhead == pytest.approx(total / (200 * step_s))
    assert cb.overhead <= f + trace_s / (200 * step_s) + 1e-9
    skips = [e for e in read_events(tmp_path / "t") if e["event"] == "skip"]
    assert [e["step"] for e in skips] == skipped


def test_nan_weights_fire_at_once_and_stop(tmp_path):
    cb = SpinalCallback(PROBES, every_n_steps=1, path=tmp_path / "t", max_overhead=None, stop_on_alert=True,
                        alert=AlertRule(patience=3))
    run = Run(cb, tmp_path)
    run.begin()
    run.step()
    assert not run.control.should_training_stop
    with torch.no_grad():
        run.model.model.layers[1].mlp.down_proj.weight.fill_(float("nan"))
    with pytest.warns(SpinalAlertWarning, match="NaN/Inf"):
        run.step()
    assert run.control.should_training_stop and run.model.training
    events = read_events(tmp_path / "t")
    assert [e["event"] for e in events] == ["start", "numerics", "alert"]
    assert "layer 2" in events[1]["message"]  # the tracer names the first layer with NaN
    assert read_training_trace(tmp_path / "t").checkpoints == ["step-000000", "step-000001"]


def test_nan_without_alert_rule_still_warns(tmp_path):
    cb = SpinalCallback(PROBES, every_n_steps=1, path=tmp_path / "t", max_overhead=None, alert=None)
    run = Run(cb, tmp_path)
    run.begin()
    with torch.no_grad():
        run.model.model.embed_tokens.weight.fill_(float("inf"))
    with pytest.warns(SpinalAlertWarning, match="failed"):
        run.step()
    assert not run.control.should_training_stop


def test_each_modules_flag_is_restored(tmp_path):
    """A submodule the user keeps in eval mode stays so (the tracer's own restore would flip it to train)."""
    cb = SpinalCallback(PROBES, every_n_steps=1, path=tmp_path / "t", max_overhead=None)
    run = Run(cb, tmp_path)
    run.model.model.layers[0].mlp.eval()
    before = [m.training for m in run.model.modules()]
    run.begin()
    run.step()
    assert [m.training for m in run.model.modules()] == before
    assert before.count(False) == len(list(run.model.model.layers[0].mlp.modules()))  # the mlp and its children


def test_a_failing_trace_propagates_and_restores_modes(tmp_path, monkeypatch):
    cb = SpinalCallback(PROBES, every_n_steps=1, path=tmp_path / "t", max_overhead=None)
    run = Run(cb, tmp_path)
    run.model.model.norm.eval()
    run.begin()

    def boom(model, *a, **kw):
        assert not model.training
        raise RuntimeError("out of memory")
    monkeypatch.setattr(spinal_nb.capture, "trace", boom)
    with pytest.raises(RuntimeError, match="out of memory"):
        run.step()
    assert run.model.training and run.model.model.layers[0].training and not run.model.model.norm.training


def test_resume_keeps_the_past_and_its_reference(tmp_path):
    model = make_policy()
    cb = SpinalCallback(PROBES, every_n_steps=2, path=tmp_path / "t", max_overhead=None)
    run = Run(cb, tmp_path, model=model)
    run.begin()
    for _ in range(6):
        run.step()
    run.end()
    first = read_training_trace(tmp_path / "t")
    assert first.checkpoints == ["step-000000", "step-000002", "step-000004", "step-000006"]
    cb2 = SpinalCallback(PROBES, every_n_steps=2, path=tmp_path / "t", max_overhead=None)
    run2 = Run(cb2, tmp_path, model=model, start_step=4)  # resumed from a checkpoint at step 4
    run2.begin()
    run2.step()
    run2.step()
    run2.end()
    f = read_training_trace(tmp_path / "t")
    assert f.checkpoints == ["step-000000", "step-000002", "step-000004", "step-000006"]
    assert cb2.frame.checkpoints == f.checkpoints
    assert f.meta["monitor"]["evaluations"][-1]["alert"]["reference"] == "step-000000"
    assert [e["event"] for e in read_events(tmp_path / "t")] == ["start", "end", "start", "end"]
    with pytest.raises(InputError, match="overwrite=True"):
        Run(SpinalCallback(PROBES, path=tmp_path / "t"), tmp_path, model=model).begin()


def test_on_evaluation_sees_the_growing_frame(tmp_path):
    seen = []
    cb = SpinalCallback(PROBES, every_n_steps=1, path=tmp_path / "t", max_overhead=None,
                        on_evaluation=lambda f: seen.append(f.checkpoints))
    run = Run(cb, tmp_path)
    run.begin()
    run.step()
    assert seen == [["step-000000"], ["step-000000", "step-000001"]]
    assert isinstance(cb.frame, TraceFrame) and cb.frame.meta["monitor"]["evaluations"][1]["step"] == 1


def test_input_errors(tmp_path):
    for kw in (dict(probe_prompts="one string"), dict(probe_prompts=[]), dict(probe_prompts=["ok", " "]),
               dict(every_n_steps=0), dict(max_overhead=0), dict(alert="strict"), dict(device="cuda"),
               dict(checkpoint="x")):
        args = {"probe_prompts": PROBES, **kw}
        with pytest.raises(InputError):
            SpinalCallback(args.pop("probe_prompts"), **args)
    cb = SpinalCallback(PROBES, path=tmp_path / "t")
    run = Run(cb, tmp_path)
    with pytest.raises(InputError, match="tokenizer"):
        cb.on_train_begin(run.args, run.state, run.control, model=run.model, processing_class=None)
    frame = SpinalCallback(PROBES).frame
    assert frame is None


def test_trace_kwargs_reach_the_tracer(tmp_path):
    cb = SpinalCallback(PROBES, every_n_steps=1, path=tmp_path / "t", max_overhead=None, n_groups=5, batch_size=3,
                        keep_spectra=False)
    run = Run(cb, tmp_path)
    run.begin()
    f = cb.frame
    assert f.params.n_groups == 5 and f.meta["checkpoints"]["step-000000"]["extra"]["batch_size"] == 3
    assert f.data.get_column("spectrum").list.len().max() == 0
    assert f.data.get_column("contraction_jk").list.len().max() == 5
    assert isinstance(f.data.get_column("step").dtype, pl.Int64)


def test_numerics_error_class_is_the_tracers():
    assert issubclass(NumericsError, FloatingPointError)  # what the callback catches is what the tracer raises
