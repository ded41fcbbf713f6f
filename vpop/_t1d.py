"""Type 1 diabetes: the 30 public UVA/Padova 2008 virtual patients and insulin protocols.

The patients are the "academic" cohort distributed with simglucose (MIT licence, copied with
attribution in ``vpop/data/uva_padova_2008/``): 10 adolescents, 10 adults, 10 children, with their
Quest data (carbohydrate ratio CR [g/U], correction factor CF [mg/dL/U], age, total daily insulin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Callable, NamedTuple, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import ArrayLike
import numpy as np
import pandas as pd

from .models._uvapadova2008 import (
    PARAMETER_SPECS,
    UvaPadova2008,
    UvaPadova2008Params,
    UvaPadovaInputs,
    UvaPadovaState,
)

#: simglucose column → vpop parameter name
_COLUMN_OF = {"VG": "Vg", "VI": "Vi"}
#: simglucose initial-state columns x0_1 … x0_13, in model order
_X0_COLUMNS = ["x0_ 1", "x0_ 2", "x0_ 3", "x0_ 4", "x0_ 5", "x0_ 6", "x0_ 7", "x0_ 8", "x0_ 9", "x0_10", "x0_11", "x0_12", "x0_13"]


def _read(name: str) -> pd.DataFrame:
    with (resources.files("vpop") / "data" / "uva_padova_2008" / name).open("r") as f:
        return pd.read_csv(f)


def patient_table() -> pd.DataFrame:
    """The 30 patients: ``Name``, ``group``, every parameter (simglucose column names, units as in
    :data:`vpop.models.UVAPADOVA2008_PARAMETER_SPECS`) and the Quest columns ``CR`` [g/U],
    ``CF`` [mg/dL per U], ``Age`` [years], ``TDI`` [U/day]."""
    params = _read("vpatient_params.csv")
    quest = _read("Quest.csv")
    df = params.merge(quest, on="Name", how="left", validate="one_to_one")
    df.insert(1, "group", df["Name"].str.split("#").str[0])
    return df


def load_patients(names: Sequence[str] | None = None, *, dtype=jnp.float64):
    """The public UVA/Padova 2008 patients as a population.

    Returns ``(model, params, y0, table)``: params with leaves of shape ``(n,)``, the published
    initial (basal) states ``y0``, and the table of names and Quest data (CR, CF, TDI, age).

    Example:
        >>> import vpop
        >>> model, params, y0, table = vpop.load_patients(["adult#001", "child#003"])
        >>> list(table["Name"])
        ['adult#001', 'child#003']
    """
    df = patient_table()
    if names is not None:
        unknown = sorted(set(names) - set(df["Name"]))
        if unknown:
            raise ValueError(f"unknown patient(s) {unknown}; available: {list(df['Name'])}")
        df = df.set_index("Name").loc[list(names)].reset_index()
    values = {k: df[_COLUMN_OF.get(k, k)].to_numpy(float) for k in PARAMETER_SPECS}
    model = UvaPadova2008()
    params = model.Params.from_dict(values, dtype=dtype)
    x0 = df[_X0_COLUMNS].to_numpy(float)
    zero = jnp.zeros(len(df), dtype)
    y0 = UvaPadovaState(*[jnp.asarray(x0[:, i], dtype) for i in range(13)], zero, zero)
    return model, params, y0, df.reset_index(drop=True)


@dataclass(frozen=True)
class InsulinProtocol:
    """Per-interval inputs of a T1D simulation: eating rate [g/min] and insulin delivery [U/min].

    Build one with :meth:`replay` (given per-interval arrays) or :meth:`open_loop` (meals eaten at
    ``eat_rate_g_per_min``, basal [U/h] and boluses [U]).

    Attributes:
        carbs_g_per_min: shape ``(T,)`` or ``(n, T)``, T = number of output intervals.
        insulin_u_per_min: shape ``(T,)`` or ``(n, T)``.
        save_every_min: output step [min]; inputs are constant over each step.
    """

    carbs_g_per_min: np.ndarray
    insulin_u_per_min: np.ndarray
    save_every_min: float = 1.0
    name: str = "t1d"
    kind: str = "t1d"

    def __post_init__(self):
        c = np.asarray(self.carbs_g_per_min, float)
        i = np.asarray(self.insulin_u_per_min, float)
        for label, a in (("carbs_g_per_min", c), ("insulin_u_per_min", i)):
            if a.ndim not in (1, 2):
                raise ValueError(f"{label} must have shape (T,) or (n_people, T), got {a.shape}")
            if not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f"{label} must be finite and ≥ 0")
        if c.shape[-1] != i.shape[-1]:
            raise ValueError(f"carbs_g_per_min has {c.shape[-1]} intervals, insulin_u_per_min {i.shape[-1]}")
        object.__setattr__(self, "carbs_g_per_min", c)
        object.__setattr__(self, "insulin_u_per_min", i)

    @property
    def n_intervals(self) -> int:
        return int(self.carbs_g_per_min.shape[-1])

    @property
    def duration_min(self) -> float:
        return self.n_intervals * self.save_every_min

    @property
    def duration_days(self) -> float:
        return self.duration_min / 1440.0

    @property
    def time_min(self) -> np.ndarray:
        return np.arange(self.n_intervals + 1) * self.save_every_min

    @property
    def meals(self) -> tuple:
        return ()

    def inputs(self, n_people: int) -> UvaPadovaInputs:
        for a in (self.carbs_g_per_min, self.insulin_u_per_min):
            if a.ndim == 2 and a.shape[0] != n_people:
                raise ValueError(f"protocol has inputs for {a.shape[0]} people, the population has {n_people}")
        return UvaPadovaInputs(self.carbs_g_per_min, self.insulin_u_per_min)

    def total_carbs_g(self) -> np.ndarray:
        return self.carbs_g_per_min.sum(axis=-1) * self.save_every_min

    def total_insulin_u(self) -> np.ndarray:
        return self.insulin_u_per_min.sum(axis=-1) * self.save_every_min

    @classmethod
    def replay(cls, carbs_g_per_min, insulin_u_per_min, save_every_min: float = 1.0) -> "InsulinProtocol":
        """Inputs given per interval (e.g. recorded from another simulator or a pump log)."""
        return cls(np.asarray(carbs_g_per_min), np.asarray(insulin_u_per_min), save_every_min, name="replay")


# --------------------------------------------------------------------------- devices


@dataclass(frozen=True)
class Pump:
    """An insulin pump (CSII): basal in U/h, boluses in U, rounded to the pump's increments.

    Requests are rounded to the nearest increment **in units of insulin** (U for boluses, U/h for
    basal) and clipped to [min, max]. (simglucose 0.2.11 rounds in pmol/min instead, which makes its
    increments 6000× finer than the pump's; vpop uses the pump's own units.)
    """

    name: str = "Insulet"
    bolus_increment_u: float = 0.05
    bolus_max_u: float = 30.0
    basal_increment_u_per_h: float = 0.05
    basal_max_u_per_h: float = 30.0

    def __post_init__(self):
        for f in ("bolus_increment_u", "bolus_max_u", "basal_increment_u_per_h", "basal_max_u_per_h"):
            v = getattr(self, f)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"Pump.{f}={v!r} must be > 0")

    @classmethod
    def named(cls, name: str) -> "Pump":
        """A pump of ``pump_params.csv`` (simglucose): ``"Insulet"`` or ``"Cozmo"``."""
        df = _read("pump_params.csv").set_index("Name")
        if name not in df.index:
            raise ValueError(f"unknown pump {name!r}; available: {list(df.index)}")
        r = df.loc[name]
        return cls(name, float(r.inc_bolus), float(r.max_bolus), float(r.inc_basal), float(r.max_basal))

    def deliver(self, basal_u_per_h, bolus_u):
        """``(basal [U/h], bolus [U])`` actually delivered for a request (jnp, elementwise)."""
        basal = jnp.clip(jnp.round(basal_u_per_h / self.basal_increment_u_per_h) * self.basal_increment_u_per_h,
                         0.0, self.basal_max_u_per_h)
        bolus = jnp.clip(jnp.round(bolus_u / self.bolus_increment_u) * self.bolus_increment_u, 0.0, self.bolus_max_u)
        return basal, bolus


@dataclass(frozen=True)
class CGM:
    """Continuous glucose monitor: reads subcutaneous glucose Gs/VG with Johnson-SU noise.

    Noise model of Breton & Kovatchev (J Diabetes Sci Technol 2008;2:853), parameters of simglucose's
    ``sensor_params.csv``: a standard-normal sequence at 15-min spacing, ``e₁ = v₁``,
    ``eₙ = PACF·(eₙ₋₁ + vₙ)``, mapped through the Johnson SU transform
    ``ε = ξ + λ·sinh((e − γ)/δ)`` [mg/dL] and interpolated linearly to the sample times (simglucose uses
    cubic interpolation). Readings are clipped to [min, max]. ``noise=False`` gives the exact
    subcutaneous glucose (still clipped). Seeded per person: same seed → same noise.
    """

    name: str = "Dexcom"
    pacf: float = 0.7
    gamma: float = -0.5444
    lam: float = 15.9574
    delta: float = 1.6898
    xi: float = -5.47
    sample_time_min: float = 3.0
    min_mg_per_dl: float = 39.0
    max_mg_per_dl: float = 600.0
    noise: bool = True

    @classmethod
    def named(cls, name: str, noise: bool = True) -> "CGM":
        """A sensor of ``sensor_params.csv``: ``"Dexcom"``, ``"GuardianRT"`` or ``"Navigator"``."""
        df = _read("sensor_params.csv").set_index("Name")
        if name not in df.index:
            raise ValueError(f"unknown sensor {name!r}; available: {list(df.index)}")
        r = df.loc[name]
        return cls(name, float(r.PACF), float(r.gamma), float(r["lambda"]), float(r.delta), float(r.xi),
                   float(r.sample_time), float(r["min"]), float(r["max"]), noise)

    def noise_mg_per_dl(self, key, n_people: int, times_min: np.ndarray):
        """Noise [mg/dL] of ``n_people`` sensors at ``times_min``, shape ``(n_people, len(times_min))``."""
        times_min = np.asarray(times_min, float)
        if not self.noise:
            return jnp.zeros((n_people, len(times_min)))
        n15 = int(np.ceil(times_min.max() / 15.0)) + 2
        # linear interpolation from the 15-min grid (as jnp.interp: the enclosing 15-min points and
        # the fraction of the way between them, here computed once on the host)
        t15 = np.arange(n15) * 15.0
        upper = np.clip(np.searchsorted(t15, times_min, side="right"), 1, n15 - 1)
        frac = (times_min - t15[upper - 1]) / (t15[upper] - t15[upper - 1])
        # compiled once per (sensor, cohort size, grid size): run eagerly, its many small ops cost
        # ~15% of a fast-mode T1D day for 10 000 people
        return _cgm_noise(self, key, int(n_people), n15, jnp.asarray(upper), jnp.asarray(frac))

    def _noise(self, key, n_people: int, n15: int, upper, frac):
        # one key per person (fold_in of the person index): a person's noise does not depend on
        # the cohort size or on how the cohort is chunked
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_people))
        v = jax.vmap(lambda k: jax.random.normal(k, (n15,)))(keys).T  # (n15, n)

        def ar(e, vk):
            e = self.pacf * (e + vk)
            return e, e

        _, rest = jax.lax.scan(ar, v[0], v[1:])
        e = jnp.concatenate([v[:1], rest])  # (n15, n)
        eps = self.xi + self.lam * jnp.sinh((e - self.gamma) / self.delta)
        lo, hi = eps[upper - 1], eps[upper]  # (T, n)
        return (lo + frac[:, None] * (hi - lo)).T


_cgm_noise = jax.jit(CGM._noise, static_argnums=(0, 2, 3))


# --------------------------------------------------------------------------- controllers


class PatientInfo(NamedTuple):
    """What a therapy knows about a person (per-person arrays)."""

    cr_g_per_u: ArrayLike  #: carbohydrate ratio [g/U]
    cf_mg_per_dl_per_u: ArrayLike  #: correction factor [mg/dL per U]
    basal_u_per_h: ArrayLike  #: basal rate that holds the basal steady state [U/h]
    tdi_u: ArrayLike  #: total daily insulin [U]
    bw_kg: ArrayLike  #: body weight [kg]


class Observation(NamedTuple):
    """What a controller sees at the start of a control interval."""

    time_min: ArrayLike  #: time since the start [min]
    cgm_mg_per_dl: ArrayLike  #: sensor reading [mg/dL]
    meal_announced_g: ArrayLike  #: carbohydrate announced for a bolus now [g] (0: none)
    dt_min: ArrayLike  #: length of the control interval [min]
    #: exercise the person announces for this interval [% VO2max] (0: none; see :class:`ExerciseEvent`)
    exercise_announced_pct_vo2max: ArrayLike = 0.0


class Action(NamedTuple):
    """A controller's request to the pump."""

    basal_u_per_h: ArrayLike  #: basal rate over the interval [U/h]
    bolus_u: ArrayLike  #: bolus given at the start of the interval [U]


