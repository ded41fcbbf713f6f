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
