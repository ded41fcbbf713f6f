r"""Mechanistic beta-cell stimulus–secretion coupling, and the Dalla Man 2007 model driven by it.

A minute-scale reduction of the chain of SCIENCE.md §1(g), re-derived here (no code copied):

1. **GLUT uptake** (facilitated diffusion, symmetric Michaelis–Menten; GLUT2 Km ≈ 17 mM,
   Thorens 1988 Cell 55:281; transport capacity well above glucokinase's, Matschinsky 1996
   Diabetes 45:223) at quasi-steady state with
2. **glucokinase** (the glycolytic flux, Hill S0.5 ≈ 8 mM, nH ≈ 1.7; Matschinsky 1996):
   ``J = Gi^nH/(S05^nH + Gi^nH)`` (normalised to its maximum), ``Gi`` solving
   ``G/(Km+G) − Gi/(Km+Gi) = J(Gi)/reserve`` by fixed-point iteration (the small term).
3. **ATP/ADP** ratio ``R``: ``dR/dt = (R0 + ΔR·J − R)/τ_ATP``.
4. **K_ATP** open fraction ``o = (1 − block)/(1 + (R/R½)^n)``; ``block`` is a sulfonylurea-like
   closure (fraction of channels closed independently of nucleotides).
5. **Depolarisation**: burst-averaged membrane potential from the balance of the K_ATP
   conductance (relative to a depolarising background conductance ``g_rel``) and the background:
   ``V = (g_rel·o·V_K + V_dep)/(g_rel·o + 1)``; V_K = −75 mV (IOM 2.0, Marinelli 2022).
6. **Ca²⁺**: L-type activation ``m∞(V) = 1/(1 + exp((V½ − V)/s))`` with V½ = −20 mV, s = 12 mV
   (IOM 2.0); cytosolic Ca²⁺ at quasi-steady state on the minute scale (it follows V within
   seconds): ``c = c_rest + c_gain·m∞(V)`` [µM] (c_rest = 0.07 µM, Ha & Sherman 2020).
7. **Granule pools** (Chen, Wang & Sherman 2008, reduced): a readily releasable pool ``D``
   [pmol/kg] primed from a reserve that is not depleted over hours, at a Ca²⁺- and
   metabolism-dependent rate (Ha & Sherman 2020: resupply ∝ GF(G)·Ca/(Ca + 2.3)):
   ``J_prime = capacity·A·c/(c + K_p)``; **exocytosis** ``ISR = k_exo(c)·D`` with
   ``k_exo = k_max·cⁿ/(K_cⁿ + cⁿ)·(1 + g_inc·S_inc)`` (Ha & Sherman 2020 use n = 4 on micro-domain
   Ca²⁺; here n is fitted), where ``S_inc`` follows the gut glucose appearance with delay
   ``tau_incretin`` (GLP-1/GIP → cAMP potentiation; zero for intravenous glucose and clamps);
   unpriming ``k_back·D``:  ``dD/dt = J_prime − (k_exo + k_back)·D``.
8. **Amplifying (K_ATP-independent) signal** ``A`` following the glycolytic flux with delay
   τ_amp: ``dA/dt = (J − A)/τ_amp`` (Henquin 2000 Diabetes 49:1751: the metabolic amplifying
   pathway that makes second phase rise).

A rise in glucose closes K_ATP within ~τ_ATP, Ca²⁺ and ``k_exo`` jump, the RRP empties (first
phase, a peak after a few minutes), then secretion is limited by resupply, which rises with ``A``
(second phase). Sulfonylurea-like closure raises ``k_exo`` at any glucose.

Units: glucose mg/dL (converted to mM internally with 18.016 mg/dL per mM), time min, secretion
pmol/kg/min (the Dalla Man convention, so it can replace the Dalla Man secretion block).

Parameter provenance (also in :data:`BETACELL_PARAMETER_SPECS` descriptions): literature values
are cited; values marked *assumed* are order-of-magnitude choices; values marked *fitted* were
fitted once by :func:`fit_to_dallaman_secretion` (optax Adam, relative least squares on the Dalla
Man 2007 secretion curve of the BIOMD0000000379 78 g meal, glucose- and Ra-forced), refined by the
closed-loop :func:`fit_to_dallaman_meal` (insulin and glucose curves of the same meal), and stored
as defaults (see :data:`BETACELL_DEFAULTS`). The mapped K (≈ 0.75 vs Dalla Man's 2.3 pmol/kg per
mg/dL) is lower because the incretin drive carries much of the meal's early secretion;
``capacity`` is derived per person from the basal constraint ``ISR(Gb) = Sb``
(:func:`capacity_for_basal`).

Map to the Dalla Man secretion parameters (:func:`dallaman_secretion_map`):

* ``Sb = ISR_ss(Gb)``: steady-state secretion at basal glucose;
* ``beta = (ISR_ss(Gb + ΔG) − ISR_ss(Gb))/ΔG``: secant gain of steady-state secretion over the meal
  range ΔG (default 60 mg/dL), the static (provision) term;
* ``K = (D(Gb) − D_fast(Gb + ΔG))/ΔG``: RRP emptied per mg/dL of a fast rise (amplifying signal
  still basal), the dynamic term (Pedersen, Toffolo & Cobelli 2010: K ∝ RRP × threshold density);
* ``alpha = 1/τ_amp``: the delay of the static term is the delay of resupply.
"""

