r"""UVA/Padova 2008 T1D model with physical activity (Dalla Man, Breton & Cobelli 2009).

Dalla Man C, Breton MD, Cobelli C. *Physical activity into the meal glucose–insulin model of type 1
diabetes: in silico studies.* J Diabetes Sci Technol 2009;3(1):56–67 (eqs 7–12; SCIENCE.md §1(f);
structure as in LoopInsighT1, values its defaults — Dalla Man 2009's own table could not be read).

Exercise intensity u [% VO2max above rest] raises heart rate; a fast HR-driven signal Y raises the
insulin-independent utilisation during exercise; a slow signal Z, switched on by Y and decaying with
``T_ex`` = 600 min, times the integrated HR excess W raises insulin sensitivity after the bout::

    HR     = HRb + (HRmax − HRb)·u/100
    dY/dt  = −(Y − (HR − HRb))/T_HR                                   [bpm]
    f(Y)   = (Y/(a·HRb))ⁿ / (1 + (Y/(a·HRb))ⁿ)
    dZ/dt  = −(f(Y)/T_in + 1/T_ex)·Z + f(Y)                           [1]
    dW/dt  = HR − HRb      (W reset to 0 at an interval start once Z < 1e-3 and u = 0)   [bpm·min]
    Uid    = [Vm0·(1 + β·Y) + Vmx·(1 + A·Z·W)·(X + Ib) − Vmx·Ib]·Gt / [Km0·(1 − γ·Z·W·(X + Ib)) + Gt]

With u = 0 and Y = Z = W = 0 this is exactly :class:`~vpop.models.UvaPadova2008`. It is a separate
model (three more states, one more input) so the no-exercise T1D path is untouched;
:func:`vpop.simulate_t1d` switches to it only when the scenario has exercise.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike

from .._parameters import ParamSpec, check_parameters
from ._uvapadova2008 import (
    PARAMETER_SPECS as UVA_SPECS,
)
from ._uvapadova2008 import (
    STATE_UNITS as UVA_STATE_UNITS,
)
from ._uvapadova2008 import (
    UvaPadova2008,
    UvaPadova2008Params,
    UvaPadovaState,
)

EXERCISE_PARAMETER_SPECS: dict[str, ParamSpec] = {
    "hr_basal_bpm": ParamSpec("bpm", 30.0, 120.0, "resting heart rate HRb (assumed 60)"),
    "hr_max_bpm": ParamSpec("bpm", 100.0, 230.0, "maximal heart rate HRmax = 220 − age (assumed 180: age 40)"),
    "ex_A": ParamSpec("1/(bpm·min)", 0.0, 1e-2, "insulin-sensitivity gain A (Dalla Man 2009: 3e-4)", True),
    "ex_beta": ParamSpec("1/bpm", 0.0, 1.0, "insulin-independent utilisation gain β (Dalla Man 2009: 0.01)", True),
    "ex_gamma": ParamSpec("1/(bpm·min·pmol/L)", 0.0, 1e-4, "Km0 reduction gain γ (Dalla Man 2009: 1e-7)", True),
    "ex_a": ParamSpec("1", 1e-3, 10.0, "Y threshold of f(Y), relative to HRb (Dalla Man 2009: 0.1)"),
    "ex_n": ParamSpec("1", 0.5, 10.0, "steepness of f(Y) (Dalla Man 2009: 4)"),
    "ex_T_hr": ParamSpec("min", 0.1, 100.0, "time constant of Y (Dalla Man 2009: 5)"),
    "ex_T_in": ParamSpec("min", 0.01, 100.0, "switch-on time constant of Z (Dalla Man 2009: 1)"),
    "ex_T_ex": ParamSpec("min", 1.0, 1e4, "decay time constant of Z after exercise (Dalla Man 2009: 600)"),
}

EXERCISE_DEFAULTS: dict[str, float] = {
    "hr_basal_bpm": 60.0, "hr_max_bpm": 180.0, "ex_A": 3e-4, "ex_beta": 0.01, "ex_gamma": 1e-7, "ex_a": 0.1,
    "ex_n": 4.0, "ex_T_hr": 5.0, "ex_T_in": 1.0, "ex_T_ex": 600.0,
}

UVA_EXERCISE_PARAMETER_SPECS: dict[str, ParamSpec] = {**UVA_SPECS, **EXERCISE_PARAMETER_SPECS}


class ExerciseParamFields(eqx.Module):
    """The exercise parameters (:data:`EXERCISE_PARAMETER_SPECS`) as fields, shared by the T1D and
    the whole-body exercise models' parameter classes."""

    hr_basal_bpm: Array
    hr_max_bpm: Array
    ex_A: Array
    ex_beta: Array
    ex_gamma: Array
    ex_a: Array
    ex_n: Array
    ex_T_hr: Array
    ex_T_in: Array
    ex_T_ex: Array


