"""Generic fitting API (vpop._fit): vmapped MAP fits, standard errors, multi-start, checkpoint/resume, units."""

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import vpop  # noqa: F401  (float64)
from vpop._fit import ErrorModel, FitProblem, Param, check_units, fit_individuals, load_checkpoint, tidy_to_arrays

T = np.array([0.0, 5.0, 10.0, 20.0, 40.0, 60.0, 90.0])


def _decay(theta, d):
    return {"conc": theta["A"] * jnp.exp(-theta["k"] * d["t"])}


PROBLEM = FitProblem((Param("A", "mg/L", 5.0), Param("k", "1/min", 0.05)),
                     (ErrorModel("conc", "mg/L", additive_sd=0.05, proportional_sd=0.05),), _decay, name="decay")


def _cohort(n, seed=0):
    rng = np.random.default_rng(seed)
    A = 10.0 * np.exp(0.3 * rng.standard_normal(n))
    k = 0.03 * np.exp(0.4 * rng.standard_normal(n))
    y = A[:, None] * np.exp(-k[:, None] * T)
    sd = np.sqrt(0.05 ** 2 + (0.05 * y) ** 2)
    y_obs = y + sd * rng.standard_normal(y.shape)
    y_obs[0, 3] = np.nan  # a missing sample
    return {"conc": y_obs, "t": np.tile(T, (n, 1))}, {"A": A, "k": k}


def test_vmapped_fit_recovers_parameters_with_calibrated_standard_errors():
    data, truth = _cohort(200)
    res = fit_individuals(PROBLEM, data, n_starts=2, max_iter=200, checkpoint_every=50)
    assert res.converged.all()
    rep = res.convergence_report()
    assert rep["n_subjects"] == 200 and rep["n_starts"] == 2
    z = (res.estimates - np.stack([truth["A"], truth["k"]], 1)) / res.standard_errors
    # the Laplace SEs are calibrated: standardised errors have SD ≈ 1 (200 subjects: ±0.15)
    assert np.all(np.abs(np.std(z, axis=0) - 1.0) < 0.2), np.std(z, axis=0)
    t = res.table()
    assert list(t.columns[:4]) == ["subject", "parameter", "unit", "estimate"] and len(t) == 400
    assert res.identifiable()["identifiable"].all()


def test_prior_dominates_an_unidentifiable_parameter():
    # only the sample at t = 0 is observed: k is not identifiable, its estimate is its prior median
    data, _ = _cohort(5)
    data["conc"][:, 1:] = np.nan
    prob = FitProblem((Param("A", "mg/L", 5.0), Param("k", "1/min", 0.05, prior_median=0.04, prior_sd=0.5)),
                      PROBLEM.errors, _decay, name="decay_prior")
    res = fit_individuals(prob, data, max_iter=200)
    np.testing.assert_allclose(res.estimates[:, 1], 0.04, rtol=1e-5)
    ident = res.identifiable().set_index("parameter")
    assert ident.loc["A", "identifiable"] and not ident.loc["k", "identifiable"]
    assert "prior" in ident.loc["k", "reason"]


def test_checkpoint_resume_ends_at_the_same_parameters(tmp_path):
    data, _ = _cohort(20, seed=1)
    kw = dict(n_starts=2, max_iter=40, checkpoint_every=4, gtol=1e-12)  # too strict to stop early
    full = fit_individuals(PROBLEM, data, **kw)
    ck = tmp_path / "fit.ckpt.npz"
    part = fit_individuals(PROBLEM, data, checkpoint=ck, stop_after=12, **kw)  # "killed" after 12 iterations
    assert ck.exists() and not np.array_equal(part.estimates, full.estimates)
    resumed = fit_individuals(PROBLEM, data, checkpoint=ck, **kw)  # a fresh call picks it up
    np.testing.assert_array_equal(resumed.estimates, full.estimates)
    np.testing.assert_array_equal(resumed.iterations, full.iterations)
    # no temporary files left behind; a checkpoint of other data is refused
    assert [p.name for p in tmp_path.iterdir()] == ["fit.ckpt.npz"]
    other, _ = _cohort(20, seed=2)
    with pytest.raises(ValueError, match="another fit"):
        fit_individuals(PROBLEM, other, checkpoint=ck, **kw)
    assert load_checkpoint(tmp_path / "absent.npz", None, "x") is None