from __future__ import annotations

from typing import NamedTuple

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._parameters import ParamSpec, check_parameters
from ._base import concat_state
from ._dallaman2007 import (
    PARAMETER_SPECS as DALLAMAN_SPECS,
    STATE_UNITS as DALLAMAN_STATE_UNITS,
    DallaMan2007,
    DallaMan2007Params,
    DallaManFluxes,
    DallaManState,
)

MG_PER_DL_PER_MM = 18.016  # glucose, mg/dL per mmol/L

BETACELL_PARAMETER_SPECS: dict[str, ParamSpec] = {
    "glut_km": ParamSpec("mg/dL", 1.0, 2000.0, "GLUT Km (GLUT2 17 mM = 306 mg/dL; Thorens 1988)"),
    "glut_reserve": ParamSpec("1", 0.5, 1e4, "GLUT transport capacity / glucokinase capacity (assumed 10; Matschinsky 1996: uptake not limiting)"),
    "gk_s05": ParamSpec("mg/dL", 10.0, 1000.0, "glucokinase S0.5 (8 mM = 144 mg/dL; Matschinsky 1996)"),
    "gk_hill": ParamSpec("1", 0.5, 4.0, "glucokinase Hill coefficient (1.7; Matschinsky 1996)"),
    "atp_adp_rest": ParamSpec("1", 0.0, 50.0, "ATP/ADP at zero glycolytic flux (assumed 1)", True),
    "atp_adp_gain": ParamSpec("1", 0.0, 100.0, "rise of ATP/ADP at maximal glycolytic flux (assumed 10)"),
    "tau_atp": ParamSpec("min", 0.05, 30.0, "time constant of ATP/ADP (assumed 1 min)"),
    "katp_half_atp_adp": ParamSpec("1", 0.01, 100.0, "ATP/ADP closing half the K_ATP channels (fitted)"),
    "katp_hill": ParamSpec("1", 0.5, 12.0, "Hill coefficient of K_ATP closure by ATP/ADP (fitted)"),
    "katp_block": ParamSpec("1", 0.0, 0.99, "sulfonylurea-like K_ATP closure: fraction of channels blocked (0 = none)", True),
    "gkatp_rel": ParamSpec("1", 0.01, 1000.0, "maximal K_ATP / depolarising background conductance (fitted)"),
    "v_k": ParamSpec("mV", -120.0, -40.0, "K⁺ reversal potential (−75 mV; IOM 2.0)"),
    "v_dep": ParamSpec("mV", -60.0, 20.0, "potential with all K_ATP closed, burst-averaged (assumed −30 mV)"),
    "v_ca_half": ParamSpec("mV", -60.0, 20.0, "L-type Ca²⁺ half-activation (−20 mV; IOM 2.0)"),
    "v_ca_slope": ParamSpec("mV", 1.0, 40.0, "L-type Ca²⁺ activation slope (12 mV; IOM 2.0)"),
    "ca_rest": ParamSpec("µM", 0.0, 5.0, "resting cytosolic Ca²⁺ (0.07 µM; Ha & Sherman 2020)", True),
    "ca_gain": ParamSpec("µM", 0.01, 20.0, "cytosolic Ca²⁺ at full L-type activation above rest (assumed 1 µM)"),
    "exo_max": ParamSpec("1/min", 0.0, 2.0, "maximal fractional exocytosis of the RRP (fitted; ≤ 2/min keeps the fast engine's 1-min step stable)"),
    "exo_ca_half": ParamSpec("µM", 0.01, 10.0, "Ca²⁺ for half-maximal exocytosis (fitted)"),
    "exo_hill": ParamSpec("1", 1.0, 12.0, "Ca²⁺ cooperativity of exocytosis (fitted; Ha & Sherman 2020 use Hill 4 on micro-domain Ca²⁺)"),
    "prime_ca_half": ParamSpec("µM", 0.01, 20.0, "Ca²⁺ dependence of resupply (fitted; start 2.3 µM of Ha & Sherman 2020 r2, r3)"),
    "unprime_rate": ParamSpec("1/min", 0.0, 2.0, "loss of primed granules back to the reserve (fitted)", True),
    "tau_amp": ParamSpec("min", 0.5, 300.0, "delay of the metabolic amplifying signal (fitted within 15–60 min)"),
    "incretin_gain": ParamSpec("1/(mg/kg/min)", 0.0, 100.0, "incretin (GLP-1/GIP → cAMP) potentiation of exocytosis per unit of gut glucose appearance (fitted; Nauck 1986 incretin effect)", True),
    "tau_incretin": ParamSpec("min", 0.5, 120.0, "delay of the incretin signal behind the gut rate of appearance (fitted)"),
    "capacity": ParamSpec("pmol/kg/min", 0.0, 1e5, "resupply capacity (beta-cell mass × function); derived from ISR(Gb) = Sb"),
}