class AbstractController(eqx.Module):
    """A therapy: a pure JAX function, written for one person and batched by vpop.

    Subclasses define ``init(info) -> state`` and ``__call__(state, obs, info) -> (state, Action)``
    with :class:`Observation` ``obs`` and :class:`PatientInfo` ``info`` (scalars per person).
    """

    def init(self, info: PatientInfo):
        return jnp.zeros(())

    def __call__(self, state, obs: Observation, info: PatientInfo):
        raise NotImplementedError


class BasalBolus(AbstractController):
    """Open-loop basal–bolus therapy (as practised by people with T1D, and simglucose's BBController).

    Basal: the patient's basal rate. Meal bolus: ``carbs/CR``, plus a correction ``(CGM − target)/CF``
    when the reading at the meal is above ``correction_above_mg_per_dl``. No bolus without a meal.
    """

    target_mg_per_dl: float = 140.0
    correction_above_mg_per_dl: float = 150.0

    def __call__(self, state, obs, info):
        correction = jnp.where(obs.cgm_mg_per_dl > self.correction_above_mg_per_dl,
                               (obs.cgm_mg_per_dl - self.target_mg_per_dl) / info.cf_mg_per_dl_per_u, 0.0)
        bolus = jnp.where(obs.meal_announced_g > 0, obs.meal_announced_g / info.cr_g_per_u + correction, 0.0)
        return state, Action(info.basal_u_per_h + 0.0 * bolus, bolus)


