"""Virtual populations: covariates, covariate → physiology effects, diagnosis, calibration, arms."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import yaml

from vpop._calibrate import calibrate, target_values, weighted_quantile
from vpop._config import ConfigError
from vpop._covariates import CovariateModel, sample_covariates
from vpop._diagnosis import ada_classification, hba1c_percent
from vpop._population_study import PopulationStudyConfig, run_population_study, write_population_results
from vpop._sets import parameters_from_set
from vpop._virtual_population import (
    EffectSpec,
    PopulationConfig,
    central_effects,
    draw_effects,
    draw_population,
    effect_coefficients,
    hyper_values,
    load_population,
    person_factors,
    person_parameters,
    physiology_map,
    simulate_outcomes,
    with_covariates,
)


@pytest.fixture(scope="module")
def pop():
    return load_population("us_adults")


def _neutral(pop: PopulationConfig) -> PopulationConfig:
    """No effects, no spread, no compensation offset: everybody is the Dalla Man normal subject."""
    d = pop.model_dump()
    d["effects"] = []
    for k in ("log_si_mean", "log_beta_mean", "compensation"):
        d["physiology"]["hyper"][k]["value"] = 0.0
    for k in ("log_si_sd", "log_beta_sd"):
        d["physiology"]["hyper"][k]["value"] = d["physiology"]["hyper"][k]["lower"]
    return PopulationConfig.model_validate(d)


# ------------------------------------------------------------------------------------ covariates
def test_covariates_seeded_and_joint(pop):
    a = sample_covariates(pop.covariate_model(), 4000, seed=1)
    b = sample_covariates(pop.covariate_model(), 4000, seed=1)
    c = sample_covariates(pop.covariate_model(), 4000, seed=2)
    for k in a.values:
        np.testing.assert_array_equal(a.values[k], b.values[k])
    assert not np.array_equal(a.values["bmi_kg_per_m2"], c.values["bmi_kg_per_m2"])
    df = a.to_frame()
    # BMI–waist correlation from the waist regression on BMI (NHANES r ≈ 0.9)
    assert 0.85 < np.corrcoef(df["bmi_kg_per_m2"], df["waist_cm"])[0, 1] < 0.95
    # the age pyramid: ≥ 65 y is ≈ 22% of adults; obesity ≈ 42%
    assert abs((df["age_y"] >= 65).mean() - 0.218) < 0.03
    assert abs((df["bmi_kg_per_m2"] >= 30).mean() - 0.42) < 0.04
    # vitamin D is lower in NH Black adults (dependency on a categorical level)
    vd = df.groupby(df["ethnicity"].astype(str))["vitamin_d_25ohd_nmol_per_l"].median()
    assert vd["nh_black"] < 0.75 * vd["nh_white"]
    # clip ranges hold and categorical levels keep their names
    assert df["bmi_kg_per_m2"].between(15, 70).all()
    assert set(df["smoking"].astype(str)) == {"never", "former", "current"}


@pytest.mark.parametrize("covs, needle", [
    ({"a": {"dist": "normal", "mean": 0, "sd": 1, "source": "x", "depends": {"b": 1.0}},
      "b": {"dist": "normal", "mean": 0, "sd": 1, "source": "x"}}, "not listed before"),
    ({"s": {"dist": "categorical", "levels": {"f": 0.5, "m": 0.5}, "source": "x"},
      "a": {"dist": "normal", "mean": 0, "sd": 1, "source": "x", "depends": {"s=x": 1.0}}}, "no level 'x'"),
    ({"s": {"dist": "categorical", "levels": {"f": 0.5, "m": 0.6}, "source": "x"}}, "sum to 1"),
    ({"a": {"dist": "lognormal", "median": 1, "source": "x"}}, "sd_log"),
])
def test_bad_covariate_models_name_the_problem(covs, needle):
    with pytest.raises(ValueError, match=needle):
        CovariateModel.model_validate({"covariates": covs})


# ------------------------------------------------------------------------------------ effects
def test_effect_uncertainty_and_validation():
    e = EffectSpec(name="x", covariate="a", target="insulin_sensitivity", scale="relative_risk", central=1.37,
                   ci95=(1.33, 1.42), source="Pan 2015")
    assert e.theta_central == pytest.approx(np.log(1.37))
    assert e.theta_se == pytest.approx((np.log(1.42) - np.log(1.33)) / (2 * 1.959964), rel=1e-6)
    with pytest.raises(ValueError, match="outside ci95"):
        EffectSpec(name="x", covariate="a", target="beta_cell_function", scale="log_multiplier", central=0.5,
                   ci95=(0.0, 0.2), source="s")
    with pytest.raises(ValueError, match="must be > 0"):
        EffectSpec(name="x", covariate="a", target="beta_cell_function", scale="relative_risk", central=-1, source="s")


def test_effect_draws_honour_uncertainty(pop):
    draws = draw_effects(pop, 4000, seed=0)
    se = np.array([e.theta_se for e in pop.effects])
    mu = central_effects(pop)
    np.testing.assert_allclose(draws.std(axis=0), se, rtol=0.06, atol=1e-12)
    np.testing.assert_allclose(draws.mean(axis=0), mu, atol=4 * se.max() / np.sqrt(4000) + 1e-12)
    # effects without an estimate stay exactly zero
    fixed = [i for i, e in enumerate(pop.effects) if e.finding in ("no_estimate", "association_only") and e.theta_se == 0]
    assert fixed and np.all(draws[:, fixed] == 0)


def test_null_harmful_and_protective_effects_have_their_sign(pop):
    pm = physiology_map(pop)
    coef = np.asarray(effect_coefficients(pm, jnp.asarray([e.theta_prior for e in pop.effects]), 0.3))
    by = {e.name: c for e, c in zip(pop.effects, coef)}
    assert by["omega3"] == pytest.approx(0.0, abs=1e-12)  # RR 1.00: null
    assert by["selenium_high"] < 0  # harmful: lowers insulin sensitivity
    assert by["smoking_current"] < 0 and by["bmi"] < 0
    assert by["magnesium_intake"] > 0 and by["physical_activity"] > 0  # protective
    assert by["family_history"] < 0  # lowers beta-cell function


def test_overriding_and_adding_effects(pop):
    p2 = pop.with_effects({"omega3": {"central": 0.9, "ci95": (0.8, 1.0)}},
                          add=[{"name": "mine", "covariate": "age_y", "target": "beta_cell_function",
                                "scale": "log_multiplier", "central": -0.01, "se": 0.001, "source": "my cohort"}])
    assert {e.name: e.central for e in p2.effects}["omega3"] == 0.9 and p2.effects[-1].name == "mine"
    with pytest.raises(ValueError, match="unknown effect"):
        pop.with_effects({"nope": {"central": 1.0}})
    with pytest.raises(ValueError, match="unknown covariate"):
        pop.with_effects(add=[{"name": "z", "covariate": "shoe_size", "target": "beta_cell_function",
                               "scale": "log_multiplier", "central": 0.0, "source": "s"}])


# ------------------------------------------------------------------------------------ physiology
def test_neutral_person_is_the_dalla_man_normal_subject(pop):
    neutral = _neutral(pop)
    draw = draw_population(neutral, 8, seed=0)
    p, _ = person_parameters(physiology_map(neutral), draw, central_effects(neutral), hyper_values(neutral))
    model, normal, _ = parameters_from_set("DallaMan2007_normal")
    ref = model.derive_basal(normal)
    # spreads are at their lower bound (0.01), so people are within ~3% of the subject
    np.testing.assert_allclose(np.asarray(p.Gb), float(ref.Gb), rtol=0.03)
    np.testing.assert_allclose(np.asarray(p.Ib), float(ref.Ib), rtol=0.06)


def test_basal_from_capacity_matches_fixed_secretion_and_has_exact_gradient():
    model, normal, _ = parameters_from_set("DallaMan2007_normal")
    ref = model.derive_basal(normal)
    g50 = 141.42
    cap = float(ref.Sb) * (g50 ** 2 + float(ref.Gb) ** 2) / float(ref.Gb) ** 2
    p = model.derive_basal_from_capacity(ref, cap, g50)
    assert float(p.Gb) == pytest.approx(float(ref.Gb), rel=1e-9)
    assert float(p.Ib) == pytest.approx(float(ref.Ib), rel=1e-9)
    # less capacity → higher fasting glucose, lower insulin; gradient = central difference
    f = lambda c: model.derive_basal_from_capacity(ref, c, g50).Gb  # noqa: E731
    g = float(jax.grad(f)(cap))
    h = 1e-5 * cap
    fd = (float(f(cap + h)) - float(f(cap - h))) / (2 * h)
    assert g < 0 and g == pytest.approx(fd, rel=1e-5)
    # a solved person is at steady state: the vector field vanishes at its basal state
    y = model.basal_state(p)
    dy = model.vector_field(0.0, y, p)
    assert abs(float(dy.glucose_plasma)) < 1e-8 and abs(float(dy.insulin_plasma)) < 1e-8


def test_covariates_move_physiology_in_the_documented_direction(pop):
    draw = draw_population(pop, 400, seed=3)
    pm = physiology_map(pop)
    th, hy = central_effects(pop), hyper_values(pop)
    log_sh, log_sp, log_b = (np.asarray(x) for x in person_factors(pm, draw, th, hy))
    df = draw.covariates.to_frame()
    # the same people, 10 kg/m² heavier: less insulin sensitive (same random effects)
    heavy = with_covariates(pop, draw, draw.covariates.replace(bmi_kg_per_m2=df["bmi_kg_per_m2"] + 10), readapt=True)
    h_sh, _, h_b = (np.asarray(x) for x in person_factors(pm, heavy, th, hy))
    assert np.all(h_sh < log_sh)
    # compensation: at the new adapted state beta-cell function rises (c > 0) ...
    assert np.all(h_b > log_b)
    # ... but an intervention arm keeps the cells adapted to the old state
    arm = with_covariates(pop, draw, draw.covariates.replace(bmi_kg_per_m2=df["bmi_kg_per_m2"] + 10))
    np.testing.assert_allclose(np.asarray(person_factors(pm, arm, th, hy)[2]), log_b)


# ------------------------------------------------------------------------------------ diagnosis
def test_hba1c_inverts_adag_and_scales_with_rbc_age():
    for a1c in (5.0, 6.5, 9.0):
        assert hba1c_percent(28.7 * a1c - 46.7) == pytest.approx(a1c)
    assert hba1c_percent(154.2, 58.7 * 1.1) == pytest.approx(7.0 * 1.1, rel=1e-3)


def test_ada_classification_names_the_criteria():
    df = ada_classification(np.array([90, 110, 130, 95, np.nan]), np.array([120, 150, 150, 210, 100]),
                            np.array([5.2, 5.5, 6.6, 5.0, 5.0]))
    assert list(df["ada_class"]) == ["normal", "prediabetes", "diabetes", "diabetes", "unclassified"]
    assert list(df["ada_criteria"]) == ["", "FPG+2hPG", "FPG+HbA1c", "2hPG", ""]
    with pytest.raises(ValueError, match="at least one"):
        ada_classification()


def test_weighted_quantile_matches_numpy_and_ignores_zero_weights():
    x = jnp.asarray(np.random.default_rng(0).lognormal(size=2001))
    assert float(weighted_quantile(x, jnp.ones_like(x), 0.5)) == pytest.approx(float(np.median(x)), rel=1e-3)
    w = jnp.where(jnp.arange(2001) < 1000, 1.0, 0.0)
    assert float(weighted_quantile(x, w, 0.5)) == pytest.approx(float(np.median(x[:1000])), rel=2e-3)


def test_outcomes_are_finite_flagged_and_sensible(pop):
    draw = draw_population(pop, 300, seed=5)
    out = {k: np.asarray(v) for k, v in simulate_outcomes(physiology_map(pop), pop, draw.arrays_only(),
                                                          central_effects(pop), hyper_values(pop)).items()}
    ok = out["status"] == 0
    assert ok.mean() > 0.99
    for k, v in out.items():
        assert np.all(np.isfinite(v[ok])), k
        assert np.all(np.isnan(v[~ok])) or k == "status"
    assert 70 < np.median(out["fpg [mg/dL]"][ok]) < 115 and 4.8 < np.median(out["hba1c [%]"][ok]) < 6.0
    # more insulin resistant people (by the model's own factors) have higher HOMA-IR
    r = np.corrcoef(out["log_si_hepatic [1]"][ok], np.log(out["homa_ir [1]"][ok]))[0, 1]
    assert r < -0.3


# ------------------------------------------------------------------------------------ calibration
def test_calibration_recovers_a_known_population(pop):
    """Targets made by the simulator itself at known hyperparameters; calibration started away
    from them must come back (only log_beta_mean and log_si_mean free)."""
    d = pop.model_dump()
    d["diagnostics"]["day_step_min"] = 2.0
    for k, h in d["physiology"]["hyper"].items():
        h["calibrate"] = k in ("log_beta_mean", "log_si_mean")
        h["prior_sd"] = None
    for e in d["effects"]:
        e["calibrate"] = False
    truth = PopulationConfig.model_validate(d)
    draw = draw_population(truth, 300, seed=11)
    out = simulate_outcomes(physiology_map(truth), truth, draw.arrays_only(), central_effects(truth), hyper_values(truth),
                            ogtt=False)
    achieved, _ = target_values(truth, out, draw.age_y, soft=False, bmi_kg_per_m2=draw.bmi_kg_per_m2)
    d["calibration"]["targets"] = [dict(t, value=float(achieved[t["name"]])) for t in d["calibration"]["targets"]]
    hy = hyper_values(truth)
    d["physiology"]["hyper"]["log_beta_mean"]["value"] = hy["log_beta_mean"] + 0.3
    d["physiology"]["hyper"]["log_si_mean"]["value"] = hy["log_si_mean"] - 0.3
    start = PopulationConfig.model_validate(d)
    res = calibrate(start, steps=40, n_people=300, seed=11, learning_rate=0.1, progress=False)
    got = hyper_values(res.config)
    assert res.history[-1]["loss"] < 0.1 * res.history[0]["loss"]
    assert got["log_beta_mean"] == pytest.approx(hy["log_beta_mean"], abs=0.1)
    assert got["log_si_mean"] == pytest.approx(hy["log_si_mean"], abs=0.1)


def test_shipped_calibration_is_loaded_and_documented(pop):
    raw = load_population("us_adults", calibrated=False)
    assert pop.calibrated and pop.calibrated["check"]["all_passed"] and pop.calibrated["check"]["n_people"] >= 20000
    assert hyper_values(pop) != hyper_values(raw)
    # calibrated effects stay inside their published 95% intervals; published centrals are kept
    for e, r in zip(pop.effects, raw.effects):
        assert e.central == r.central
        if e.calibrated is not None and e.ci95 is not None:
            assert e.ci95[0] <= e.calibrated <= e.ci95[1]


# ------------------------------------------------------------------------------------ study
STUDY = {
    "name": "tiny", "population": "us_adults", "n_people": 60, "seed": 3, "worlds": 3,
    "arms": [{"name": "control"},
             {"name": "lifestyle", "changes": [{"covariate": "bmi_kg_per_m2", "multiply": 0.9},
                                               {"covariate": "activity_met_h_per_week", "add": 20}]},
             {"name": "mg_low", "where": [{"covariate": "magnesium_intake_mg_per_day", "below": 255}],
              "changes": [{"covariate": "magnesium_intake_mg_per_day", "add": 250}]}],
}


def test_population_study_end_to_end(tmp_path):
    cfg = PopulationStudyConfig.model_validate(STUDY)
    res = run_population_study(cfg, progress=False)
    out = write_population_results(res, tmp_path / "out")
    files = {p.name for p in out.iterdir()}
    assert {"people.parquet", "arm_outcomes.csv", "effects.csv", "config.yaml", "manifest.json",
            "prevalence_by_age.png", "fpg_hba1c_by_arm.png"} <= files
    people = pd.read_parquet(out / "people.parquet")
    assert len(people) == 3 * 60 and {"ada_class", "ada_criteria", "hba1c [%]", "fpg [mg/dL]"} <= set(people.columns)
    t = pd.read_csv(out / "arm_outcomes.csv")
    a1c = t[t["statistic"] == "hba1c_mean [%]"].set_index("arm")
    assert a1c.loc["lifestyle", "difference_from_control"] < 0
    assert (a1c["ci95_low"] <= a1c["ci95_high"]).all()
    # only the subgroup is changed in the magnesium arm
    mg = people[people["arm"] == "mg_low"]
    ctl = people[people["arm"] == "control"]
    moved = mg["magnesium_intake_mg_per_day"].to_numpy() != ctl["magnesium_intake_mg_per_day"].to_numpy()
    np.testing.assert_array_equal(moved, mg["in_arm_subgroup"].to_numpy())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["population_calibration"]["check"]["all_passed"] and set(manifest["files"]) == files - {"manifest.json"}


def test_population_study_config_errors_name_the_field(tmp_path):
    from vpop.cli import main

    bad = dict(STUDY, arms=[{"name": "x", "changes": [{"covariate": "bmi_kg_per_m3", "add": 1}]}])
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="bmi_kg_per_m3"):
        from vpop._config import load_study_config

        load_study_config(p)
    assert main(["run", str(p), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_fast_mode_outcomes_match_the_float64_reference(pop):
    draw = draw_population(pop, 12, seed=4).arrays_only()
    pm = physiology_map(pop)
    fast = simulate_outcomes(pm, pop, draw, central_effects(pop), hyper_values(pop), mode="fast")
    ref = simulate_outcomes(pm, pop, draw, central_effects(pop), hyper_values(pop), mode="reference")
    assert np.all(np.asarray(ref["status"]) == 0) and np.all(np.asarray(fast["status"]) == 0)
    # 1 mg/dL is the fast mode's accuracy budget (issue 8); HbA1c 0.01 %-points
    for k, tol in (("mean_glucose_24h [mg/dL]", 1.0), ("ogtt_2h_glucose [mg/dL]", 1.0), ("hba1c [%]", 0.01)):
        assert float(np.max(np.abs(np.asarray(fast[k]) - np.asarray(ref[k])))) < tol, k


# ------------------------------------------------------------------------------------ risk-factor compensation
def _bmi_only(pop: PopulationConfig, c: float, c_rf: float | None) -> PopulationConfig:
    """The population with the BMI effect alone and given compensation exponents (None: leave c_rf out)."""
    d = pop.model_dump()
    d["effects"] = [e for e in d["effects"] if e["name"] == "bmi"]
    d["physiology"]["hyper"]["compensation"]["value"] = c
    if c_rf is None:
        d["physiology"]["hyper"].pop("risk_factor_compensation")
    else:
        d["physiology"]["hyper"]["risk_factor_compensation"]["value"] = c_rf
    return PopulationConfig.model_validate(d)


def test_risk_factor_compensation_sets_the_disposition_index_effect_of_relative_risks(pop):
    """An RR effect on insulin sensitivity moves log DI by (1 − c_rf) × its effect on log s, while
    the random effects keep the exponent c; a file without c_rf gets c_rf = c (the old model)."""
    def factors(cfg, bmi):
        cov = sample_covariates(cfg.covariate_model(), 2, seed=0).replace(bmi_kg_per_m2=np.array(bmi, float))
        draw = draw_population(cfg, 2, seed=0, covariates=cov)
        draw = eqx.tree_at(lambda d: d.z, draw, jnp.zeros_like(draw.z))  # the same person at two BMIs
        sh, sp, b = person_factors(physiology_map(cfg), draw, central_effects(cfg), hyper_values(cfg))
        return np.asarray(0.5 * (sh + sp)), np.asarray(b)

    for c_rf in (0.0, 0.3, 0.77):
        cfg = _bmi_only(pop, 0.77, c_rf)
        s, b = factors(cfg, [22.5, 34.0])
        ds, db = s[1] - s[0], b[1] - b[0]
        assert ds < -0.1  # obesity lowers insulin sensitivity
        assert db == pytest.approx(-c_rf * ds, rel=1e-5)
        assert db + ds == pytest.approx((1 - c_rf) * ds, rel=1e-5)
    # absent from the file: equal to compensation, not calibrated, and the same people as c_rf = c
    old = _bmi_only(pop, 0.6, None)
    assert hyper_values(old)["risk_factor_compensation"] == 0.6
    assert not old.physiology.hyper["risk_factor_compensation"].calibrate
    np.testing.assert_array_equal(factors(old, [20.0, 40.0])[1], factors(_bmi_only(pop, 0.6, 0.6), [20.0, 40.0])[1])


def test_bmi_share_targets_match_a_direct_count(pop):
    """The age-standardised share of people with diabetes in a BMI class, recomputed by hand."""
    draw = draw_population(pop, 600, seed=5)
    out = simulate_outcomes(physiology_map(pop), pop, draw.arrays_only(), central_effects(pop), hyper_values(pop), ogtt=False)
    achieved, _ = target_values(pop, out, draw.age_y, soft=False, bmi_kg_per_m2=draw.bmi_kg_per_m2)
    fpg, a1c = np.asarray(out["fpg [mg/dL]"]), np.asarray(out["hba1c [%]"])
    diab = (fpg >= 126) | (a1c >= 6.5)
    age, bmi = np.asarray(draw.age_y), np.asarray(draw.bmi_kg_per_m2)
    checked = 0
    for t in pop.calibration.targets:
        if t.statistic != "share":
            continue
        lo, hi = t.bmi_range_kg_per_m2
        want = sum(w * np.mean((bmi[diab & (age >= a) & (age < b)] >= lo) & (bmi[diab & (age >= a) & (age < b)] < hi))
                   for a, b, w in t.age_standard) / sum(w for *_, w in t.age_standard)
        assert float(achieved[t.name]) == pytest.approx(want, abs=1e-6)
        checked += 1
    assert checked == 2
    with pytest.raises(ValueError, match="needs each person's BMI"):
        target_values(pop, out, draw.age_y, soft=False)


@pytest.mark.parametrize("change, needle", [
    ({"bmi_range_kg_per_m2": None}, "bmi_range_kg_per_m2 is required"),
    ({"outcome": "homa_ir"}, "share is of people with diabetes"),
    ({"value": 1.5}, "within [0, 1]"),
    ({"age_standard": [[40, 20, 1.0]]}, "age_lo < age_hi"),
])
def test_share_target_errors_name_the_field(pop, change, needle):
    d = pop.model_dump()
    t = next(t for t in d["calibration"]["targets"] if t["statistic"] == "share")
    t.update(change)
    with pytest.raises(ValueError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        PopulationConfig.model_validate(d)