#: Default beta-cell values. The fitted entries (:data:`FITTED_PARAMETERS`) were obtained once, in
#: float64 on a CPU: a log-uniform random search (8000 candidates) ranked by the relative RMSE of
#: :func:`fit_to_dallaman_secretion`'s objective, refined by that function (relative least squares,
#: then ``norm_power`` 6 and 10), then by the closed-loop :func:`fit_to_dallaman_meal`
#: (``norm_power`` 6, 150 Adam steps, learning rate 0.01); rounded to 6 significant digits.
#: ``tau_amp`` ended on its lower fit bound (15 min), ``tau_incretin`` on its spec bound (0.5 min):
#: the Dalla Man curve asks for a faster amplifying signal and an incretin drive ≈ Ra itself.
BETACELL_DEFAULTS: dict[str, float] = {
    "glut_km": 306.0,
    "glut_reserve": 10.0,
    "gk_s05": 144.0,
    "gk_hill": 1.7,
    "atp_adp_rest": 1.0,
    "atp_adp_gain": 10.0,
    "tau_atp": 1.0,
    "katp_half_atp_adp": 1.94754,
    "katp_hill": 6.10852,
    "katp_block": 0.0,
    "gkatp_rel": 40.7329,
    "v_k": -75.0,
    "v_dep": -30.0,
    "v_ca_half": -20.0,
    "v_ca_slope": 12.0,
    "ca_rest": 0.07,
    "ca_gain": 1.0,
    "exo_max": 0.270746,
    "exo_ca_half": 0.571962,
    "exo_hill": 2.09968,
    "prime_ca_half": 0.565997,
    "unprime_rate": 0.0101626,
    "tau_amp": 15.0015,
    "incretin_gain": 0.384935,
    "tau_incretin": 0.500051,
    "capacity": 1.0,
}

BETACELL_STATE_UNITS = {
    "atp_adp_ratio": "1",
    "rrp_insulin": "pmol/kg",
    "amplifying_signal": "1",
    "incretin_signal": "mg/kg/min",
}


class BetaCellParams(eqx.Module):
    """Beta-cell parameters (one person: scalars; a population: leading axis ``(n_people,)``)."""

    glut_km: Array
    glut_reserve: Array
    gk_s05: Array
    gk_hill: Array
    atp_adp_rest: Array
    atp_adp_gain: Array
    tau_atp: Array
    katp_half_atp_adp: Array
    katp_hill: Array
    katp_block: Array
    gkatp_rel: Array
    v_k: Array
    v_dep: Array
    v_ca_half: Array
    v_ca_slope: Array
    ca_rest: Array
    ca_gain: Array
    exo_max: Array
    exo_ca_half: Array
    exo_hill: Array
    prime_ca_half: Array
    unprime_rate: Array
    tau_amp: Array
    incretin_gain: Array
    tau_incretin: Array
    capacity: Array

    specs = BETACELL_PARAMETER_SPECS

    @classmethod
    def from_dict(cls, values=None, *, validate: bool = True, dtype=jnp.float64):
        """Defaults (:data:`BETACELL_DEFAULTS`) updated by ``values``; ranges checked
        (``ValueError`` naming the field and its valid range)."""
        merged = {**BETACELL_DEFAULTS, **(values or {})}
        if validate:
            check_parameters(merged, BETACELL_PARAMETER_SPECS, where="BetaCell")
        return cls(**{k: jnp.asarray(merged[k], dtype=dtype) for k in BETACELL_PARAMETER_SPECS})

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in BETACELL_PARAMETER_SPECS}


