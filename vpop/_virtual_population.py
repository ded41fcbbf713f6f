"""Virtual populations in which physiology comes from who people are.

A :class:`PopulationConfig` (YAML in ``vpop/populations/``, validated with pydantic) has four parts:

1. **covariates** (:mod:`vpop._covariates`): age, sex, height, BMI, waist, ethnicity, family
   history, physical activity, diet quality, smoking and micronutrient status, sampled jointly.
2. **effects**: how covariates move physiology. Each effect is a config entry with its source, a
   central value and an uncertainty (95% CI or SE) that the sampler honours, and a ``finding``
   label (``effect``, ``null``, ``harmful``, ``no_estimate``, ``association_only``) so null and
   harmful findings are represented as such rather than dropped. Users can override any effect or
   add their own (:meth:`PopulationConfig.with_effects`).
3. **physiology**: the map from person-level factors to the Dalla Man 2007 model (below), with
   hyperparameters (baseline means and spreads) that :mod:`vpop._calibrate` fits to data.
4. **diagnostics / glycation / calibration targets**.

Person-level factors
--------------------
Three log-scale factors per person, relative to the Dalla Man 2007 normal subject (factor 1):

* hepatic insulin sensitivity ``s_h`` and peripheral insulin sensitivity ``s_p``:
  ``log s_h = μ_s + E_s + E_sh + σ_s·z₁``; ``log s_p = μ_s + E_s + E_sp + σ_s·(ρ z₁ + √(1−ρ²) z₂)``;
* beta-cell function (mass × secretory capacity) ``b``:
  ``log b = μ_b − c·(s̄ − s̄_rr) − c_rf·s̄_rr + E_b + σ_b·z₃`` with ``s̄ = (log s_h + log s_p)/2``,
  where ``c`` is the compensation exponent (``c = 1``: the hyperbolic law, disposition index
  independent of sensitivity; Kahn 1993) and ``s̄_rr`` the part of ``s̄`` that comes from the
  relative-risk effects on insulin sensitivity (BMI, activity, smoking, diet …), which beta cells
  compensate with their own exponent ``c_rf`` (``risk_factor_compensation``);

``E_·`` are the sums of covariate effects on each target and ``z`` are standard normal.

*Why two compensation exponents.* An effect known as a relative risk of diabetes (next section)
reaches fasting glucose, and so diabetes, only through the disposition index ``DI = b·√(s_h s_p)``;
an insulin-sensitivity effect moves ``log DI`` by ``(1 − c)`` times its effect on ``log s``. With a
single ``c`` (≈ 0.77 when calibrated on prevalence and insulin quantiles alone) obesity hardly
lowered the disposition index: of the simulated adults with diabetes only 43% were obese and 24%
normal-weight (age-standardised), against 65.5% and 9.5% in NHANES 2009–2012 (CDC MMWR 2014), and
in the progression model obese people did not develop diabetes faster than lean ones. The
``us_adults`` population therefore calibrates ``c_rf`` separately, on those two NHANES shares
(calibration targets ``diabetes_share_obese`` and ``diabetes_share_normal_weight``): risk-factor
insulin resistance is less fully compensated than the unexplained person-to-person variation,
as the lower disposition index of obese people says [ASSUMED structure, calibrated size]. A
population file without ``risk_factor_compensation`` gets ``c_rf = c`` (the single-exponent model).

Effects given on the log scale of the target (``scale: log_multiplier``, e.g. the age slope of
log SI of Denti 2010) add directly. Effects known only as a relative risk of type 2 diabetes
(``scale: relative_risk``: BMI, smoking, family history, activity, nutrients …) are converted with a
liability-threshold (probit) model: at the reference prevalence ``p₀`` an RR is a shift of
``δ = Φ⁻¹(p₀·RR) − Φ⁻¹(p₀)`` standard deviations of diabetes liability, applied to the target as
``−δ × λ`` log units, where ``λ`` (``liability_scale_log``) is a calibrated hyperparameter (how
many log units of the target one SD of liability is). Per-unit RRs (per kg/m², per 100 mg/day)
convert per unit.

Map to the model (Dalla Man 2007)
--------------------------------
* hepatic insulin sensitivity scales both insulin actions on EGP, ``kp3`` (delayed plasma insulin)
  and ``kp4`` (portal insulin); peripheral sensitivity scales ``Vmx``;
* beta-cell function scales ``β`` and ``K`` (static and dynamic secretion) and the basal secretion
  capacity (:meth:`DallaMan2007.derive_basal_from_capacity`; at ``b = 1`` it reproduces the normal
  subject's basal state, Gb 91.8 mg/dL); ``α`` (speed of static secretion) slows along the
  normal → T2D axis of Table 1 for ``b < 1`` only (failing cells respond slower; more cells do not
  respond faster);
* islet failure also changes the liver: the Dalla Man T2D subject has a higher ``kp1`` (EGP drive)
  and a lower ``kp2`` (hepatic glucose effectiveness) than the normal subject — the fasting
  hyperglycaemia of T2D (hyperglucagonaemia, glucotoxicity). When a person's disposition index
  ``DI = b·√(s_h s_p)`` falls below normal, ``kp1`` and ``kp2`` move along that axis, reaching
  ``κ`` × the T2D values' log-ratio at the T2D subject's DI; ``κ`` (``islet_failure_hepatic_axis``,
  0–1) is a calibrated hyperparameter;
* body weight is BMI × height².

Fasting glucose and insulin then follow from each person's steady state. With compensation
``c ≈ 1`` fasting insulin rises with insulin resistance while fasting glucose is set by the
disposition index, as the hyperbolic law predicts.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import yaml
from jax.scipy.special import ndtri
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._covariates import CovariateModel, Covariates, CovariateSpec, sample_covariates
from ._sets import parameters_from_set

TARGETS = ("insulin_sensitivity", "hepatic_insulin_sensitivity", "peripheral_insulin_sensitivity", "beta_cell_function")
FINDINGS = ("effect", "null", "harmful", "no_estimate", "association_only")
HYPER_NAMES = ("log_si_mean", "log_si_sd", "si_hepatic_peripheral_rho", "log_beta_mean", "log_beta_sd",
               "compensation", "liability_scale_log", "islet_failure_hepatic_axis", "risk_factor_compensation")
#: hyperparameters a population YAML may leave out, and the one whose spec stands in for each
#: (``risk_factor_compensation`` absent: risk-factor insulin resistance is compensated like any other)
OPTIONAL_HYPER = {"risk_factor_compensation": "compensation"}
_Z95 = 1.959963984540054


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EffectSpec(_Strict):
    """One covariate → physiology effect, with its uncertainty and source."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    covariate: str = Field(description="covariate name, or 'name=level' for a categorical level")
    form: Literal["linear", "indicator", "below", "above", "log1p"] = "linear"
    reference: float = Field(0.0, description="linear: value of the covariate at which the effect is zero")
    lower: float | None = Field(None, description="linear: clip the covariate below at this value")
    upper: float | None = Field(None, description="linear: clip the covariate above at this value")
    threshold: float | None = Field(None, description="below/above: the cut-off, in the covariate's unit")
    scale_unit: float | None = Field(None, gt=0, description="log1p: feature = log(1 + x/scale_unit)")
    per: float = Field(1.0, gt=0, description="linear: the effect is given per this many covariate units (e.g. 100 mg/day)")
    target: Literal[TARGETS]
    scale: Literal["log_multiplier", "relative_risk"]
    central: float
    ci95: tuple[float, float] | None = None
    se: float | None = Field(None, ge=0, description="standard error on the sampling scale (log RR or log multiplier)")
    finding: Literal[FINDINGS] = "effect"
    calibrate: bool = Field(True, description="may the calibration move it within its uncertainty")
    calibrated: float | None = Field(None, description="value chosen by vpop calibrate (same scale as central); sampling centres here")
    source: str
    note: str = ""

    @model_validator(mode="after")
    def _check(self):
        if self.scale == "relative_risk" and self.central <= 0:
            raise ValueError(f"effect {self.name}: relative_risk central must be > 0, got {self.central}")
        if self.ci95 is not None:
            lo, hi = self.ci95
            if not lo <= self.central <= hi:
                raise ValueError(f"effect {self.name}: central {self.central} outside ci95 {self.ci95}")
            if self.scale == "relative_risk" and lo <= 0:
                raise ValueError(f"effect {self.name}: relative_risk ci95 must be > 0")
            if self.calibrated is not None and not lo <= self.calibrated <= hi:
                raise ValueError(f"effect {self.name}: calibrated {self.calibrated} outside ci95 {self.ci95}")
        if self.calibrated is not None and self.scale == "relative_risk" and self.calibrated <= 0:
            raise ValueError(f"effect {self.name}: calibrated relative risk must be > 0")
        if self.form in ("below", "above") and self.threshold is None:
            raise ValueError(f"effect {self.name}: form {self.form!r} needs threshold")
        if self.form == "log1p" and self.scale_unit is None:
            raise ValueError(f"effect {self.name}: form 'log1p' needs scale_unit")
        return self

    def _to_theta(self, x: float) -> float:
        return float(np.log(x)) if self.scale == "relative_risk" else float(x)

    @property
    def theta_prior(self) -> float:
        """The published central value on the sampling scale (log RR for relative risks)."""
        return self._to_theta(self.central)

    @property
    def theta_central(self) -> float:
        """Centre used for sampling: the calibrated value if any, else the published one."""
        return self._to_theta(self.central if self.calibrated is None else self.calibrated)

    @property
    def theta_se(self) -> float:
        """Standard error on the sampling scale (from ``se``, else from ``ci95``, else 0)."""
        if self.se is not None:
            return float(self.se)
        if self.ci95 is None:
            return 0.0
        lo, hi = self.ci95
        if self.scale == "relative_risk":
            return float((np.log(hi) - np.log(lo)) / (2 * _Z95))
        return float((hi - lo) / (2 * _Z95))


