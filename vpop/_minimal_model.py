r"""Bergman minimal model of glucose kinetics for the IVGTT, and its fit with optax.

Bergman RN, Ider YZ, Bowden CR, Cobelli C. Am J Physiol 1979;236:E667; Pacini G, Bergman RN.
Comput Methods Programs Biomed 1986;23:113 (MINMOD)::

    dG/dt = −(SG + X)·G + SG·Gb,        G(0) = G0
    dX/dt = −p2·X + p2·SI·(I(t) − Ib)                  (X: remote insulin action, 1/min)

Measured plasma insulin I(t) [µU/mL] is the forcing (linear interpolation between samples); Gb and
Ib are the basal (t = 0) samples. Unknowns: G0 [mg/dL], SG [1/min], SI [1/min per µU/mL] and p2
[1/min], fitted on the log scale by weighted least squares with a constant-CV glucose error model
(``cv_measurement``, 2% by default), minimised with optax L-BFGS. Standard errors come from the
Gauss–Newton (Fisher) approximation ``cov = s²·(JᵀWJ)⁻¹`` on the log scale, mapped back with the
delta method. Samples before ``fit_from_min`` (8 min, the mixing phase, as in MINMOD practice) are
not fitted.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import NamedTuple

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

PARAMS = ("G0", "SG", "SI", "p2")
UNITS = {"G0": "mg/dL", "SG": "1/min", "SI": "1/min per µU/mL", "p2": "1/min"}


def load_pacini_bergman_ivgtt() -> pd.DataFrame:
    """The classic FSIGT of one normal subject (Pacini & Bergman 1986; 24 samples, 0–182 min)."""
    with (resources.files("vpop") / "data" / "pacini_bergman_1986" / "glucose_insulin_pacini_bergman1986.csv").open() as f:
        df = pd.read_csv(f)
    return df.rename(columns={"time": "time [min]", "glucose": "glucose [mg/dL]", "insulin": "insulin [µU/mL]"})


def simulate_minimal_model(theta: dict, t_min, insulin_t_min, insulin_uu_per_ml, Gb, Ib, *, rtol=1e-8, atol=1e-8):
    """Glucose [mg/dL] of the minimal model at ``t_min``, starting at ``t_min[0]`` (the bolus, t = 0)
    from ``G = G0``, ``X = 0``."""
    t = jnp.asarray(t_min, float)
    forcing = diffrax.LinearInterpolation(jnp.asarray(insulin_t_min, float), jnp.asarray(insulin_uu_per_ml, float))

    def vf(s, y, args):
        G, X = y
        dG = -(theta["SG"] + X) * G + theta["SG"] * Gb
        dX = -theta["p2"] * X + theta["p2"] * theta["SI"] * (forcing.evaluate(s) - Ib)
        return jnp.stack([dG, dX])

    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(vf), diffrax.Tsit5(), t[0], t[-1], None, jnp.stack([theta["G0"], 0.0]),
        saveat=diffrax.SaveAt(ts=t), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol, jump_ts=jnp.asarray(insulin_t_min, float)),
        max_steps=100_000,
    )
    return sol.ys[:, 0]


@dataclass(frozen=True)
class MinimalModelFit:
    """Estimates, standard errors and fit diagnostics."""

    estimates: dict
    standard_errors: dict
    rmse_mg_per_dl: float
    n_samples: int
    converged: bool
    iterations: int
    fitted_time_min: np.ndarray
    fitted_glucose_mg_per_dl: np.ndarray
    observed_glucose_mg_per_dl: np.ndarray

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({
            "parameter": list(PARAMS),
            "estimate": [self.estimates[k] for k in PARAMS],
            "standard_error": [self.standard_errors[k] for k in PARAMS],
            "unit": [UNITS[k] for k in PARAMS],
        })


def fit_minimal_model(data: pd.DataFrame | None = None, *, fit_from_min: float = 8.0, cv_measurement: float = 0.02,
                      max_iter: int = 500) -> MinimalModelFit:
    """Fit the minimal model to an IVGTT (columns ``time [min]``, ``glucose [mg/dL]``, ``insulin [µU/mL]``)."""
    df = load_pacini_bergman_ivgtt() if data is None else data
    for col in ("time [min]", "glucose [mg/dL]", "insulin [µU/mL]"):
        if col not in df:
            raise ValueError(f"IVGTT data needs column {col!r} (units in the name); got {list(df.columns)}")
    t_all = df["time [min]"].to_numpy(float)
    g_all = df["glucose [mg/dL]"].to_numpy(float)
    i_all = df["insulin [µU/mL]"].to_numpy(float)
    Gb, Ib = g_all[0], i_all[0]
    keep = t_all >= fit_from_min
    t, g = t_all[keep], g_all[keep]
    grid = np.concatenate([[t_all[0]], t])  # integrate from the bolus (t = 0); fit t ≥ fit_from_min
    sigma = cv_measurement * g  # constant-CV glucose error

    data = _Data(*(jnp.asarray(a, float) for a in (grid, t_all, i_all, g, sigma, Gb, Ib)))
    # start: G0 from the peak sample, SG and SI of a normal subject (Bergman 2002), p2 0.025/min
    z = jnp.log(jnp.array([g_all.max(), 0.02, 3e-4, 0.025]))
    state = _OPT.init(z)
    converged, it = False, 0
    for it in range(1, max_iter + 1):
        z, state, gnorm = _lbfgs_step(z, state, data)
        if float(gnorm) < 1e-6:
            converged = True
            break
    r = _residuals(z, data)
    J = _jacobian(z, data)  # (n, 4), residuals already weighted
    dof = max(len(t) - len(PARAMS), 1)
    s2 = float(jnp.sum(r * r)) / dof
    cov = s2 * np.linalg.inv(np.asarray(J.T @ J))
    est = {k: float(v) for k, v in _unpack(z).items()}
    se = {k: est[k] * float(np.sqrt(cov[i, i])) for i, k in enumerate(PARAMS)}  # delta method from log scale
    pred = np.asarray(r) * sigma + g
    return MinimalModelFit(est, se, float(np.sqrt(np.mean((pred - g) ** 2))), len(t), converged, it, t, pred, g)


class _Data(NamedTuple):
    grid: jax.Array  # integration grid: bolus time, then the fitted sample times
    t_insulin: jax.Array
    insulin: jax.Array
    glucose: jax.Array  # fitted samples
    sigma: jax.Array
    Gb: jax.Array
    Ib: jax.Array


_OPT = optax.lbfgs()


def _unpack(z):
    return {k: jnp.exp(z[i]) for i, k in enumerate(PARAMS)}


def _residuals(z, d: _Data):
    pred = simulate_minimal_model(_unpack(z), d.grid, d.t_insulin, d.insulin, d.Gb, d.Ib)[1:]
    return (pred - d.glucose) / d.sigma


def _loss(z, d: _Data):
    r = _residuals(z, d)
    return 0.5 * jnp.sum(r * r)


_jacobian = jax.jit(jax.jacrev(_residuals))


@jax.jit
def _lbfgs_step(z, state, d: _Data):
    """One L-BFGS step; the data are arguments, so every dataset of the same size shares one compile."""
    loss = lambda x: _loss(x, d)  # noqa: E731
    value, grad = optax.value_and_grad_from_state(loss)(z, state=state)
    updates, state = _OPT.update(grad, state, z, value=value, grad=grad, value_fn=loss)
    z = optax.apply_updates(z, updates)
    return z, state, optax.tree_utils.tree_norm(grad)