class BetaCellState(NamedTuple):
    atp_adp_ratio: ArrayLike  #: R, ATP/ADP [1]
    rrp_insulin: ArrayLike  #: D, readily releasable pool [pmol/kg]
    amplifying_signal: ArrayLike  #: A, metabolic amplifying signal (normalised glycolytic flux) [1]
    incretin_signal: ArrayLike  #: delayed gut glucose appearance driving GLP-1/GIP [mg/kg/min] (0 without a meal)


class BetaCellSignals(NamedTuple):
    """Algebraic links of the chain at one state (units in the names)."""

    glucose_intracellular_mg_per_dl: ArrayLike
    glycolytic_flux_rel: ArrayLike
    katp_open_fraction: ArrayLike
    membrane_potential_mV: ArrayLike
    calcium_uM: ArrayLike
    exocytosis_rate_per_min: ArrayLike
    priming_pmol_per_kg_min: ArrayLike
    secretion_pmol_per_kg_min: ArrayLike


def glycolytic_flux(glucose_mg_per_dl, p: BetaCellParams, n_iter: int = 6):
    """(intracellular glucose [mg/dL], normalised glucokinase flux) at GLUT/GK quasi-steady state."""
    G = jnp.maximum(glucose_mg_per_dl, 0.0)
    u_out = G / (p.glut_km + G)

    def gk(Gi):
        x = (Gi / p.gk_s05) ** p.gk_hill
        return x / (1.0 + x)

    Gi = G
    for _ in range(n_iter):  # contraction: the GK term is divided by the transport reserve
        u = jnp.clip(u_out - gk(Gi) / p.glut_reserve, 0.0, 0.999999)
        Gi = p.glut_km * u / (1.0 - u)
    return Gi, gk(Gi)


def _electrical(R, p: BetaCellParams):
    o = (1.0 - p.katp_block) / (1.0 + (jnp.maximum(R, 0.0) / p.katp_half_atp_adp) ** p.katp_hill)
    V = (p.gkatp_rel * o * p.v_k + p.v_dep) / (p.gkatp_rel * o + 1.0)
    m = jax.nn.sigmoid((V - p.v_ca_half) / p.v_ca_slope)
    c = p.ca_rest + p.ca_gain * m
    cn = c ** p.exo_hill
    k_exo = p.exo_max * cn / (p.exo_ca_half ** p.exo_hill + cn)
    return o, V, c, k_exo


def betacell_signals(y: BetaCellState, glucose_mg_per_dl, p: BetaCellParams) -> BetaCellSignals:
    Gi, J = glycolytic_flux(glucose_mg_per_dl, p)
    o, V, c, k_exo = _electrical(y.atp_adp_ratio, p)
    k_exo = k_exo * (1.0 + p.incretin_gain * y.incretin_signal)
    prime = p.capacity * y.amplifying_signal * c / (c + p.prime_ca_half)
    return BetaCellSignals(Gi, J, o, V, c, k_exo, prime, k_exo * y.rrp_insulin)


def betacell_vector_field(y: BetaCellState, glucose_mg_per_dl, p: BetaCellParams, ra_mg_per_kg_min=0.0) -> BetaCellState:
    """``dy/dt`` of the beta-cell states at plasma glucose ``glucose_mg_per_dl`` and gut glucose
    appearance ``ra_mg_per_kg_min`` (the incretin drive; 0 for intravenous glucose/clamps)."""
    s = betacell_signals(y, glucose_mg_per_dl, p)
    dR = (p.atp_adp_rest + p.atp_adp_gain * s.glycolytic_flux_rel - y.atp_adp_ratio) / p.tau_atp
    dD = s.priming_pmol_per_kg_min - (s.exocytosis_rate_per_min + p.unprime_rate) * y.rrp_insulin
    dA = (s.glycolytic_flux_rel - y.amplifying_signal) / p.tau_amp
    dS = (ra_mg_per_kg_min - y.incretin_signal) / p.tau_incretin
    return BetaCellState(dR, dD, dA, dS)


def betacell_steady_state(glucose_mg_per_dl, p: BetaCellParams) -> BetaCellState:
    """Steady state at constant glucose (closed form)."""
    _, J = glycolytic_flux(glucose_mg_per_dl, p)
    R = p.atp_adp_rest + p.atp_adp_gain * J
    _, _, c, k_exo = _electrical(R, p)
    prime = p.capacity * J * c / (c + p.prime_ca_half)
    return BetaCellState(R, prime / (k_exo + p.unprime_rate), J, jnp.zeros_like(R))


