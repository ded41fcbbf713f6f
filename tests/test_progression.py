"""Progression over years: Topp beta-cell adaptation on the population's own glucose scale."""

import numpy as np
import pytest

from vpop._progression import ProgressionConfig, incidence_curve, simulate_progression
from vpop._virtual_population import PopulationConfig, load_population


@pytest.fixture(scope="module")
def controlled():
    """Calibrated us_adults hyperparameters, no covariate effects except one test lever: each cm of
    `waist_residual_cm` lowers log insulin sensitivity by 0.05 (so +20 cm halves it... ×e^-1)."""
    pop = load_population("us_adults")
    d = pop.model_dump()
    d["effects"] = [{"name": "lever", "covariate": "waist_residual_cm", "target": "insulin_sensitivity",
                     "scale": "log_multiplier", "central": -0.05, "source": "test lever"}]
    for k in ("log_si_sd", "log_beta_sd"):
        d["physiology"]["hyper"][k]["value"] = d["physiology"]["hyper"][k]["lower"]
    return PopulationConfig.model_validate(d)


STILL = dict(bmi_drift_kg_per_m2_per_year=0.0, bmi_drift_sd_kg_per_m2_per_year=0.0, beta_decline_sd_per_year=0.0)


def _arm(cm, name):
    return {"name": name, "start_year": 1.0, "changes": [{"covariate": "waist_residual_cm", "add": cm}]}


@pytest.fixture(scope="module")
def runs(controlled):
    topp = simulate_progression(controlled, 4, config=ProgressionConfig(years=5, adaptation="topp", **STILL),
                                arms=[_arm(20, "moderate"), _arm(60, "severe")], seed=0)
    none = simulate_progression(controlled, 4, config=ProgressionConfig(years=5, adaptation="none", **STILL),
                                arms=[_arm(20, "moderate")], seed=0)
    return topp, none


def _person(tr, arm, t):
    g = tr[(tr["arm"] == arm) & (tr["person"] == 0)].set_index("time [years]")
    return g.iloc[np.argmin(np.abs(g.index.to_numpy() - t))]


def test_adaptive_beta_cells_compensate_a_rise_in_insulin_resistance(runs):
    (_, tr), _ = runs
    before, after = _person(tr, "moderate", 0.5), _person(tr, "moderate", 4.5)
    assert before["fpg [mg/dL]"] < 100 and after["fpg [mg/dL]"] < 100
    assert after["fasting_insulin [uU/mL]"] > 2 * before["fasting_insulin [uU/mL]"]  # hyperinsulinaemia
    assert after["log_beta_cell_function [1]"] > before["log_beta_cell_function [1]"] + 0.3  # expansion
    # the transient right after the step is hyperglycaemic, then compensated within a year
    assert _person(tr, "moderate", 1.07)["fpg [mg/dL]"] > 110


def test_without_adaptation_fpg_crosses_126_and_stays(runs):
    _, (_, tr) = runs
    assert _person(tr, "moderate", 0.5)["fpg [mg/dL]"] < 100
    for t in (1.5, 3.0, 4.5):
        assert _person(tr, "moderate", t)["fpg [mg/dL]"] >= 126


def test_above_a_resistance_threshold_beta_cells_fail_despite_adaptation(runs):
    (people, tr), _ = runs
    late = _person(tr, "severe", 3.0)
    assert late["fpg [mg/dL]"] >= 126 and late["log_beta_cell_function [1]"] < -2  # glucotoxic collapse (Topp saddle)
    p = people[(people["arm"] == "severe") & (people["person"] == 0)].iloc[0]
    assert 1.0 <= p["time_to_diabetes [years]"] <= 2.0


def test_hba1c_follows_glycaemia_with_a_lag(runs):
    _, (_, tr) = runs
    a = [_person(tr, "moderate", t)["hba1c [%]"] for t in (0.5, 1.07, 1.3, 4.5)]
    assert a[0] < 5.7 and a[1] < a[2] < a[3] and a[3] >= 6.5
    # the chain has reached its steady state by year 4.5 (mean transit 38.9 d)
    assert abs(_person(tr, "moderate", 4.0)["hba1c [%]"] - a[3]) < 0.01


def test_cohort_incidence_curve_is_monotone_and_counts_only_people_at_risk():
    pop = load_population("us_adults")
    people, tr = simulate_progression(pop, 40, config=ProgressionConfig(years=2, step_days=60, ogtt=False), seed=2)
    n_steps = int(np.ceil(2 * 365.25 / 60))  # the last step reaches or passes 2 years
    assert set(tr["time [years]"].round(6)) == set((np.arange(n_steps + 1) * 60 / 365.25).round(6))
    curve = incidence_curve(people, "diabetes")
    assert (np.diff(curve["cumulative_incidence [%]"].to_numpy()) >= 0).all()
    assert curve["n_at_risk"].iloc[0] == ((people["status"] == "OK") & (people["baseline_ada_class"] != "diabetes")).sum()
