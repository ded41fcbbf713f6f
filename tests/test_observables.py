"""Observables: clinical indices against hand-computed numbers, AUC/peak on known arrays, and the
summary table of a simulated OGTT."""

from __future__ import annotations

import dataclasses
import math

import jax.numpy as jnp
import numpy as np
import pytest

import vpop
from vpop._engine import Status
from vpop._observables import value_at

OGTT10 = vpop.ogtt(75.0, save_every_min=10.0)  # same shape as in test_engine.py (shared compile)


# --------------------------------------------------------------------------- indices by hand


def test_homa_ir_by_hand():
    # FPG 90 mg/dL, FPI 60 pmol/L = 10 µU/mL (factor 6.0) → 90·10/405 = 2.2222…
    assert float(vpop.homa_ir(90.0, 60.0)) == pytest.approx(90.0 * 10.0 / 405.0, rel=1e-15)
    assert float(vpop.homa_ir(90.0, 60.0)) == pytest.approx(2.2222222, rel=1e-7)
    # 126 mg/dL and 150 pmol/L (25 µU/mL) → 7.7778; vectorised over people.
    out = np.asarray(vpop.homa_ir(jnp.array([90.0, 126.0]), jnp.array([60.0, 150.0])))
    np.testing.assert_allclose(out, [2.0 + 2.0 / 9.0, 126.0 * 25.0 / 405.0], rtol=1e-14)


def test_matsuda_by_hand():
    g = np.array([90.0, 150.0, 160.0, 140.0, 120.0])  # mg/dL at 0, 30, 60, 90, 120 min
    i = np.array([60.0, 300.0, 360.0, 300.0, 240.0])  # pmol/L = 10, 50, 60, 50, 40 µU/mL
    # mean G = 660/5 = 132, mean I = 210/5 = 42 µU/mL → 10000/√(90·10·132·42) = 4.4768…
    expected = 1e4 / math.sqrt(90.0 * 10.0 * 132.0 * 42.0)
    assert expected == pytest.approx(4.47675, rel=1e-5)
    assert float(vpop.matsuda_index(g, i)) == pytest.approx(expected, rel=1e-14)
    # Batched over people (leading axis).
    two = np.asarray(vpop.matsuda_index(np.stack([g, 2 * g]), np.stack([i, i])))
    np.testing.assert_allclose(two, [expected, expected / 2.0], rtol=1e-14)


def test_auc_of_constant_and_linear():
    t = np.arange(0.0, 181.0, 10.0)
    assert float(vpop.auc(jnp.full(t.shape, 5.0), t)) == pytest.approx(5.0 * 180.0, rel=1e-15)
    # Non-uniform grid; the trapezoid rule is exact for a linear function: ∫0^10 (2t + 1) dt = 110.
    tn = np.array([0.0, 1.0, 3.0, 7.0, 10.0])
    assert float(vpop.auc(2 * tn + 1, tn)) == pytest.approx(110.0, rel=1e-14)
    # Batched: one AUC per person.
    x = jnp.stack([jnp.full(t.shape, 1.0), jnp.full(t.shape, 3.0)])
    np.testing.assert_allclose(np.asarray(vpop.auc(x, t)), [180.0, 540.0], rtol=1e-15)


def test_incremental_auc():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    assert float(vpop.incremental_auc(jnp.full(4, 90.0), t)) == 0.0  # constant: no increment
    # Triangle above baseline 90: 90 → 110 → 90 → 90: area 20·20/2 = 200.
    assert float(vpop.incremental_auc(jnp.array([90.0, 110.0, 90.0, 90.0]), t)) == pytest.approx(200.0)
    # Dips below baseline are clipped to 0 at each sample: 90 → 70 → 90 counts nothing.
    assert float(vpop.incremental_auc(jnp.array([90.0, 70.0, 90.0, 90.0]), t)) == 0.0


def test_peak_and_time_to_peak():
    t = np.array([0.0, 10.0, 20.0, 30.0])
    v, tp = vpop.peak(jnp.array([1.0, 3.0, 7.0, 2.0]), t)
    assert float(v) == 7.0 and float(tp) == 20.0
    v, tp = vpop.peak(jnp.array([[1.0, 3.0, 7.0, 2.0], [9.0, 3.0, 1.0, 2.0]]), t)
    np.testing.assert_array_equal(np.asarray(v), [7.0, 9.0])
    np.testing.assert_array_equal(np.asarray(tp), [20.0, 0.0])


def test_value_at_needs_a_grid_time():
    t = np.arange(0.0, 181.0, 10.0)
    x = jnp.arange(19.0)
    assert float(value_at(x, t, 120.0)) == 12.0
    with pytest.raises(ValueError, match="not on the output grid"):
        value_at(x, t, 125.0)