def steady_state_secretion(glucose_mg_per_dl, p: BetaCellParams):
    """Steady-state secretion [pmol/kg/min] at constant glucose."""
    y = betacell_steady_state(glucose_mg_per_dl, p)
    return _electrical(y.atp_adp_ratio, p)[3] * y.rrp_insulin


def capacity_for_basal(p: BetaCellParams, basal_glucose_mg_per_dl, basal_secretion_pmol_per_kg_min) -> BetaCellParams:
    """``p`` with ``capacity`` set so that steady-state secretion at basal glucose equals the basal
    secretion (secretion is linear in capacity)."""
    unit = steady_state_secretion(basal_glucose_mg_per_dl, eqx.tree_at(lambda q: q.capacity, p, jnp.ones_like(p.capacity)))
    return eqx.tree_at(lambda q: q.capacity, p, basal_secretion_pmol_per_kg_min / unit)


def dallaman_secretion_map(p: BetaCellParams, basal_glucose_mg_per_dl, delta_glucose_mg_per_dl: float = 60.0) -> dict:
    """Dalla Man 2007 secretion parameters implied by the mechanistic ones (module doc):
    ``Sb`` [pmol/kg/min], ``beta`` [pmol/kg/min per mg/dL], ``K`` [pmol/kg per mg/dL], ``alpha`` [1/min]."""
    Gb = jnp.asarray(basal_glucose_mg_per_dl)
    Gh = Gb + delta_glucose_mg_per_dl
    Sb = steady_state_secretion(Gb, p)
    beta = (steady_state_secretion(Gh, p) - Sb) / delta_glucose_mg_per_dl
    yb = betacell_steady_state(Gb, p)
    # fast rise: ATP/ADP and Ca²⁺ at the new level, amplifying signal (resupply) still basal
    _, Jh = glycolytic_flux(Gh, p)
    _, _, c, k_exo = _electrical(p.atp_adp_rest + p.atp_adp_gain * Jh, p)
    D_fast = p.capacity * yb.amplifying_signal * c / (c + p.prime_ca_half) / (k_exo + p.unprime_rate)
    K = (yb.rrp_insulin - D_fast) / delta_glucose_mg_per_dl
    return {"Sb": Sb, "beta": beta, "K": K, "alpha": 1.0 / p.tau_amp}


def simulate_betacell(p: BetaCellParams, glucose_fn, t_save_min, *, ra_fn=None, y0: BetaCellState | None = None,
                      basal_glucose_mg_per_dl=None, rtol: float = 1e-8, atol: float = 1e-8, max_steps: int = 100000):
    """The beta cell alone, driven by plasma glucose ``glucose_fn(t) → mg/dL`` (scalar or per person)
    and optionally the gut rate of appearance ``ra_fn(t) → mg/kg/min`` (incretin drive).

    Starts from ``y0`` or from the steady state at ``basal_glucose_mg_per_dl`` (default
    ``glucose_fn(t0)``). Batched: leaves of ``p`` may have a leading person axis. Returns
    ``(states, secretion [pmol/kg/min])`` with time as the last axis. Adaptive Tsit5 (diffrax; the
    reduced chain is not stiff: its fastest time constant is ~``tau_atp``), one solve for the batch.
    """
    ts = jnp.asarray(t_save_min, dtype=jnp.result_type(p.capacity))
    if y0 is None:
        g0 = glucose_fn(ts[0]) if basal_glucose_mg_per_dl is None else basal_glucose_mg_per_dl
        y0 = betacell_steady_state(jnp.broadcast_to(g0, jnp.shape(p.capacity)), p)
    ra_fn = (lambda t: 0.0) if ra_fn is None else ra_fn
    term = diffrax.ODETerm(lambda t, y, args: betacell_vector_field(y, glucose_fn(t), p, ra_fn(t)))
    sol = diffrax.diffeqsolve(
        term, diffrax.Tsit5(), ts[0], ts[-1], None, y0, saveat=diffrax.SaveAt(ts=ts),
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=max_steps,
    )
    ys = BetaCellState(*(jnp.moveaxis(x, 0, -1) for x in sol.ys))
    G = jax.vmap(glucose_fn, out_axes=-1)(ts)
    sig = betacell_signals(ys, G, jax.tree_util.tree_map(lambda x: x[..., None], p))
    return ys, sig.secretion_pmol_per_kg_min


#: Parameters :func:`fit_to_dallaman_secretion` fits (log scale, within their spec ranges).
FITTED_PARAMETERS = ("katp_half_atp_adp", "katp_hill", "gkatp_rel", "exo_max", "exo_ca_half", "exo_hill",
                     "unprime_rate", "incretin_gain", "tau_incretin", "tau_amp", "prime_ca_half")