class PIDController(AbstractController):
    """Hybrid closed loop: PID on CGM with insulin feedback, meal boluses from CR, low-glucose suspend.

    Per control step, with error ``e = CGM − target`` [mg/dL] and trend ``dG/dt`` from the last two
    readings:

    * the insulin the person still needs is ``need = (e + tau_d·dG/dt)/CF + I − IOB`` [U], where
      ``IOB`` is the controller's own estimate of active insulin it gave beyond the basal rate
      (boluses and extra basal, decaying exponentially with ``iob_tau_min``; suspended basal counts
      negatively) and ``I = ∫e dt/(CF·tau_i_h)`` a slow integral (frozen while insulin is active);
    * the basal rate is the person's basal plus ``need`` spread over ``tau_p_h`` hours, bounded to
      ``[0, max_basal_multiple × basal]``;
    * delivery is suspended while the reading, or the reading projected ``tau_d_min`` ahead, is below
      ``suspend_below_mg_per_dl``;
    * meals get the bolus of a standard bolus calculator, ``bolus_fraction × carbs/CR + e/CF − IOB``
      (a negative correction when below target), never below zero.

    Gains are scaled per person by the correction factor CF, so one set of time constants fits every
    patient. No parameter is fitted to the test cohort.
    """

    target_mg_per_dl: float = 120.0
    tau_p_h: float = 1.5
    tau_i_h: float = 10.0
    tau_d_min: float = 30.0
    iob_tau_min: float = 150.0
    suspend_below_mg_per_dl: float = 85.0
    max_basal_multiple: float = 2.0
    bolus_fraction: float = 1.0

    def init(self, info):
        z = jnp.zeros_like(jnp.asarray(info.basal_u_per_h, dtype=float))
        # integral [mg/dL·h], previous reading [mg/dL] (NaN: none yet), insulin on board [U]
        return (z, z + jnp.nan, z)

    def __call__(self, state, obs, info):
        integral, previous, iob = state
        cgm = obs.cgm_mg_per_dl
        dt = obs.dt_min
        cf = info.cf_mg_per_dl_per_u
        err = cgm - self.target_mg_per_dl
        trend = jnp.where(jnp.isnan(previous), 0.0, (cgm - previous) / dt)  # mg/dL/min
        active = jnp.abs(iob) > 0.1 * info.basal_u_per_h  # insulin beyond basal still acting
        integral = jnp.where(active | (cgm < self.suspend_below_mg_per_dl), integral, integral + err * dt / 60.0)
        integral = jnp.clip(integral, -20.0 * cf, 20.0 * cf)  # anti-windup: at most ±20 U·h equivalent
        need = (err + self.tau_d_min * trend) / cf + integral / (cf * self.tau_i_h) - iob  # U
        basal = jnp.clip(info.basal_u_per_h + need / self.tau_p_h, 0.0, self.max_basal_multiple * info.basal_u_per_h)
        predicted = cgm + trend * self.tau_d_min
        suspend = (cgm < self.suspend_below_mg_per_dl) | (predicted < self.suspend_below_mg_per_dl)
        basal = jnp.where(suspend, 0.0, basal)
        # bolus calculator: carbs/CR + correction (negative when low) − insulin on board, never < 0
        wizard = self.bolus_fraction * obs.meal_announced_g / info.cr_g_per_u + err / cf - jnp.maximum(iob, 0.0)
        bolus = jnp.where(obs.meal_announced_g > 0, jnp.maximum(wizard, 0.0), 0.0)
        extra = bolus + (basal - info.basal_u_per_h) * dt / 60.0  # U beyond basal given this step
        iob = iob * jnp.exp(-dt / self.iob_tau_min) + extra
        return (integral, cgm, iob), Action(basal, bolus)


def _chain_fractions(h_min, tau_min):
    """Fractions of the contents of compartment 1 and of compartment 2 of a two-compartment chain
    with equal time constants ``tau_min`` that have left it (acted) within ``h_min`` minutes:
    ``(1 − (1 + h/τ)·e^{−h/τ}, 1 − e^{−h/τ})``."""
    x = h_min / tau_min
    e = jnp.exp(-x)
    return 1.0 - (1.0 + x) * e, 1.0 - e


def _chain_step(c1, c2, dt_min, tau_min):
    """Exact update of the chain ``c1' = −c1/τ``, ``c2' = (c1 − c2)/τ`` over ``dt_min``."""
    x = dt_min / tau_min
    e = jnp.exp(-x)
    return c1 * e, (c2 + c1 * x) * e