class HyperSpec(_Strict):
    """A population hyperparameter: its value, bounds and (for calibration) a prior."""

    value: float
    lower: float
    upper: float
    prior_mean: float | None = None
    prior_sd: float | None = Field(None, gt=0)
    calibrate: bool = True
    description: str = ""

    @model_validator(mode="after")
    def _in_range(self):
        if not self.lower <= self.value <= self.upper:
            raise ValueError(f"value {self.value} outside [{self.lower}, {self.upper}]")
        return self


class PhysiologyConfig(_Strict):
    parameter_set: str = "DallaMan2007_normal"
    axis_parameter_set: str = Field("DallaMan2007_T2D", description="the other end of the normal → T2D axes")
    secretion_g50_mg_per_dl: float = Field(141.42, gt=0, description="glucose of half-maximal basal secretion (Topp 2000: √20000)")
    reference_prevalence: float = Field(0.13, gt=0, lt=0.5, description="p₀ of the RR → liability conversion")
    hyper: dict[str, HyperSpec]

    @model_validator(mode="before")
    @classmethod
    def _optional_hyper(cls, data):
        if isinstance(data, dict) and isinstance(data.get("hyper"), dict):
            hyper = dict(data["hyper"])
            for k, stand_in in OPTIONAL_HYPER.items():
                if k not in hyper and stand_in in hyper:
                    spec = hyper[stand_in]
                    spec = dict(spec.model_dump() if isinstance(spec, HyperSpec) else spec)
                    spec["description"] = f"absent from the population file: equal to {stand_in}"
                    spec["calibrate"] = False
                    hyper[k] = spec
            data = {**data, "hyper": hyper}
        return data

    @model_validator(mode="after")
    def _names(self):
        missing = set(HYPER_NAMES) - set(self.hyper)
        extra = set(self.hyper) - set(HYPER_NAMES)
        if missing or extra:
            raise ValueError(f"hyper: missing {sorted(missing)}, unknown {sorted(extra)}; expected {list(HYPER_NAMES)}")
        return self


