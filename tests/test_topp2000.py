"""Topp 2000 βIG model: the BioModels oracle, fixed points, and that the check can fail."""

import jax.numpy as jnp
import numpy as np
import pytest

from vpop._validate import check_topp2000_biomd341
from vpop.models import TOPP2000_VALUES, Topp2000, Topp2000Params, Topp2000State


def test_topp2000_matches_biomd341():
    rows = check_topp2000_biomd341()
    assert len(rows) == 4 and all(r["passed"] for r in rows), rows
    assert max(r["value"] for r in rows) <= 1e-4


def test_topp2000_check_can_fail():
    # r1 off by 1 %: β-cell dynamics change enough over 1000 days to break the 1e-4 tolerance
    rows = check_topp2000_biomd341({"r1": TOPP2000_VALUES["r1"] * 1.01})
    assert not all(r["passed"] for r in rows)


def test_fixed_points_and_steady_state():
    model = Topp2000()
    p = Topp2000Params.from_dict(TOPP2000_VALUES)
    low, high = model.beta_cell_fixed_points_mg_per_dl(p)
    assert float(low) == pytest.approx(100.0) and float(high) == pytest.approx(250.0)
    # physiological steady state at G = 100: I from dG = 0, β from dI = 0; all derivatives vanish
    G = 100.0
    I = (p.R0 / G - p.EG0) / p.SI
    B = p.k * I * (p.alpha + G * G) / (p.sigma * G * G)
    dy = model.vector_field(0.0, Topp2000State(jnp.asarray(G), I, B), p)
    assert np.allclose([float(d) for d in dy], 0.0, atol=1e-9)


# Qualitative behaviour (Topp et al. 2000, "pathways to diabetes"), with insulin sensitivity as a
# driver: t in days, SI multiplied by a linear decline.
from vpop.models import simulate_topp2000  # noqa: E402


def _run(drop, over_days, years, adaptive=True):
    p = Topp2000Params.from_dict(TOPP2000_VALUES)
    y0 = Topp2000().steady_state(p)
    t = np.arange(0.0, years * 365.0 + 1.0, 5.0)
    ys, ok = simulate_topp2000(p, y0, t, si_multiplier=lambda tt: 1.0 - drop * jnp.minimum(tt / over_days, 1.0),
                               adaptive_beta=adaptive)
    assert bool(ok)
    return t, np.asarray(ys.glucose_mg_per_dl), np.asarray(ys.insulin_uu_per_ml), np.asarray(ys.beta_cell_mass_mg)


def test_adaptive_beta_cells_compensate_insulin_resistance():
    t, G, I, B = _run(0.5, 730.0, 10)
    # β-cell mass grows only while G > 100 mg/dL, so compensation shows as a small transient excursion
    assert G.max() < 105.0 and abs(G[-1] - 100.0) < 0.5
    assert I[-1] / I[0] == pytest.approx(2.0, rel=1e-2)  # hyperinsulinaemia: insulin doubles as SI halves
    assert B[-1] / B[0] == pytest.approx(2.0, rel=1e-2)


def test_without_adaptation_fasting_glucose_crosses_126_within_years():
    t, G, I, B = _run(0.5, 730.0, 10, adaptive=False)
    assert np.allclose(B, B[0], rtol=1e-12)
    crossed = t[np.argmax(G >= 126.0)]
    assert (G >= 126.0).any() and crossed < 3 * 365.0 and G[-1] > 126.0


def test_resistance_beyond_the_threshold_escapes_to_the_pathological_state():
    # a fast, deep fall in SI outruns β-cell growth: G passes the 250 mg/dL saddle and β cells fail
    t, G, I, B = _run(0.95, 30.0, 5)
    assert t[np.argmax(G >= 126.0)] < 365.0 and G[-1] > 250.0 and B[-1] < 0.1 * B[0]
    # just below the threshold the same model still compensates
    t, G, I, B = _run(0.85, 30.0, 5)
    assert abs(G[-1] - 100.0) < 0.5