class HybridClosedLoop(AbstractController):
    r"""Hybrid closed loop with a linear insulin–carbohydrate prediction model (IOB/COB), predictive
    low-glucose suspend and a prediction-capped meal bolus: safe by construction, not by tuning.

    **Prediction model** (per person, linear, from :class:`PatientInfo` only). Insulin given beyond
    the scheduled basal rate (boluses, extra basal; suspended basal counts negatively) enters a
    two-compartment chain with time constant ``insulin_tau_min`` (Hovorka et al., Physiol Meas
    2004;25:905, s.c. insulin absorption; 75 min is the peak-activity time of the exponential
    rapid-acting-analogue curve used by Loop and OpenAPS, which leaves ~5 % after 6 h); announced
    carbohydrate enters a second chain with ``carb_tau_min`` (Hovorka 2004, tmax,G = 40 min). Each
    unit that acts lowers glucose by ``CF`` and each gram absorbed raises it by ``CF/CR``, so the
    glucose predicted ``h`` minutes ahead is

    .. math:: \hat G(h) = G + m(h) + \tfrac{CF}{CR}\,C_{abs}(h) - CF\,I_{act}(h),

    with the momentum ``m(h) = slope·min(h, momentum_min)`` from the CGM slope over the last 15 min
    (clipped to ±``max_slope``). ``IOB`` and ``COB`` are the contents of the two chains; the
    eventual glucose is ``G + CF/CR·COB − CF·IOB`` (+ momentum).

    **Conservative ratios.** The dosing ratios are the Quest CR and CF or the clinical rules of
    thumb from the total daily insulin, the "500 rule" ``CR = 500/TDI`` [g/U] and "1800 rule"
    ``CF = 1800/TDI`` [mg/dL per U] (Walsh & Roberts, *Pumping Insulin*; Davidson et al., Endocr
    Pract 2008;14:1095), whichever gives **less** insulin (the larger ratio). When two clinical
    estimates disagree the loop starts from the smaller dose and adds insulin by feedback, the usual
    way an automated system is initialised; it is also why the loop needs no per-patient tuning.

    **Each control step** (``dt``; CGM ``G``):

    * *predictive low-glucose suspend*: basal 0 while ``G``, ``G + 30 min × slope`` or the minimum
      of ``Ĝ`` over ``horizon_min`` is below ``suspend_below_mg_per_dl`` (80 mg/dL, the threshold
      of Tandem Basal-IQ's 30-min prediction);
    * otherwise *temp basal*: the insulin needed, ``need = (min(Ĝ_eventual, Ĝ_min) − target)/CF``
      [U] (the smaller of the eventual and the minimum prediction, as OpenAPS oref0 does; both
      without momentum here, since a 15-min slope of the noisy CGM makes the rate chatter) is
      delivered over ``deliver_over_min`` = 60 min on top of the basal rate, within
      ``[0, max_basal_multiple × basal]`` (OpenAPS' default ``current_basal_safety_multiplier`` is 4;
      2 here keeps corrections slow because the prediction model is crude), and no increase is made
      while the insulin on board beyond what the carbohydrate on board needs, ``IOB − COB/CR``,
      exceeds ``max_iob_h`` = 3 hours of basal (in the spirit of OpenAPS' ``max_iob``);
    * *meal bolus* when carbohydrate is announced: the bolus-calculator dose
      ``carbs/CR + (G − target)/CF − max(IOB, 0)``, capped at the largest bolus ``b`` whose
      prediction ``Ĝ(h) − CF·b·A(h)`` (``A`` the fraction of a bolus acted by ``h``) stays above
      ``bolus_floor_mg_per_dl`` over the horizon, and never below 0. The cap is a one-line linear
      MPC constraint: with the carbs faster than insulin it binds where glucose is low or falling.

    Parameters are physiological or clinical defaults (sources above); none was fitted to the 30
    UVA/Padova patients. ``target_mg_per_dl`` = 120 is the default target of Medtronic's 780G.
    While the person announces exercise (:attr:`Observation.exercise_announced_pct_vo2max` > 0) the
    target is ``activity_target_mg_per_dl`` = 150 (the activity target of Omnipod 5; Control-IQ's
    exercise mode aims at 140–160 mg/dL).
    """

    target_mg_per_dl: float = 120.0
    suspend_below_mg_per_dl: float = 80.0
    bolus_floor_mg_per_dl: float = 80.0
    insulin_tau_min: float = 75.0
    carb_tau_min: float = 40.0
    horizon_min: float = 360.0
    momentum_min: float = 30.0
    max_slope_mg_per_dl_per_min: float = 3.0
    deliver_over_min: float = 60.0
    max_basal_multiple: float = 2.0
    max_iob_h: float = 3.0
    conservative_ratios: bool = True
    activity_target_mg_per_dl: float = 150.0
    rule_500_g: float = 500.0
    rule_1800_mg_per_dl: float = 1800.0

    def __check_init__(self):
        for f in ("target_mg_per_dl", "insulin_tau_min", "carb_tau_min", "horizon_min", "deliver_over_min",
                  "max_basal_multiple"):
            v = getattr(self, f)
            if not v > 0:
                raise ValueError(f"HybridClosedLoop.{f}={v!r} must be > 0")
        if not 0.0 <= self.suspend_below_mg_per_dl < self.target_mg_per_dl:
            raise ValueError(f"HybridClosedLoop.suspend_below_mg_per_dl={self.suspend_below_mg_per_dl!r} must be "
                             f"within [0, target_mg_per_dl={self.target_mg_per_dl})")

    def ratios(self, info: PatientInfo):
        """``(CR [g/U], CF [mg/dL per U])`` the loop doses with (see the class docstring)."""
        cr, cf = info.cr_g_per_u, info.cf_mg_per_dl_per_u
        if self.conservative_ratios:
            cr = jnp.maximum(cr, self.rule_500_g / info.tdi_u)
            cf = jnp.maximum(cf, self.rule_1800_mg_per_dl / info.tdi_u)
        return cr, cf

    def init(self, info):
        z = jnp.zeros_like(jnp.asarray(info.basal_u_per_h, dtype=float))
        nan = z + jnp.nan
        # insulin chain [U], carbohydrate chain [g], last three readings [mg/dL] (NaN: none yet)
        return (z, z, z, z, nan, nan, nan)

    def _grid(self, dt):
        return jnp.arange(1, int(round(self.horizon_min / 5.0)) + 1) * 5.0  # [min], every 5 min

    def __call__(self, state, obs, info):
        i1, i2, c1, c2, g1, g2, g3 = state
        g = obs.cgm_mg_per_dl
        dt = obs.dt_min
        cr, cf = self.ratios(info)
        target = jnp.where(jnp.asarray(obs.exercise_announced_pct_vo2max) > 0,
                           jnp.maximum(self.target_mg_per_dl, self.activity_target_mg_per_dl), self.target_mg_per_dl)
        # carbohydrate announced now joins the carbohydrate chain
        meal = obs.meal_announced_g
        c1 = c1 + meal
        # CGM slope over the last 15 min (fewer readings at the start: none → 0)
        slope = jnp.where(~jnp.isnan(g3), (g - g3) / (3.0 * dt),
                          jnp.where(~jnp.isnan(g1), (g - g1) / dt, 0.0))
        slope = jnp.clip(slope, -self.max_slope_mg_per_dl_per_min, self.max_slope_mg_per_dl_per_min)
        h = self._grid(dt)
        ex = lambda a: jnp.expand_dims(a, -1)  # noqa: E731  per-person scalar → against the grid
        a1, a2 = _chain_fractions(h, self.insulin_tau_min)
        b1, b2 = _chain_fractions(h, self.carb_tau_min)
        momentum = ex(slope) * jnp.minimum(h, self.momentum_min)
        pred = ex(g) + momentum + ex(cf / cr) * (ex(c1) * b1 + ex(c2) * b2) - ex(cf) * (ex(i1) * a1 + ex(i2) * a2)
        iob, cob = i1 + i2, c1 + c2
        eventual = g + cf / cr * cob - cf * iob
        pred_min = jnp.min(pred, axis=-1)
        # temp basal: the model's prediction without momentum (a noisy slope would make it chatter)
        need = (jnp.minimum(eventual, jnp.min(pred - momentum, axis=-1)) - target) / cf  # U
        basal = info.basal_u_per_h + need * 60.0 / self.deliver_over_min
        excess = iob - cob / cr  # insulin on board beyond what the carbohydrate on board needs [U]
        basal = jnp.where((need > 0) & (excess > self.max_iob_h * info.basal_u_per_h), info.basal_u_per_h, basal)
        basal = jnp.clip(basal, 0.0, self.max_basal_multiple * info.basal_u_per_h)
        low = jnp.minimum(jnp.minimum(g, g + 30.0 * slope), pred_min)
        basal = jnp.where(low < self.suspend_below_mg_per_dl, 0.0, basal)
        # meal bolus: calculator dose, capped so the prediction stays above the floor
        wizard = meal / cr + (g - target) / cf - jnp.maximum(iob, 0.0)
        cap = jnp.min((pred - self.bolus_floor_mg_per_dl) / (ex(cf) * a1), axis=-1)
        bolus = jnp.where(meal > 0, jnp.clip(jnp.minimum(wizard, cap), 0.0), 0.0)
        # the insulin beyond basal given now joins the insulin chain; both chains advance by dt
        i1 = i1 + bolus + (basal - info.basal_u_per_h) * dt / 60.0
        i1, i2 = _chain_step(i1, i2, dt, self.insulin_tau_min)
        c1, c2 = _chain_step(c1, c2, dt, self.carb_tau_min)
        return (i1, i2, c1, c2, g, g1, g2), Action(basal, bolus)