class GlycationConfig(_Strict):
    rbc_age_mean_d: float = Field(58.7, gt=20, lt=120)
    rbc_age_sd_d: float = Field(4.55, ge=0, lt=30)
    source: str = "Khera et al., Am J Hematol 2015: mean RBC age 58.7 ± 9.1 (2 SD) d"


class DailyMeal(_Strict):
    time_of_day_min: float = Field(ge=0, lt=1440)
    carbs_g: float = Field(ge=0, le=500)


class DiagnosticsConfig(_Strict):
    ogtt_glucose_g: float = Field(75.0, gt=0, le=100)
    day_step_min: float = Field(1.0, gt=0, le=2, description="fast-mode step of the simulated day (mean glucose → HbA1c)")
    day_meals: list[DailyMeal] = Field(default_factory=lambda: [
        DailyMeal(time_of_day_min=420, carbs_g=45), DailyMeal(time_of_day_min=720, carbs_g=70),
        DailyMeal(time_of_day_min=1140, carbs_g=70)])


class TargetSpec(_Strict):
    """A calibration target: a prevalence or a quantile, in a subgroup, with its source."""

    name: str
    statistic: Literal["prevalence", "quantile", "share"]
    outcome: Literal["diabetes", "prediabetes", "fasting_insulin_uu_per_ml", "homa_ir"]
    q: float | None = Field(None, gt=0, lt=1)
    age_min_y: float | None = None
    bmi_range_kg_per_m2: tuple[float, float] | None = Field(
        None, description="share: the BMI class [lo, hi) whose share among people with the outcome is the target")
    age_standard: list[tuple[float, float, float]] | None = Field(
        None, description="share: direct age standardisation, (age_lo, age_hi, weight) per group [y, y, 1]; "
                          "the share is computed in each age group and averaged with these weights")
    value: float
    tolerance: float = Field(gt=0)
    tolerance_kind: Literal["absolute", "relative"]
    exclude_treated_diabetes: bool = False
    source: str

    @model_validator(mode="after")
    def _q(self):
        if (self.statistic == "quantile") != (self.q is not None):
            raise ValueError(f"target {self.name}: q is required for quantiles and only for them")
        if (self.statistic == "share") != (self.bmi_range_kg_per_m2 is not None):
            raise ValueError(f"target {self.name}: bmi_range_kg_per_m2 is required for shares and only for them")
        if self.statistic == "share" and self.outcome not in ("diabetes", "prediabetes"):
            raise ValueError(f"target {self.name}: a share is of people with diabetes or prediabetes, got outcome {self.outcome!r}")
        if self.statistic == "share" and not 0 <= self.value <= 1:
            raise ValueError(f"target {self.name}: a share must be within [0, 1], got {self.value}")
        if self.age_standard is not None:
            if self.statistic != "share":
                raise ValueError(f"target {self.name}: age_standard is only for shares")
            if any(not (lo < hi and w > 0) for lo, hi, w in self.age_standard):
                raise ValueError(f"target {self.name}: age_standard groups need age_lo < age_hi and weight > 0, got {self.age_standard}")
        return self


