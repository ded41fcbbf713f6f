r"""Dalla Man 2007 whole-body model with physical activity (Dalla Man, Breton & Cobelli 2009).

The exercise terms of :mod:`vpop.models._uvapadova2008_exercise` (the same equations and default
parameters, SCIENCE.md §1(f)) on the whole-body meal model of a person with their own beta cells:
exercise intensity u [% VO2max above rest] raises heart rate; the fast HR signal Y raises the
insulin-independent part of utilisation during the bout; the slow signal Z (decay time ``T_ex``
= 600 min) times the integrated HR excess W raises insulin-stimulated utilisation after it::

    Uid = [Vm0·(1 + β·Y) + Vmx·(1 + A·Z·W)·(X + Ib) − Vmx·Ib]·Gt / [Km0·(1 − γ·Z·W·(X + Ib)) + Gt]

With u = 0 and Y = Z = W = 0 these are exactly the equations of :class:`~vpop.models.DallaMan2007`
(tested: 1.6e-9 mg/dL apart in the reference mode, from the adaptive steps). The rest
of the whole body answers through the parent model: falling glucose lowers secretion (its static
term is floored at −Sb), and lower glucose and insulin raise EGP through ``kp2``, ``kp3``, ``kp4``.

What it does not have (so read its results with that in mind): the rise of glucagon and
catecholamines that makes the liver match the extra uptake in healthy people, and glycogen. Both are
in :class:`DallaMan2007LiverExercise` (EGP from the liver module, exercise driving epinephrine,
which raises glycogenolysis), where the hepatic answer is far too small. Measured on the Dalla Man
normal subject, 60 min at 50% VO2max from the basal state, at 55 min into the bout:

==========================  ===============================  ==================================
quantity                    ``DallaMan2007Exercise``         ``DallaMan2007LiverExercise``
==========================  ===============================  ==================================
uptake U [mg/kg/min]        1.92 → 2.65 (×1.38)              1.92 → 2.66 (×1.39)
EGP [mg/kg/min]             1.92 → 2.01                      1.92 → 2.08 (1.89 at rest)
insulin [pmol/L]            25.6 → 18.2                      25.6 → 18.5
epinephrine [pg/mL]         —                                30 → 60 (assumed gain: ×2 at 50%)
glucose nadir [mg/dL]       81.1 (at 143 min)                82.1 (at 142 min)
liver glycogen, 2 h         —                                691 mg/kg (697 without exercise)
==========================  ===============================  ==================================

Tracer studies of fasted, trained men report much larger turnover, with hepatic output matching
uptake and glucose held or rising (abstracts read):

* Jeukendrup et al. 1999 (J Physiol 515:579): 120 min at 50% of maximal workload, water only,
  Ra = Rd = 51–52 µmol/kg/min (≈ 9.3 mg/kg/min) at 120 min.
* Acta Physiol Scand 1994;150:221 ("Glucose kinetics during exercise in trained men", Melbourne):
  40 min at 75% VO2max, Ra peaking at 42 µmol/kg/min (7.6 mg/kg/min), glucose rising from 4.8 to 6.2 mmol/L.
* Wahren, Felig, Ahlborg & Jorfeldt, "Glucose metabolism during leg exercise in man" (J Clin Invest
  1971 [R: year and journal recalled]): leg glucose uptake up 7-fold at light and 10–20-fold at
  moderate to heavy work, with hepatic output rising, mainly by glycogenolysis.

These are not the Dalla Man normal subject at 50% VO2max, so no pass/fail check is built on them.
But both the uptake (×1.4 here) and the hepatic answer are far below them. The exercise terms use
LoopInsighT1's values for Dalla Man 2009. Epinephrine's action on glycogenolysis (0.002 per pg/mL)
and the absence of an exercise drive on glucagon are assumptions. Calibrating them to such studies
is open (the paper's own parameter table could not be read; see the T1D module). There is no
``vpop validate`` check for whole-body exercise yet; the tests check directions and identities only.

Inputs per output interval: ``meal_mg`` as in the parent, and ``exercise_pct_vo2max`` from the
protocol's :class:`~vpop.ExerciseBout`\ s.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import jax.numpy as jnp
from jaxtyping import ArrayLike

from .._parameters import check_parameters
from ._base import concat_state
from ._dallaman2007 import PARAMETER_SPECS as DALLAMAN_SPECS
from ._dallaman2007 import STATE_UNITS as DALLAMAN_STATE_UNITS
from ._dallaman2007 import (
    DallaMan2007,
    DallaMan2007Params,
    DallaManFluxes,
    DallaManState,
)
from ._dallaman2007_liver import (
    LIVER_MODEL_PARAMETER_SPECS,
    DallaMan2007Liver,
    DallaMan2007LiverParams,
    DallaManLiverState,
)
from ._uvapadova2008_exercise import (
    EXERCISE_DEFAULTS,
    EXERCISE_PARAMETER_SPECS,
    ExerciseParamFields,
    exercise_reset,
    exercise_signals_rhs,
    exercise_utilisation,
)

DALLAMAN_EXERCISE_PARAMETER_SPECS = {**DALLAMAN_SPECS, **EXERCISE_PARAMETER_SPECS}


class DallaMan2007ExerciseParams(DallaMan2007Params, ExerciseParamFields):
    """:class:`~vpop.models.DallaMan2007Params` plus the exercise parameters
    (:data:`~vpop.models.EXERCISE_PARAMETER_SPECS`)."""

    specs = DALLAMAN_EXERCISE_PARAMETER_SPECS
    model_name = "DallaMan2007Exercise"


class _ExerciseSignals(NamedTuple):
    exercise_hr_signal: ArrayLike  #: Y [bpm]
    exercise_si_signal: ArrayLike  #: Z [1]
    exercise_hr_integral: ArrayLike  #: W [bpm·min]


DallaManExerciseState = concat_state("DallaManExerciseState", "DallaManState plus the exercise signals Y, Z, W.",
                                     DallaManState, _ExerciseSignals)
_N_DM = len(DallaManState._fields)


class DallaManExerciseInputs(NamedTuple):
    """Inputs of one output interval."""

    meal_mg: ArrayLike  #: carbohydrate eaten at the start of the interval (a jump) [mg]
    exercise_pct_vo2max: ArrayLike  #: exercise intensity over the interval [% VO2max above rest]


def exercise_protocol_inputs(protocol, n_people: int) -> DallaManExerciseInputs:
    """Per-interval inputs of a protocol for the exercise models: meal grams as jumps [mg] and each
    interval's exercise intensity [% VO2max]."""
    return DallaManExerciseInputs(meal_mg=protocol.doses_mg(n_people), exercise_pct_vo2max=protocol.exercise_pct_vo2max())