class FunctionController(AbstractController):
    """Plug in your own therapy as a pure JAX function of the CGM history.

    ``fn(history_mg_per_dl, obs, info) -> Action`` gets the last ``history_len`` readings (oldest
    first; NaN before the start), the current :class:`Observation` and :class:`PatientInfo`, all for
    one person; vpop batches it over people with ``jax.vmap``.

    Example:
        >>> import jax.numpy as jnp, vpop
        >>> def treat_to_target(hist, obs, info):
        ...     basal = jnp.where(hist[-1] > 180, 1.5, 1.0) * info.basal_u_per_h
        ...     return vpop.Action(basal, obs.meal_announced_g / info.cr_g_per_u)
        >>> ctrl = vpop.FunctionController(treat_to_target, history_len=12)
    """

    fn: Callable = eqx.field(static=True)
    history_len: int = eqx.field(static=True, default=12)

    def init(self, info):
        shape = jnp.shape(info.basal_u_per_h) + (self.history_len,)
        return jnp.full(shape, jnp.nan)

    def __call__(self, state, obs, info):
        hist = jnp.concatenate([state[1:], jnp.asarray(obs.cgm_mg_per_dl, state.dtype)[None]])
        a = self.fn(hist, obs, info)
        return hist, Action(jnp.asarray(a.basal_u_per_h, hist.dtype), jnp.asarray(a.bolus_u, hist.dtype))


class _T1DInputs(NamedTuple):
    carbs_g_per_min: ArrayLike
    announced_g: ArrayLike
    cgm_noise_mg_per_dl: ArrayLike
    exercise_pct_vo2max: ArrayLike
    exercise_announced_pct_vo2max: ArrayLike


class _ClosedLoop(eqx.Module):
    """Engine policy: sensor → controller → pump → model inputs, per person and interval."""

    controller: AbstractController
    pump: Pump = eqx.field(static=True)
    cgm_min: float = eqx.field(static=True)
    cgm_max: float = eqx.field(static=True)
    #: pass the exercise intensity to the model (the exercise variant, :func:`vpop.models.with_exercise`)
    exercise: bool = eqx.field(static=True, default=False)

    def init(self, params, y0):  # pragma: no cover - pstate0 is always given
        raise NotImplementedError

    def __call__(self, pstate, y, x, p, k, dt):
        ctrl_state, info = pstate
        cgm = jnp.clip(y.glucose_subcutaneous / p.VG + x.cgm_noise_mg_per_dl, self.cgm_min, self.cgm_max)
        obs = Observation(k * dt, cgm, x.announced_g, jnp.asarray(dt, cgm.dtype), x.exercise_announced_pct_vo2max)
        ctrl_state, action = self.controller(ctrl_state, obs, info)
        basal, bolus = self.pump.deliver(action.basal_u_per_h, action.bolus_u)
        u = UvaPadovaInputs(x.carbs_g_per_min, basal / 60.0 + bolus / dt)
        if self.exercise:
            from .models._uvapadova2008_exercise import UvaPadovaExerciseInputs

            u = UvaPadovaExerciseInputs(*u, x.exercise_pct_vo2max)
        record = {
            "cgm [mg/dL]": cgm,
            "basal_requested [U/h]": jnp.asarray(action.basal_u_per_h, cgm.dtype),
            "bolus_requested [U]": jnp.asarray(action.bolus_u, cgm.dtype),
            "basal_delivered [U/h]": basal,
            "bolus_delivered [U]": bolus,
            "carbs_eaten [g]": x.carbs_g_per_min * dt,
            "exercise [% VO2max]": x.exercise_pct_vo2max,
        }
        return (ctrl_state, info), u, record


# --------------------------------------------------------------------------- scenarios


@dataclass(frozen=True)
class ExerciseEvent:
    """Physical activity: ``intensity_pct_vo2max`` [% of VO2max above rest] from ``time_min`` for
    ``duration_min``, announced to the therapy (``announced``) or not. Each field may be a scalar or
    one value per person.

    This is a **hook for later issues**: the scenario turns sessions into a per-interval intensity
    that reaches the records (``"exercise [% VO2max]"``) and, where announced, the controllers
    (:attr:`Observation.exercise_announced_pct_vo2max`). A scenario with exercise is simulated with
    the Dalla Man, Breton & Cobelli 2009 exercise terms
    (:class:`vpop.models.UvaPadova2008Exercise`: HR-driven utilisation during the bout, insulin
    sensitivity raised for hours after it); without exercise the plain 2008 model runs.
    """

    time_min: float | np.ndarray
    duration_min: float | np.ndarray
    intensity_pct_vo2max: float | np.ndarray
    announced: bool | np.ndarray = True


@dataclass(frozen=True)
class MealEvent:
    """A meal: ``carbs_g`` eaten from ``time_min`` at the scenario's eating rate; the bolus for it is
    announced ``bolus_delay_min`` after the start of the meal (negative: pre-bolus), or not at all
    where ``bolused`` is False. Each field may be a scalar or one value per person."""

    time_min: float | np.ndarray
    carbs_g: float | np.ndarray
    bolused: bool | np.ndarray = True
    bolus_delay_min: float | np.ndarray = 0.0


