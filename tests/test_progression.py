"""Progression over years: Topp beta-cell adaptation on the population's own glucose scale."""

import numpy as np
import pandas as pd
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
#: Topp's dynamics alone (no Ha 2016 glucotoxicity), for the tests of adaptation itself
NO_GT = dict(glucotoxicity="none")


def _arm(cm, name):
    return {"name": name, "start_year": 1.0, "changes": [{"covariate": "waist_residual_cm", "add": cm}]}


#: Topp's own (rat) kinetics, for the tests of Topp's dynamics on a step change
RAT = dict(adaptation_rate_scale=1.0)


@pytest.fixture(scope="module")
def runs(controlled):
    topp = simulate_progression(controlled, 4, config=ProgressionConfig(years=5, adaptation="topp", **RAT, **NO_GT, **STILL),
                                arms=[_arm(20, "moderate"), _arm(60, "severe")], seed=0)
    none = simulate_progression(controlled, 4, config=ProgressionConfig(years=5, adaptation="none", **NO_GT, **STILL),
                                arms=[_arm(20, "moderate")], seed=0)
    return topp, none


def test_glucotoxicity_makes_uncompensated_hyperglycaemia_self_reinforcing(controlled, runs):
    """Without adaptation the +20 cm step gives FPG ≈ 130 with a constant beta-cell function; with
    Ha 2016's glucotoxicity that glycaemia keeps eroding function, so FPG climbs year after year."""
    _, (_, plain) = runs
    _, gt = simulate_progression(controlled, 4, config=ProgressionConfig(years=5, adaptation="none", **STILL),
                                 arms=[_arm(20, "moderate")], seed=0)
    f = [_person(plain, "moderate", t)["fpg [mg/dL]"] for t in (1.5, 4.5)]
    g = [_person(gt, "moderate", t)["fpg [mg/dL]"] for t in (1.5, 3.0, 4.5)]
    assert abs(f[1] - f[0]) < 1.0  # no glucotoxicity: flat
    assert g[0] < g[1] <= g[2] and g[0] > f[0] and g[2] > f[1] + 20


def _person(tr, arm, t):
    g = tr[(tr["arm"] == arm) & (tr["person"] == 0)].set_index("time [years]")
    return g.iloc[np.argmin(np.abs(g.index.to_numpy() - t))]


def test_topp_rat_kinetics_compensate_a_step_rise_in_insulin_resistance_within_a_year(runs):
    (_, tr), _ = runs
    before, after = _person(tr, "moderate", 0.5), _person(tr, "moderate", 4.5)
    assert before["fpg [mg/dL]"] < 100 and after["fpg [mg/dL]"] < 100
    assert after["fasting_insulin [uU/mL]"] > 2 * before["fasting_insulin [uU/mL]"]  # hyperinsulinaemia
    assert after["log_beta_cell_function [1]"] > before["log_beta_cell_function [1]"] + 0.3  # expansion
    # the transient right after the step is hyperglycaemic, then compensated within a year
    assert _person(tr, "moderate", 1.07)["fpg [mg/dL]"] > 110


def test_human_beta_cells_compensate_a_gradual_rise_in_insulin_resistance(controlled):
    """Default (human) adaptation time scale: insulin sensitivity falls by 39% over 10 years (the
    test lever +10 cm, ramped); fasting glucose stays below 100 mg/dL while fasting insulin rises."""
    arm = {"name": "gradual", "start_year": 0.0, "ramp_years": 10.0, "changes": [{"covariate": "waist_residual_cm", "add": 10}]}
    _, tr = simulate_progression(controlled, 2, config=ProgressionConfig(years=10, step_days=60, **STILL), arms=[arm], seed=0)
    fpg = tr[(tr["arm"] == "gradual") & (tr["person"] == 0)]["fpg [mg/dL]"].to_numpy()
    ins = tr[(tr["arm"] == "gradual") & (tr["person"] == 0)]["fasting_insulin [uU/mL]"].to_numpy()
    assert fpg.max() < 100
    assert ins[-1] > 1.4 * ins[0]


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
    # (the lever's step, not the calibration, sets how far it rises: ≈ +1.5 points, into 6.4–6.5%)
    assert a[0] < 5.7 and a[1] < a[2] < a[3] and a[3] > a[0] + 1.0
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


