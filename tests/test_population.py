"""Populations: reproducibility, the requested variation and correlation, ranges, per-person basal."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import vpop
from vpop._parameters import check_parameters

N = 4000
# K with a large cv: there σ = √log(1 + cv²) = 0.70 differs clearly from cv itself (0.8).
CV = {"Vmx": 0.3, "kp3": 0.2, "f": 0.05, "K": 0.8}
RHO = 0.5
SET = "DallaMan2007_normal"


@pytest.fixture(scope="module")
def cohort():
    return vpop.sample_population(SET, N, cv=CV, correlations={("Vmx", "kp3"): RHO}, seed=3)


@pytest.fixture(scope="module")
def base():
    return vpop.parameters_from_set(SET)[1]


def _leaves(params):
    return {k: np.asarray(v) for k, v in params.to_dict().items()}


def test_same_seed_same_cohort_different_seed_different():
    a = _leaves(vpop.sample_population(SET, 50, cv=CV, correlations={("Vmx", "kp3"): RHO}, seed=11)[1])
    b = _leaves(vpop.sample_population(SET, 50, cv=CV, correlations={("Vmx", "kp3"): RHO}, seed=11)[1])
    c = _leaves(vpop.sample_population(SET, 50, cv=CV, correlations={("Vmx", "kp3"): RHO}, seed=12)[1])
    for k in a:
        assert np.array_equal(a[k], b[k]), f"same seed, different {k}"
    for k in CV:
        assert not np.any(a[k] == c[k]), f"different seed, same {k}"
    # Parameters without a cv are the same for everybody and equal to the set.
    assert np.all(a["kabs"] == a["kabs"][0]) and np.array_equal(a["kabs"], c["kabs"])


def test_shapes_and_dtype(cohort):
    model, P, _ = cohort
    for k, v in P.to_dict().items():
        assert v.shape == (N,), k
        assert v.dtype == jnp.float64, k


def test_lognormal_variation_matches_requested_cv(cohort, base):
    _, P, _ = cohort
    for name in ("Vmx", "kp3", "K"):
        x = np.asarray(getattr(P, name))
        x0 = float(getattr(base, name))
        c = CV[name]
        sigma = np.sqrt(np.log1p(c * c))
        # log θ ~ N(log θ0, σ²): the SD of log θ has standard error σ/√(2N) (1.1 % of σ at N = 4000);
        # 5 standard errors.
        s = np.std(np.log(x), ddof=1)
        assert abs(s / sigma - 1.0) < 5.0 / np.sqrt(2 * N), f"{name}: SD(log) {s:.4f} vs σ {sigma:.4f}"
        # θ0 is the median: SE of the sample median of log θ is 1.2533·σ/√N; 5 SE.
        med = np.median(np.log(x))
        assert abs(med - np.log(x0)) < 5 * 1.2533 * sigma / np.sqrt(N), f"{name}: median {np.exp(med):.4g} vs {x0:.4g}"
        if c > 0.5:
            continue  # heavy tails: the empirical CV of K has a ~4 % standard error; SD(log) is tested
        # The empirical CV itself: its relative SE for a lognormal with cv ≤ 0.3 at N = 4000 is
        # ≈ √((κ + 2)/(4N)) ≤ 1.5 % (κ = excess kurtosis ≈ 1.6 for cv = 0.3); 6 % ≈ 4 SE.
        cv_hat = np.std(x, ddof=1) / np.mean(x)
        assert cv_hat == pytest.approx(c, rel=0.06), f"{name}: empirical CV {cv_hat:.4f} vs requested {c}"


def test_correlation_matches_requested(cohort):
    _, P, _ = cohort
    r = np.corrcoef(np.log(np.asarray(P.Vmx)), np.log(np.asarray(P.kp3)))[0, 1]
    # SE of a Pearson correlation ≈ (1 − ρ²)/√N = 0.012 at ρ = 0.5, N = 4000; 4 SE.
    assert abs(r - RHO) < 4 * (1 - RHO**2) / np.sqrt(N), f"corr(log Vmx, log kp3) = {r:.4f} vs {RHO}"
    # An uncorrelated varied parameter stays uncorrelated (|r| < 4/√N).
    r0 = np.corrcoef(np.log(np.asarray(P.Vmx)), np.asarray(P.f))[0, 1]
    assert abs(r0) < 4 / np.sqrt(N), r0


def test_fraction_variation_on_logit_scale(cohort, base):
    _, P, _ = cohort
    f = np.asarray(P.f)
    f0 = float(base.f)
    # Logit-normal with σ = cv/(1 − f0) (delta method): the median is f0 exactly; the logit's SD
    # is σ (5 SE as above); the empirical CV is cv up to the delta method's error at σ = 0.5
    # (measured 0.053 for 0.05) plus ~2 % sampling error: 15 % relative.
    logit = np.log(f / (1 - f))
    sigma = CV["f"] / (1 - f0)
    assert abs(np.std(logit, ddof=1) / sigma - 1.0) < 5.0 / np.sqrt(2 * N)
    assert abs(np.median(logit) - np.log(f0 / (1 - f0))) < 5 * 1.2533 * sigma / np.sqrt(N)
    assert np.std(f, ddof=1) / np.mean(f) == pytest.approx(CV["f"], rel=0.15)


def test_fraction_parameters_stay_in_unit_interval():
    # A large cv on f (base 0.9): on the log scale ~1 % of people would get f > 1; on the logit
    # scale none can.
    model, P, _ = vpop.sample_population(SET, N, cv={"f": 0.5, "b": 1.0}, seed=5)
    for name in ("f", "b"):
        x = np.asarray(getattr(P, name))
        assert np.all((x > 0) & (x < 1)), f"{name} outside (0, 1): min {x.min()}, max {x.max()}"
        assert np.std(x) > 0.01  # it really varies
    check_parameters({"f": P.f, "b": P.b}, model.parameter_specs, where="sampled", require_all=False)


def test_derived_basal_per_person_is_a_steady_state(cohort, base):
    model, P, _ = cohort
    # Each person has their own basal glucose (Vmx, kp3 vary): not the set's value for everybody.
    gb = np.asarray(P.Gb)
    assert np.all(np.isfinite(gb)) and gb.std() > 1.0
    y = model.basal_state(P)
    dy = model.vector_field(0.0, y, P)
    for k, a, b in zip(model.State._fields, dy, y):
        # Same criterion as the single-person basal test (test_model.py): float64 rounding ~1e-15.
        err = np.max(np.abs(np.asarray(a)) / np.maximum(1.0, np.abs(np.asarray(b))))
        assert err <= 1e-9, f"d{k}/dt at the per-person basal state: {err:g}"
    # Person i equals the set with person i's varied values as overrides.
    for i in (0, 17, N - 1):
        over = {k: float(getattr(P, k)[i]) for k in CV}
        _, q, _ = vpop.parameters_from_set(SET, overrides=over)
        for k in ("Gb", "Ib", "Sb"):
            assert float(getattr(P, k)[i]) == pytest.approx(float(getattr(q, k)), rel=1e-10), (i, k)


def test_sampled_people_simulate_at_steady_state_when_fasting():
    # Two people, 8 h, reference mode: the shape of the fasting test in test_model.py (one compile).
    model, P, _ = vpop.sample_population(SET, 2, cv={"Vmx": 0.3, "kp3": 0.3, "Vm0": 0.2}, seed=9)
    r = vpop.simulate(model, P, vpop.fasting(480.0, save_every_min=10.0), mode="reference")
    assert np.all(np.asarray(r.ok))
    g = np.asarray(r.glucose_mg_per_dl())
    assert abs(float(P.Gb[0] - P.Gb[1])) > 0.1  # two different basal states
    # Each person's own basal state is a steady state: drift only from solver rounding (≪ 1e-6).
    drift = np.max(np.abs(g - np.asarray(P.Gb)[:, None]))
    assert drift < 1e-6, f"fasting drift {drift:g} mg/dL"


def test_sampled_people_are_valid_or_rejected():
    # cv 0.1 on HEb (base 0.6, m6 = 0.6471): ~20 % of candidates get HEb > m6, hence
    # Sb = (m6 − HEb)/m5 < 0, negative Ib and a meaningless Gb. Either sample_population refuses
    # (ValueError naming the parameter) or every person it returns is within the parameter ranges,
    # derived basal values included (it now rejects and redraws such candidates).
    try:
        model, P, _ = vpop.sample_population(SET, 200, cv={"HEb": 0.1}, seed=1)
    except ValueError as e:
        assert "HEb" in str(e) or "Sb" in str(e)
        return
    check_parameters(P.to_dict(), model.parameter_specs, where="sampled", require_all=True)
    assert np.asarray(P.HEb).shape == (200,) and np.std(np.asarray(P.HEb)) > 0.01


def test_bad_population_input():
    with pytest.raises(ValueError, match="Vmax"):
        vpop.sample_population(SET, 3, cv={"Vmax": 0.1})
    with pytest.raises(ValueError, match="not positive definite"):
        vpop.sample_population(
            SET, 3, cv={"Vmx": 0.1, "kp3": 0.1, "beta": 0.1},
            correlations={("Vmx", "kp3"): 0.9, ("Vmx", "beta"): 0.9, ("kp3", "beta"): -0.9},
        )
    with pytest.raises(ValueError, match="beta"):  # correlation with a parameter that has no cv
        vpop.sample_population(SET, 3, cv={"Vmx": 0.1}, correlations={("Vmx", "beta"): 0.3})
    with pytest.raises(ValueError, match=r"\(-1, 1\)"):
        vpop.sample_population(SET, 3, cv={"Vmx": 0.1, "kp3": 0.1}, correlations={("Vmx", "kp3"): 1.0})
    with pytest.raises(ValueError, match="Gb"):  # derived in this set: vary the rate constants
        vpop.sample_population(SET, 3, cv={"Gb": 0.1})
    with pytest.raises(ValueError, match="cv.Vmx"):
        vpop.sample_population(SET, 3, cv={"Vmx": -0.1})
    with pytest.raises(ValueError, match="n_people"):
        vpop.sample_population(SET, 0)
    with pytest.raises(ValueError, match="unknown parameter_set"):
        vpop.sample_population("DallaMan2099_nobody", 3)
    with pytest.raises(ValueError, match="kp3"):  # out-of-range override
        vpop.sample_population(SET, 3, overrides={"kp3": -1.0})