@dataclass(frozen=True)
class T1DScenario:
    """A day (or days) of meals for a T1D simulation, on a control grid of ``step_min`` minutes.

    Meals are eaten at ``eat_rate_g_per_min`` (5 g/min as in simglucose); the grams eaten in each
    control interval enter the stomach at the interval's average rate, so the grams in always equal
    the grams eaten (tested). ``exercise`` sessions (:class:`ExerciseEvent`) are recorded, shown to
    the therapy and, through the Dalla Man 2009 exercise model, lower glucose.
    """

    duration_min: float
    meals: tuple[MealEvent, ...] = ()
    step_min: float = 5.0
    eat_rate_g_per_min: float = 5.0
    name: str = "t1d_scenario"
    exercise: tuple["ExerciseEvent", ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "meals", tuple(self.meals))
        if not (self.step_min > 0 and self.duration_min > 0):
            raise ValueError("step_min and duration_min must be > 0 min")
        n = self.duration_min / self.step_min
        if abs(n - round(n)) > 1e-9:
            raise ValueError(f"duration_min={self.duration_min} must be a whole number of step_min={self.step_min}")
        if not self.eat_rate_g_per_min > 0:
            raise ValueError(f"eat_rate_g_per_min={self.eat_rate_g_per_min} must be > 0")
        object.__setattr__(self, "exercise", tuple(self.exercise))
        for e in self.exercise:
            t, d, x = (np.asarray(v, float) for v in (e.time_min, e.duration_min, e.intensity_pct_vo2max))
            if np.any(~np.isfinite(t)) or np.any(t < 0) or np.any(t >= self.duration_min):
                raise ValueError(f"exercise time_min must be within [0, duration_min={self.duration_min}), got {e.time_min!r}")
            if np.any(~np.isfinite(d)) or np.any(d <= 0) or np.any(d > 1440):
                raise ValueError(f"exercise duration_min must be within (0, 1440] min, got {e.duration_min!r}")
            if np.any(~np.isfinite(x)) or np.any(x < 0) or np.any(x > 100):
                raise ValueError(f"exercise intensity_pct_vo2max must be within [0, 100] % VO2max, got {e.intensity_pct_vo2max!r}")
        for m in self.meals:
            c = np.asarray(m.carbs_g, float)
            t = np.asarray(m.time_min, float)
            if np.any(~np.isfinite(c)) or np.any(c < 0) or np.any(c > 1000):
                raise ValueError(f"meal carbs_g must be within [0, 1000] g, got {m.carbs_g!r}")
            if np.any(~np.isfinite(t)) or np.any(t < 0) or np.any(t >= self.duration_min):
                raise ValueError(f"meal time_min must be within [0, duration_min={self.duration_min}), got {m.time_min!r}")

    @property
    def n_intervals(self) -> int:
        return int(round(self.duration_min / self.step_min))

    @property
    def save_every_min(self) -> float:
        return self.step_min

    @property
    def duration_days(self) -> float:
        return self.duration_min / 1440.0

    @property
    def time_min(self) -> np.ndarray:
        return np.arange(self.n_intervals + 1) * self.step_min

    def arrays(self, n_people: int) -> tuple[np.ndarray, np.ndarray]:
        """``(carbs_g_per_min, announced_g)``, each ``(n_people, n_intervals)``."""
        T, dt = self.n_intervals, self.step_min
        carbs = np.zeros((n_people, T))
        announced = np.zeros((n_people, T))
        for m in self.meals:
            t0 = np.broadcast_to(np.asarray(m.time_min, float), (n_people,))
            g = np.broadcast_to(np.asarray(m.carbs_g, float), (n_people,))
            t1 = t0 + g / self.eat_rate_g_per_min
            _add_overlap(carbs, dt, t0, t1, self.eat_rate_g_per_min)
            bolused = np.broadcast_to(np.asarray(m.bolused, bool), (n_people,))
            tb = np.clip(t0 + np.broadcast_to(np.asarray(m.bolus_delay_min, float), (n_people,)), 0.0, self.duration_min - dt)
            kb = np.floor(tb / dt + 1e-9).astype(int)
            np.add.at(announced, (np.arange(n_people)[bolused], kb[bolused]), g[bolused])
        return carbs, announced

    def exercise_arrays(self, n_people: int) -> tuple[np.ndarray, np.ndarray]:
        """``(intensity, announced)`` [% VO2max above rest], each ``(n_people, n_intervals)``: the
        time-weighted mean exercise intensity over each control interval (overlapping sessions add),
        and the part of it the person announced to the therapy."""
        T, dt = self.n_intervals, self.step_min
        starts = np.arange(T) * dt
        intensity = np.zeros((n_people, T))
        announced = np.zeros((n_people, T))
        for e in self.exercise:
            t0 = np.broadcast_to(np.asarray(e.time_min, float), (n_people,))
            t1 = t0 + np.broadcast_to(np.asarray(e.duration_min, float), (n_people,))
            x = np.broadcast_to(np.asarray(e.intensity_pct_vo2max, float), (n_people,))
            overlap = _overlap_min(starts, dt, t0, t1)
            part = overlap / dt * x[:, None]
            intensity += part
            announced += part * np.broadcast_to(np.asarray(e.announced, bool), (n_people,))[:, None]
        return intensity, announced

    @classmethod
    def daily(cls, days: int = 1, meals=((420.0, 45.0), (720.0, 70.0), (1080.0, 80.0)), step_min: float = 5.0,
              eat_rate_g_per_min: float = 5.0) -> "T1DScenario":
        """The same meals every day (default 45 g 07:00, 70 g 12:00, 80 g 18:00), all bolused on time."""
        events = [MealEvent(d * 1440.0 + t, g) for d in range(int(days)) for t, g in meals]
        return cls(days * 1440.0, tuple(events), step_min, eat_rate_g_per_min, name=f"daily_{days}d")

    @classmethod
    def random(cls, n_people: int, days: int = 1, *, seed: int = 0, step_min: float = 5.0,
               p_missed_bolus: float = 0.0, p_late_bolus: float = 0.0, late_bolus_min=(15.0, 60.0),
               eat_rate_g_per_min: float = 5.0) -> "T1DScenario":
        """Seeded random meals per person and day: breakfast 07:00 ± 45 min (45 ± 10 g), lunch
        12:30 ± 45 min (70 ± 15 g), dinner 19:00 ± 45 min (80 ± 15 g), and with probability 0.5 a
        snack 16:00 ± 60 min (15 ± 5 g) (normal draws, sizes ≥ 5 g). Each bolus is missed with
        probability ``p_missed_bolus``, or else late with probability ``p_late_bolus`` by a delay
        uniform in ``late_bolus_min``. Same seed → same scenario."""
        for name, p in (("p_missed_bolus", p_missed_bolus), ("p_late_bolus", p_late_bolus)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}={p} must be within [0, 1]")
        rng = np.random.default_rng(seed)
        plan = [(420.0, 45.0, 45.0, 10.0, 1.0), (750.0, 45.0, 70.0, 15.0, 1.0),
                (1140.0, 45.0, 80.0, 15.0, 1.0), (960.0, 60.0, 15.0, 5.0, 0.5)]
        events = []
        duration = days * 1440.0
        for d in range(int(days)):
            for t_mean, t_sd, g_mean, g_sd, p_eat in plan:
                t = np.clip(d * 1440.0 + t_mean + t_sd * rng.standard_normal(n_people), d * 1440.0, duration - step_min)
                g = np.maximum(g_mean + g_sd * rng.standard_normal(n_people), 5.0) * (rng.random(n_people) < p_eat)
                missed = rng.random(n_people) < p_missed_bolus
                late = (~missed) & (rng.random(n_people) < p_late_bolus)
                delay = np.where(late, rng.uniform(*late_bolus_min, n_people), 0.0)
                events.append(MealEvent(t, g, ~missed, delay))
        return cls(duration, tuple(events), step_min, eat_rate_g_per_min, name=f"random_{days}d_seed{seed}")


# --------------------------------------------------------------------------- cohorts and simulation


@dataclass(frozen=True)
class T1DCohort:
    """People with type 1 diabetes: model, parameters, initial states and therapy information."""

    model: UvaPadova2008
    params: UvaPadova2008Params
    y0: UvaPadovaState
    info: PatientInfo
    names: tuple[str, ...]

    @property
    def n_people(self) -> int:
        return len(self.names)


def uva_padova_cohort(names: Sequence[str] | None = None, replicate: int = 1, *, dtype=jnp.float64) -> T1DCohort:
    """The 30 public UVA/Padova 2008 patients (or ``names``), optionally replicated ``replicate`` times."""
    model, params, y0, table = load_patients(names, dtype=dtype)
    if replicate < 1:
        raise ValueError(f"replicate={replicate} must be ≥ 1")
    rep = lambda a: jnp.tile(a, replicate)  # noqa: E731
    params = jax.tree_util.tree_map(rep, params)
    y0 = jax.tree_util.tree_map(rep, y0)
    info = PatientInfo(
        cr_g_per_u=rep(jnp.asarray(table["CR"].to_numpy(float), dtype)),
        cf_mg_per_dl_per_u=rep(jnp.asarray(table["CF"].to_numpy(float), dtype)),
        basal_u_per_h=params.basal_insulin_u_per_h,
        tdi_u=rep(jnp.asarray(table["TDI"].to_numpy(float), dtype)),
        bw_kg=params.BW,
    )
    base = list(table["Name"])
    names_out = tuple(base if replicate == 1 else [f"{n}/{r}" for r in range(replicate) for n in base])
    return T1DCohort(model, params, y0, info, names_out)