def test_autoimmune_destruction_leads_to_diabetes_after_onset(controlled):
    from vpop._progression import Autoimmunity

    ai = Autoimmunity(fraction=1.0, onset_year_range=(1.0, 1.0), loss_rate_median_per_year=1.0, loss_rate_gsd=1.0)
    people, tr = simulate_progression(controlled, 2, config=ProgressionConfig(years=4, step_days=60, autoimmunity=ai, **NO_GT, **STILL), seed=0)
    p = people.iloc[0]
    assert p["autoimmunity_onset [years]"] == 1.0 and p["autoimmune_loss_rate [1/yr]"] == 1.0
    assert _person(tr, "control", 0.9)["fpg [mg/dL]"] < 100
    assert 1.0 < p["time_to_diabetes [years]"] < 4.0
    # adaptation slows the loss at first (honeymoon), but function falls by more than half the
    # unopposed loss over the 3 years after onset
    drop = _person(tr, "control", 0.9)["log_beta_cell_function [1]"] - _person(tr, "control", 3.9)["log_beta_cell_function [1]"]
    assert 1.5 < drop <= 3.0 + 1e-6
    assert _person(tr, "control", 3.9)["fpg [mg/dL]"] >= 126


def test_autoimmunity_rejects_a_reversed_onset_range():
    from vpop._progression import Autoimmunity

    with pytest.raises(ValueError, match="onset_year_range"):
        Autoimmunity(fraction=0.5, onset_year_range=(3.0, 1.0))


def _synthetic_trajectories(fpg_by_person, years=2.0, step_years=0.25):
    import pandas as pd

    t = np.arange(0.0, years + 1e-9, step_years)
    rows = [{"arm": "control", "person": i, "time [years]": tt, "fpg [mg/dL]": f(tt), "hba1c [%]": 5.5,
             "ogtt_2h_glucose [mg/dL]": 150.0} for i, f in enumerate(fpg_by_person) for tt in t]
    return pd.DataFrame(rows)


def test_observed_tests_are_seeded_mean_preserving_with_the_within_person_cv():
    from vpop._progression import WITHIN_PERSON_CV, observed_tests

    tr = _synthetic_trajectories([lambda t: 110.0] * 2000, years=1.0)
    a, b = observed_tests(tr, seed=3), observed_tests(tr, seed=3)
    assert a.equals(b) and not a.equals(observed_tests(tr, seed=4))
    x = a["fpg [mg/dL]"].to_numpy() / 110.0
    assert abs(x.mean() - 1) < 0.003 and abs(x.std() - WITHIN_PERSON_CV["fpg [mg/dL]"]) < 0.003


def test_ifg_progression_rates_count_people_by_baseline_band():
    from vpop._progression import ifg_progression_rates

    # band 100–109: one of two people reaches 126 at year 1; band 110–125: both do; one starts at 130
    tr = _synthetic_trajectories([lambda t: 105.0, lambda t: 105.0 + 30 * t, lambda t: 112.0 + 20 * t,
                                  lambda t: 120.0 + 10 * t, lambda t: 130.0])
    r = ifg_progression_rates(tr, measured=False).set_index("fpg_band [mg/dL]")
    assert r["n_people"].tolist() == [2, 2]
    assert r["cumulative_incidence [1]"].tolist() == [0.5, 1.0]
    assert np.isclose(r["annual_rate [1/yr]"].iloc[0], -np.log(0.5) / 2.0)


