"""Protocols: events over time (meals, the OGTT, fasting) turned into solver inputs.

A protocol is a duration, an output grid step and a list of meals. Meals are impulses of
carbohydrate (glucose equivalent) into the stomach, applied as exact state jumps at the start of
an output interval, so the solver never integrates across a discontinuity and no stage of a step
can read the next interval's input (DESIGN §2). Meal times must therefore lie on the output grid.

Mass balance is an invariant: the grams you put in are the grams the gut model receives
(tested).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._units import MG_PER_G


@dataclass(frozen=True)
class Meal:
    """One meal: ``carbs_g`` grams of carbohydrate (glucose equivalent) eaten at ``time_min``.

    ``carbs_g`` may be a scalar (everyone eats the same) or one value per person.
    """

    time_min: float
    carbs_g: float | Sequence[float] | np.ndarray

    def __post_init__(self):
        if not math.isfinite(float(self.time_min)) or self.time_min < 0:
            raise ValueError(f"meal time_min={self.time_min!r} must be a finite number ≥ 0 min")
        carbs = np.asarray(self.carbs_g, dtype=float)
        if carbs.ndim > 1:
            raise ValueError(f"meal carbs_g must be a scalar or one value per person, got shape {carbs.shape}")
        if not np.all(np.isfinite(carbs)) or np.any(carbs < 0) or np.any(carbs > 1000):
            bad = carbs.reshape(-1)[~(np.isfinite(carbs.reshape(-1)) & (carbs.reshape(-1) >= 0) & (carbs.reshape(-1) <= 1000))][0]
            raise ValueError(f"meal carbs_g={float(bad):g} at time_min={self.time_min} is outside the allowed range [0, 1000] g")


@dataclass(frozen=True)
class ExerciseBout:
    """Exercise from ``start_min`` for ``duration_min`` minutes at ``intensity_pct_vo2max`` percent of
    VO2max above rest (Dalla Man, Breton & Cobelli 2009's input ``u``). Start and end must lie on
    the protocol's output grid, so the intensity is constant over each output interval. Only models
    with exercise terms (:class:`vpop.models.DallaMan2007Exercise`) read it."""

    start_min: float
    duration_min: float
    intensity_pct_vo2max: float

    def __post_init__(self):
        if not math.isfinite(float(self.start_min)) or self.start_min < 0:
            raise ValueError(f"exercise start_min={self.start_min!r} must be a finite number ≥ 0 min")
        if not math.isfinite(float(self.duration_min)) or self.duration_min <= 0:
            raise ValueError(f"exercise duration_min={self.duration_min!r} must be > 0 min")
        if not math.isfinite(float(self.intensity_pct_vo2max)) or not 0 < self.intensity_pct_vo2max <= 100:
            raise ValueError(f"exercise intensity_pct_vo2max={self.intensity_pct_vo2max!r} is outside the allowed range (0, 100] % VO2max")


@dataclass(frozen=True)
class Protocol:
    """Events over ``[0, duration_min]`` with outputs every ``save_every_min`` minutes.

    Attributes:
        duration_min: length of the simulation [min].
        meals: the meals (times on the output grid).
        exercise: exercise bouts (start and end on the output grid; read by exercise models only).
        save_every_min: output grid step [min]; also the interval at which events may occur.
        name: label used in outputs.
        kind: ``"meals"``, ``"ogtt"`` or ``"fasting"`` (used by observables).
    """

    duration_min: float
    meals: tuple[Meal, ...] = field(default_factory=tuple)
    save_every_min: float = 1.0
    name: str = "protocol"
    kind: str = "meals"
    exercise: tuple[ExerciseBout, ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "meals", tuple(self.meals))
        object.__setattr__(self, "exercise", tuple(self.exercise))
        if not (self.save_every_min > 0 and math.isfinite(self.save_every_min)):
            raise ValueError(f"save_every_min={self.save_every_min!r} must be > 0 min")
        if not (self.duration_min > 0 and math.isfinite(self.duration_min)):
            raise ValueError(f"duration_min={self.duration_min!r} must be > 0 min")
        n = self.duration_min / self.save_every_min
        if abs(n - round(n)) > 1e-9:
            raise ValueError(
                f"duration_min={self.duration_min} must be a whole number of save_every_min={self.save_every_min}"
            )
        for m in self.meals:
            k = m.time_min / self.save_every_min
            if abs(k - round(k)) > 1e-9:
                raise ValueError(
                    f"meal time_min={m.time_min} is not on the output grid (multiples of "
                    f"save_every_min={self.save_every_min} min)"
                )
            if m.time_min >= self.duration_min:
                raise ValueError(
                    f"meal time_min={m.time_min} must be < duration_min={self.duration_min}"
                )

        ends = []
        for b in self.exercise:
            for what, t in (("start_min", b.start_min), ("start_min + duration_min", b.start_min + b.duration_min)):
                k = t / self.save_every_min
                if abs(k - round(k)) > 1e-9:
                    raise ValueError(f"exercise {what}={t} is not on the output grid (multiples of save_every_min={self.save_every_min} min)")
            if b.start_min + b.duration_min > self.duration_min:
                raise ValueError(f"exercise from {b.start_min} min for {b.duration_min} min ends after duration_min={self.duration_min}")
            ends.append((b.start_min, b.start_min + b.duration_min))
        ends.sort()
        for (a0, a1), (b0, _) in itertools.pairwise(ends):
            if b0 < a1:
                raise ValueError(f"exercise bouts overlap: one from {a0} to {a1} min, the next from {b0} min")

    @property
    def n_intervals(self) -> int:
        return int(round(self.duration_min / self.save_every_min))

    @property
    def time_min(self) -> np.ndarray:
        """Output grid [min], ``n_intervals + 1`` points including both ends."""
        return np.arange(self.n_intervals + 1) * self.save_every_min

    @property
    def duration_days(self) -> float:
        return self.duration_min / 1440.0

    def exercise_pct_vo2max(self) -> np.ndarray:
        """Exercise intensity [% VO2max above rest] over each output interval, shape ``(n_intervals,)``."""
        out = np.zeros(self.n_intervals)
        for b in self.exercise:
            k0 = round(b.start_min / self.save_every_min)
            k1 = round((b.start_min + b.duration_min) / self.save_every_min)
            out[k0:k1] = b.intensity_pct_vo2max
        return out

    def total_carbs_g(self, n_people: int | None = None) -> np.ndarray:
        """Grams of carbohydrate eaten over the protocol (shape ``(n_people,)`` if meals vary per person)."""
        return self.doses_mg(n_people).sum(axis=-1) / MG_PER_G

    def doses_mg(self, n_people: int | None = None) -> np.ndarray:
        """Carbohydrate [mg] eaten at the start of each output interval.

        Shape ``(n_intervals,)`` if every meal is a scalar, else ``(n_people, n_intervals)``.
        """
        per_person = any(np.ndim(m.carbs_g) == 1 for m in self.meals)
        if per_person:
            if n_people is None:
                raise ValueError("per-person meal carbs_g need n_people")
            out = np.zeros((n_people, self.n_intervals))
        else:
            out = np.zeros(self.n_intervals)
        for m in self.meals:
            k = int(round(m.time_min / self.save_every_min))
            carbs = np.asarray(m.carbs_g, float) * MG_PER_G
            if carbs.ndim == 1:
                if carbs.shape[0] != n_people:
                    raise ValueError(
                        f"meal at time_min={m.time_min}: carbs_g has {carbs.shape[0]} values for {n_people} people"
                    )
                out[:, k] += carbs
            else:
                out[..., k] += carbs
        return out


def ogtt(glucose_g: float = 75.0, duration_min: float = 180.0, save_every_min: float = 1.0) -> Protocol:
    """Oral glucose tolerance test: ``glucose_g`` of glucose drunk at t = 0 after an overnight fast.

    The sample at t = 0 is the fasting glucose; the 2-h value is at t = 120 min.
    The drink passes through the same gut model as a meal (Dalla Man 2006 structure).
    """
    if duration_min < 120:
        raise ValueError(f"ogtt duration_min={duration_min} must be ≥ 120 min (the 2-h sample)")
    return Protocol(duration_min, (Meal(0.0, glucose_g),), save_every_min, name=f"ogtt_{glucose_g:g}g", kind="ogtt")


def fasting(duration_min: float = 480.0, save_every_min: float = 1.0) -> Protocol:
    """No food for ``duration_min`` minutes (from the basal, post-absorptive state)."""
    return Protocol(duration_min, (), save_every_min, name="fasting", kind="fasting")


def mixed_meals(
    days: int = 1,
    daily: Sequence[tuple[float, float]] = ((420.0, 45.0), (720.0, 70.0), (1140.0, 70.0)),
    save_every_min: float = 1.0,
) -> Protocol:
    """The same meals every day for ``days`` days: ``daily`` is ``[(time_of_day_min, carbs_g), ...]``.

    Default: breakfast 07:00 45 g, lunch 12:00 70 g, dinner 19:00 70 g.
    """
    if days < 1:
        raise ValueError(f"days={days} must be ≥ 1")
    meals = []
    for day in range(int(days)):
        for t, g in daily:
            if not (0 <= t < 1440):
                raise ValueError(f"daily meal time {t} min must be within a day [0, 1440)")
            meals.append(Meal(day * 1440.0 + t, g))
    return Protocol(days * 1440.0, tuple(meals), save_every_min, name=f"mixed_meals_{days}d", kind="meals")
