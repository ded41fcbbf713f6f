"""Bergman minimal model fitted to the Pacini & Bergman 1986 IVGTT with optax."""

import numpy as np
import pytest

from vpop._minimal_model import fit_minimal_model, load_pacini_bergman_ivgtt
from vpop._validate import check_pacini_bergman_ivgtt


@pytest.fixture(scope="module")
def fit():
    return fit_minimal_model()


def test_fit_converges_with_standard_errors(fit):
    assert fit.converged and fit.n_samples == 20  # 24 samples, those before 8 min not fitted
    t = fit.table()
    assert list(t["parameter"]) == ["G0", "SG", "SI", "p2"]
    assert np.all(np.isfinite(t["standard_error"])) and np.all(t["standard_error"] > 0)
    # residuals of the order of the assay error (a few mg/dL on ~80–250 mg/dL)
    assert fit.rmse_mg_per_dl < 6.0
    # the fitted curve is a local minimum: perturbing SI worsens the fit
    assert fit.rmse_mg_per_dl < np.sqrt(np.mean((fit.fitted_glucose_mg_per_dl * 1.02 - fit.observed_glucose_mg_per_dl) ** 2))


def test_validate_check_passes_and_can_fail():
    rows = check_pacini_bergman_ivgtt()
    assert all(r["passed"] for r in rows), rows
    # insulin reported 20× too high (a unit slip): SI comes out ~20× too low, outside the range
    bad = load_pacini_bergman_ivgtt()
    bad["insulin [µU/mL]"] *= 20.0
    assert not all(r["passed"] for r in check_pacini_bergman_ivgtt(bad))


def test_units_are_checked():
    df = load_pacini_bergman_ivgtt().rename(columns={"insulin [µU/mL]": "insulin [pmol/L]"})
    with pytest.raises(ValueError, match="insulin"):
        fit_minimal_model(df)