@dataclass(frozen=True)
class T1DResult:
    """Result of :func:`simulate_t1d`: blood glucose at every node, per-interval device records."""

    cohort: T1DCohort
    scenario: T1DScenario
    time_min: np.ndarray
    states: dict
    records: dict  #: name → (n_people, n_intervals): CGM, requested/delivered basal and bolus, carbs
    status: jax.Array
    mode: str

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of people whose simulation succeeded. ``NEGATIVE_GLUCOSE`` marks people whose
        plasma glucose fell below zero: the S2008 model has no counter-regulation, so this is a
        severe hypoglycaemia outside the model's validity, reported rather than clamped."""
        from ._engine import Status

        return np.asarray(self.status) == Status.OK

    def blood_glucose_mg_per_dl(self):
        """Plasma (blood) glucose Gp/VG [mg/dL], shape ``(n_people, T + 1)``."""
        return self.states["glucose_plasma"] / self.cohort.params.VG[:, None]

    def insulin_delivered_u(self):
        """Insulin delivered per person over the whole scenario [U] (basal + boluses)."""
        r = self.records
        return jnp.sum(r["basal_delivered [U/h]"] * self.scenario.step_min / 60.0 + r["bolus_delivered [U]"], axis=-1)

    def metrics(self, on: str = "blood") -> pd.DataFrame:
        """Consensus glycaemic metrics per person (``on="blood"`` glucose at each node, or ``"cgm"``).

        People whose solve failed keep their row and status with NaN metrics."""
        from ._glycemic import glycemic_table
        from ._engine import Status

        if on not in ("blood", "cgm"):
            raise ValueError(f"on={on!r}; allowed: 'blood', 'cgm'")
        g = self.blood_glucose_mg_per_dl() if on == "blood" else self.records["cgm [mg/dL]"]
        df = glycemic_table(g)
        status = np.asarray(self.status)
        df.loc[status != Status.OK, :] = np.nan
        df.insert(0, "status", [Status(int(s)).name for s in status])
        df.insert(0, "patient", list(self.cohort.names))
        df["insulin_delivered [U]"] = np.asarray(self.insulin_delivered_u())
        df["carbs_eaten [g]"] = np.asarray(jnp.sum(self.records["carbs_eaten [g]"], axis=-1))
        return df


def simulate_t1d(
    cohort: T1DCohort,
    scenario: T1DScenario,
    controller: AbstractController | None = None,
    *,
    cgm: CGM | None = None,
    pump: Pump | None = None,
    mode: str = "fast",
    seed: int = 0,
    saved_states: Sequence[str] = ("glucose_plasma", "glucose_subcutaneous"),
    substeps: int | None = None,
    fast_solver: str = "bosh3",
    exercise_values: dict | None = None,
) -> T1DResult:
    """Simulate a T1D cohort through a scenario with a therapy in the loop.

    At every control step (``scenario.step_min``; the CGM is read once per step, whatever its own
    sample time): the CGM reads subcutaneous glucose (with seeded noise), the controller
    (batched over people with ``jax.vmap``) asks for a basal rate [U/h] and a bolus [U], the pump
    rounds and clips them, and the model receives ``basal/60 + bolus/step`` U/min over the step (so a
    bolus is delivered once, over one step) and the grams eaten in the step.

    Args:
        cohort: e.g. :func:`uva_padova_cohort`.
        scenario: meals and bolus behaviour (:class:`T1DScenario`).
        controller: a therapy (default :class:`BasalBolus`).
        cgm: sensor (default Dexcom with noise); ``CGM.named("Dexcom", noise=False)`` for noise-free.
        pump: pump (default Insulet).
        mode: ``"fast"`` (float32, batched fixed step) or ``"reference"`` (float64, adaptive).
        seed: seed of the sensor noise (same seed → same results).
        substeps: fast mode: fixed steps per control step. Default: the fewest steps of at most
            :data:`FAST_T1D_MAX_STEP_MIN` (5/3 min; 3 per 5-min control step), which is inside
            Bosh3's stability region for the model's fastest rate (≈ 1.24 /min) and measured at
            0.19 mg/dL from the float64 reference on the 30 patients (``vpop bench --case t1d``).
        fast_solver: fast-mode scheme (see :data:`vpop._engine.FAST_SOLVERS`). ``"bosh3"`` on the
            plain 2008 model runs the model's own written-out Bosh3
            (:func:`vpop.models._uvapadova2008.fast_bosh3_stepper`, the same tableau; ~2× faster than
            stepping diffrax's ``Bosh3``, which ``UvaPadova2008(fast_direct=False)`` restores).
        exercise_values: exercise parameters (:data:`vpop.models.EXERCISE_DEFAULTS`), used only when
            the scenario has exercise: then the cohort runs as :class:`vpop.models.UvaPadova2008Exercise`.

    Example:
        >>> import vpop
        >>> cohort = vpop.uva_padova_cohort(["adult#001"])
        >>> res = vpop.simulate_t1d(cohort, vpop.T1DScenario.daily(1), seed=1)
        >>> round(float(res.metrics()["time_in_range_70_180 [%]"][0])) > 50
        True
    """
    from ._engine import MODES, solve

    if mode not in MODES:
        raise ValueError(f"mode={mode!r}; allowed: {MODES}")
    if substeps is None:
        substeps = default_t1d_substeps(scenario.step_min)
    controller = BasalBolus() if controller is None else controller
    cgm = CGM.named("Dexcom") if cgm is None else cgm
    pump = Pump.named("Insulet") if pump is None else pump
    dtype = jnp.float64 if mode == "reference" else jnp.float32
    cast = lambda tree: jax.tree_util.tree_map(lambda a: _as_dtype(a, dtype), tree)  # noqa: E731
    n = cohort.n_people
    params, y0, info = cast(cohort.params), cast(cohort.y0), cast(cohort.info)
    carbs, announced = scenario.arrays(n)
    noise = cgm.noise_mg_per_dl(jax.random.PRNGKey(seed), n, scenario.time_min[:-1])
    exercise, exercise_announced = scenario.exercise_arrays(n)
    xs = cast(_T1DInputs(carbs, announced, noise, exercise, exercise_announced))
    model = cohort.model
    if scenario.exercise:  # the exercise variant only when needed: the no-exercise path is unchanged
        from .models._uvapadova2008_exercise import with_exercise

        model, params, y0 = with_exercise(model, params, y0, exercise_values)
    policy = _ClosedLoop(controller, pump, cgm.min_mg_per_dl, cgm.max_mg_per_dl, exercise=bool(scenario.exercise))
    pstate0 = (cast(jax.vmap(controller.init)(info)), info)
    saved, records, status = solve(
        model, params, y0, xs, dt=scenario.step_min, n_intervals=scenario.n_intervals, mode=mode,
        saved_states=tuple(dict.fromkeys(("glucose_plasma",) + tuple(saved_states))), policy=policy,
        pstate0=pstate0, substeps=substeps, fast_solver=fast_solver,
    )
    return T1DResult(cohort, scenario, scenario.time_min, saved, records, status, mode)


def _add_overlap(out, dt, t0, t1, rate):
    """``out += overlap·rate/dt`` with the overlaps of :func:`_overlap_min`, computed only for the
    intervals each person's ``[t0, t1)`` touches (elsewhere the overlap is 0): the same values as the
    dense ``(n_people, T)`` form, without building it."""
    n, T = out.shape
    k_lo = np.clip(np.floor(t0 / dt).astype(int), 0, T - 1)
    span = int(np.max(np.ceil(t1 / dt) - k_lo, initial=0)) + 1
    rows = np.arange(n)
    for j in range(max(span, 1)):
        k = k_lo + j
        ok = k < T
        r, k = rows[ok], k[ok]
        start = k * float(dt)
        overlap = np.clip(np.minimum(start + dt, t1[ok]) - np.maximum(start, t0[ok]), 0.0, dt)
        out[r, k] += overlap * rate / dt


