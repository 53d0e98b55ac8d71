"""`spinal doctor`: the block a user pastes into a bug report; and the honest public namespace of `spinal_nb`."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata

import torch

from spinal_nb import cli, doctor, extras


def test_doctor_lists_versions_extras_caches_threads_devices(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("SPINAL_CACHE", str(tmp_path / "sc"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    assert cli.main(["doctor"]) == 0
    rows = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    rows = {k.rstrip(": ").strip(): v.strip() for k, v in rows.items()}
    for dist in ("torch", "transformers", "nnsight", "polars", "anywidget"):
        assert rows[dist] == metadata.version(dist)
    assert rows["python"].startswith(".".join(map(str, sys.version_info[:3])))
    for name in extras.EXTRAS:
        assert rows[f"extra [{name}]"] == "present"
    assert rows["spinal cache"] == str(tmp_path / "sc")
    assert rows["hugging face cache"] == str(tmp_path / "hf" / "hub")
    assert rows["torch threads"] == str(torch.get_num_threads())
    assert rows["cuda"] == ("no" if not torch.cuda.is_available() else rows["cuda"]) and rows["mps"] in ("yes", "no")
    assert not any(p.name == "sc" for p in tmp_path.iterdir())  # the doctor creates nothing


def test_doctor_names_a_missing_extra_with_its_command(monkeypatch):
    e = extras.EXTRAS["export"]
    monkeypatch.setitem(extras.EXTRAS, "export", extras.Extra("export", ("no_such_module_spinal_x",), e.adds,
                                                              e.without))
    assert "extra [export]:     missing (no_such_module_spinal_x): pip install 'spinal-nb[export]'" in doctor.report()


def test_the_namespace_is_the_public_api_and_import_stays_light():
    code = ("import sys, json, spinal_nb as s\n"
            "heavy = [m for m in ('nnsight', 'transformers', 'anywidget', 'altair', 'IPython') if m in sys.modules]\n"
            "print(json.dumps({'dir': dir(s), 'all': s.__all__, 'heavy': heavy,\n"
            "                  'resolved': all(getattr(s, n) is not None for n in s.__all__)}))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    got = json.loads(r.stdout)
    assert got["heavy"] == []  # trace/show/chart load torch's tracer and the widgets on first use only
    for name in ("trace", "show", "compare", "chart", "TraceFrame", "read_parquet", "SpinalParams", "SpinalCallback",
                 "fit_tuned_lens", "TunedLens"):
        assert name in got["dir"] and name in got["all"]
    assert sorted(got["all"]) == got["dir"]
    assert not {"annotations", "importlib", "_importlib"} & set(got["dir"])
    assert got["resolved"]  # every listed name exists (the lazy ones load)
