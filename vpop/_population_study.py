"""Cohort experiments on a virtual population: arms, outcomes with uncertainty, figures.

A population study samples people from a :class:`~vpop._virtual_population.PopulationConfig`
(covariates → physiology), applies each **arm** to their covariates (e.g. +250 mg/day magnesium in
people below the EAR; 7% weight loss plus 150 min/week of activity), and simulates each arm's
fasting steady state, a day with meals (HbA1c) and a 75-g OGTT. The same people and the same
random effects are used in every arm (common random numbers), so arm differences are not blurred by
sampling different people.

Uncertainty
-----------
Outcome intervals combine the two sources a user should care about:

* **effect-size uncertainty**: ``worlds`` draws of every covariate effect from its uncertainty
  (normal on the log-RR or log-multiplier scale, centred on the calibrated value);
* **sampling uncertainty**: in each world the people are bootstrap-resampled (same resample for
  every arm, so differences stay paired).

The point estimate uses the central (calibrated) effects on all people; the 95% interval is the
2.5–97.5 percentile of the statistic over worlds × bootstrap. Hyperparameters (baseline means and
spreads) are held at their calibrated values.

Outcomes (per arm, and as differences from the first arm): prevalence of diabetes and prediabetes
by the ADA criteria with all three tests (FPG, 2-h OGTT glucose, HbA1c) and by the CDC definition
used for calibration (FPG or HbA1c); mean FPG, HbA1c and 2-h glucose; median HOMA-IR.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ._diagnosis import ada_classification


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CovariateChange(_Strict):
    covariate: str
    add: float | None = None
    multiply: float | None = Field(None, gt=0)
    set_to: float | None = None

    @model_validator(mode="after")
    def _one(self):
        if sum(x is not None for x in (self.add, self.multiply, self.set_to)) != 1:
            raise ValueError(f"change of {self.covariate!r}: give exactly one of add, multiply, set_to")
        return self


class Subgroup(_Strict):
    covariate: str
    below: float | None = None
    at_least: float | None = None


class ArmConfig(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    where: list[Subgroup] = Field(default_factory=list, description="who gets the change (all conditions); default everybody")
    changes: list[CovariateChange] = Field(default_factory=list)


class PopulationStudyConfig(_Strict):
    """A cohort experiment on a virtual population (YAML; ``vpop run`` detects it by ``population:``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    population: str = Field("us_adults", description="shipped population name or YAML path")
    n_people: int = Field(2000, ge=10, le=2_000_000)
    seed: int = Field(0, ge=0)
    worlds: int = Field(20, ge=0, le=1000, description="effect-size draws for the intervals (0: point estimates only)")
    mode: Literal["fast", "reference"] = "fast"
    arms: list[ArmConfig] = Field(default_factory=lambda: [ArmConfig(name="control")], min_length=1)
    figure: bool = True

    @model_validator(mode="after")
    def _check(self):
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must be unique, got {names}")
        pop = self.population_config()
        cov = pop.covariate_model()
        for arm in self.arms:
            for c in list(arm.changes) + list(arm.where):
                if c.covariate not in cov.covariates:
                    raise ValueError(f"arm {arm.name}: unknown covariate {c.covariate!r}; available: {sorted(cov.covariates)}")
                if cov.levels(c.covariate) is not None:
                    raise ValueError(f"arm {arm.name}: {c.covariate!r} is categorical; arms change numeric covariates")
        return self

    def population_config(self):
        from ._virtual_population import load_population

        return load_population(self.population)


def apply_arm(arm: ArmConfig, cov):
    """Covariates after the arm's changes, and the mask of people it applies to."""
    mask = np.ones(cov.n_people, bool)
    for w in arm.where:
        x = cov.numeric(w.covariate)
        if w.below is not None:
            mask &= x < w.below
        if w.at_least is not None:
            mask &= x >= w.at_least
    new = {}
    for c in arm.changes:
        x = np.asarray(new.get(c.covariate, cov.numeric(c.covariate)), float)
        if c.add is not None:
            y = x + c.add
        elif c.multiply is not None:
            y = x * c.multiply
        else:
            y = np.full_like(x, c.set_to)
        spec = cov.model.covariates[c.covariate]
        if spec.clip is not None:
            y = np.clip(y, *spec.clip)
        new[c.covariate] = np.where(mask, y, x)
    if "bmi_kg_per_m2" in new and "waist_cm" not in new and "waist_cm" in cov.values:
        # waist follows BMI through its regression slope (same residual)
        slope = cov.model.covariates["waist_cm"].depends.get("bmi_kg_per_m2", 0.0)
        new["waist_cm"] = cov.numeric("waist_cm") + slope * (new["bmi_kg_per_m2"] - cov.numeric("bmi_kg_per_m2"))
    return cov.replace(**new), mask


_STATS = ("diabetes_ada [%]", "prediabetes_ada [%]", "diabetes_cdc [%]", "prediabetes_cdc [%]", "fpg_mean [mg/dL]",
          "hba1c_mean [%]", "ogtt_2h_mean [mg/dL]", "homa_ir_median [1]")


def _statistics(o: dict, idx: np.ndarray) -> np.ndarray:
    """The outcome statistics over people ``idx`` (failed people excluded)."""
    fpg, g2, a1c, homa = (o[k][idx] for k in ("fpg [mg/dL]", "ogtt_2h_glucose [mg/dL]", "hba1c [%]", "homa_ir [1]"))
    ok = o["status"][idx] == 0
    fpg, g2, a1c, homa = fpg[ok], g2[ok], a1c[ok], homa[ok]
    d_ada = (fpg >= 126) | (g2 >= 200) | (a1c >= 6.5)
    pre_ada = ~d_ada & ((fpg >= 100) | (g2 >= 140) | (a1c >= 5.7))
    d_cdc = (fpg >= 126) | (a1c >= 6.5)
    pre_cdc = ~d_cdc & ((fpg >= 100) | (a1c >= 5.7))
    return np.array([100 * d_ada.mean(), 100 * pre_ada.mean(), 100 * d_cdc.mean(), 100 * pre_cdc.mean(),
                     fpg.mean(), a1c.mean(), g2.mean(), np.median(homa)])


class PopulationStudyResult:
    def __init__(self, config, people, arm_outcomes, manifest, population):
        self.config = config
        self.people = people  #: one row per person and arm (central effects): covariates, factors, outcomes, ADA class
        self.arm_outcomes = arm_outcomes  #: one row per arm and statistic: estimate, 95% interval, difference from the first arm
        self.manifest = manifest
        self.population = population


def run_population_study(config: PopulationStudyConfig, *, progress: bool = True) -> PopulationStudyResult:
    """Run every arm at the central effects and in ``worlds`` effect-size draws (see module docstring)."""
    import jax
    from tqdm.auto import tqdm

    from ._study import device_description, package_versions
    from ._virtual_population import (
        central_effects,
        draw_effects,
        draw_population,
        hyper_values,
        physiology_map,
        simulate_outcomes,
        with_covariates,
    )

    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    pop = config.population_config()
    pm = physiology_map(pop)
    base = draw_population(pop, config.n_people, seed=config.seed)
    hyper = hyper_values(pop)
    arms = [(arm, *apply_arm(arm, base.covariates)) for arm in config.arms]
    draws = [with_covariates(pop, base, cov) for _, cov, _ in arms]
    thetas = [central_effects(pop)] + list(draw_effects(pop, config.worlds, seed=config.seed + 1))
    sim = jax.jit(lambda d, th: simulate_outcomes(pm, pop, d, th, hyper, mode=config.mode))
    rng = np.random.default_rng([config.seed, 7])
    n = config.n_people
    stats = np.zeros((len(thetas), len(arms), len(_STATS)))
    people = []
    bar = tqdm(total=len(thetas) * len(arms), desc=f"vpop {config.name}", unit="arm", disable=not progress, file=sys.stderr)
    for w, th in enumerate(thetas):
        idx = np.arange(n) if w == 0 else rng.integers(0, n, n)  # world 0: point estimate on everybody
        for a, ((arm, cov, mask), d) in enumerate(zip(arms, draws)):
            o = {k: np.asarray(v) for k, v in sim(d.arrays_only(), np.asarray(th)).items()}
            stats[w, a] = _statistics(o, idx)
            if w == 0:
                df = cov.to_frame()
                df.insert(0, "person", np.arange(n))
                df.insert(0, "arm", arm.name)
                df["in_arm_subgroup"] = mask
                for k, v in o.items():
                    df[k] = v
                df["status"] = np.where(o["status"] == 0, "OK", "FAILED")
                df["rbc_age [d]"] = np.asarray(base.rbc_age_d)
                cls = ada_classification(o["fpg [mg/dL]"], o["ogtt_2h_glucose [mg/dL]"], o["hba1c [%]"])
                people.append(pd.concat([df, cls], axis=1))
            bar.update(1)
    bar.close()
    rows = []
    for a, (arm, _, mask) in enumerate(arms):
        for j, stat in enumerate(_STATS):
            est = stats[0, a, j]
            diff = stats[:, a, j] - stats[:, 0, j]
            row = {"arm": arm.name, "statistic": stat, "estimate": est, "n_people": n,
                   "n_in_subgroup": int(mask.sum()), "difference_from_" + config.arms[0].name: diff[0]}
            if config.worlds > 0:
                lo, hi = np.percentile(stats[1:, a, j], [2.5, 97.5])
                dlo, dhi = np.percentile(diff[1:], [2.5, 97.5])
                row.update({"ci95_low": lo, "ci95_high": hi, "difference_ci95_low": dlo, "difference_ci95_high": dhi})
            rows.append(row)
    manifest = {
        "vpop_run": config.name, "kind": "population_study", "started_utc": started,
        "wall_time_s": round(time.perf_counter() - t0, 3), "seed": config.seed, "mode": config.mode,
        "config": config.model_dump(mode="json"), "population": pop.name,
        "population_calibration": pop.calibrated, "n_people": n, "worlds": config.worlds,
        "n_failed": {arm.name: int((p["status"] != "OK").sum()) for (arm, _, _), p in zip(arms, people)},
        "versions": package_versions(), "device": device_description(), "command": sys.argv,
    }
    return PopulationStudyResult(config, pd.concat(people, ignore_index=True), pd.DataFrame(rows), manifest, pop)


def plot_population_study(result: PopulationStudyResult, folder: Path) -> list[Path]:
    """Prevalence by age band (first arm) and FPG / HbA1c distributions by arm (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    paths = []
    p = result.people[result.people["status"] == "OK"]
    first = p[p["arm"] == result.config.arms[0].name]
    bands = pd.cut(first["age_y"], [18, 30, 45, 65, 85], right=False, labels=["18–29", "30–44", "45–64", "65–85"])
    tab = pd.crosstab(bands, first["ada_class"], normalize="index").reindex(columns=["normal", "prediabetes", "diabetes"], fill_value=0) * 100
    fig, ax = plt.subplots(figsize=(6.5, 4), constrained_layout=True)
    bottom = np.zeros(len(tab))
    for cls, color in zip(tab.columns, ("#9ecae1", "#fdae6b", "#d62728")):
        ax.bar(tab.index.astype(str), tab[cls], bottom=bottom, color=color, label=cls)
        bottom += tab[cls].to_numpy()
    for t in result.population.calibration.targets if result.population.calibration else []:
        if t.statistic == "prevalence" and t.outcome == "diabetes" and t.age_min_y == 65:
            # diabetes is the top segment of the 65–85 bar: the target is a line at 100 − target
            ax.plot([3 - 0.4, 3 + 0.4], [100 - 100 * t.value] * 2, "k--", lw=1.2)
    ax.set_ylabel("share of people [%]")
    ax.set_xlabel("age band [years]")
    ax.set_title(f"ADA class by age (FPG, 2-h OGTT, HbA1c), arm {result.config.arms[0].name}\n(dashed: CDC diabetes at ≥ 65 y)", fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    path = folder / "prevalence_by_age.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for ax, col, cuts in ((axes[0], "fpg [mg/dL]", (100, 126)), (axes[1], "hba1c [%]", (5.7, 6.5))):
        lo, hi = np.nanpercentile(p[col], [0.5, 99.5])
        bins = np.linspace(lo, hi, 60)
        for arm in result.config.arms:
            ax.hist(p.loc[p["arm"] == arm.name, col], bins=bins, histtype="step", lw=1.5, label=arm.name, density=True)
        for c in cuts:
            ax.axvline(c, color="k", ls=":", lw=1)
        ax.set_xlabel(col)
        ax.set_ylabel("density")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result.config.name}: distributions by arm (dotted: ADA cut-offs)", fontsize=10)
    path = folder / "fpg_hba1c_by_arm.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths


def write_population_results(result: PopulationStudyResult, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """people.parquet, arm_outcomes.csv, effects.csv, config.yaml, figures and manifest.json (atomic)."""
    from ._study import atomic_directory, write_manifest

    out = Path(out_dir)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        people = result.people.copy()
        for c in people.columns:  # parquet needs plain columns; categoricals keep their level names
            if isinstance(people[c].dtype, pd.CategoricalDtype):
                people[c] = people[c].astype(str)
        people.to_parquet(tmp / "people.parquet", index=False)
        result.arm_outcomes.to_csv(tmp / "arm_outcomes.csv", index=False)
        result.population.effect_table().to_csv(tmp / "effects.csv", index=False)
        (tmp / "config.yaml").write_text(yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False))
        if result.config.figure:
            plot_population_study(result, tmp)
        write_manifest(tmp, result.manifest)
    return out