#: Bounds of fitted parameters narrower than their spec ranges (physiological priors): the
#: amplifying (second-phase) signal develops over 15–60 min (Henquin 2000; Dalla Man 1/alpha = 20 min).
FIT_BOUNDS = {"tau_amp": (15.0, 60.0)}


def dallaman_reference_secretion(t_end_min: float = 420.0):
    """Glucose [mg/dL] and portal secretion S_po [pmol/kg/min] of the Dalla Man 2007 model with the
    BIOMD0000000379 settings (78 g meal at t = 0), on a 1-min grid, from vpop's validated
    implementation (``dallaman2007_biomd379`` check). Returns ``(t, G, S_po, Gb, Sb, Ra)``."""
    from .._engine import simulate
    from .._protocols import Meal, Protocol
    from .._sets import parameters_from_set

    model, params, init = parameters_from_set("BIOMD0000000379")
    res = simulate(model, params, Protocol(t_end_min, (Meal(0.0, 78.0),), 1.0, name="biomd379_meal"),
                   y0=model.initial_state(params, init), mode="reference")
    fx = res.fluxes()
    return (jnp.asarray(res.time_min), jnp.asarray(fx.glucose[0]), jnp.asarray(fx.S_po[0]),
            float(params.Gb), float(params.Sb), jnp.asarray(fx.Ra[0]))


def _adam_best(loss, theta0, n_steps: int, learning_rate: float):
    """Minimise ``loss`` from ``theta0`` with optax Adam; return the best point seen and its loss
    (each step's loss is evaluated at the point before the update)."""
    import optax

    opt = optax.adam(learning_rate)
    state = opt.init(theta0)

    @jax.jit
    def step(theta, state):
        l, g = jax.value_and_grad(loss)(theta)
        upd, state = opt.update(g, state)
        return optax.apply_updates(theta, upd), state, l

    theta, best, best_loss = theta0, theta0, jnp.inf
    for _ in range(n_steps):
        new, state, l = step(theta, state)
        if l < best_loss:
            best, best_loss = theta, l
        theta = new
    return best, best_loss


def fit_to_dallaman_secretion(p0: BetaCellParams | None = None, *, n_steps: int = 400, learning_rate: float = 0.05,
                              names=FITTED_PARAMETERS, norm_power: int = 2):
    """Relative least squares (optax Adam on log parameters) of the mechanistic secretion, driven by the
    Dalla Man glucose curve of the BIOMD0000000379 78 g meal, against that model's secretion S_po,
    with ``capacity`` set by ``ISR(Gb) = Sb`` at every step. The objective is the mean of
    ``|relative error|**norm_power`` (2: least squares; larger powers approach the max-norm). Returns ``(params, relative rmse [1])``."""

    t, G, S, Gb, Sb, Ra = dallaman_reference_secretion()
    p0 = BetaCellParams.from_dict() if p0 is None else p0
    lo = jnp.array([FIT_BOUNDS.get(n, (BETACELL_PARAMETER_SPECS[n].lower,))[0] for n in names])
    hi = jnp.array([FIT_BOUNDS.get(n, (None, BETACELL_PARAMETER_SPECS[n].upper))[1] for n in names])

    def build(theta):
        v = jnp.clip(jnp.exp(theta), lo * 1.0001 + 1e-6, hi * 0.9999)
        p = eqx.tree_at(lambda q: tuple(getattr(q, n) for n in names), p0, tuple(v))
        return capacity_for_basal(p, Gb, Sb)

    def g_of_t(s):
        return jnp.interp(s, t, G)

    def loss(theta):
        p = build(theta)
        _, isr = simulate_betacell(p, g_of_t, t, ra_fn=lambda s: jnp.interp(s, t, Ra),
                                   basal_glucose_mg_per_dl=G[0], rtol=1e-6, atol=1e-6)
        return jnp.mean(jnp.abs((isr - S) / S) ** norm_power)

    theta0 = jnp.log(jnp.array([getattr(p0, n) for n in names]))
    best, best_loss = _adam_best(loss, theta0, n_steps, learning_rate)
    return build(best), float(best_loss ** (1.0 / norm_power))


# ---------------------------------------------------------------------------------------------
# Whole-body coupling: Dalla Man 2007 with the mechanistic secretion block
# ---------------------------------------------------------------------------------------------

MECHANISTIC_PARAMETER_SPECS: dict[str, ParamSpec] = {**DALLAMAN_SPECS, **BETACELL_PARAMETER_SPECS}


