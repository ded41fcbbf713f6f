"""Gut absorption shared by the meal models (Dalla Man, Camilleri & Cobelli, IEEE TBME 2006;53:2472)."""

from __future__ import annotations

import jax.numpy as jnp

from .._parameters import ParamSpec

#: Parameters of the two-compartment stomach + gut model, as used by every model with meals.
GUT_PARAMETER_SPECS: dict[str, ParamSpec] = {
    "kmax": ParamSpec("1/min", 0.0, 1.0, "max gastric emptying rate (= kgri, grinding rate)"),
    "kmin": ParamSpec("1/min", 0.0, 1.0, "min gastric emptying rate"),
    "kabs": ParamSpec("1/min", 0.0, 10.0, "intestinal absorption rate"),
    "f": ParamSpec("1", 0.0, 1.0, "fraction of intestinal absorption reaching plasma", fraction=True),
    "b": ParamSpec("1", 0.0, 1.0, "fraction of dose at which kempt falls to (kmax+kmin)/2", fraction=True),
    "d": ParamSpec("1", 0.0, 1.0, "fraction of dose at which kempt is back to (kmax+kmin)/2", fraction=True),
}


def gastric_emptying_rate(q_sto_mg, dose_mg, kmax, kmin, b, d):
    """Nonlinear gastric emptying rate ``kempt`` [1/min]::

        kempt = kmin + (kmax − kmin)/2 · {tanh[α(Qsto − b·D)] − tanh[β(Qsto − d·D)] + 2}
        α = 5/(2D(1 − b)),  β = 5/(2D·d)

    ``D`` is the dose that scales emptying (the overlapping-meal convention: glucose in the stomach
    when the meal started plus what was eaten). Before any meal (``D = 0``) it is ``kmax``; the
    double ``where`` keeps gradients finite there.
    """
    has_dose = dose_mg > 0
    D = jnp.where(has_dose, dose_mg, 1.0)
    aa = 5.0 / (2.0 * D * (1.0 - b))
    cc = 5.0 / (2.0 * D * d)
    k = kmin + 0.5 * (kmax - kmin) * (jnp.tanh(aa * (q_sto_mg - b * D)) - jnp.tanh(cc * (q_sto_mg - d * D)) + 2.0)
    return jnp.where(has_dose, k, kmax)