class UvaPadova2008ExerciseParams(UvaPadova2008Params, ExerciseParamFields):
    """:class:`~vpop.models.UvaPadova2008Params` plus the exercise parameters
    (:data:`EXERCISE_PARAMETER_SPECS`)."""

    specs = UVA_EXERCISE_PARAMETER_SPECS
    model_name = "UvaPadova2008Exercise"


class UvaPadovaExerciseState(NamedTuple):
    """:class:`~vpop.models.UvaPadovaState` plus Y, Z, W."""

    stomach_solid: ArrayLike
    stomach_liquid: ArrayLike
    gut: ArrayLike
    glucose_plasma: ArrayLike
    glucose_tissue: ArrayLike
    insulin_plasma: ArrayLike
    insulin_action: ArrayLike
    insulin_signal_1: ArrayLike
    insulin_signal_egp: ArrayLike
    insulin_liver: ArrayLike
    insulin_sc_1: ArrayLike
    insulin_sc_2: ArrayLike
    glucose_subcutaneous: ArrayLike
    meal_dose: ArrayLike
    eating_rate_last: ArrayLike
    exercise_hr_signal: ArrayLike  #: Y [bpm]
    exercise_si_signal: ArrayLike  #: Z [1]
    exercise_hr_integral: ArrayLike  #: W [bpm·min]


class UvaPadovaExerciseInputs(NamedTuple):
    carbs_g_per_min: ArrayLike  #: eating rate [g/min]
    insulin_u_per_min: ArrayLike  #: subcutaneous insulin delivery [U/min]
    exercise_pct_vo2max: ArrayLike  #: exercise intensity [% VO2max above rest]


_N_UVA = len(UvaPadovaState._fields)


def exercise_params(p: UvaPadova2008Params, values: dict | None = None) -> UvaPadova2008ExerciseParams:
    """``p`` with the exercise parameters (defaults :data:`EXERCISE_DEFAULTS` updated by ``values``,
    range-checked) broadcast to its people."""
    merged = {**EXERCISE_DEFAULTS, **(values or {})}
    check_parameters(merged, EXERCISE_PARAMETER_SPECS, where="UvaPadova2008Exercise")
    shape, dtype = jnp.shape(p.BW), jnp.result_type(p.BW)
    ex = {k: jnp.broadcast_to(jnp.asarray(v, dtype), shape) for k, v in merged.items()}
    return UvaPadova2008ExerciseParams(**p.to_dict(), **ex)


def exercise_state(y: UvaPadovaState) -> UvaPadovaExerciseState:
    """``y`` with Y = Z = W = 0 (no recent exercise)."""
    z = jnp.zeros_like(y.glucose_plasma)
    return UvaPadovaExerciseState(*y, z, z, z)


def insulin_sensitivity_multiplier(y, p) -> Array:
    """1 + A·Z·W: the factor on insulin-stimulated utilisation (Vmx) left by exercise [1]."""
    return 1.0 + p.ex_A * y.exercise_si_signal * y.exercise_hr_integral


