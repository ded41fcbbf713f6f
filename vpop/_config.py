"""Study configs: YAML data validated with pydantic before any compute.

Every field carries its unit in its name (``carbs_g``, ``time_min``). Unknown keys are errors
(``extra="forbid"``), so a unit slip such as ``carbs_mg:`` or ``time_h:`` is caught with a message
naming the field. Parameter overrides are numbers in the unit of the parameter's spec, or strings
``"<number> <unit>"`` whose unit must match the spec exactly.

Example (``vpop/configs/default_study.yaml`` is the embedded default)::

    name: my_study
    seed: 0
    mode: reference
    protocol: {kind: ogtt, glucose_g: 75, duration_min: 180}
    cohorts:
      - {name: normal, parameter_set: DallaMan2007_normal, n_people: 100,
         variability: {cv: {Vmx: 0.3}}}
"""

from __future__ import annotations

import dataclasses
import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ._parameters import available_parameter_sets, load_parameter_set
from ._protocols import ExerciseBout, Meal, Protocol, fasting, mixed_meals, ogtt
from .models import MODELS


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MealConfig(_Strict):
    time_min: float = Field(ge=0, description="time of the meal from the start [min]")
    carbs_g: float = Field(ge=0, le=1000, description="carbohydrate (glucose equivalent) [g]")


class DailyMealConfig(_Strict):
    time_of_day_min: float = Field(ge=0, lt=1440, description="time of day [min after midnight]")
    carbs_g: float = Field(ge=0, le=1000, description="carbohydrate (glucose equivalent) [g]")


class ExerciseBoutConfig(_Strict):
    start_min: float = Field(ge=0, description="start of the bout from the start of the protocol [min]")
    duration_min: float = Field(gt=0, le=1440, description="length of the bout [min]")
    intensity_pct_vo2max: float = Field(gt=0, le=100, description="intensity [% VO2max above rest]")


_EXERCISE_FIELD_DOC = ("exercise bouts (start and end on the output grid); a DallaMan2007 cohort is then simulated with "
                       "DallaMan2007Exercise (Dalla Man 2009 exercise terms)")


class OgttProtocolConfig(_Strict):
    kind: Literal["ogtt"]
    glucose_g: float = Field(75.0, gt=0, le=300)
    duration_min: float = Field(180.0, ge=120, le=1440)


class MixedMealsProtocolConfig(_Strict):
    kind: Literal["mixed_meals"]
    days: int = Field(1, ge=1, le=3650)
    daily_meals: list[DailyMealConfig] = Field(
        default_factory=lambda: [
            DailyMealConfig(time_of_day_min=420, carbs_g=45),
            DailyMealConfig(time_of_day_min=720, carbs_g=70),
            DailyMealConfig(time_of_day_min=1140, carbs_g=70),
        ]
    )
    exercise: list[ExerciseBoutConfig] = Field(default_factory=list, description=_EXERCISE_FIELD_DOC)


class MealsProtocolConfig(_Strict):
    kind: Literal["meals"]
    duration_min: float = Field(gt=0, le=60 * 24 * 3650)
    meals: list[MealConfig]
    exercise: list[ExerciseBoutConfig] = Field(default_factory=list, description=_EXERCISE_FIELD_DOC)


class FastingProtocolConfig(_Strict):
    kind: Literal["fasting"]
    duration_min: float = Field(480.0, gt=0, le=60 * 24 * 30)
    exercise: list[ExerciseBoutConfig] = Field(default_factory=list, description=_EXERCISE_FIELD_DOC)


ProtocolConfig = Annotated[
    Union[OgttProtocolConfig, MixedMealsProtocolConfig, MealsProtocolConfig, FastingProtocolConfig],
    Field(discriminator="kind"),
]


class CorrelationConfig(_Strict):
    a: str
    b: str
    rho: float = Field(gt=-1, lt=1)


class VariabilityConfig(_Strict):
    cv: dict[str, float] = Field(default_factory=dict, description="coefficient of variation per parameter [1]")
    correlations: list[CorrelationConfig] = Field(default_factory=list)

    @field_validator("cv")
    @classmethod
    def _cv_range(cls, v):
        for k, c in v.items():
            if not (0.0 <= c <= 3.0):
                raise ValueError(f"cv.{k} = {c} is outside the allowed range [0, 3]")
        return v


_QUANTITY = re.compile(r"^\s*([-+0-9.eE]+)\s+(.+?)\s*$")


class CohortConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    parameter_set: str
    n_people: int = Field(ge=1, le=10_000_000)
    overrides: dict[str, Union[float, str]] = Field(default_factory=dict)
    variability: VariabilityConfig = Field(default_factory=VariabilityConfig)

    @field_validator("parameter_set")
    @classmethod
    def _known_set(cls, v):
        names = available_parameter_sets()
        if v not in names:
            raise ValueError(f"unknown parameter_set {v!r}; available: {names}")
        return v

    @model_validator(mode="after")
    def _check_parameters(self):
        pset = load_parameter_set(self.parameter_set)
        specs = MODELS[pset.model].parameter_specs
        for name in list(self.overrides) + list(self.variability.cv):
            if name not in specs:
                raise ValueError(f"unknown parameter {name!r} for model {pset.model}; allowed: {sorted(specs)}")
        for c in self.variability.correlations:
            for x in (c.a, c.b):
                if x not in self.variability.cv:
                    raise ValueError(f"correlation names {x!r}, which has no cv entry")
        for name, value in self.overrides.items():
            specs[name].check(f"overrides.{name}", self.override_values()[name])
        return self

    def override_values(self) -> dict[str, float]:
        """Overrides as floats in the spec unit (``"0.05 1/min"`` strings unit-checked)."""
        pset = load_parameter_set(self.parameter_set)
        specs = MODELS[pset.model].parameter_specs
        out = {}
        for name, value in self.overrides.items():
            if isinstance(value, str):
                m = _QUANTITY.match(value)
                if not m:
                    raise ValueError(f"overrides.{name} = {value!r}: write a number or '<number> <unit>'")
                number, unit = float(m.group(1)), m.group(2)
                if unit != specs[name].unit:
                    raise ValueError(
                        f"overrides.{name} = {value!r}: wrong unit {unit!r}, expected {specs[name].unit!r}"
                    )
                out[name] = number
            else:
                out[name] = float(value)
        return out


class OutputsConfig(_Strict):
    traces: bool = True
    traces_every_min: float = Field(5.0, gt=0)
    figure: bool = True


class StudyConfig(_Strict):
    """A cohort study: who (cohorts), what happens (protocol), how to solve, what to write."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, ge=0)
    mode: Literal["reference", "fast"] = "reference"
    save_every_min: float = Field(1.0, gt=0, le=60)
    chunk_size: int = Field(2000, ge=1, le=1_000_000, description="people per compiled call")
    stream: bool = Field(False, description="stream per-person summaries to parquet chunk by chunk "
                                            "(flat memory for large cohorts; no traces or figure)")
    protocol: ProtocolConfig
    cohorts: list[CohortConfig] = Field(min_length=1)
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)

    @model_validator(mode="after")
    def _unique_names(self):
        names = [c.name for c in self.cohorts]
        if len(set(names)) != len(names):
            raise ValueError(f"cohort names must be unique, got {names}")
        self.build_protocol()  # grid/meal-time errors surface at validation time
        if self.stream:
            asked = {k for k in ("traces", "figure") if k in self.outputs.model_fields_set and getattr(self.outputs, k)}
            if asked:
                raise ValueError(f"stream: true writes per-person summaries only; set outputs.{sorted(asked)[0]}: false")
        return self

    def build_protocol(self) -> Protocol:
        p = self.protocol
        dt = self.save_every_min
        if p.kind == "ogtt":
            return ogtt(p.glucose_g, p.duration_min, dt)
        if p.kind == "mixed_meals":
            out = mixed_meals(p.days, [(m.time_of_day_min, m.carbs_g) for m in p.daily_meals], dt)
        elif p.kind == "fasting":
            out = fasting(p.duration_min, dt)
        else:
            out = Protocol(p.duration_min, tuple(Meal(m.time_min, m.carbs_g) for m in p.meals), dt, name="meals")
        if p.exercise:
            bouts = tuple(ExerciseBout(b.start_min, b.duration_min, b.intensity_pct_vo2max) for b in p.exercise)
            out = dataclasses.replace(out, exercise=bouts)
        return out


class ConfigError(ValueError):
    """A config failed validation; the message names each offending field."""


def _format_validation_error(e: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field (check its name and unit suffix, e.g. carbs_g, time_min)"
        lines.append(f"  - {loc or '<root>'}: {msg}" + (f" (got {err['input']!r})" if err["type"] != "extra_forbidden" and not isinstance(err.get("input"), dict) else ""))
    return "\n".join(lines)


def parse_config(data: dict, source: str = "<dict>") -> StudyConfig:
    """Validate a config mapping; raise :class:`ConfigError` naming every bad field."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: top level must be a mapping")
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, source)) from None


def load_study_config(path: str | Path | None = None):
    """Load and validate any study config: a population study (has ``population:``, see
    :class:`vpop._population_study.PopulationStudyConfig`) or a parameter-set cohort study
    (:class:`StudyConfig`). ``None``: the embedded default study."""
    text, source = _read(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {source}: {e}") from None
    if isinstance(data, dict) and "population" in data:
        from ._population_study import PopulationStudyConfig

        try:
            return PopulationStudyConfig.model_validate(data)
        except ValidationError as e:
            raise ConfigError(_format_validation_error(e, source)) from None
    return parse_config(data, source)


def _read(path) -> tuple[str, str]:
    if path is None:
        return (resources.files("vpop") / "configs" / "default_study.yaml").read_text(), "<embedded default_study.yaml>"
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file not found: {p}")
    return p.read_text(), str(p)


def load_config(path: str | Path | None = None) -> StudyConfig:
    """Load and validate a parameter-set cohort study config (``None``: the embedded default).

    Use :func:`load_study_config` to accept population studies too."""
    text, source = _read(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"invalid YAML in {source}: {e}") from None
    return parse_config(data, source)
