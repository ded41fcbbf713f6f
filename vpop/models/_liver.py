r"""Compact liver: glycogen store, glycogenesis (direct and indirect), glycogenolysis, gluconeogenesis,
hepatic glucose uptake (SCIENCE.md §1(h) suggested structure; parameters below, none fitted).

Driven mode: plasma glucose [mg/dL], plasma insulin [pmol/L] and the gut rate of appearance Ra
[mg/kg/min] over time (e.g. from a :func:`vpop.simulate` result of the Dalla Man model) drive the
liver; it returns its fluxes (mg/kg/min of body weight) and glycogen (mg/kg, glucose equivalents)::

    G_pv  = G + Ra/F_pv                                    portal glucose (meal glucose in portal blood)
    HGU   = V_hgu·h(G_pv)·f(I; I_syn)·(1 − Gly/Gly_max)   hepatic uptake → glycogen (direct pathway)
    IND   = GNG·f(I; I_ind)·(1 − Gly/Gly_max)               gluconeogenic carbon → glycogen (indirect)
    GLY   = V_gly·Gly/(K_gly + Gly)·(1 − f(I; I_gly))       glycogenolysis, suppressed by insulin
    GNG   = GNG_b                                           gluconeogenesis (substrate-limited, constant)
    EGP   = GLY + GNG − IND;   dGly/dt = HGU + IND − GLY
    h(G) = Gⁿ/(S05ⁿ + Gⁿ) (glucokinase),  f(I; K) = I²/(K² + I²)

Glucagon and epinephrine are not modelled (their basal effect is in the rates); GNG does not
adapt to prolonged fasting. Units: glucose mg/dL, insulin pmol/L, time min, fluxes mg/kg/min.
Conversion of liver glycogen concentrations: 1 mmol/L liver (glucosyl units) = 1.5 L liver ×
180 mg/mmol / 70 kg = 3.86 mg/kg (liver volume 1.5 L for a 70-kg adult, assumed).
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array

from .._parameters import ParamSpec, check_parameters

MG_PER_KG_PER_MMOL_PER_L_LIVER = 1.5 * 180.0 / 70.0  # assumed liver volume 1.5 L, 70 kg

LIVER_PARAMETER_SPECS: dict[str, ParamSpec] = {
    "glycogen_max": ParamSpec("mg/kg", 1.0, 1e4, "glycogen capacity: 500 mmol/L liver (upper end of 300–500, SCIENCE §1(h) [R])"),
    "hgu_max": ParamSpec("mg/kg/min", 0.0, 20.0, "maximal hepatic glucose uptake: assumed 3.3 (so that basal HGU ≈ 20 mg/min, Sorensen r_HGU,b)"),
    "gk_s05": ParamSpec("mg/dL", 10.0, 1000.0, "hepatic glucokinase S0.5 (8 mM; Matschinsky 1996)"),
    "gk_hill": ParamSpec("1", 0.5, 4.0, "hepatic glucokinase Hill coefficient (1.7; Matschinsky 1996)"),
    "insulin_half_synthesis": ParamSpec("pmol/L", 1.0, 2000.0, "insulin for half-maximal direct glycogen synthesis (assumed 100)"),
    "insulin_half_indirect": ParamSpec("pmol/L", 1.0, 2000.0, "insulin for half of GNG carbon to glycogen (assumed 100)"),
    "insulin_half_glycogenolysis": ParamSpec("pmol/L", 1.0, 2000.0, "insulin halving glycogenolysis (assumed 50: HGO fully suppressed within 30 min of a meal, Taylor 1996)"),
    "glycogenolysis_max": ParamSpec("mg/kg/min", 0.0, 20.0, "maximal glycogenolysis (assumed)"),
    "glycogen_km": ParamSpec("mg/kg", 1.0, 1e4, "glycogen for half-maximal glycogenolysis (assumed)"),
    "gng_rate": ParamSpec("mg/kg/min", 0.0, 10.0, "gluconeogenesis (assumed)", True),
    "portal_flow": ParamSpec("dL/kg/min", 0.01, 1.0, "portal venous blood flow (0.15 dL/kg/min ≈ 1 L/min for 70 kg, assumed)"),
}

LIVER_DEFAULTS: dict[str, float] = {
    "glycogen_max": 500.0 * MG_PER_KG_PER_MMOL_PER_L_LIVER,
    "hgu_max": 3.3,
    "gk_s05": 144.0,
    "gk_hill": 1.7,
    "insulin_half_synthesis": 100.0,
    "insulin_half_indirect": 100.0,
    "insulin_half_glycogenolysis": 50.0,
    "glycogenolysis_max": 2.0,
    "glycogen_km": 800.0,
    "gng_rate": 1.0,
    "portal_flow": 0.15,
}


class LiverParams(eqx.Module):
    glycogen_max: Array
    hgu_max: Array
    gk_s05: Array
    gk_hill: Array
    insulin_half_synthesis: Array
    insulin_half_indirect: Array
    insulin_half_glycogenolysis: Array
    glycogenolysis_max: Array
    glycogen_km: Array
    gng_rate: Array
    portal_flow: Array

    @classmethod
    def from_dict(cls, values=None, *, dtype=jnp.float64):
        merged = {**LIVER_DEFAULTS, **(values or {})}
        check_parameters(merged, LIVER_PARAMETER_SPECS, where="Liver")
        return cls(**{k: jnp.asarray(merged[k], dtype=dtype) for k in LIVER_PARAMETER_SPECS})


class LiverFluxes(NamedTuple):
    hepatic_uptake_mg_per_kg_min: Array  #: HGU, direct pathway
    indirect_synthesis_mg_per_kg_min: Array  #: GNG carbon to glycogen
    glycogenolysis_mg_per_kg_min: Array
    gluconeogenesis_mg_per_kg_min: Array
    egp_mg_per_kg_min: Array  #: glycogenolysis + GNG − indirect
    glycogen_rate_mg_per_kg_min: Array  #: d glycogen / dt


def _hill2(x, k):
    x2 = x * x
    return x2 / (k * k + x2)


def liver_fluxes(glycogen_mg_per_kg, glucose_mg_per_dl, insulin_pmol_per_l, ra_mg_per_kg_min, p: LiverParams) -> LiverFluxes:
    gpv = glucose_mg_per_dl + ra_mg_per_kg_min / p.portal_flow
    x = (gpv / p.gk_s05) ** p.gk_hill
    room = jnp.clip(1.0 - glycogen_mg_per_kg / p.glycogen_max, 0.0, 1.0)
    hgu = p.hgu_max * x / (1.0 + x) * _hill2(insulin_pmol_per_l, p.insulin_half_synthesis) * room
    gng = p.gng_rate + 0.0 * glycogen_mg_per_kg
    ind = gng * _hill2(insulin_pmol_per_l, p.insulin_half_indirect) * room
    gly = (p.glycogenolysis_max * glycogen_mg_per_kg / (p.glycogen_km + glycogen_mg_per_kg)
           * (1.0 - _hill2(insulin_pmol_per_l, p.insulin_half_glycogenolysis)))
    return LiverFluxes(hgu, ind, gly, gng, gly + gng - ind, hgu + ind - gly)


def simulate_liver(p: LiverParams, glycogen0_mg_per_kg, t_min, glucose_mg_per_dl, insulin_pmol_per_l,
                   ra_mg_per_kg_min=None):
    """Drive the liver with sampled glucose, insulin and Ra on the grid ``t_min`` (linear interpolation);
    returns ``(glycogen [mg/kg], LiverFluxes)`` on that grid. Adaptive Tsit5 (diffrax)."""
    t = jnp.asarray(t_min, dtype=jnp.float64)
    G = jnp.asarray(glucose_mg_per_dl, dtype=t.dtype)
    I = jnp.asarray(insulin_pmol_per_l, dtype=t.dtype)
    Ra = jnp.zeros_like(t) if ra_mg_per_kg_min is None else jnp.asarray(ra_mg_per_kg_min, dtype=t.dtype)

    def rhs(s, y, args):
        return liver_fluxes(y, jnp.interp(s, t, G), jnp.interp(s, t, I), jnp.interp(s, t, Ra), p).glycogen_rate_mg_per_kg_min

    sol = diffrax.diffeqsolve(diffrax.ODETerm(rhs), diffrax.Tsit5(), t[0], t[-1], None,
                              jnp.asarray(glycogen0_mg_per_kg, dtype=t.dtype), saveat=diffrax.SaveAt(ts=t),
                              stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8,
                                                                         jump_ts=t),
                              max_steps=200000)
    gly = sol.ys
    return gly, liver_fluxes(gly, G, I, Ra, p)
