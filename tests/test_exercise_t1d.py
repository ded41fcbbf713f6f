"""Issue 6: physical activity in the UVA/Padova 2008 T1D model (Dalla Man, Breton & Cobelli 2009)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import vpop
from vpop._mechanism_checks import check_exercise_t1d
from vpop.models import UvaPadova2008Exercise, UvaPadovaInputs
from vpop.models._uvapadova2008_exercise import (
    UvaPadovaExerciseInputs,
    exercise_params,
    exercise_state,
    with_exercise,
)


def test_zero_exercise_is_the_2008_model_and_exercise_raises_uptake():
    cohort = vpop.uva_padova_cohort(["adult#001", "child#002"])
    model, p, _ = with_exercise(cohort.model, cohort.params, cohort.y0)
    y = jax.tree_util.tree_map(lambda a: a * 1.1 + 1.0, cohort.y0)  # off basal
    u0 = UvaPadovaInputs(jnp.full(2, 0.5), jnp.full(2, 0.01))
    d0 = cohort.model.vector_field(0.0, y, cohort.params, u0)
    d = model.vector_field(0.0, exercise_state(y), p, UvaPadovaExerciseInputs(*u0, jnp.zeros(2)))
    for k in d0._fields:
        np.testing.assert_allclose(np.asarray(getattr(d, k)), np.asarray(getattr(d0, k)), rtol=1e-12, atol=1e-12)
    # during exercise Y rises, and Y > 0 takes more glucose into tissue
    ex = model.vector_field(0.0, exercise_state(y), p, UvaPadovaExerciseInputs(*u0, jnp.full(2, 50.0)))
    assert np.all(np.asarray(ex.exercise_hr_signal) > 0)
    y_ex = exercise_state(y)._replace(exercise_hr_signal=jnp.full(2, 60.0))
    ex = model.vector_field(0.0, y_ex, p, UvaPadovaExerciseInputs(*u0, jnp.full(2, 50.0)))
    assert np.all(np.asarray(ex.glucose_tissue) < np.asarray(d0.glucose_tissue))
    with pytest.raises(ValueError, match="ex_T_ex"):
        exercise_params(cohort.params, {"ex_T_ex": -1.0})
    assert isinstance(model, UvaPadova2008Exercise)


def test_no_exercise_scenario_runs_the_plain_model():
    cohort = vpop.uva_padova_cohort(["adult#001"])
    with pytest.raises((ValueError, AttributeError), match="exercise_si_signal"):
        vpop.simulate_t1d(cohort, vpop.T1DScenario(60.0), saved_states=("exercise_si_signal",))


def test_exercise_check_passes_and_can_fail():
    """One adult (the validate check runs five): the DirecNet bout lowers glucose 20–60%, insulin
    sensitivity stays raised 6 h later and glucose stays down; without the exercise gains nothing moves."""
    rows = check_exercise_t1d(("adult#003",))
    assert len(rows) == 3 and all(r["passed"] for r in rows), rows
    bad = check_exercise_t1d(("adult#003",), {"ex_beta": 0.0, "ex_A": 0.0})
    assert not any(r["passed"] for r in bad)
