"""Parameter metadata (units, valid ranges) and parameter-set files.

Values, their properties and model structure are kept apart (as in dynamax): a model's
parameters are an :class:`equinox.Module` of arrays; the properties of each parameter live in a
:class:`ParamSpec` table next to the model; named parameter sets are YAML data files shipped in
``vpop/parameter_sets/`` with their citation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Mapping

import numpy as np
import yaml


@dataclass(frozen=True)
class ParamSpec:
    """Properties of one model parameter.

    Attributes:
        unit: physical unit, as written in tables and column names.
        lower: lower bound of the valid range.
        upper: upper bound of the valid range (inclusive).
        description: what the parameter means.
        lower_inclusive: whether ``lower`` itself is allowed (``False``: strictly positive rates).
        fraction: a dimensionless fraction in (0, 1): varied on the logit scale in populations.
    """

    unit: str
    lower: float
    upper: float
    description: str
    lower_inclusive: bool = False
    fraction: bool = False

    def range_text(self) -> str:
        left = "[" if self.lower_inclusive else "("
        return f"{left}{self.lower:g}, {self.upper:g}] {self.unit}"

    def valid(self, value: Any) -> np.ndarray:
        """Elementwise: finite and inside the range."""
        arr = np.asarray(value, dtype=float)
        ok = np.isfinite(arr) & (arr <= self.upper)
        return ok & ((arr >= self.lower) if self.lower_inclusive else (arr > self.lower))

    def check(self, name: str, value: Any) -> None:
        """Raise ``ValueError`` naming ``name`` if any element of ``value`` is outside the range."""
        arr = np.asarray(value, dtype=float)
        bad = ~self.valid(arr)
        if np.any(bad):
            first = arr.reshape(-1)[int(np.argmax(bad.reshape(-1)))]
            where = "" if arr.ndim == 0 else f" ({int(bad.sum())} of {arr.size} values, e.g.)"
            raise ValueError(
                f"parameter {name!r} = {first:g}{where} is outside its valid range "
                f"{self.range_text()} ({self.description})"
            )


def check_parameters(
    values: Mapping[str, Any], specs: Mapping[str, ParamSpec], *, where: str, require_all: bool = True
) -> None:
    """Check names and ranges of a parameter mapping against a spec table.

    Raises ``ValueError`` naming the unknown, missing or out-of-range field.
    """
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ValueError(
            f"{where}: unknown parameter(s) {unknown}; allowed: {sorted(specs)}"
        )
    if require_all:
        missing = sorted(set(specs) - set(values))
        if missing:
            raise ValueError(f"{where}: missing parameter(s) {missing}")
    for name, value in values.items():
        specs[name].check(f"{where}.{name}", value)


@dataclass(frozen=True)
class ParameterSet:
    """A named parameter set loaded from ``vpop/parameter_sets/<name>.yaml``.

    Attributes:
        name: the set's name (``<Author><Year>_<variant>``).
        model: name of the model the set belongs to.
        citation: where the values come from.
        values: parameter values (floats), in the units of the model's spec table.
        basal: ``"derived"`` (basal glucose/insulin/secretion computed from the rate constants so the
            basal state is a steady state) or ``"given"`` (the values of ``Gb``, ``Ib``, ``Sb`` are used as
            written, e.g. to reproduce an SBML encoding).
        model_options: options of the model structure the set was published with.
        initial_state: optional explicit initial state (state name → value) instead of the basal state.
        notes: free text.
    """

    name: str
    model: str
    citation: str
    values: dict[str, float]
    basal: str = "derived"
    model_options: dict[str, Any] | None = None
    initial_state: dict[str, float] | None = None
    notes: str = ""


def available_parameter_sets() -> list[str]:
    """Names of the parameter sets shipped with vpop."""
    root = resources.files("vpop") / "parameter_sets"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_parameter_set(name: str) -> ParameterSet:
    """Load a shipped parameter set by name (see :func:`available_parameter_sets`)."""
    names = available_parameter_sets()
    if name not in names:
        raise ValueError(f"unknown parameter_set {name!r}; available: {names}")
    text = (resources.files("vpop") / "parameter_sets" / f"{name}.yaml").read_text()
    raw = yaml.safe_load(text)
    allowed = {"name", "model", "citation", "values", "basal", "model_options", "initial_state", "notes"}
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"parameter set {name!r}: unknown key(s) {sorted(unknown)}")
    if raw.get("basal", "derived") not in ("derived", "given"):
        raise ValueError(f"parameter set {name!r}: basal must be 'derived' or 'given'")
    values = {k: float(v) for k, v in raw["values"].items()}
    for k, v in values.items():
        if not math.isfinite(v):
            raise ValueError(f"parameter set {name!r}: value of {k!r} is not finite")
    return ParameterSet(
        name=raw.get("name", name),
        model=raw["model"],
        citation=raw["citation"].strip(),
        values=values,
        basal=raw.get("basal", "derived"),
        model_options=raw.get("model_options"),
        initial_state=raw.get("initial_state"),
        notes=(raw.get("notes") or "").strip(),
    )