def test_tidy_data_units_are_checked():
    df = pd.DataFrame({"subject": ["a", "a", "b"], "time [min]": [0, 30, 0], "glucose [mg/dL]": [90, 150, 100]})
    subjects, t, arr = tidy_to_arrays(df, {"glucose": "mg/dL"})
    assert subjects == ["a", "b"] and t.tolist() == [0, 30]
    np.testing.assert_array_equal(arr["glucose"], [[90, 150], [100, np.nan]])
    bad = df.rename(columns={"glucose [mg/dL]": "glucose [mmol/L]"})
    with pytest.raises(ValueError, match=r"glucose \[mmol/L\].*expected 'glucose \[mg/dL\]'"):
        tidy_to_arrays(bad, {"glucose": "mg/dL"})
    with pytest.raises(ValueError, match="missing column 'insulin"):
        check_units(df, {"insulin": "µU/mL"})
    neg = df.assign(**{"glucose [mg/dL]": [90, -1, 100]})
    with pytest.raises(ValueError, match="negative"):
        tidy_to_arrays(neg, {"glucose": "mg/dL"})


def test_bad_specifications_are_rejected():
    with pytest.raises(ValueError, match="'k'.*> 0"):
        Param("k", "1/min", -1.0)
    with pytest.raises(ValueError, match="'f'.*lower < init < upper"):
        Param("f", "1", 1.5, transform="logit", lower=0.0, upper=1.0)
    with pytest.raises(ValueError, match="'conc'"):
        ErrorModel("conc", "mg/L")
    p = Param("f", "1", 0.3, transform="logit", lower=0.0, upper=1.0)
    assert float(p.from_z(p.to_z(0.3))) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="no observable 'conc'"):
        fit_individuals(PROBLEM, {"t": np.zeros((2, 3))})


def test_population_fit_recovers_mean_covariance_and_covariate_effect():
    from vpop._fit import fit_population

    rng = np.random.default_rng(5)
    n = 300
    weight = rng.normal(75.0, 12.0, n)  # kg
    omega = np.array([[0.3 ** 2, 0.5 * 0.3 * 0.4], [0.5 * 0.3 * 0.4, 0.4 ** 2]])
    eta = rng.multivariate_normal([0.0, 0.0], omega, n)
    A = 10.0 * np.exp(eta[:, 0])
    k = 0.03 * np.exp(0.02 * (weight - weight.mean()) + eta[:, 1])  # +2% clearance per kg
    t = np.array([0.0, 10.0, 30.0, 60.0])  # sparse: 4 samples
    y = A[:, None] * np.exp(-k[:, None] * t)
    y = y * (1 + 0.05 * rng.standard_normal(y.shape)) + 0.05 * rng.standard_normal(y.shape)
    pop = fit_population(PROBLEM, {"conc": y, "t": np.tile(t, (n, 1))}, covariates=pd.DataFrame({"weight [kg]": weight}),
                         max_iter=200)
    tab = pop.table().set_index("parameter")
    assert tab.loc["A", "typical_value"] == pytest.approx(10.0, rel=0.06)
    assert tab.loc["k", "typical_value"] == pytest.approx(0.03, rel=0.08)
    assert tab.loc["k", "effect_weight [kg] [z per unit]"] == pytest.approx(0.02, abs=0.004)
    assert abs(tab.loc["A", "effect_weight [kg] [z per unit]"]) < 0.004
    np.testing.assert_allclose(tab["omega_sd_z [1]"], [0.3, 0.4], rtol=0.15)
    assert pop.correlation().loc["A", "k"] == pytest.approx(0.5, abs=0.15)
    assert pop.history[-1][0] < 1e-3 and pop.individuals.converged.all()
