"""Covariates: who the virtual people are (age, sex, body size, risk factors, micronutrient status).

A covariate model is data (YAML, validated with pydantic): an ordered list of covariates, each with
a distribution, its unit in its name (``bmi_kg_per_m2``, ``vitamin_d_25ohd_nmol_per_l``), an optional
clip range, and **dependencies on covariates listed before it**. Dependencies make the joint
distribution: a continuous covariate's location (its mean, or its log-median for log-normal ones)
is shifted by ``Σ coefficient × (parent − centre)`` over its parents, and a level of a categorical
parent is written ``"ethnicity=black"`` (an indicator). So BMI–waist, age–vitamin D or diet
quality–magnesium intake correlations come from explicit, sourced regression coefficients rather
than an opaque correlation matrix, and sampling is one pass in order.

Distributions
-------------
``normal`` (mean, sd) · ``lognormal`` (median, sd_log) · ``zero_inflated_lognormal`` (p_zero,
median, sd_log; for "none" plus a skewed amount, e.g. activity) · ``bernoulli`` (p; 0/1) ·
``categorical`` (levels with probabilities; stored as integer codes with the level names) ·
``piecewise_uniform`` (bin edges and weights; e.g. an age pyramid).

Categorical and Bernoulli covariates take no parents. Sampling is seeded (numpy
``default_rng(seed)``): the same model, size and seed give the same people.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CovariateSpec(_Strict):
    """One covariate: distribution, dependencies and provenance."""

    dist: Literal["normal", "lognormal", "zero_inflated_lognormal", "bernoulli", "categorical", "piecewise_uniform"]
    description: str = ""
    source: str = Field(description="where the distribution comes from, and how sure it is")
    mean: float | None = None
    sd: float | None = Field(None, ge=0)
    median: float | None = Field(None, gt=0)
    sd_log: float | None = Field(None, ge=0)
    p_zero: float | None = Field(None, ge=0, le=1)
    p: float | None = Field(None, ge=0, le=1)
    levels: dict[str, float] | None = None
    edges: list[float] | None = None
    weights: list[float] | None = None
    depends: dict[str, float] = Field(default_factory=dict, description="parent → coefficient (on the location scale)")
    centre: dict[str, float] = Field(default_factory=dict, description="parent → value at which the coefficient is zero")
    clip: tuple[float, float] | None = None
    reference_range: tuple[float, float] | None = Field(None, description="clinical reference range (for reports)")
    deficient_below: float | None = Field(None, description="deficiency cut-off (for reports and arms)")

    @model_validator(mode="after")
    def _needs(self):
        need = {
            "normal": ("mean", "sd"), "lognormal": ("median", "sd_log"),
            "zero_inflated_lognormal": ("p_zero", "median", "sd_log"), "bernoulli": ("p",),
            "categorical": ("levels",), "piecewise_uniform": ("edges", "weights"),
        }[self.dist]
        missing = [k for k in need if getattr(self, k) is None]
        if missing:
            raise ValueError(f"dist {self.dist!r} needs {missing}")
        if self.dist in ("categorical", "bernoulli") and self.depends:
            raise ValueError(f"a {self.dist} covariate takes no parents (depends)")
        if self.levels is not None:
            total = sum(self.levels.values())
            if abs(total - 1.0) > 1e-6 or min(self.levels.values()) < 0:
                raise ValueError(f"level probabilities must be ≥ 0 and sum to 1 (sum {total})")
        if self.edges is not None:
            if len(self.edges) != len(self.weights or []) + 1 or np.any(np.diff(self.edges) <= 0):
                raise ValueError("piecewise_uniform needs increasing edges and one weight per bin")
        if self.clip is not None and not self.clip[0] < self.clip[1]:
            raise ValueError(f"clip {self.clip} must be (low, high) with low < high")
        return self


class CovariateModel(_Strict):
    """An ordered set of covariates (parents before children)."""

    covariates: dict[str, CovariateSpec]

    @model_validator(mode="after")
    def _order(self):
        seen: dict[str, CovariateSpec] = {}
        for name, spec in self.covariates.items():
            for parent in spec.depends:
                base, _, level = parent.partition("=")
                if base not in seen:
                    raise ValueError(f"covariate {name!r} depends on {base!r}, which is not listed before it")
                if level and (seen[base].levels is None or level not in seen[base].levels):
                    raise ValueError(f"covariate {name!r} depends on {parent!r}: {base!r} has no level {level!r}")
                if not level and seen[base].dist == "categorical":
                    raise ValueError(f"covariate {name!r}: depend on a level of {base!r}, e.g. '{base}=<level>'")
            seen[name] = spec
        return self

    def levels(self, name: str) -> list[str] | None:
        spec = self.covariates[name]
        return list(spec.levels) if spec.levels is not None else None


@dataclass(frozen=True, eq=False)
class Covariates:
    """Sampled covariates: ``values[name]`` is an array over people (categorical: integer codes)."""

    model: CovariateModel
    values: dict[str, np.ndarray]

    @property
    def n_people(self) -> int:
        return len(next(iter(self.values.values())))

    def indicator(self, name: str, level: str) -> np.ndarray:
        levels = self.model.levels(name)
        if levels is None:
            raise ValueError(f"covariate {name!r} is not categorical")
        if level not in levels:
            raise ValueError(f"covariate {name!r} has no level {level!r}; levels: {levels}")
        return (self.values[name] == levels.index(level)).astype(float)

    def numeric(self, key: str) -> np.ndarray:
        """A covariate as floats; ``"name=level"`` gives the 0/1 indicator of a level."""
        base, _, level = key.partition("=")
        if base not in self.values:
            raise ValueError(f"unknown covariate {base!r}; available: {sorted(self.values)}")
        if level:
            return self.indicator(base, level)
        if self.model.levels(base) is not None:
            raise ValueError(f"covariate {base!r} is categorical; name a level, e.g. '{base}=<level>'")
        return np.asarray(self.values[base], float)

    def replace(self, **values: np.ndarray) -> "Covariates":
        new = dict(self.values)
        for k, v in values.items():
            if k not in new:
                raise ValueError(f"unknown covariate {k!r}")
            new[k] = np.asarray(v)
        return Covariates(self.model, new)

    def to_frame(self) -> pd.DataFrame:
        """One row per person; categorical covariates as pandas categoricals (level names)."""
        cols = {}
        for name, v in self.values.items():
            levels = self.model.levels(name)
            cols[name] = pd.Categorical.from_codes(v, levels) if levels is not None else v
        return pd.DataFrame(cols)


def sample_covariates(model: CovariateModel, n_people: int, seed: int = 0) -> Covariates:
    """Draw ``n_people`` people from ``model`` (seeded; parents before children)."""
    if int(n_people) < 1:
        raise ValueError(f"n_people={n_people} must be ≥ 1")
    n = int(n_people)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    cov = Covariates(model, out)
    for name, s in model.covariates.items():
        shift = np.zeros(n)
        for parent, coef in s.depends.items():
            x = cov.numeric(parent)
            shift += coef * (x - s.centre.get(parent, 0.0))
        if s.dist == "normal":
            v = s.mean + shift + s.sd * rng.standard_normal(n)
        elif s.dist == "lognormal":
            v = s.median * np.exp(shift + s.sd_log * rng.standard_normal(n))
        elif s.dist == "zero_inflated_lognormal":
            z = rng.standard_normal(n)
            zero = rng.random(n) < s.p_zero
            v = np.where(zero, 0.0, s.median * np.exp(shift + s.sd_log * z))
        elif s.dist == "bernoulli":
            v = (rng.random(n) < s.p).astype(float)
        elif s.dist == "categorical":
            probs = np.array(list(s.levels.values()))
            v = rng.choice(len(probs), size=n, p=probs / probs.sum()).astype(np.int32)
        else:  # piecewise_uniform
            w = np.asarray(s.weights, float)
            k = rng.choice(len(w), size=n, p=w / w.sum())
            lo, hi = np.asarray(s.edges)[k], np.asarray(s.edges)[k + 1]
            v = lo + (hi - lo) * rng.random(n)
        if s.clip is not None and s.dist not in ("categorical", "bernoulli"):
            v = np.clip(v, *s.clip)
        out[name] = v
    return Covariates(model, out)


