"""Smoke test of the benchmark command (tiny cohort; no timing assertions)."""

import json
import math

import pytest

import vpop._bench as bench

REQUIRED = {"case", "device", "n_people", "patient_days_per_s", "baseline_patient_days_per_s", "ratio",
            "compile_s", "baseline_n_people", "median_s", "repeats", "peak_rss_mb", "mode", "dtype",
            "vpop_version", "jax_version"}


def test_run_bench_tiny(tmp_path, capsys):
    out = tmp_path / "bench.jsonl"
    assert bench.main(["--case", "meal", "--sizes", "4", "--repeats", "1", "--baseline-cap", "3", "--out", str(out)]) == 0
    stdout_rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    file_rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert stdout_rows == file_rows
    assert [r["case"] for r in stdout_rows] == ["meal_model_1day", "meal_model_1day_reference"]
    for row in stdout_rows:
        assert REQUIRED <= set(row)
        assert row["n_people"] == 4 and row["baseline_n_people"] == 3
        for key in ("patient_days_per_s", "baseline_patient_days_per_s", "ratio", "median_s", "peak_rss_mb"):
            assert math.isfinite(row[key]) and row[key] > 0, key
        assert math.isfinite(row["compile_s"]) and row["compile_s"] >= 0
        assert row["n_ok"] == 4
        assert row["agreement_max_abs_mg_dl"] < bench.AGREEMENT_TOL_MG_DL
    assert {r["mode"] for r in stdout_rows} == {"fast", "reference"}


def test_run_bench_rejects_bad_arguments():
    with pytest.raises(ValueError):
        bench.run_bench(True, sizes=[0])
    with pytest.raises(ValueError):
        bench.run_bench(True, sizes=[4], repeats=0)
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "-1"])
    with pytest.raises(SystemExit):
        bench.main(["--case", "t1d", "--t1d-people", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--case", "t1d", "--t1d-naive-cap", "0"])


def test_t1d_people_reaches_the_case(capsys):
    assert bench.main(["--quick", "--case", "t1d", "--t1d-people", "31", "--repeats", "1"]) in (0, None)
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["n_people"] for r in rows] == [60]  # rounded up to whole copies of the 30 patients


def test_sample_cohort_is_the_documented_cohort():
    import numpy as np

    import vpop

    _, cohort = bench.sample_cohort(5)
    _, direct, _ = vpop.sample_population(bench.PARAMETER_SET, 5, cv=bench.COHORT_CV, seed=0)
    assert cohort.Vmx.shape == (5,)
    np.testing.assert_array_equal(np.asarray(cohort.Vmx), np.asarray(direct.Vmx))


def test_t1d_case_smoke():
    from vpop._bench_t1d import run_t1d_case

    (row,) = run_t1d_case(True, n_people=30, repeats=1, simglucose_python="/nonexistent/python")
    assert row["case"] == "t1d_uva_padova" and row["n_people"] == 30 and row["n_ok"] == 30
    assert row["patient_days_per_s"] > 0 and math.isfinite(row["patient_days_per_s"])
    # simglucose unavailable: no invented baseline or ratio
    assert row["baseline_patient_days_per_s"] is None and row["ratio"] is None