def _as_dtype(a, dtype):
    """``a`` in ``dtype``: cast on the host (numpy) when concrete, since an eager XLA op per leaf
    costs more than the cast (measured 4-7% of a 10 020-person fast-mode day); traced leaves stay
    traced."""
    if isinstance(a, jax.core.Tracer):
        return jnp.asarray(a, dtype)
    return np.asarray(a, dtype)


def _overlap_min(starts, dt, t0, t1):
    """``(n_people, T)``: minutes of ``[t0, t1)`` (per person) inside each interval ``[start, start + dt)``."""
    return np.clip(np.minimum(starts[None] + dt, t1[:, None]) - np.maximum(starts[None], t0[:, None]), 0.0, dt)


#: Largest fast-mode step [min] of the T1D closed loop by default (see :func:`simulate_t1d`).
FAST_T1D_MAX_STEP_MIN = 5.0 / 3.0


def default_t1d_substeps(step_min: float) -> int:
    """Fast-mode steps per control step of ``step_min`` minutes: each at most 5/3 min."""
    return max(1, int(np.ceil(step_min / FAST_T1D_MAX_STEP_MIN - 1e-9)))


# --------------------------------------------------------------------------- new virtual patients

#: Parameters derived per sampled person from the basal steady state (not sampled).
_DERIVED_T1D = ("Ib", "u2ss")
#: Quest columns sampled jointly with the parameters.
_QUEST = ("CR", "CF", "TDI")


def _t1d_basal(p: UvaPadova2008Params):
    """Insulin that holds glucose at ``Gb`` for parameters ``p`` (elementwise): returns
    ``(Ib [pmol/L], u2ss [pmol/kg/min], EGPb [mg/kg/min])``.

    With X = 0 at basal, ``Vm0·Gt/(Km0 + Gt) = k1·Gp − k2·Gt`` fixes Gt (positive root of a
    quadratic); ``dGp/dt = 0`` then fixes EGPb, and ``EGP = kp1 − kp2·Gp − kp3·Ib`` fixes Ib; the
    insulin subsystem at steady state gives the delivery u2ss.
    """
    Gp = p.Gb * p.VG
    B = p.k2 * p.Km0 + p.Vm0 - p.k1 * Gp
    Gt = (-B + jnp.sqrt(B * B + 4.0 * p.k2 * p.k1 * Gp * p.Km0)) / (2.0 * p.k2)
    E = p.ke1 * jnp.maximum(Gp - p.ke2, 0.0)
    EGPb = p.Fsnc + E + p.k1 * Gp - p.k2 * Gt
    Ib = (p.kp1 - p.kp2 * Gp - EGPb) / p.kp3
    u2ss = Ib * p.VI * (p.m2 + p.m4 - p.m1 * p.m2 / (p.m1 + p.m30))
    return Ib, u2ss, EGPb


def sample_t1d_patients(n_people: int, *, seed: int = 0, groups: Sequence[str] = ("adolescent", "adult", "child"),
                        basal_u_per_h_range=(0.05, 5.0), insulin_pmol_per_l_range=(5.0, 500.0),
                        max_rounds: int = 50, dtype=jnp.float64) -> T1DCohort:
    """New T1D virtual people from the joint distribution of the 30 public patients.

    Every parameter except ``Ib`` and ``u2ss`` (33 − 2), plus the Quest CR, CF and TDI, is drawn
    from a multivariate normal fitted to the chosen groups of the 30 patients on the log scale
    (logit for the fractions f, b, d), so correlations between parameters are kept. ``Ib`` and the
    basal delivery ``u2ss`` are then derived so that the person's basal state is a steady state at
    their sampled basal glucose ``Gb`` (:func:`_t1d_basal`).

    Plausibility (rejection, redrawn until ``n_people`` are kept): the basal state must exist (EGPb > 0,
    Ib > 0), basal insulin must lie in ``basal_u_per_h_range`` [U/h] and basal plasma insulin in
    ``insulin_pmol_per_l_range`` [pmol/L], and every parameter must be inside its valid range.
    With 30 patients and 34 variables the covariance is rank-deficient: sampling happens in the
    span of the observed patients (a singular normal), which is conservative by design.
    """
    table = patient_table()
    table = table[table["group"].isin(groups)]
    if len(table) < 2:
        raise ValueError(f"groups={groups!r} select fewer than 2 patients")
    sampled = [k for k in PARAMETER_SPECS if k not in _DERIVED_T1D]
    cols = [_COLUMN_OF.get(k, k) for k in sampled] + list(_QUEST)
    frac = [PARAMETER_SPECS[k].fraction for k in sampled] + [False] * len(_QUEST)
    X = table[cols].to_numpy(float)
    frac = np.asarray(frac)
    Z = np.log(X)
    Z[:, frac] = np.log(X[:, frac] / (1.0 - X[:, frac]))
    mu = Z.mean(axis=0)
    U, s, Vt = np.linalg.svd(Z - mu, full_matrices=False)
    scale = s / np.sqrt(len(Z) - 1)  # singular normal in the span of the data
    rng = np.random.default_rng(seed)
    kept, n_kept = [], 0
    for _ in range(max_rounds):
        z = mu + (rng.standard_normal((n_people, len(scale))) * scale) @ Vt
        x = np.where(frac, 1.0 / (1.0 + np.exp(-z)), np.exp(z))
        values = dict(zip(sampled, x[:, : len(sampled)].T))
        values.update({"Ib": np.ones(n_people), "u2ss": np.ones(n_people)})
        p = UvaPadova2008Params(**{k: jnp.asarray(v, dtype) for k, v in values.items()})
        Ib, u2ss, EGPb = (np.asarray(a) for a in _t1d_basal(p))
        basal = u2ss * values["BW"] * 60.0 / 6000.0
        ok = (EGPb > 0) & (Ib > insulin_pmol_per_l_range[0]) & (Ib < insulin_pmol_per_l_range[1])
        ok &= (basal >= basal_u_per_h_range[0]) & (basal <= basal_u_per_h_range[1])
        values.update({"Ib": Ib, "u2ss": u2ss})
        for k, spec in PARAMETER_SPECS.items():
            ok &= spec.valid(values[k])
        idx = np.flatnonzero(ok)[: n_people - n_kept]
        kept.append(({k: v[idx] for k, v in values.items()}, x[idx, len(sampled):]))
        n_kept += idx.size
        if n_kept == n_people:
            break
    else:
        raise ValueError(f"sample_t1d_patients: only {n_kept} plausible people in {max_rounds} rounds")
    values = {k: np.concatenate([kv[0][k] for kv in kept]) for k in PARAMETER_SPECS}
    quest = np.concatenate([kv[1] for kv in kept])
    model = UvaPadova2008()
    params = model.Params.from_dict(values, dtype=dtype)
    y0 = model.basal_state(params)
    info = PatientInfo(jnp.asarray(quest[:, 0], dtype), jnp.asarray(quest[:, 1], dtype), params.basal_insulin_u_per_h,
                       jnp.asarray(quest[:, 2], dtype), params.BW)
    names = tuple(f"virtual#{i:05d}" for i in range(n_people))
    return T1DCohort(model, params, y0, info, names)