def dallaman_exercise_params(p: DallaMan2007Params, values: dict | None = None) -> DallaMan2007ExerciseParams:
    """``p`` with the exercise parameters (defaults :data:`~vpop.models.EXERCISE_DEFAULTS` updated by
    ``values``, range-checked) broadcast to its people."""
    merged = {**EXERCISE_DEFAULTS, **(values or {})}
    check_parameters(merged, EXERCISE_PARAMETER_SPECS, where="DallaMan2007Exercise")
    shape, dtype = jnp.shape(p.BW), jnp.result_type(p.BW)
    ex = {k: jnp.broadcast_to(jnp.asarray(v, dtype), shape) for k, v in merged.items()}
    return DallaMan2007ExerciseParams(**{k: getattr(p, k) for k in DALLAMAN_SPECS}, **ex)


class DallaMan2007Exercise(DallaMan2007):
    """Dalla Man 2007 with the Dalla Man 2009 exercise terms (module docstring). Build parameters
    with :func:`dallaman_exercise_params`; options as :class:`~vpop.models.DallaMan2007`."""

    name = "DallaMan2007Exercise"
    Params = DallaMan2007ExerciseParams
    State = DallaManExerciseState
    Inputs = DallaManExerciseInputs
    parameter_specs = DALLAMAN_EXERCISE_PARAMETER_SPECS
    state_units: ClassVar[dict[str, str]] = {**DALLAMAN_STATE_UNITS, "exercise_hr_signal": "bpm",
                                             "exercise_si_signal": "1", "exercise_hr_integral": "bpm·min"}

    @property
    def _dm(self) -> DallaMan2007:
        return DallaMan2007(dynamic_secretion=self.dynamic_secretion, renal_excretion=self.renal_excretion,
                            clip_egp=self.clip_egp)

    def fluxes(self, y, p) -> DallaManFluxes:
        """The parent's fluxes with the exercise utilisation in ``U_id`` and ``U``."""
        fx = self._dm.fluxes(DallaManState(*y[:_N_DM]), p)
        uid = exercise_utilisation(y, p)
        return fx._replace(U_id=uid, U=p.Fcns + uid)

    def vector_field(self, t, y, p, u=None):
        d = self._dm.vector_field(t, DallaManState(*y[:_N_DM]), p, u)
        Gt = y.glucose_tissue
        uid0 = (p.Vm0 + p.Vmx * y.insulin_action) * Gt / (p.Km0 + Gt)
        d = d._replace(glucose_tissue=d.glucose_tissue + uid0 - exercise_utilisation(y, p))
        return DallaManExerciseState(*d, *exercise_signals_rhs(y, p, u.exercise_pct_vo2max))

    def at_node(self, y, u, dt_min=None):
        y = DallaManExerciseState(*self._dm.apply_meal(DallaManState(*y[:_N_DM]), u.meal_mg), *y[_N_DM:])
        return exercise_reset(y, u.exercise_pct_vo2max)

    def protocol_inputs(self, protocol, n_people: int) -> DallaManExerciseInputs:
        return exercise_protocol_inputs(protocol, n_people)

    def basal_state(self, p):
        z = jnp.zeros_like(p.Gb)
        return DallaManExerciseState(*self._dm.basal_state(p), z, z, z)


# ------------------------------------------------------------------ with the liver and counter-regulation
LIVER_EXERCISE_PARAMETER_SPECS = {**LIVER_MODEL_PARAMETER_SPECS, **EXERCISE_PARAMETER_SPECS}