def exercise_signals_rhs(y, p, exercise_pct_vo2max):
    """``(dY/dt, dZ/dt, dW/dt)`` of the exercise signals (module docstring; shared by the T1D and the
    whole-body exercise models: their states carry ``exercise_hr_signal``, ``exercise_si_signal``,
    ``exercise_hr_integral``)."""
    hr_excess = (p.hr_max_bpm - p.hr_basal_bpm) * jnp.asarray(exercise_pct_vo2max) / 100.0
    Y, Z, W = y.exercise_hr_signal, y.exercise_si_signal, y.exercise_hr_integral
    x = (jnp.maximum(Y, 0.0) / (p.ex_a * p.hr_basal_bpm)) ** p.ex_n
    fY = x / (1.0 + x)
    return -(Y - hr_excess) / p.ex_T_hr, -(fY / p.ex_T_in + 1.0 / p.ex_T_ex) * Z + fY, hr_excess + 0.0 * W


def exercise_utilisation(y, p):
    """Insulin-dependent utilisation with exercise, ``Uid`` of the module docstring [mg/kg/min]
    (``insulin_action`` X is insulin action above basal, as in both Dalla Man models)."""
    Y, Z, W = y.exercise_hr_signal, y.exercise_si_signal, y.exercise_hr_integral
    Gt = y.glucose_tissue
    ins = y.insulin_action + p.Ib
    return ((p.Vm0 * (1.0 + p.ex_beta * Y) + p.Vmx * (1.0 + p.ex_A * Z * W) * ins - p.Vmx * p.Ib) * Gt
            / (p.Km0 * (1.0 - p.ex_gamma * Z * W * ins) + Gt))


def exercise_reset(y, exercise_pct_vo2max):
    """W reset to 0 at an interval start once Z < 1e-3 and there is no exercise."""
    done = (y.exercise_si_signal < 1e-3) & (jnp.asarray(exercise_pct_vo2max) <= 0)
    return y._replace(exercise_hr_integral=jnp.where(done, 0.0, y.exercise_hr_integral))


class UvaPadova2008Exercise(UvaPadova2008):
    """UVA/Padova 2008 with the Dalla Man 2009 exercise terms (module docstring); inputs
    :class:`UvaPadovaExerciseInputs`. Options as :class:`~vpop.models.UvaPadova2008`."""

    name = "UvaPadova2008Exercise"
    Params = UvaPadova2008ExerciseParams
    State = UvaPadovaExerciseState
    Inputs = UvaPadovaExerciseInputs
    parameter_specs = UVA_EXERCISE_PARAMETER_SPECS
    state_units: ClassVar[dict[str, str]] = {**UVA_STATE_UNITS, "exercise_hr_signal": "bpm", "exercise_si_signal": "1",
                                             "exercise_hr_integral": "bpm·min"}

    def vector_field(self, t, y, p, u):
        d = UvaPadova2008.vector_field(self, t, UvaPadovaState(*y[:_N_UVA]), p, u)
        Gt = y.glucose_tissue
        uid0 = (p.Vm0 + p.Vmx * y.insulin_action) * Gt / (p.Km0 + Gt)
        d = d._replace(glucose_tissue=d.glucose_tissue + uid0 - exercise_utilisation(y, p))
        return UvaPadovaExerciseState(*d, *exercise_signals_rhs(y, p, u.exercise_pct_vo2max))

    def at_node(self, y, u, dt_min):
        return exercise_reset(UvaPadova2008.at_node(self, y, u, dt_min), u.exercise_pct_vo2max)

    def basal_state(self, p):
        return exercise_state(UvaPadova2008.basal_state(self, p))


def with_exercise(model: UvaPadova2008, params: UvaPadova2008Params, y0: UvaPadovaState, values: dict | None = None):
    """The exercise variant of a T1D cohort's ``(model, params, y0)`` (options kept; Y = Z = W = 0)."""
    m = UvaPadova2008Exercise(clip_egp=model.clip_egp)
    return m, exercise_params(params, values), exercise_state(y0)


