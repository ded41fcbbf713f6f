"""Physical activity in the whole-body model (issue 6): DallaMan2007Exercise and exercise bouts in
protocols."""

import jax
import numpy as np
import pytest

import vpop
from vpop._sets import parameters_from_set
from vpop.models import DallaMan2007, DallaMan2007Exercise, dallaman_exercise_params
from vpop.models._uvapadova2008_exercise import insulin_sensitivity_multiplier

jax.config.update("jax_enable_x64", True)


@pytest.fixture(scope="module")
def normal():
    _, p, _ = parameters_from_set("DallaMan2007_normal")
    return p


def _protocol(bouts=(), meals=(), minutes=720.0):
    return vpop.Protocol(minutes, tuple(meals), 1.0, name="exercise_test", kind="meals", exercise=tuple(bouts))


def test_without_exercise_it_is_the_parent_model(normal):
    meals = (vpop.Meal(60.0, 70.0), vpop.Meal(300.0, 50.0))
    a = vpop.simulate(DallaMan2007(), normal, _protocol(meals=meals), mode="reference")
    b = vpop.simulate(DallaMan2007Exercise(), dallaman_exercise_params(normal), _protocol(meals=meals), mode="reference")
    # the same equations; the three extra (zero) states only change the adaptive solver's steps
    # (measured difference 1.6e-9 mg/dL)
    assert np.max(np.abs(np.asarray(a.glucose_mg_per_dl()) - np.asarray(b.glucose_mg_per_dl()))) < 1e-6
    assert np.max(np.abs(np.asarray(a.insulin_pmol_per_l()) - np.asarray(b.insulin_pmol_per_l()))) < 1e-6


def test_a_bout_raises_uptake_lowers_glucose_and_insulin_and_leaves_insulin_sensitivity_raised(normal):
    pe = dallaman_exercise_params(normal)
    bout = vpop.ExerciseBout(60.0, 60.0, 50.0)
    r = vpop.simulate(DallaMan2007Exercise(), pe, _protocol([bout]), mode="reference")
    g, ins = np.asarray(r.glucose_mg_per_dl())[0], np.asarray(r.insulin_pmol_per_l())[0]
    u = np.asarray(r.fluxes().U)[0]
    assert np.all(r.status == 0)
    assert u[110] > 1.2 * u[0]  # uptake up during the bout
    assert np.ptp(g[:60]) < 1e-9 and g.min() < 0.95 * g[0]  # steady before, falls with exercise
    assert ins[120] < 0.8 * ins[0]  # secretion falls with glucose
    y = DallaMan2007Exercise.State(**{k: np.asarray(v)[0] for k, v in r.states.items()})
    m = np.asarray(insulin_sensitivity_multiplier(y, pe))
    assert m[60 + 60 + 360] > 1.2  # insulin sensitivity still raised 6 h after the bout
    assert m[59] == 1.0


def test_a_meal_after_exercise_gives_lower_glucose(normal):
    pe = dallaman_exercise_params(normal)
    meal = (vpop.Meal(300.0, 75.0),)
    rest = vpop.simulate(DallaMan2007Exercise(), pe, _protocol(meals=meal), mode="reference")
    ex = vpop.simulate(DallaMan2007Exercise(), pe, _protocol([vpop.ExerciseBout(60.0, 60.0, 50.0)], meal), mode="reference")
    auc = [np.asarray(r.glucose_mg_per_dl())[0, 300:540].mean() for r in (rest, ex)]
    assert auc[1] < auc[0] - 2.0


def test_fast_mode_matches_reference(normal):
    pe = dallaman_exercise_params(normal)
    prot = _protocol([vpop.ExerciseBout(60.0, 45.0, 60.0)], (vpop.Meal(240.0, 60.0),))
    ref = np.asarray(vpop.simulate(DallaMan2007Exercise(), pe, prot, mode="reference").glucose_mg_per_dl())
    fast = np.asarray(vpop.simulate(DallaMan2007Exercise(), pe, prot, mode="fast").glucose_mg_per_dl())
    assert np.max(np.abs(ref - fast)) < 1.0


@pytest.mark.parametrize(("bout", "match"), [
    ({"start_min": 30.5, "duration_min": 30.0, "intensity_pct_vo2max": 50.0}, "not on the output grid"),
    ({"start_min": 700.0, "duration_min": 60.0, "intensity_pct_vo2max": 50.0}, "ends after duration_min"),
])
def test_bad_bouts_are_rejected_by_the_protocol(bout, match):
    with pytest.raises(ValueError, match=match):
        _protocol([vpop.ExerciseBout(**bout)])


def test_bad_bout_values_and_overlaps_name_the_field():
    with pytest.raises(ValueError, match="intensity_pct_vo2max"):
        vpop.ExerciseBout(0.0, 30.0, 120.0)
    with pytest.raises(ValueError, match="duration_min"):
        vpop.ExerciseBout(0.0, 0.0, 50.0)
    with pytest.raises(ValueError, match="overlap"):
        _protocol([vpop.ExerciseBout(60.0, 60.0, 50.0), vpop.ExerciseBout(90.0, 30.0, 40.0)])
    with pytest.raises(ValueError, match="ex_A"):
        dallaman_exercise_params(parameters_from_set("DallaMan2007_normal")[1], {"ex_A": -1.0})


def test_liver_exercise_model_uses_glycogen_through_epinephrine(normal):
    """DallaMan2007LiverExercise: the parent liver model without exercise; with a bout, epinephrine
    rises (exercise term), uptake rises and more liver glycogen is used than at rest. The size of the
    hepatic response is a known miss (module docstring), so only directions are asserted here."""
    from vpop.models import DallaMan2007Liver
    from vpop.models._dallaman2007_exercise import (
        DallaMan2007LiverExercise,
        liver_exercise_params,
    )

    pl = DallaMan2007Liver.make_params(normal)
    rest = vpop.simulate(DallaMan2007Liver(), pl, vpop.fasting(240.0), mode="reference")
    same = vpop.simulate(DallaMan2007LiverExercise(), liver_exercise_params(pl), vpop.fasting(240.0), mode="reference")
    assert np.max(np.abs(np.asarray(rest.glucose_mg_per_dl()) - np.asarray(same.glucose_mg_per_dl()))) < 1e-6
    prot = vpop.Protocol(240.0, (), 1.0, kind="fasting", exercise=(vpop.ExerciseBout(60.0, 60.0, 50.0),))
    ex = vpop.simulate(DallaMan2007LiverExercise(), liver_exercise_params(pl), prot, mode="reference")
    epi = np.asarray(ex.states["epinephrine_pg_per_ml"])[0]
    assert epi[115] > 1.5 * epi[0]
    gly_rest, gly_ex = (np.asarray(r.states["glycogen_liver"])[0, 120] for r in (rest, ex))
    assert gly_ex < gly_rest
    u = np.asarray(ex.fluxes().U)[0]
    assert u[110] > 1.2 * u[0]
    fast = vpop.simulate(DallaMan2007LiverExercise(), liver_exercise_params(pl), prot, mode="fast")
    assert np.max(np.abs(np.asarray(fast.glucose_mg_per_dl()) - np.asarray(ex.glucose_mg_per_dl()))) < 1.0
