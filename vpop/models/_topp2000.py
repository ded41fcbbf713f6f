r"""Topp et al. 2000 β-cell mass – insulin – glucose (βIG) model, time in days.

Topp B, Promislow K, de Vries G, Miura RM, Finegood DT. *A model of β-cell mass, insulin, and glucose
kinetics: pathways to diabetes.* J Theor Biol 2000;206:605–619. BioModels BIOMD0000000341.

::

    dG/dt = R0 − (EG0 + SI·I)·G                 [mg/dL/day]
    dI/dt = β·σ·G²/(α + G²) − k·I               [µU/mL/day]
    dβ/dt = (−d0 + r1·G − r2·G²)·β              [mg/day]

The β-cell growth rate vanishes at G = 100 and 250 mg/dL (the physiological and pathological
fixed points). The model uses Topp's units (insulin in µU/mL, time in days), written in every name.
Insulin kinetics (k = 432/day) are ~7000× faster than β-cell turnover, so the model is stiff and
is solved with an implicit method (:func:`simulate_topp2000`).
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from .._parameters import ParamSpec
from ._base import AbstractParams

PARAMETER_SPECS: dict[str, ParamSpec] = {
    "R0": ParamSpec("mg/dL/day", 0.0, 1e5, "glucose production at zero glucose"),
    "EG0": ParamSpec("1/day", 0.0, 100.0, "glucose effectiveness at zero insulin", True),
    "SI": ParamSpec("mL/µU/day", 0.0, 100.0, "insulin sensitivity", True),
    "sigma": ParamSpec("µU/mL/day per mg", 0.0, 1e4, "maximal insulin secretion rate per β-cell mass", True),
    "alpha": ParamSpec("mg²/dL²", 0.0, 1e7, "glucose at half-maximal secretion, squared"),
    "k": ParamSpec("1/day", 0.0, 1e5, "insulin clearance rate"),
    "d0": ParamSpec("1/day", 0.0, 10.0, "β-cell death rate at zero glucose", True),
    "r1": ParamSpec("1/day per mg/dL", 0.0, 1.0, "glucose-driven β-cell replication, linear", True),
    "r2": ParamSpec("1/day per (mg/dL)²", 0.0, 1.0, "glucose-driven β-cell loss, quadratic", True),
}


class Topp2000Params(AbstractParams):
    """Parameters of :class:`Topp2000` (Topp 2000, Table 1; BIOMD0000000341)."""

    specs = PARAMETER_SPECS
    model_name = "Topp2000"

    R0: Array
    EG0: Array
    SI: Array
    sigma: Array
    alpha: Array
    k: Array
    d0: Array
    r1: Array
    r2: Array

    @property
    def n_people(self) -> int | None:
        shape = jnp.shape(self.R0)
        return shape[0] if shape else None


#: Topp 2000 / BIOMD0000000341 parameter values.
TOPP2000_VALUES = {"R0": 864.0, "EG0": 1.44, "SI": 0.72, "sigma": 43.2, "alpha": 20000.0, "k": 432.0,
                   "d0": 0.06, "r1": 0.84e-3, "r2": 0.24e-5}


class Topp2000State(NamedTuple):
    glucose_mg_per_dl: ArrayLike
    insulin_uu_per_ml: ArrayLike
    beta_cell_mass_mg: ArrayLike


class Topp2000(eqx.Module):
    """The βIG model (one person; batch by broadcasting or vmap). Time in days."""

    name = "Topp2000"
    Params = Topp2000Params
    State = Topp2000State
    parameter_specs = PARAMETER_SPECS

    adaptive_beta: bool = eqx.field(static=True, default=True)

    def vector_field(self, t, y: Topp2000State, p: Topp2000Params, si_multiplier=1.0) -> Topp2000State:
        """``dy/dt`` at time ``t`` [days]; ``si_multiplier`` scales insulin sensitivity (a driver of
        insulin resistance). With ``adaptive_beta=False`` β-cell mass is held constant."""
        G, I, B = y
        G2 = G * G
        dB = (-p.d0 + p.r1 * G - p.r2 * G2) * B
        return Topp2000State(
            p.R0 - (p.EG0 + si_multiplier * p.SI * I) * G,
            B * p.sigma * G2 / (p.alpha + G2) - p.k * I,
            dB if self.adaptive_beta else jnp.zeros_like(dB),
        )

    def steady_state(self, p: Topp2000Params, glucose_mg_per_dl=100.0) -> Topp2000State:
        """The steady state at glucose ``G`` (a β-cell fixed point, 100 mg/dL by default)."""
        G = jnp.asarray(glucose_mg_per_dl, jnp.result_type(p.R0))
        I = (p.R0 / G - p.EG0) / p.SI
        B = p.k * I * (p.alpha + G * G) / (p.sigma * G * G)
        return Topp2000State(G, I, B)

    def beta_cell_fixed_points_mg_per_dl(self, p: Topp2000Params):
        """Glucose values where β-cell mass neither grows nor shrinks: ``(low, high)`` [mg/dL]."""
        disc = jnp.sqrt(p.r1 * p.r1 - 4.0 * p.r2 * p.d0)
        return (p.r1 - disc) / (2.0 * p.r2), (p.r1 + disc) / (2.0 * p.r2)


def simulate_topp2000(params: Topp2000Params, y0: Topp2000State, t_days, *, rtol: float = 1e-10, atol: float = 1e-10,
                      max_steps: int = 100_000, si_multiplier=None, adaptive_beta: bool = True):
    """Solve the βIG model on the grid ``t_days`` with an implicit 5th-order method (Kvaerno5).

    ``si_multiplier(t_days)``, a JAX function of time, scales insulin sensitivity over time (e.g. a
    linear decline for rising insulin resistance); ``adaptive_beta=False`` freezes β-cell mass.
    Returns ``(Topp2000State of arrays (..., len(t_days)), ok)``; batched over a leading person axis
    with ``jax.vmap`` if the parameter leaves are 1-D.
    """
    model = Topp2000(adaptive_beta=adaptive_beta)
    ts = jnp.asarray(np.asarray(t_days, float))
    driver = (lambda t: 1.0) if si_multiplier is None else si_multiplier
    term = diffrax.ODETerm(lambda t, y, p: model.vector_field(t, y, p, driver(t)))

    def one(p, y):
        sol = diffrax.diffeqsolve(
            term, diffrax.Kvaerno5(), ts[0], ts[-1], None, y, args=p,
            saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            max_steps=max_steps, throw=False,
        )
        return sol.ys, sol.result == diffrax.RESULTS.successful

    if jnp.ndim(params.R0) == 0:
        return jax.jit(one)(params, y0)
    return jax.jit(jax.vmap(one))(params, y0)
