r"""Dalla Man 2007 with its EGP replaced by the liver module and counter-regulation (issue 6).

:class:`DallaMan2007Liver` is the Dalla Man, Rizza & Cobelli 2007 whole-body model in which the
empirical ``EGP = kp1 − kp2·Gp − kp3·Id − kp4·Ipo`` is replaced by the net output of the liver of
:mod:`vpop.models._liver` (glycogen as a state), and the liver is driven by glucagon and epinephrine
from :mod:`vpop.models._counterregulation`::

    EGP_net = GLY + GNG − IND − HGU_sys        (HGU_sys: glucokinase uptake of systemic glucose; the
                                                first-pass part of the meal never enters plasma, as
                                                in Dalla Man: Ra = f·kabs·Qgut/BW)
    dGly/dt = HGU_sys + first pass + IND − GLY
    dGp/dt  = EGP_net + Ra − Uii − E − k1·Gp + k2·Gt          (the rest as in Dalla Man 2007)

The liver reads plasma insulin I, the Dalla Man delayed insulin signals I1 and Id (so ``ki`` of the
Dalla Man set is the liver's insulin delay; I1 activates the direct pathway, Id suppresses
glycogenolysis and routes GNG carbon to glycogen) and Ra. Glucagon sees plasma glucose and insulin relative to
``Gb`` and ``Ib``.

**Basal consistency.** :meth:`DallaMan2007Liver.make_params` scales ``glycogenolysis_max`` and
``gng_rate`` per person by one factor so that the liver's net output at the basal state (Gb, Ib,
glycogen ``glycogen_initial``, basal glucagon) equals the Dalla Man basal EGP (with the default liver,
normal set: ×0.99; T2D set: ×1.95; measured after issue 6's fix); the basal state of the parent is then
a steady state of every state but glycogen, which falls slowly as a fast goes on (the physiology: the
overnight liver loses glycogen). With ``counterregulation=False`` glucagon and epinephrine stay at
basal. ``make_params(dm, vpop.models._liver.ORIGINAL_LIVER_VALUES)`` gives the liver before issue 6's
fix and ``PROMPT_INSULIN_LIVER_VALUES`` the issue-6 variant d (see :mod:`vpop.models._liver`); their
basal states are steady too (tests/test_liver_coupled.py).

**Validity: meals and days, not prolonged fasts.** The Dalla Man utilisation and secretion have no
fasting adaptation (no fall of glucose use, no rise of GNG with falling insulin), so when the liver's
glycogen runs down the coupled model's glucose falls too far: from the normal basal state without
food (the basal state taken as 14 h of fasting; reference engine), glucose is 87 mg/dL at 22 h, 73 at
30 h and 50 at 40 h of fasting with the default liver (measured after issue 6's fix; 82, 62 and 32 with
``ORIGINAL_LIVER_VALUES``), where people stay near 65–75 mg/dL. Use the driven liver (``vpop._mechanism_checks.fasting_gng_fraction``) for fasting.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike

from .._parameters import ParamSpec
from ._base import concat_state
from ._betacell import (
    BETACELL_PARAMETER_SPECS,
    BETACELL_STATE_UNITS,
    BetaCellParams,
    BetaCellSignals,
    BetaCellState,
    betacell_signals,
    betacell_steady_state,
    betacell_vector_field,
    capacity_for_basal,
)
from ._counterregulation import (
    COUNTERREGULATION_PARAMETER_SPECS,
    COUNTERREGULATION_STATE_UNITS,
    CounterregulationParams,
    CounterregulationState,
    counterregulation_basal_state,
    counterregulation_vector_field,
)
from ._dallaman2007 import PARAMETER_SPECS as DALLAMAN_SPECS
from ._dallaman2007 import STATE_UNITS as DALLAMAN_STATE_UNITS
from ._dallaman2007 import (
    DallaMan2007,
    DallaMan2007Params,
    DallaManFluxes,
    DallaManState,
)
from ._liver import (
    LIVER_PARAMETER_SPECS,
    OVERNIGHT_GLYCOGEN_MG_PER_KG,
    LiverFluxes,
    LiverParams,
    liver_fluxes,
)

LIVER_MODEL_PARAMETER_SPECS: dict[str, ParamSpec] = {
    **DALLAMAN_SPECS, **LIVER_PARAMETER_SPECS, **COUNTERREGULATION_PARAMETER_SPECS,
    "glycogen_initial": ParamSpec("mg/kg", 0.0, 1e4, "liver glycogen of the basal state (default: Taylor 1996 overnight 207 mmol/L)", True),
}


class DallaMan2007LiverParams(DallaMan2007Params, LiverParams, CounterregulationParams):
    """Parameters of :class:`DallaMan2007Liver`: every Dalla Man 2007 parameter (``kp1``–``kp4`` set
    the basal EGP only), every liver and counter-regulation parameter, and ``glycogen_initial``."""

    glycogen_initial: jax.Array

    specs = LIVER_MODEL_PARAMETER_SPECS
    model_name = "DallaMan2007Liver"

    def dallaman(self) -> DallaMan2007Params:
        return DallaMan2007Params(**{k: getattr(self, k) for k in DALLAMAN_SPECS})

    def liver(self) -> LiverParams:
        return LiverParams(**{k: getattr(self, k) for k in LIVER_PARAMETER_SPECS})

    def counterregulation(self) -> CounterregulationParams:
        return CounterregulationParams(**{k: getattr(self, k) for k in COUNTERREGULATION_PARAMETER_SPECS})

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in LIVER_MODEL_PARAMETER_SPECS}


class _GlycogenState(NamedTuple):
    glycogen_liver: ArrayLike  #: liver glycogen [mg/kg of body weight, glucose equivalents]


#: :class:`~vpop.models.DallaManState` plus liver glycogen [mg/kg of body weight, glucose
#: equivalents] and the counter-regulation states (plasma glucagon and its action [pg/mL], static
#: glucagon secretion relative to basal [1], plasma epinephrine and its action [pg/mL]); units in
#: ``STATE_UNITS``
DallaManLiverState = concat_state(
    "DallaManLiverState", ":class:`~vpop.models.DallaManState` plus liver glycogen and the counter-regulation states.",
    DallaManState, _GlycogenState, CounterregulationState)


_N_DM = len(DallaManState._fields)
_N_CR = len(CounterregulationState._fields)


class DallaMan2007Liver(DallaMan2007):
    """Dalla Man 2007 with EGP from the liver module (module docstring).

    Args:
        counterregulation: simulate glucagon and epinephrine (``False``: held at basal).
        dynamic_secretion, renal_excretion: as :class:`~vpop.models.DallaMan2007` (``clip_egp`` is
            unused: the liver's fluxes are non-negative by construction; its net output can be
            negative, a net uptake).
    """

    counterregulation: bool = eqx.field(static=True, default=True)

    name = "DallaMan2007Liver"
    Params = DallaMan2007LiverParams
    State = DallaManLiverState
    parameter_specs = LIVER_MODEL_PARAMETER_SPECS
    state_units: ClassVar[dict[str, str]] = {**DALLAMAN_STATE_UNITS, "glycogen_liver": "mg/kg", **COUNTERREGULATION_STATE_UNITS}

    @staticmethod
    def make_params(dallaman_params: DallaMan2007Params, liver_values: dict | None = None,
                    counterregulation_values: dict | None = None, *,
                    glycogen_initial_mg_per_kg=OVERNIGHT_GLYCOGEN_MG_PER_KG,
                    match_basal_egp: bool = True) -> DallaMan2007LiverParams:
        """Combine Dalla Man parameters (one person or a population) with liver and counter-regulation
        values (defaults: :data:`LIVER_DEFAULTS`, :data:`COUNTERREGULATION_DEFAULTS`). With
        ``match_basal_egp``, ``glycogenolysis_max`` and ``gng_rate`` are scaled per person by one
        common factor so that the liver's net output at the basal state equals the Dalla Man basal
        EGP (the overnight GNG fraction of the calibration is kept); ``ValueError`` if no positive
        factor does."""
        shape = jnp.shape(dallaman_params.BW)
        dtype = jnp.result_type(dallaman_params.BW)
        lv = LiverParams.from_dict(liver_values, dtype=dtype)
        cr = CounterregulationParams.from_dict(counterregulation_values, dtype=dtype)
        bcast = lambda m: jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, shape), m)
        lv, cr = bcast(lv), bcast(cr)
        g0 = jnp.broadcast_to(jnp.asarray(glycogen_initial_mg_per_kg, dtype), shape)
        if match_basal_egp:
            dm = dallaman_params
            egp_b = jnp.maximum(dm.kp1 - dm.kp2 * dm.Gb * dm.VG - dm.kp3 * dm.Ib - dm.kp4 * dm.Sb / dm.gamma, 0.0)
            f = liver_fluxes(g0, dm.Gb, dm.Ib, dm.Ib, 0.0, lv, insulin_signal_1_pmol_per_l=dm.Ib)
            released = f.egp_mg_per_kg_min  # glycogenolysis + GNG − indirect: all ∝ the common scale
            scale = (egp_b + f.hepatic_uptake_mg_per_kg_min) / released
            try:
                n_bad = int(jnp.sum(~(scale > 0.0)))
            except jax.errors.ConcretizationTypeError:  # under jit: no check
                n_bad = 0
            if n_bad:
                raise ValueError(f"DallaMan2007Liver.make_params: {n_bad} person(s) with no positive scale of "
                                 "glycogenolysis_max and gng_rate matching the basal EGP (allowed > 0)")
            lv = eqx.tree_at(lambda q: (q.glycogenolysis_max, q.gng_rate), lv,
                             (lv.glycogenolysis_max * scale, lv.gng_rate * scale))
        return DallaMan2007LiverParams(**dallaman_params.to_dict(), **lv.to_dict(), **cr.to_dict(), glycogen_initial=g0)

    def _split(self, y):
        return DallaManState(*y[:_N_DM]), y.glycogen_liver, CounterregulationState(*y[_N_DM + 1:_N_DM + 1 + _N_CR])

    def liver_fluxes(self, y, p) -> LiverFluxes:
        """The liver's fluxes at state ``y`` [mg/kg/min]."""
        ydm, gly, ycr = self._split(y)
        pdm = p.dallaman()
        G = ydm.glucose_plasma / pdm.VG
        I = ydm.insulin_plasma / pdm.VI
        Ra = pdm.f * pdm.kabs * ydm.gut / pdm.BW
        return liver_fluxes(gly, G, I, ydm.insulin_signal_egp, Ra, p.liver(), ycr.glucagon_action_pg_per_ml,
                            ycr.epinephrine_action_pg_per_ml, ydm.insulin_signal_1)

    def fluxes(self, y, p) -> DallaManFluxes:
        fx = DallaMan2007.fluxes(self, y, p)
        lf = self.liver_fluxes(y, p)
        egp = lf.egp_mg_per_kg_min - (lf.hepatic_uptake_mg_per_kg_min - lf.first_pass_uptake_mg_per_kg_min)
        dG_dt = fx.dG_dt + (egp - fx.EGP) / p.VG
        dyn = dG_dt if self.dynamic_secretion == "signed" else jnp.maximum(dG_dt, 0.0)
        return fx._replace(EGP=egp, dG_dt=dG_dt, S_po=y.secretion_static + p.K * dyn + p.Sb)

    def vector_field(self, t, y, p, u=None):
        d = DallaMan2007.vector_field(self, t, y, p, u)
        _, _, ycr = self._split(y)
        lf = self.liver_fluxes(y, p)
        if self.counterregulation:
            dcr = counterregulation_vector_field(ycr, y.glucose_plasma / p.VG, y.insulin_plasma / p.VI, p.Gb, p.Ib,
                                                 self.exercise_pct_vo2max(u), p.counterregulation())
        else:
            dcr = jax.tree_util.tree_map(jnp.zeros_like, ycr)
        return DallaManLiverState(*d[:_N_DM], lf.glycogen_rate_mg_per_kg_min, *dcr)

    def exercise_pct_vo2max(self, u):
        """The exercise intensity that drives epinephrine [% VO2max] (none in this model; see
        :class:`~vpop.models.DallaMan2007LiverExercise`)."""
        return 0.0

    def at_node(self, y, u, dt_min=None):
        return self.apply_meal(y, u.meal_mg)

    def basal_state(self, p):
        ydm = DallaMan2007(dynamic_secretion=self.dynamic_secretion, renal_excretion=self.renal_excretion,
                           clip_egp=True).basal_state(p.dallaman())
        cr = counterregulation_basal_state(p.counterregulation(), ydm.glucose_plasma)
        return DallaManLiverState(*ydm[:_N_DM], p.glycogen_initial + jnp.zeros_like(ydm.glucose_plasma), *cr)




