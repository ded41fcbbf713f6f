"""The order of micronutrient hooks and the basal-capacity derivation (the table in
``vpop.models._micronutrient_hooks``): unbuffered hooks lower secretion; with basal secretion kept,
zinc (capacity) has no effect and magnesium makes the response steeper."""

import jax
import numpy as np
import pytest

from vpop._sets import parameters_from_set
from vpop.models import BetaCellParams, dallaman_secretion_map
from vpop.models._betacell import capacity_for_basal
from vpop.models._micronutrient_hooks import apply_micronutrient_hooks


@pytest.fixture(scope="module")
def normal():
    with jax.enable_x64(True):
        _, dm, _ = parameters_from_set("DallaMan2007_normal")
        bc = capacity_for_basal(BetaCellParams.from_dict(), dm.Gb, dm.Sb)
        yield dm, bc, {k: float(v) for k, v in dallaman_secretion_map(bc, dm.Gb).items()}


def _change(dm, q, base):
    return {k: float(v) / base[k] - 1.0 for k, v in dallaman_secretion_map(q, dm.Gb).items() if k in ("Sb", "beta", "K")}


@pytest.mark.parametrize("hook", ["magnesium", "zinc", "vitamin_d"])
def test_unbuffered_deficit_lowers_basal_static_and_dynamic_secretion(normal, hook):
    dm, bc, base = normal
    with jax.enable_x64(True):
        c = _change(dm, apply_micronutrient_hooks(bc, {hook: 0.8}), base)
    assert all(v < -0.1 for v in c.values()), c


def test_with_basal_kept_zinc_cancels_and_magnesium_steepens(normal):
    dm, _, base = normal
    with jax.enable_x64(True):
        kept = {h: _change(dm, capacity_for_basal(apply_micronutrient_hooks(BetaCellParams.from_dict(), {h: 0.8}), dm.Gb, dm.Sb), base)
                for h in ("zinc", "magnesium")}
    assert max(abs(v) for v in kept["zinc"].values()) < 1e-9
    assert abs(kept["magnesium"]["Sb"]) < 1e-9
    assert kept["magnesium"]["beta"] > 0.3 and kept["magnesium"]["K"] > 0.3
    np.testing.assert_allclose([kept["magnesium"]["beta"], kept["magnesium"]["K"]], [0.502, 0.437], atol=0.005)