class DallaMan2007MechanisticParams(DallaMan2007Params, BetaCellParams):
    """Parameters of :class:`DallaMan2007Mechanistic`: every Dalla Man 2007 parameter (``K``,
    ``alpha``, ``beta`` are unused; ``Sb`` and ``Gb`` fix ``capacity`` through
    :meth:`DallaMan2007Mechanistic.make_params`) and every beta-cell parameter (the fields of both
    parents)."""

    specs = MECHANISTIC_PARAMETER_SPECS
    model_name = "DallaMan2007Mechanistic"

    def dallaman(self) -> DallaMan2007Params:
        return DallaMan2007Params(**{k: getattr(self, k) for k in DALLAMAN_SPECS})

    def betacell(self) -> BetaCellParams:
        return BetaCellParams(**{k: getattr(self, k) for k in BETACELL_PARAMETER_SPECS})


#: :class:`~vpop.models.DallaManState` plus the beta-cell states (:class:`BetaCellState`: ATP/ADP [1],
#: readily releasable pool [pmol/kg], amplifying signal [1], incretin drive [mg/kg/min])
DallaManMechanisticState = concat_state(
    "DallaManMechanisticState",
    ":class:`~vpop.models.DallaManState` plus the beta-cell states (``secretion_static`` is unused and stays constant).",
    DallaManState, BetaCellState)


_N_DM = len(DallaManState._fields)


class DallaMan2007Mechanistic(DallaMan2007):
    """Dalla Man 2007 with its secretion block (``S_po = Y + K·dG/dt + Sb``) replaced by the
    mechanistic beta cell of this module: ``S_po = ISR`` (pmol/kg/min), driven by plasma glucose.
    Everything else (gut, glucose and insulin kinetics, hepatic extraction, EGP, utilisation) is the
    parent's. Options as :class:`~vpop.models.DallaMan2007` (``dynamic_secretion`` is unused)."""

    name = "DallaMan2007Mechanistic"
    Params = DallaMan2007MechanisticParams
    State = DallaManMechanisticState
    parameter_specs = MECHANISTIC_PARAMETER_SPECS
    state_units = {**DALLAMAN_STATE_UNITS, **BETACELL_STATE_UNITS}

    @staticmethod
    def make_params(dallaman_params: DallaMan2007Params, betacell_values: dict | None = None,
                    *, derive_capacity: bool = True) -> DallaMan2007MechanisticParams:
        """Combine Dalla Man parameters with beta-cell values (defaults: :data:`BETACELL_DEFAULTS`);
        with ``derive_capacity``, ``capacity`` is set so that ISR(Gb) = Sb for every person."""
        dm = dallaman_params.to_dict()
        shape = jnp.shape(dallaman_params.BW)
        dtype = jnp.result_type(dallaman_params.BW)
        bc = BetaCellParams.from_dict(betacell_values, dtype=dtype)
        bc = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, shape), bc)
        if derive_capacity:
            bc = capacity_for_basal(bc, dallaman_params.Gb, dallaman_params.Sb)
        return DallaMan2007MechanisticParams(**dm, **bc.to_dict())

    @property
    def _dm(self) -> DallaMan2007:
        return DallaMan2007(dynamic_secretion=self.dynamic_secretion, renal_excretion=self.renal_excretion,
                            clip_egp=self.clip_egp)

    def _split(self, y):
        return DallaManState(*y[:_N_DM]), BetaCellState(*y[_N_DM:])

    def fluxes(self, y, p) -> DallaManFluxes:
        ydm, ybc = self._split(y)
        fx = self._dm.fluxes(ydm, p.dallaman())
        isr = betacell_signals(ybc, fx.glucose, p.betacell()).secretion_pmol_per_kg_min
        return fx._replace(S_po=isr)

    def betacell_signals(self, y, p) -> BetaCellSignals:
        """Every link of the chain (intracellular glucose … secretion) at state ``y``."""
        ydm, ybc = self._split(y)
        return betacell_signals(ybc, ydm.glucose_plasma / p.VG, p.betacell())

    def vector_field(self, t, y, p, u=None):
        ydm, ybc = self._split(y)
        pdm = p.dallaman()
        d = self._dm.vector_field(t, ydm, pdm, u)
        fx = self._dm.fluxes(ydm, pdm)
        pbc = p.betacell()
        isr = betacell_signals(ybc, fx.glucose, pbc).secretion_pmol_per_kg_min
        d = d._replace(insulin_portal=d.insulin_portal - fx.S_po + isr,
                       secretion_static=jnp.zeros_like(ydm.secretion_static))
        return DallaManMechanisticState(*d, *betacell_vector_field(ybc, fx.glucose, pbc, fx.Ra))

    def at_node(self, y, u, dt_min=None):
        ydm, ybc = self._split(y)
        return DallaManMechanisticState(*self._dm.at_node(ydm, u, dt_min), *ybc)

    def basal_state(self, p):
        ydm = self._dm.basal_state(p.dallaman())
        return DallaManMechanisticState(*ydm, *betacell_steady_state(p.Gb, p.betacell()))

    def initial_state(self, p, overrides: dict | None = None):
        """Basal state with optional overrides; if glucose_plasma is overridden and the beta-cell
        states are not, they start at their steady state at that glucose."""
        y = super().initial_state(p, overrides)
        if overrides and "glucose_plasma" in overrides and not set(overrides) & set(BetaCellState._fields):
            y = y._replace(**betacell_steady_state(y.glucose_plasma / p.VG, p.betacell())._asdict())
        return y