# ------------------------------------------------------------------ with the mechanistic beta cell
LIVER_MECHANISTIC_PARAMETER_SPECS: dict[str, ParamSpec] = {**LIVER_MODEL_PARAMETER_SPECS, **BETACELL_PARAMETER_SPECS}


class DallaMan2007MechanisticLiverParams(DallaMan2007LiverParams, BetaCellParams):
    """:class:`DallaMan2007LiverParams` plus every beta-cell parameter (``K``, ``alpha``, ``beta`` unused)."""

    specs = LIVER_MECHANISTIC_PARAMETER_SPECS
    model_name = "DallaMan2007MechanisticLiver"

    def betacell(self) -> BetaCellParams:
        return BetaCellParams(**{k: getattr(self, k) for k in BETACELL_PARAMETER_SPECS})

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in LIVER_MECHANISTIC_PARAMETER_SPECS}


#: :class:`DallaManLiverState` plus the beta-cell states of :class:`~vpop.models.DallaMan2007Mechanistic`
DallaManMechanisticLiverState = concat_state(
    "DallaManMechanisticLiverState", ":class:`DallaManLiverState` plus the beta-cell states.", DallaManLiverState, BetaCellState)


_N_LIVER = len(DallaManLiverState._fields)


class DallaMan2007MechanisticLiver(DallaMan2007Liver):
    """Every link at once: Dalla Man 2007 with the mechanistic beta cell in place of its secretion
    block (as :class:`~vpop.models.DallaMan2007Mechanistic`) and EGP from the liver with glucagon and
    epinephrine (as :class:`DallaMan2007Liver`)."""

    name = "DallaMan2007MechanisticLiver"
    Params = DallaMan2007MechanisticLiverParams
    State = DallaManMechanisticLiverState
    parameter_specs = LIVER_MECHANISTIC_PARAMETER_SPECS
    state_units: ClassVar[dict[str, str]] = {**DallaMan2007Liver.state_units, **BETACELL_STATE_UNITS}

    @staticmethod
    def make_params(dallaman_params: DallaMan2007Params, liver_values: dict | None = None,
                    counterregulation_values: dict | None = None, betacell_values: dict | None = None,
                    **kwargs) -> DallaMan2007MechanisticLiverParams:
        """As :meth:`DallaMan2007Liver.make_params`, plus beta-cell values (defaults
        :data:`~vpop.models.BETACELL_DEFAULTS`) with ``capacity`` set so that ISR(Gb) = Sb."""
        lp = DallaMan2007Liver.make_params(dallaman_params, liver_values, counterregulation_values, **kwargs)
        shape = jnp.shape(dallaman_params.BW)
        bc = BetaCellParams.from_dict(betacell_values, dtype=jnp.result_type(dallaman_params.BW))
        bc = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, shape), bc)
        bc = capacity_for_basal(bc, dallaman_params.Gb, dallaman_params.Sb)
        return DallaMan2007MechanisticLiverParams(**lp.to_dict(), **bc.to_dict())

    def _betacell_state(self, y) -> BetaCellState:
        return BetaCellState(*y[_N_LIVER:])

    def betacell_signals(self, y, p) -> BetaCellSignals:
        """Every link of the beta-cell chain (intracellular glucose … secretion) at state ``y``."""
        return betacell_signals(self._betacell_state(y), y.glucose_plasma / p.VG, p.betacell())

    def fluxes(self, y, p) -> DallaManFluxes:
        fx = DallaMan2007Liver.fluxes(self, y, p)
        return fx._replace(S_po=self.betacell_signals(y, p).secretion_pmol_per_kg_min)

    def vector_field(self, t, y, p, u=None):
        d = DallaMan2007Liver.vector_field(self, t, y, p, u)
        d = d._replace(secretion_static=jnp.zeros_like(y.secretion_static))
        Ra = p.f * p.kabs * y.gut / p.BW
        dbc = betacell_vector_field(self._betacell_state(y), y.glucose_plasma / p.VG, p.betacell(), Ra)
        return DallaManMechanisticLiverState(*d, *dbc)

    def basal_state(self, p):
        yl = DallaMan2007Liver.basal_state(self, p)
        return DallaManMechanisticLiverState(*yl, *betacell_steady_state(p.Gb, p.betacell()))
