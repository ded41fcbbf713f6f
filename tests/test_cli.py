"""End to end: vpop run writes complete results (or nothing), vpop validate reports the oracle check."""

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from vpop import _study
from vpop._config import parse_config
from vpop.cli import main

SMALL = {
    "name": "small",
    "seed": 7,
    "mode": "fast",
    "save_every_min": 5,
    "chunk_size": 3,
    "protocol": {"kind": "ogtt", "glucose_g": 75, "duration_min": 180},
    "cohorts": [
        {"name": "normal", "parameter_set": "DallaMan2007_normal", "n_people": 5,
         "variability": {"cv": {"Vmx": 0.3, "beta": 0.3}}},
        {"name": "T2D", "parameter_set": "DallaMan2007_T2D", "n_people": 4},
    ],
}


def test_run_writes_complete_results(tmp_path, capsys):
    cfg_path = tmp_path / "small.yaml"
    cfg_path.write_text(yaml.safe_dump(SMALL))
    out = tmp_path / "out"
    assert main(["run", str(cfg_path), "--out", str(out), "--quiet"]) == 0
    files = {p.name for p in out.iterdir()}
    assert files == {"summary.parquet", "cohort_summary.csv", "traces.parquet", "glucose_insulin.png", "config.yaml", "manifest.json"}
    summary = pd.read_parquet(out / "summary.parquet")
    assert len(summary) == 9 and list(summary["cohort"].unique()) == ["normal", "T2D"]
    assert (summary["status"] == "OK").all()
    # chunking (chunk_size 3, padded last chunk) keeps every person exactly once
    assert sorted(summary[summary.cohort == "normal"]["person"]) == list(range(5))
    assert any("[mg/dL]" in c for c in summary.columns) and any(c.startswith("param.Vmx [") for c in summary.columns)
    traces = pd.read_parquet(out / "traces.parquet")
    assert set(traces["time [min]"]) == set(np.arange(0, 181, 5.0))
    manifest = json.loads((out / "manifest.json").read_text())
    for key in ("config", "seed", "versions", "device", "files"):
        assert key in manifest
    assert manifest["seed"] == 7 and manifest["versions"]["jax"]
    assert set(manifest["files"]) == files - {"manifest.json"}
    # nothing left behind but the output directory
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    # refuses to overwrite without --overwrite
    assert main(["run", str(cfg_path), "--out", str(out), "--quiet"]) == 2


def test_same_seed_same_results_and_chunking_invariance():
    a = _study.run_study(parse_config(SMALL), progress=False)
    b = _study.run_study(parse_config({**SMALL, "chunk_size": 10}), progress=False)
    cols = [c for c in a.summary.columns if c != "status"]
    pd.testing.assert_frame_equal(a.summary[cols], b.summary[cols], check_exact=False, rtol=1e-5)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    result = _study.run_study(parse_config(SMALL), progress=False)

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(_study, "plot_study", boom)
    out = tmp_path / "out"
    with pytest.raises(OSError):
        _study.write_results(result, out)
    assert list(tmp_path.iterdir()) == []


def test_bad_config_fails_before_compute(tmp_path, capsys, monkeypatch):
    bad = dict(SMALL, cohorts=[{"name": "x", "parameter_set": "DallaMan2007_normal", "n_people": 2, "overrides": {"VG": -1}}])
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    called = []
    monkeypatch.setattr(_study, "run_study", lambda *a, **k: called.append(1))
    assert main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert "VG" in capsys.readouterr().err and not called
    assert not (tmp_path / "o").exists()


def test_validate_json_reports_oracle_check(capsys):
    # the full `vpop validate` runs every check (minutes; each has its own test at small size)
    assert main(["validate", "--json", "--check", "dallaman2007_biomd379"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert rows and all(set(r) == {"check", "reference", "metric", "value", "tolerance", "passed"} for r in rows)
    mine = [r for r in rows if r["check"] == "dallaman2007_biomd379"]
    by_metric = {r["metric"]: r for r in mine}
    g = by_metric["max_abs_diff_glucose [mg/dL]"]
    i = by_metric["max_abs_diff_insulin [pmol/L]"]
    assert g["tolerance"] == 1e-3 and g["value"] <= 1e-3 and g["passed"]
    assert i["tolerance"] == 1e-2 and i["value"] <= 1e-2 and i["passed"]
    # every state of the reference and every flux is compared
    assert len(mine) >= 20 and all(r["passed"] for r in mine)


def test_validate_check_fails_when_model_is_wrong(monkeypatch):
    """The oracle check can fail: with the paper's positive-part secretion instead of the SBML's
    signed derivative term, the BIOMD379 trajectory is not reproduced."""
    from vpop import _validate

    real = _validate.parameters_from_set

    def wrong(name, *a, **k):
        return real(name, *a, model_options={"dynamic_secretion": "positive_part"}, **k)

    monkeypatch.setattr(_validate, "parameters_from_set", wrong)
    rows = _validate.check_dallaman2007_biomd379()
    assert not all(r["passed"] for r in rows)