def test_incidence_rr_by_bmi_pools_strata_by_mantel_haenszel():
    from vpop._progression import incidence_rr_by_bmi

    # two age strata (one sex) with different baseline risks and different BMI mixes: within each
    # stratum the obese risk is twice the normal-weight risk (RR 2) and the overweight risk equal
    # (RR 1); the crude obese RR is confounded by age (more obese people in the older, riskier stratum)
    rows = []

    def add(n, age, bmi, n_events):
        for i in range(n):
            rows.append({"arm": "control", "status": "OK", "baseline_ada_class": "normal", "age_y": age, "sex": "female",
                         "bmi_kg_per_m2": bmi, "time_to_diabetes [years]": 1.0 if i < n_events else np.nan})

    add(100, 30.0, 22.0, 10), add(50, 30.0, 33.0, 10), add(40, 30.0, 27.0, 4)   # young: 0.1 / 0.2 / 0.1
    add(50, 70.0, 22.0, 15), add(200, 70.0, 33.0, 120), add(40, 70.0, 27.0, 12)  # old: 0.3 / 0.6 / 0.3
    rows.append({**rows[0], "baseline_ada_class": "diabetes", "bmi_kg_per_m2": 33.0})  # prevalent: left out
    rows.append({**rows[0], "status": "FAILED", "bmi_kg_per_m2": 33.0})  # failed: left out
    r = incidence_rr_by_bmi(pd.DataFrame(rows)).set_index("bmi_class")
    assert np.isclose(r.loc["obese", "relative_risk_mh [1]"], 2.0)
    assert np.isclose(r.loc["overweight", "relative_risk_mh [1]"], 1.0)
    assert r.loc["obese", "n_people"] == 250 and r.loc["obese", "n_events"] == 130
    crude = r.loc["obese", "cumulative_incidence [1]"] / r.loc["obese", "normal_weight_cumulative_incidence [1]"]
    assert crude > 2.5  # the confounded crude ratio differs from the pooled one


def test_risk_factor_decline_follows_risk_factor_insulin_resistance():
    """``beta_decline_risk_factor_per_year`` κ (no adaptation, no glucotoxicity, constant covariates,
    so the effect is isolated): against κ = 0, log beta-cell function falls by κ·max(−s̄_rr, 0) per
    year, counted from the end of the first step, and not at all in people whose risk factors are
    protective (s̄_rr ≥ 0). The default is the calibrated constant."""
    from vpop._progression import BETA_DECLINE_RISK_FACTOR_PER_YEAR
    from vpop._virtual_population import central_effects, draw_population, hyper_values, person_factors, physiology_map

    assert ProgressionConfig().beta_decline_risk_factor_per_year == BETA_DECLINE_RISK_FACTOR_PER_YEAR > 0
    pop = load_population("us_adults")
    base = dict(years=3, step_days=90, ogtt=False, adaptation="none", glucotoxicity="none", **STILL)
    _, a = simulate_progression(pop, 40, config=ProgressionConfig(**base, beta_decline_risk_factor_per_year=0.0), seed=3)
    _, c = simulate_progression(pop, 40, config=ProgressionConfig(**base, beta_decline_risk_factor_per_year=0.1), seed=3)
    col = "log_beta_cell_function [1]"
    end = a["time [years]"].max()
    drop = (a[a["time [years]"] == end].set_index("person")[col] - c[c["time [years]"] == end].set_index("person")[col]).to_numpy()
    draw = draw_population(pop, 40, seed=3)
    *_, s_rr = person_factors(physiology_map(pop), draw, central_effects(pop), {k: np.float64(v) for k, v in hyper_values(pop).items()},
                              with_compensation=True)
    want = 0.1 * np.maximum(-np.asarray(s_rr), 0.0) * (end - 90 / 365.25)
    assert (want > 0.02).sum() > 10 and (np.asarray(s_rr) > 0).sum() >= 1  # both kinds of people are in the sample
    np.testing.assert_allclose(drop, want, atol=2e-4)