class DallaMan2007LiverExerciseParams(DallaMan2007LiverParams, ExerciseParamFields):
    """:class:`~vpop.models.DallaMan2007LiverParams` plus the exercise parameters."""

    specs = LIVER_EXERCISE_PARAMETER_SPECS
    model_name = "DallaMan2007LiverExercise"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.specs}


DallaManLiverExerciseState = concat_state(
    "DallaManLiverExerciseState", "DallaManLiverState plus the exercise signals Y, Z, W.", DallaManLiverState,
    _ExerciseSignals)
_N_LIVER = len(DallaManLiverState._fields)


def liver_exercise_params(p: DallaMan2007LiverParams, values: dict | None = None) -> DallaMan2007LiverExerciseParams:
    """``p`` (from :meth:`DallaMan2007Liver.make_params`) with the exercise parameters (defaults
    updated by ``values``, range-checked) broadcast to its people."""
    merged = {**EXERCISE_DEFAULTS, **(values or {})}
    check_parameters(merged, EXERCISE_PARAMETER_SPECS, where="DallaMan2007LiverExercise")
    shape, dtype = jnp.shape(p.BW), jnp.result_type(p.BW)
    ex = {k: jnp.broadcast_to(jnp.asarray(v, dtype), shape) for k, v in merged.items()}
    return DallaMan2007LiverExerciseParams(**p.to_dict(), **ex)


class DallaMan2007LiverExercise(DallaMan2007Liver):
    """:class:`~vpop.models.DallaMan2007Liver` (EGP from the liver, glucagon and epinephrine) with the
    Dalla Man 2009 exercise terms of :class:`DallaMan2007Exercise`, and exercise driving epinephrine
    (:mod:`vpop.models._counterregulation`: ``e_target ∝ 1 + a_ex·u²``), which raises glycogenolysis:
    the liver answers the extra uptake, and its glycogen is used. Inputs
    :class:`DallaManExerciseInputs`; parameters from :func:`liver_exercise_params`."""

    name = "DallaMan2007LiverExercise"
    Params = DallaMan2007LiverExerciseParams
    State = DallaManLiverExerciseState
    Inputs = DallaManExerciseInputs
    parameter_specs = LIVER_EXERCISE_PARAMETER_SPECS
    state_units: ClassVar[dict[str, str]] = {**DallaMan2007Liver.state_units, **DallaMan2007Exercise.state_units}

    def fluxes(self, y, p) -> DallaManFluxes:
        """The liver model's fluxes with the exercise utilisation in ``U_id`` and ``U`` (the parent's
        vector field reads ``U_id`` from here, so the exercise uptake acts on tissue glucose)."""
        fx = DallaMan2007Liver.fluxes(self, y, p)
        uid = exercise_utilisation(y, p)
        return fx._replace(U_id=uid, U=p.Fcns + uid)

    def exercise_pct_vo2max(self, u):
        return u.exercise_pct_vo2max

    def vector_field(self, t, y, p, u=None):
        d = DallaMan2007Liver.vector_field(self, t, y, p, u)
        return DallaManLiverExerciseState(*d, *exercise_signals_rhs(y, p, u.exercise_pct_vo2max))

    def at_node(self, y, u, dt_min=None):
        return exercise_reset(self.apply_meal(y, u.meal_mg), u.exercise_pct_vo2max)

    def protocol_inputs(self, protocol, n_people: int) -> DallaManExerciseInputs:
        return exercise_protocol_inputs(protocol, n_people)

    def basal_state(self, p):
        z = jnp.zeros_like(p.Gb)
        return DallaManLiverExerciseState(*DallaMan2007Liver.basal_state(self, p), z, z, z)


def with_protocol_exercise(model, params, protocol):
    """``(model, params)`` that can run ``protocol``: unchanged without exercise bouts; with bouts, a
    :class:`~vpop.models.DallaMan2007` cohort becomes :class:`DallaMan2007Exercise` and a
    :class:`~vpop.models.DallaMan2007Liver` one :class:`DallaMan2007LiverExercise` (options kept,
    default exercise parameters). ``ValueError`` for a model without exercise terms."""
    if not getattr(protocol, "exercise", ()) or isinstance(model, (DallaMan2007Exercise, DallaMan2007LiverExercise)):
        return model, params
    if type(model) is DallaMan2007Liver:
        m = DallaMan2007LiverExercise(counterregulation=model.counterregulation, dynamic_secretion=model.dynamic_secretion,
                                      renal_excretion=model.renal_excretion)
        return m, liver_exercise_params(params)
    if type(model) is DallaMan2007:
        m = DallaMan2007Exercise(dynamic_secretion=model.dynamic_secretion, renal_excretion=model.renal_excretion,
                                 clip_egp=model.clip_egp)
        return m, dallaman_exercise_params(params)
    raise ValueError(f"protocol.exercise: model {model.name} has no exercise terms; exercise bouts need a "
                     "DallaMan2007 cohort (T1D cohorts: vpop.simulate_t1d with ExerciseEvent)")