# --------------------------------------------------------------------------- summary of an OGTT


@pytest.fixture(scope="module")
def ogtt_run():
    # 4 sampled people on the 10-min OGTT grid, reference mode with max_steps=256: the shape of the
    # failure-isolation tests in test_engine.py (shared compile).
    model, P, _ = vpop.sample_population("DallaMan2007_normal", 4, cv={"Vmx": 0.3, "kp3": 0.3}, seed=7)
    return vpop.simulate(model, P, OGTT10, mode="reference", max_steps=256)


def test_summarize_ogtt(ogtt_run):
    r = ogtt_run
    df = vpop.summarize(r)
    assert len(df) == 4 and list(df["person"]) == [0, 1, 2, 3]
    assert (df["status"] == "OK").all()
    g = np.asarray(r.glucose_mg_per_dl())
    ins = np.asarray(r.insulin_pmol_per_l())
    k120 = int(np.flatnonzero(r.time_min == 120.0)[0])
    # The 2-h value is the glucose sample at t = 120 min, and FPG the one at t = 0 (the basal state).
    np.testing.assert_array_equal(df["ogtt_2h_glucose [mg/dL]"].to_numpy(), g[:, k120])
    np.testing.assert_array_equal(df["fpg [mg/dL]"].to_numpy(), g[:, 0])
    np.testing.assert_allclose(df["fpg [mg/dL]"].to_numpy(), np.asarray(r.params.Gb), rtol=1e-12)
    np.testing.assert_allclose(df["homa_ir [1]"].to_numpy(), g[:, 0] * ins[:, 0] / 6.0 / 405.0, rtol=1e-12)
    # Matsuda from the five OGTT samples, by hand.
    ks = [int(np.flatnonzero(r.time_min == s)[0]) for s in (0.0, 30.0, 60.0, 90.0, 120.0)]
    gs, is_ = g[:, ks], ins[:, ks] / 6.0
    mats = 1e4 / np.sqrt(gs[:, 0] * is_[:, 0] * gs.mean(axis=1) * is_.mean(axis=1))
    np.testing.assert_allclose(df["matsuda [1]"].to_numpy(), mats, rtol=1e-12)
    # Peak and AUC columns agree with the trajectories.
    np.testing.assert_array_equal(df["glucose_peak [mg/dL]"].to_numpy(), g.max(axis=1))
    np.testing.assert_array_equal(df["glucose_time_to_peak [min]"].to_numpy(), r.time_min[g.argmax(axis=1)])
    np.testing.assert_allclose(df["glucose_auc [mg/dL*min]"].to_numpy(), np.trapezoid(g, r.time_min, axis=1), rtol=1e-12)
    # A real excursion: the peak comes after t = 0, well above fasting, and above the 2-h value.
    assert np.all(df["glucose_time_to_peak [min]"] > 0.0)
    assert np.all(df["glucose_peak [mg/dL]"] > df["fpg [mg/dL]"] + 30.0)
    assert np.all(df["glucose_peak [mg/dL]"] > df["ogtt_2h_glucose [mg/dL]"])


def test_summarize_marks_failed_people_nan(ogtt_run):
    r = ogtt_run
    status = np.asarray(r.status).copy()
    status[2] = Status.NON_FINITE
    failed = dataclasses.replace(r, status=status)
    df = vpop.summarize(failed)
    numeric = [c for c in df.columns if c not in ("person", "status")]
    assert df.loc[2, "status"] == "NON_FINITE"
    assert df.loc[2, numeric].isna().all()
    assert np.isfinite(df.loc[[0, 1, 3], numeric].to_numpy(np.float64)).all()
    # Averages over the cohort cannot silently include the failed person.
    ok = vpop.summarize(r)
    assert df["fpg [mg/dL]"].mean() == pytest.approx(ok.loc[[0, 1, 3], "fpg [mg/dL]"].mean(), rel=1e-14)


def test_traces_long_table(ogtt_run):
    r = ogtt_run
    tr = vpop.traces(r, every_min=30.0)
    times = np.arange(0.0, 181.0, 30.0)
    assert len(tr) == 4 * len(times)
    np.testing.assert_array_equal(tr["time [min]"].to_numpy()[: len(times)], times)
    g = np.asarray(r.glucose_mg_per_dl())[1, ::3]
    np.testing.assert_array_equal(tr.loc[tr["person"] == 1, "glucose [mg/dL]"].to_numpy(), g)
    with pytest.raises(ValueError, match="multiple"):
        vpop.traces(r, every_min=15.0)