def simulate_mechanistic_biomd379_meal(betacell: BetaCellParams, t_end_min: float = 420.0, *, rtol: float = 1e-8,
                                       atol: float = 1e-8):
    """The BIOMD0000000379 78 g meal (its parameters, initial state and model options) with the
    mechanistic secretion in place of Dalla Man's: ``(t, glucose [mg/dL], insulin [pmol/L])`` on a
    1-min grid. ``betacell.capacity`` is replaced by the basal constraint ISR(Gb) = Sb.
    Differentiable (one diffrax Tsit5 solve), so it can be fitted."""
    from .._sets import parameters_from_set

    dm_model, dm, init = parameters_from_set("BIOMD0000000379")
    model = DallaMan2007Mechanistic(dynamic_secretion=dm_model.dynamic_secretion,
                                    renal_excretion=dm_model.renal_excretion, clip_egp=dm_model.clip_egp)
    bc = capacity_for_basal(betacell, dm.Gb, dm.Sb)
    p = DallaMan2007MechanisticParams(**dm.to_dict(), **bc.to_dict())
    y0 = model.apply_meal(model.initial_state(p, init), 78000.0)
    ts = jnp.arange(0.0, t_end_min + 0.5, 1.0)
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: model.vector_field(t, y, p)), diffrax.Tsit5(), 0.0, t_end_min, None, y0,
        saveat=diffrax.SaveAt(ts=ts), stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol), max_steps=100000,
    )
    return ts, sol.ys.glucose_plasma / p.VG, sol.ys.insulin_plasma / p.VI


def fit_to_dallaman_meal(p0: BetaCellParams | None = None, *, n_steps: int = 300, learning_rate: float = 0.01,
                         names=FITTED_PARAMETERS, norm_power: int = 6):
    """Closed-loop fit: the mechanistic secretion inside the whole-body model on the BIOMD0000000379
    78 g meal, objective ``mean(|ΔI/I_ref|^p) + mean(|ΔG/G_ref|^p)`` against the Dalla Man 2007
    reference curves (``vpop/data/reference/dallaman2007_meal_BIOMD0000000379_part0_paper_eqs.csv``),
    optax Adam on log parameters within :data:`FIT_BOUNDS`/spec ranges. Returns ``(params, loss^(1/p))``."""
    from .._validate import load_reference

    ref = load_reference()
    G_ref, I_ref = jnp.asarray(ref["G"].to_numpy()), jnp.asarray(ref["I"].to_numpy())
    p0 = BetaCellParams.from_dict() if p0 is None else p0
    lo = jnp.array([FIT_BOUNDS.get(n, (BETACELL_PARAMETER_SPECS[n].lower,))[0] for n in names])
    hi = jnp.array([FIT_BOUNDS.get(n, (None, BETACELL_PARAMETER_SPECS[n].upper))[1] for n in names])

    def build(theta):
        v = jnp.clip(jnp.exp(theta), lo * 1.0001 + 1e-6, hi * 0.9999)
        return eqx.tree_at(lambda q: tuple(getattr(q, n) for n in names), p0, tuple(v))

    def loss(theta):
        _, G, I = simulate_mechanistic_biomd379_meal(build(theta), rtol=1e-6, atol=1e-6)
        return jnp.mean(jnp.abs((I - I_ref) / I_ref) ** norm_power) + jnp.mean(jnp.abs((G - G_ref) / G_ref) ** norm_power)

    theta0 = jnp.log(jnp.array([getattr(p0, n) for n in names]))
    best, best_loss = _adam_best(loss, theta0, n_steps, learning_rate)
    return build(best), float(best_loss ** (1.0 / norm_power))