class CalibrationConfig(_Strict):
    """Targets, and how the comparison is defined."""

    targets: list[TargetSpec]
    diagnosed_fraction_of_diabetes: float = Field(0.773, ge=0, le=1, description="CDC 2024: 29.7 of 38.4 M diagnosed")
    definition: str = ("diabetes: FPG ≥ 126 mg/dL or HbA1c ≥ 6.5% (the CDC/NHANES definition, no OGTT); "
                       "prediabetes: not diabetes and FPG 100–125 or HbA1c 5.7–6.4%")
    n_people: int = Field(4000, ge=100)
    steps: int = Field(100, ge=1)
    learning_rate: float = Field(0.05, gt=0)
    seed: int = 0
    softness_glucose_mg_per_dl: float = Field(2.0, gt=0)
    softness_hba1c_percent: float = Field(0.05, gt=0)


class PopulationConfig(_Strict):
    """Covariates, effects, physiology, glycation, diagnostics and calibration targets."""

    name: str
    description: str = ""
    covariates: dict[str, CovariateSpec]
    effects: list[EffectSpec]
    physiology: PhysiologyConfig
    glycation: GlycationConfig = Field(default_factory=GlycationConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    calibration: CalibrationConfig | None = None
    calibrated: dict | None = Field(None, description="provenance of calibrated values (written by vpop calibrate)")

    @model_validator(mode="after")
    def _check(self):
        cm = self.covariate_model()
        for required in ("age_y", "bmi_kg_per_m2", "height_m"):
            if required not in self.covariates:
                raise ValueError(f"covariates: {required!r} is required (body weight = BMI × height²; age for targets)")
        names = [e.name for e in self.effects]
        if len(set(names)) != len(names):
            raise ValueError(f"effect names must be unique: {names}")
        for e in self.effects:
            base, _, level = e.covariate.partition("=")
            if base not in self.covariates:
                raise ValueError(f"effect {e.name}: unknown covariate {base!r}")
            if level and level not in (cm.levels(base) or []):
                raise ValueError(f"effect {e.name}: covariate {base!r} has no level {level!r}")
            if not level and cm.levels(base) is not None:
                raise ValueError(f"effect {e.name}: covariate {base!r} is categorical; use '{base}=<level>'")
        return self

    def covariate_model(self) -> CovariateModel:
        return CovariateModel(covariates=self.covariates)

    def with_effects(self, overrides: dict[str, dict] | None = None, add: list[dict] | None = None) -> "PopulationConfig":
        """A copy with effects changed (``{name: {field: value}}``) or added (list of effect mappings)."""
        by_name = {e.name: e for e in self.effects}
        for name, changes in (overrides or {}).items():
            if name not in by_name:
                raise ValueError(f"unknown effect {name!r}; effects: {sorted(by_name)}")
            # a user's new value replaces the calibrated one unless they set that too
            reset = {"calibrated": None} if {"central", "ci95", "se", "scale"} & set(changes) else {}
            by_name[name] = EffectSpec.model_validate({**by_name[name].model_dump(), **reset, **changes})
        effects = list(by_name.values()) + [EffectSpec.model_validate(a) for a in (add or [])]
        return PopulationConfig.model_validate({**self.model_dump(), "effects": [e.model_dump() for e in effects]})

    def with_hyper(self, values: dict[str, float]) -> "PopulationConfig":
        """A copy with hyperparameter values replaced."""
        data = self.model_dump()
        for k, v in values.items():
            if k not in data["physiology"]["hyper"]:
                raise ValueError(f"unknown hyperparameter {k!r}; allowed: {list(HYPER_NAMES)}")
            data["physiology"]["hyper"][k]["value"] = float(v)
        return PopulationConfig.model_validate(data)

    def effect_table(self):
        """The effects as a DataFrame (central, 95% interval, SE on the sampling scale, source)."""
        import pandas as pd

        return pd.DataFrame([{
            "effect": e.name, "covariate": e.covariate, "form": e.form, "target": e.target, "scale": e.scale,
            "central": e.central, "calibrated": e.calibrated, "ci95_low": e.ci95[0] if e.ci95 else np.nan, "ci95_high": e.ci95[1] if e.ci95 else np.nan,
            "se_sampling_scale": e.theta_se, "finding": e.finding, "source": e.source} for e in self.effects])


CALIBRATED_SUFFIX = ".calibrated.yaml"


def available_populations() -> list[str]:
    folder = resources.files("vpop") / "populations"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml") and not p.name.endswith(CALIBRATED_SUFFIX))


def apply_calibration(cfg: PopulationConfig, overlay: dict) -> PopulationConfig:
    """``cfg`` with the hyperparameter values and calibrated effects of a calibration overlay."""
    data = cfg.model_dump()
    for k, v in overlay.get("hyper", {}).items():
        if k not in data["physiology"]["hyper"]:
            raise ValueError(f"calibration overlay: unknown hyperparameter {k!r}")
        data["physiology"]["hyper"][k]["value"] = float(v)
    by_name = {e["name"]: e for e in data["effects"]}
    for k, v in overlay.get("effects", {}).items():
        if k not in by_name:
            raise ValueError(f"calibration overlay: unknown effect {k!r}")
        by_name[k]["calibrated"] = float(v)
    data["calibrated"] = {k: v for k, v in overlay.items() if k not in ("hyper", "effects")}
    return PopulationConfig.model_validate(data)


def load_population(name_or_path: str | Path = "us_adults", *, calibrated: bool = True) -> PopulationConfig:
    """A shipped population by name (``vpop/populations/<name>.yaml``) or a YAML file path.

    If a calibration overlay ``<name>.calibrated.yaml`` (written by ``vpop calibrate``) sits next
    to it, its hyperparameters and calibrated effect sizes are applied (``calibrated=False``: the
    uncalibrated starting values).
    """
    p = Path(str(name_or_path))
    if p.suffix in (".yaml", ".yml") and p.is_file():
        text, source = p.read_text(), str(p)
        overlay_path = p.with_name(p.name[: -len(p.suffix)] + CALIBRATED_SUFFIX)
        overlay_text = overlay_path.read_text() if overlay_path.is_file() else None
    else:
        names = available_populations()
        if str(name_or_path) not in names:
            raise ValueError(f"unknown population {name_or_path!r}; shipped: {names} (or pass a .yaml path)")
        folder = resources.files("vpop") / "populations"
        text = (folder / f"{name_or_path}.yaml").read_text()
        overlay_file = folder / f"{name_or_path}{CALIBRATED_SUFFIX}"
        overlay_text = overlay_file.read_text() if overlay_file.is_file() else None
        source = str(name_or_path)
    from pydantic import ValidationError

    try:
        cfg = PopulationConfig.model_validate(yaml.safe_load(text))
        if calibrated and overlay_text is not None:
            cfg = apply_calibration(cfg, yaml.safe_load(overlay_text))
        return cfg
    except ValidationError as e:
        from ._config import ConfigError, _format_validation_error

        raise ConfigError(_format_validation_error(e, source)) from None


# ----------------------------------------------------------------------------------- features
def feature_matrix(effects: list[EffectSpec], cov: Covariates) -> np.ndarray:
    """``(n_people, n_effects)``: each effect's feature (the quantity its coefficient multiplies)."""
    cols = []
    for e in effects:
        x = cov.numeric(e.covariate)
        if e.form == "linear":
            lo = -np.inf if e.lower is None else e.lower
            hi = np.inf if e.upper is None else e.upper
            f = (np.clip(x, lo, hi) - e.reference) / e.per
        elif e.form == "indicator":
            f = x
        elif e.form == "below":
            f = (x < e.threshold).astype(float)
        elif e.form == "above":
            f = (x >= e.threshold).astype(float)
        else:
            f = np.log1p(np.maximum(x, 0.0) / e.scale_unit)
        cols.append(f)
    return np.stack(cols, axis=1) if cols else np.zeros((cov.n_people, 0))


def central_effects(cfg: PopulationConfig) -> np.ndarray:
    return np.array([e.theta_central for e in cfg.effects])


def draw_effects(cfg: PopulationConfig, n_draws: int, seed: int = 0) -> np.ndarray:
    """``(n_draws, n_effects)`` effect sizes drawn from their uncertainty (normal on the sampling scale)."""
    rng = np.random.default_rng(seed)
    mu = central_effects(cfg)
    se = np.array([e.theta_se for e in cfg.effects])
    return mu + se * rng.standard_normal((int(n_draws), len(mu)))


def hyper_values(cfg: PopulationConfig) -> dict[str, float]:
    return {k: float(h.value) for k, h in cfg.physiology.hyper.items()}


# ----------------------------------------------------------------------------------- people
class PopulationDraw(eqx.Module):
    """Everything about a sampled population that does not depend on hyperparameters or effects:
    covariates, features, fixed random effects ``z`` and red-cell ages (common random numbers, so
    calibration and arms compare the same people)."""

    features: jax.Array  # (n, E)
    z: jax.Array  # (n, 3)
    bw_kg: jax.Array  # (n,)
    rbc_age_d: jax.Array  # (n,)
    age_y: jax.Array  # (n,)
    covariates: Covariates | None = eqx.field(static=True)
    #: features the beta cells have adapted to (default: ``features``); an intervention arm keeps
    #: the pre-intervention ones, so improved sensitivity is not cancelled by compensation reversal
    adapted_features: jax.Array | None = None
    bmi_kg_per_m2: jax.Array | None = None  # (n,), for BMI-class calibration targets

    def arrays_only(self) -> "PopulationDraw":
        """The same draw without the host-side covariate table (for jit: one compile per shape)."""
        return PopulationDraw(self.features, self.z, self.bw_kg, self.rbc_age_d, self.age_y, None, self.adapted_features,
                              self.bmi_kg_per_m2)


def draw_population(cfg: PopulationConfig, n_people: int, seed: int = 0, covariates: Covariates | None = None) -> PopulationDraw:
    """Sample covariates (or take ``covariates``) and the person-level random effects (seeded)."""
    ss = np.random.SeedSequence([int(seed), 4])
    s_cov, s_z = ss.spawn(2)
    cov = covariates if covariates is not None else sample_covariates(cfg.covariate_model(), n_people, seed=int(s_cov.generate_state(1)[0]))
    n = cov.n_people
    rng = np.random.default_rng(s_z)
    z = rng.standard_normal((n, 3))
    rbc = cfg.glycation.rbc_age_mean_d + cfg.glycation.rbc_age_sd_d * rng.standard_normal(n)
    bw = cov.numeric("bmi_kg_per_m2") * cov.numeric("height_m") ** 2
    return PopulationDraw(jnp.asarray(feature_matrix(cfg.effects, cov)), jnp.asarray(z), jnp.asarray(bw),
                          jnp.asarray(rbc), jnp.asarray(cov.numeric("age_y")), cov, None, jnp.asarray(cov.numeric("bmi_kg_per_m2")))


def with_covariates(cfg: PopulationConfig, draw: PopulationDraw, cov: Covariates, *, readapt: bool = False) -> PopulationDraw:
    """The same people (same random effects) with changed covariates (e.g. an intervention arm).

    By default the beta cells stay adapted to the original covariates (``adapted_features``): an
    intervention that raises insulin sensitivity raises the disposition index, as the DPP lifestyle
    arm did (Kitabchi 2005), instead of being cancelled by the cross-sectional compensation law.
    ``readapt=True`` compares populations at their new adapted steady state instead.
    """
    bw = cov.numeric("bmi_kg_per_m2") * cov.numeric("height_m") ** 2
    adapted = None if readapt else (draw.features if draw.adapted_features is None else draw.adapted_features)
    return PopulationDraw(jnp.asarray(feature_matrix(cfg.effects, cov)), draw.z, jnp.asarray(bw), draw.rbc_age_d,
                          jnp.asarray(cov.numeric("age_y")), cov, adapted, jnp.asarray(cov.numeric("bmi_kg_per_m2")))


class PhysiologyMap(eqx.Module):
    """Static data of the factor → Dalla Man parameter map (see the module docstring)."""

    model: object = eqx.field(static=True)
    base: object  # DallaMan2007Params of the normal subject (scalars, basal state derived)
    failure_exponents: dict = eqx.field(static=True)  # kp1, kp2 → exponent of the disposition deficit
    beta_exponents: dict = eqx.field(static=True)  # beta, K, alpha → exponent of b
    capacity0: float = eqx.field(static=True)  # basal secretion capacity at b = 1 [pmol/kg/min]
    g50: float = eqx.field(static=True)
    p0: float = eqx.field(static=True)
    target_index: tuple = eqx.field(static=True)  # per effect: index into TARGETS
    is_rr: tuple = eqx.field(static=True)


def physiology_map(cfg: PopulationConfig) -> PhysiologyMap:
    model, normal, _ = parameters_from_set(cfg.physiology.parameter_set)
    _, other, _ = parameters_from_set(cfg.physiology.axis_parameter_set)
    ratio = lambda k: float(getattr(other, k)) / float(getattr(normal, k))  # noqa: E731
    log_b_t2d = np.log(ratio("beta"))
    log_di_t2d = log_b_t2d + np.log(ratio("kp3"))  # beta-cell function × hepatic sensitivity of the T2D subject
    failure = {k: float(np.log(ratio(k)) / log_di_t2d) for k in ("kp1", "kp2")}
    bet = {k: float(np.log(ratio(k)) / log_b_t2d) for k in ("beta", "K", "alpha")}
    g50 = cfg.physiology.secretion_g50_mg_per_dl
    derived = model.derive_basal(normal)
    gb, sb = float(derived.Gb), float(derived.Sb)
    cap0 = sb * (g50 * g50 + gb * gb) / (gb * gb)
    return PhysiologyMap(model, derived, failure, bet, cap0, g50, cfg.physiology.reference_prevalence,
                         tuple(TARGETS.index(e.target) for e in cfg.effects),
                         tuple(e.scale == "relative_risk" for e in cfg.effects))


def effect_coefficients(pm: PhysiologyMap, theta, liability_scale_log):
    """Per-effect coefficient on the log scale of its target (RRs through the liability model)."""
    theta = jnp.asarray(theta)
    is_rr = jnp.asarray(pm.is_rr, bool)
    p0 = pm.p0
    rr = jnp.exp(jnp.where(is_rr, theta, 0.0))
    delta = ndtri(jnp.clip(p0 * rr, 1e-9, 1 - 1e-9)) - ndtri(p0)
    return jnp.where(is_rr, -delta * liability_scale_log, theta)


def person_factors(pm: PhysiologyMap, draw: PopulationDraw, theta, hyper: dict, *, with_compensation: bool = False):
    """``log s_h, log s_p, log b`` per person (differentiable in ``theta`` and ``hyper``).

    Beta-cell compensation: ``log b`` carries ``−c·s̄`` for the insulin resistance of the random
    effects and of the log-multiplier effects (``c`` = ``compensation``), and ``−c_rf·s̄_rr`` for the
    part of ``s̄ = (log s_h + log s_p)/2`` that comes from relative-risk effects on insulin
    sensitivity (``c_rf`` = ``risk_factor_compensation``; see the module docstring). With
    ``with_compensation`` the compensation term itself and ``s̄_rr`` are returned as fourth and fifth
    arrays.
    """
    coef = effect_coefficients(pm, theta, hyper["liability_scale_log"])
    tgt = jnp.asarray(pm.target_index)
    rr = jnp.asarray(pm.is_rr, bool)
    z = draw.z
    rho = hyper["si_hepatic_peripheral_rho"]
    sd_s = hyper["log_si_sd"]

    def effects(features):
        """Per target: the sum of all effects, and of the relative-risk effects alone."""
        contrib = features * coef[None, :]  # (n, E)
        rr_contrib = jnp.where(rr[None, :], contrib, 0.0)
        sums = [jnp.sum(jnp.where(tgt[None, :] == j, c, 0.0), axis=1) for c in (contrib, rr_contrib) for j in range(len(TARGETS))]
        return sums[:len(TARGETS)], sums[len(TARGETS):]

    def sensitivity(e_s, e_sh, e_sp):
        log_sh = hyper["log_si_mean"] + e_s + e_sh + sd_s * z[:, 0]
        log_sp = hyper["log_si_mean"] + e_s + e_sp + sd_s * (rho * z[:, 0] + jnp.sqrt(1 - rho * rho) * z[:, 1])
        return log_sh, log_sp

    (e_s, e_sh, e_sp, e_b), rr_now = effects(draw.features)
    log_sh, log_sp = sensitivity(e_s, e_sh, e_sp)
    if draw.adapted_features is None:
        ref_sh, ref_sp, (r_s, r_sh, r_sp, _) = log_sh, log_sp, rr_now
    else:
        (a_s, a_sh, a_sp, _), (r_s, r_sh, r_sp, _) = effects(draw.adapted_features)
        ref_sh, ref_sp = sensitivity(a_s, a_sh, a_sp)
    s_rr = r_s + 0.5 * (r_sh + r_sp)  # the relative-risk effects' part of the mean log sensitivity
    comp = -hyper["compensation"] * (0.5 * (ref_sh + ref_sp) - s_rr) - hyper["risk_factor_compensation"] * s_rr
    log_b = hyper["log_beta_mean"] + comp + e_b + hyper["log_beta_sd"] * z[:, 2]
    return (log_sh, log_sp, log_b, comp, s_rr) if with_compensation else (log_sh, log_sp, log_b)


def person_parameters(pm: PhysiologyMap, draw: PopulationDraw, theta, hyper: dict):
    """Dalla Man parameters per person, with each person's fasting steady state."""
    log_sh, log_sp, log_b = person_factors(pm, draw, theta, hyper)
    return parameters_from_factors(pm, log_sh, log_sp, log_b, draw.bw_kg, hyper)


def parameters_from_factors(pm: PhysiologyMap, log_sh, log_sp, log_b, bw_kg, hyper: dict, *, egp_factor=None):
    """Dalla Man parameters (with fasting steady state) from the three log factors per person.

    ``egp_factor`` (optional, per person): multiplies ``kp1``, the hepatic glucose output drive
    (e.g. 0.9 for a metformin-like 10% reduction of hepatic glucose output).
    """
    n = jnp.shape(log_sh)[0]
    dtype = jnp.result_type(log_sh)
    p = jax.tree_util.tree_map(lambda x: jnp.full((n,), x, dtype), pm.base)
    log_di = log_b + 0.5 * (log_sh + log_sp)  # disposition index relative to the normal subject
    deficit = jnp.minimum(log_di, 0.0) * hyper["islet_failure_hepatic_axis"]
    repl = {"kp3": p.kp3 * jnp.exp(log_sh), "kp4": p.kp4 * jnp.exp(log_sh), "Vmx": p.Vmx * jnp.exp(log_sp)}
    repl.update({k: getattr(p, k) * jnp.exp(e * deficit) for k, e in pm.failure_exponents.items()})
    # β and K scale with beta-cell function both ways; the static-secretion rate α only slows
    # along the axis (b < 1): more beta cells secrete more, not faster (and α·h stays small)
    repl.update({k: getattr(p, k) * jnp.exp(e * (jnp.minimum(log_b, 0.0) if k == "alpha" else log_b))
                 for k, e in pm.beta_exponents.items()})
    repl["BW"] = jnp.asarray(bw_kg, dtype)
    if egp_factor is not None:
        repl["kp1"] = repl["kp1"] * egp_factor
    keys = tuple(repl)
    p = eqx.tree_at(lambda q: tuple(getattr(q, k) for k in keys), p, tuple(repl[k] for k in keys))
    p = jax.vmap(pm.model.derive_basal_from_capacity, in_axes=(0, 0, None))(p, pm.capacity0 * jnp.exp(log_b), pm.g50)
    return p, {"log_si_hepatic [1]": log_sh, "log_si_peripheral [1]": log_sp, "log_beta_cell_function [1]": log_b,
               "log_disposition_index [1]": log_di}


# ----------------------------------------------------------------------------------- outcomes
_SAVED = ("glucose_plasma", "insulin_plasma")


def day_protocol(cfg: PopulationConfig):
    from ._protocols import mixed_meals

    return mixed_meals(1, [(m.time_of_day_min, m.carbs_g) for m in cfg.diagnostics.day_meals], cfg.diagnostics.day_step_min)


def ogtt_protocol(cfg: PopulationConfig):
    from ._protocols import ogtt

    return ogtt(cfg.diagnostics.ogtt_glucose_g, 120.0, 1.0)


def simulate_outcomes(pm: PhysiologyMap, cfg: PopulationConfig, draw: PopulationDraw, theta, hyper: dict, *,
                      ogtt: bool = True, mode: str = "fast", exclude=None):
    """Per-person diagnostic quantities (jnp arrays; differentiable in ``theta`` and ``hyper``).

    Fasting values come from each person's steady state; mean glucose from one simulated day with
    the configured meals (HbA1c through :func:`vpop._diagnosis.hba1c_percent`); the 2-h value and
    Matsuda's means from a simulated 75-g OGTT (0–120 min) when ``ogtt``. ``status`` is the worst
    engine status of the two simulations (0 = OK); failed people's outcomes are NaN.

    ``exclude`` (bool per person, optional): people to leave out. They are simulated with the
    reference subject's parameters instead (so that a person whose own solve fails cannot put NaN
    into gradients of everybody else), and reported with status ``NON_FINITE`` and NaN outcomes.
    """
    from ._diagnosis import hba1c_percent
    from ._engine import simulate
    from ._observables import homa_beta_percent, homa_ir, matsuda_index
    from ._units import PMOL_PER_L_PER_UU_PER_ML

    p, factors = person_parameters(pm, draw, theta, hyper)
    if exclude is not None:
        exclude = jnp.asarray(exclude, bool)
        p = jax.tree_util.tree_map(lambda a, b: jnp.where(exclude, b, a), p, pm.base)
    fpg = p.Gb
    fpi = p.Ib / PMOL_PER_L_PER_UU_PER_ML
    out = {"fpg [mg/dL]": fpg, "fasting_insulin [uU/mL]": fpi, "homa_ir [1]": homa_ir(fpg, p.Ib),
           "homa_beta [%]": homa_beta_percent(fpg, p.Ib),
           "bw [kg]": p.BW, **factors}
    day = simulate(pm.model, p, day_protocol(cfg), mode=mode, saved_states=_SAVED, substeps=1)
    g_day = day.glucose_mg_per_dl()
    mean_g = jnp.mean(0.5 * (g_day[:, 1:] + g_day[:, :-1]), axis=1)  # trapezoid on the 1-min grid
    out["mean_glucose_24h [mg/dL]"] = mean_g
    out["hba1c [%]"] = hba1c_percent(mean_g, draw.rbc_age_d)
    status = day.status.astype(jnp.int32)
    if ogtt:
        o = simulate(pm.model, p, ogtt_protocol(cfg), mode=mode, saved_states=_SAVED)
        g, ins_pmol = o.glucose_mg_per_dl(), o.insulin_pmol_per_l()
        idx = jnp.arange(0, 121, 30)
        ins = ins_pmol / PMOL_PER_L_PER_UU_PER_ML
        out["ogtt_2h_glucose [mg/dL]"] = g[:, 120]
        out["matsuda [1]"] = matsuda_index(g[:, idx], ins_pmol[:, idx])
        out["insulinogenic_index [uU/mL per mg/dL]"] = (ins[:, 30] - ins[:, 0]) / (g[:, 30] - g[:, 0])
        status = jnp.maximum(status, o.status.astype(jnp.int32))
    status = jnp.where(jnp.isfinite(fpg), status, 2)  # NON_FINITE when no fasting steady state exists
    if exclude is not None:
        status = jnp.where(exclude, 2, status)
    # failed people: every outcome NaN (never averaged in), flagged by status
    out = {k: jnp.where(status == 0, v, jnp.nan) for k, v in out.items()}
    out["status"] = status
    return out
