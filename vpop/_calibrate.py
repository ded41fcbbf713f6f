"""Calibrate a virtual population to published targets by gradient through the simulator (optax).

What is fitted
--------------
The population hyperparameters marked ``calibrate`` (baseline means and spreads of insulin
sensitivity and beta-cell function, the compensation exponent, the RR → physiology scale), each
inside its bounds through a sigmoid transform, and the covariate effects marked ``calibrate``
**within their uncertainty**: an effect is ``θ = θ₀ + SE·v`` with ``v = 1.96·tanh(w)`` (so it stays
inside its 95% interval) and a standard-normal prior on ``v``.

Loss
----
``Σ_targets ((achieved − target)/tolerance)²  +  Σ_hyper ((h − prior_mean)/prior_sd)²  +  Σ_effects v²``

with the tolerances of the targets (±3 percentage points for prevalences, ±10% for medians and
quartiles). Achieved values are computed on a fixed sample of people (common random numbers; the
physiology, each person's fasting steady state and a simulated day with meals for HbA1c are all
differentiated through, the steady state by the implicit function theorem). Classification
thresholds are not differentiable, so inside the loss each indicator ``1[x ≥ c]`` is replaced by
``sigmoid((x − c)/τ)`` with τ = 2 mg/dL for glucose and 0.05 %-points for HbA1c; quantiles are
weighted sample quantiles (differentiable through the sort). The reported ("achieved") figures are
recomputed with hard thresholds, and :func:`check_calibration` evaluates them on a fresh cohort.

People whose simulation failed (no fasting steady state, non-finite state) get weight 0 in the
loss and are counted in the report.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import yaml

from ._virtual_population import (
    PopulationConfig,
    PopulationDraw,
    central_effects,
    draw_population,
    hyper_values,
    physiology_map,
    simulate_outcomes,
)


def _sigmoid_bounds(u, lo, hi):
    return lo + (hi - lo) * jax.nn.sigmoid(u)


def _inverse_sigmoid_bounds(x, lo, hi):
    f = np.clip((x - lo) / (hi - lo), 1e-6, 1 - 1e-6)
    return float(np.log(f / (1 - f)))


def weighted_quantile(x, w, q):
    """Quantile ``q`` of ``x`` with weights ``w`` (midpoint rule; differentiable in ``x``)."""
    order = jnp.argsort(x)
    xs, ws = x[order], w[order]
    cw = jnp.cumsum(ws) - 0.5 * ws
    return jnp.interp(q * jnp.sum(ws), cw, xs)


def class_probabilities(out: dict, softness_glucose: float | None, softness_a1c: float | None):
    """(P(diabetes), P(prediabetes)) per person by the CDC definition (FPG or HbA1c).

    ``softness_*``: ``None`` gives hard 0/1 indicators; a number gives sigmoid indicators of that
    width (used inside the calibration loss).
    """
    def ind(x, c, tau):
        return (x >= c).astype(x.dtype) if tau is None else jax.nn.sigmoid((x - c) / tau)

    fpg, a1c = out["fpg [mg/dL]"], out["hba1c [%]"]
    d = 1 - (1 - ind(fpg, 126.0, softness_glucose)) * (1 - ind(a1c, 6.5, softness_a1c))
    pd_or_worse = 1 - (1 - ind(fpg, 100.0, softness_glucose)) * (1 - ind(a1c, 5.7, softness_a1c))
    return d, pd_or_worse - d


def target_values(cfg: PopulationConfig, out: dict, age_y, *, soft: bool, bmi_kg_per_m2=None):
    """Achieved value of every calibration target (jnp scalars), and the number of failed people.

    ``bmi_kg_per_m2`` (per person) is needed by ``share`` targets: the share of people with the
    outcome whose BMI is in ``bmi_range_kg_per_m2``, directly age-standardised when the target has
    ``age_standard`` (the share in each age group, averaged with the standard's weights)."""
    cal = cfg.calibration
    ok = out["status"] == 0
    clean = {k: jnp.where(ok, v, 0.0) for k, v in out.items() if k != "status"}
    tau_g = cal.softness_glucose_mg_per_dl if soft else None
    tau_a = cal.softness_hba1c_percent if soft else None
    d, pre = class_probabilities(clean, tau_g, tau_a)
    w_ok = ok.astype(d.dtype)
    res = {}
    for t in cal.targets:
        w = w_ok if t.age_min_y is None else w_ok * (age_y >= t.age_min_y)
        if t.statistic == "prevalence":
            x = d if t.outcome == "diabetes" else pre
            res[t.name] = jnp.sum(w * x) / jnp.sum(w)
        elif t.statistic == "share":
            if bmi_kg_per_m2 is None:
                raise ValueError(f"target {t.name}: a BMI-class share needs each person's BMI (bmi_kg_per_m2)")
            lo, hi = t.bmi_range_kg_per_m2
            in_class = ((bmi_kg_per_m2 >= lo) & (bmi_kg_per_m2 < hi)).astype(d.dtype)
            wx = w * (d if t.outcome == "diabetes" else pre)
            groups = t.age_standard or [(-np.inf, np.inf, 1.0)]
            shares = [jnp.sum(wx * g * in_class) / jnp.sum(wx * g) for g in
                      (((age_y >= a) & (age_y < b)).astype(d.dtype) for a, b, _ in groups)]
            res[t.name] = sum(wt * sh for (_, _, wt), sh in zip(groups, shares)) / sum(wt for _, _, wt in groups)
        else:
            if t.exclude_treated_diabetes:
                w = w * (1.0 - cal.diagnosed_fraction_of_diabetes * d)
            x = clean["fasting_insulin [uU/mL]"] if t.outcome == "fasting_insulin_uu_per_ml" else clean["homa_ir [1]"]
            res[t.name] = weighted_quantile(x, w, t.q)
    return res, jnp.sum(~ok)


def _errors(cfg, achieved):
    errs = {}
    for t in cfg.calibration.targets:
        a = achieved[t.name]
        errs[t.name] = (a - t.value) / t.tolerance if t.tolerance_kind == "absolute" else (a - t.value) / (t.tolerance * t.value)
    return errs


@dataclass
class CalibrationResult:
    config: PopulationConfig  #: the population with calibrated hyperparameters and effects
    history: list[dict]  #: loss per step
    report: "object"  #: DataFrame: target, value, achieved (hard), tolerance, passed
    wall_time_s: float


class _Packer:
    """Unconstrained vector ↔ (hyperparameters, effect sizes)."""

    def __init__(self, cfg: PopulationConfig):
        self.cfg = cfg
        self.hyper = {k: h for k, h in cfg.physiology.hyper.items()}
        self.h_free = [k for k, h in self.hyper.items() if h.calibrate]
        self.theta0 = np.array([e.theta_prior for e in cfg.effects])  # priors centre on the published values
        self.start = central_effects(cfg)  # start from the current (possibly calibrated) values
        self.se = np.array([e.theta_se for e in cfg.effects])
        self.e_free = np.array([e.calibrate and e.theta_se > 0 for e in cfg.effects])

    def init(self, theta=None) -> dict:
        h = {k: _inverse_sigmoid_bounds(self.hyper[k].value, self.hyper[k].lower, self.hyper[k].upper) for k in self.h_free}
        th = self.start if theta is None else np.asarray(theta)
        v = np.where(self.e_free, (th - self.theta0) / np.where(self.se > 0, self.se, 1.0), 0.0)
        w = np.arctanh(np.clip(v / 1.96, -0.999, 0.999))
        return {"h": jnp.asarray([h[k] for k in self.h_free]), "v": jnp.asarray(w)}

    def _v(self, z):
        return jnp.where(jnp.asarray(self.e_free), 1.96 * jnp.tanh(z["v"]), 0.0)

    def unpack(self, z):
        hyper = {k: jnp.asarray(h.value) for k, h in self.hyper.items()}
        for i, k in enumerate(self.h_free):
            hyper[k] = _sigmoid_bounds(z["h"][i], self.hyper[k].lower, self.hyper[k].upper)
        # free effects: prior centre + SE·v; fixed ones stay at their current (start) value
        theta = jnp.where(jnp.asarray(self.e_free), jnp.asarray(self.theta0) + jnp.asarray(self.se) * self._v(z),
                          jnp.asarray(self.start))
        return hyper, theta

    def prior(self, z):
        hyper, _ = self.unpack(z)
        pen = 0.0
        for k in self.h_free:
            h = self.hyper[k]
            if h.prior_sd is not None:
                mean = h.value if h.prior_mean is None else h.prior_mean
                pen = pen + ((hyper[k] - mean) / h.prior_sd) ** 2
        return pen + jnp.sum(self._v(z) ** 2)


def evaluate(cfg: PopulationConfig, draw: PopulationDraw, *, mode: str = "fast", theta=None, hyper=None):
    """Achieved targets with hard thresholds on ``draw`` (a DataFrame) and the per-person outcomes."""
    import pandas as pd

    pm = physiology_map(cfg)
    theta = central_effects(cfg) if theta is None else theta
    hyper = hyper_values(cfg) if hyper is None else hyper
    out = simulate_outcomes(pm, cfg, draw, theta, hyper, ogtt=False, mode=mode)
    achieved, n_failed = target_values(cfg, out, draw.age_y, soft=False, bmi_kg_per_m2=draw.bmi_kg_per_m2)
    rows = []
    for t in cfg.calibration.targets:
        a = float(achieved[t.name])
        err = a - t.value if t.tolerance_kind == "absolute" else (a - t.value) / t.value
        rows.append({"target": t.name, "value": t.value, "achieved": a, "error": err, "tolerance": t.tolerance,
                     "tolerance_kind": t.tolerance_kind, "passed": bool(abs(err) <= t.tolerance), "source": t.source})
    return pd.DataFrame(rows), int(n_failed), out


def calibrate(cfg: PopulationConfig, *, steps: int | None = None, n_people: int | None = None, seed: int | None = None,
              learning_rate: float | None = None, progress: bool = True, mode: str = "fast") -> CalibrationResult:
    """Fit ``cfg``'s calibratable hyperparameters and effects to its targets (optax Adam)."""
    from tqdm.auto import tqdm

    if cfg.calibration is None:
        raise ValueError(f"population {cfg.name!r} has no calibration section (targets)")
    cal = cfg.calibration
    steps = cal.steps if steps is None else int(steps)
    n = cal.n_people if n_people is None else int(n_people)
    seed = cal.seed if seed is None else int(seed)
    lr = cal.learning_rate if learning_rate is None else float(learning_rate)
    t0 = time.perf_counter()
    draw = draw_population(cfg, n, seed=seed)
    full_draw, draw = draw, draw.arrays_only()
    pm = physiology_map(cfg)
    pk = _Packer(cfg)

    def loss_fn(z, exclude):
        hyper, theta = pk.unpack(z)
        out = simulate_outcomes(pm, cfg, draw, theta, hyper, ogtt=False, mode=mode, exclude=exclude)
        achieved, n_failed = target_values(cfg, out, draw.age_y, soft=True, bmi_kg_per_m2=draw.bmi_kg_per_m2)
        errs = _errors(cfg, achieved)
        fit = sum(e ** 2 for e in errs.values())
        return fit + pk.prior(z), (fit, achieved, n_failed)

    # cosine-decayed step size: Adam's steps are ~lr regardless of the gradient, so without decay
    # it ends oscillating around the optimum with an amplitude of about lr (in unconstrained units)
    opt = optax.adam(optax.cosine_decay_schedule(lr, max(steps, 1), alpha=0.01))
    z = pk.init()
    state = opt.init(z)

    @jax.jit
    def failed(z):
        hyper, theta = pk.unpack(z)
        return simulate_outcomes(pm, cfg, draw, theta, hyper, ogtt=False, mode=mode)["status"] != 0

    @jax.jit
    def step(z, state):
        # two passes: find the people whose solve fails at z, then differentiate without them
        # (a NaN state would otherwise turn everybody's gradient into NaN)
        exclude = failed(z)
        (loss, aux), g = jax.value_and_grad(loss_fn, has_aux=True)(z, exclude)
        g = jax.tree_util.tree_map(lambda x: jnp.where(jnp.isfinite(x), x, 0.0), g)
        upd, state = opt.update(g, state, z)
        return optax.apply_updates(z, upd), state, loss, aux

    history = []
    best = (np.inf, z)
    bar = tqdm(range(steps), desc=f"calibrate {cfg.name}", disable=not progress)
    for i in bar:
        z_new, state, loss, (fit, achieved, n_failed) = step(z, state)
        loss = float(loss)
        hyper_i, _ = pk.unpack(z)
        history.append({"step": i, "loss": loss, "fit": float(fit), "n_failed": int(n_failed),
                        **{k: float(v) for k, v in achieved.items()},
                        **{f"hyper.{k}": float(hyper_i[k]) for k in pk.h_free}})
        if np.isfinite(loss) and loss < best[0]:
            best = (loss, z)  # the parameters at which this loss was evaluated
        bar.set_postfix(loss=f"{loss:.3g}")
        z = z_new
    hyper, theta = pk.unpack(best[1])
    new = _apply(cfg, {k: float(v) for k, v in hyper.items()}, np.asarray(theta), {
        "method": "optax Adam (cosine-decayed step) on soft-threshold targets (vpop._calibrate)", "steps": steps, "n_people": n,
        "seed": seed, "learning_rate": lr, "best_loss": best[0], "mode": mode})
    report, _, _ = evaluate(new, full_draw, mode=mode)
    return CalibrationResult(new, history, report, time.perf_counter() - t0)


def _apply(cfg: PopulationConfig, hyper: dict, theta: np.ndarray, provenance: dict) -> PopulationConfig:
    data = cfg.model_dump()
    for k, v in hyper.items():
        h = data["physiology"]["hyper"][k]
        h["value"] = round(float(np.clip(v, h["lower"], h["upper"])), 6)
    for e, spec, th in zip(data["effects"], cfg.effects, theta):
        if not (spec.calibrate and spec.theta_se > 0):
            continue
        value = float(np.exp(th)) if e["scale"] == "relative_risk" else float(th)
        if e["ci95"] is not None:  # inside by construction (|v| < 1.96); guard against rounding
            lo, hi = e["ci95"]
            value = float(np.clip(value, lo, hi))
        e["calibrated"] = round(value, 6)
    data["calibrated"] = provenance
    return PopulationConfig.model_validate(data)


def calibration_overlay(result: CalibrationResult) -> dict:
    """The calibrated values and their provenance, as written next to the population YAML."""
    from importlib import metadata

    cfg = result.config
    overlay = dict(cfg.calibrated or {})
    overlay.update({
        "population": cfg.name,
        "vpop_version": metadata.version("vpop"),
        "jax_version": metadata.version("jax"),
        "wall_time_s": round(result.wall_time_s, 1),
        "achieved_on_calibration_sample": {r["target"]: round(float(r["achieved"]), 5) for r in result.report.to_dict("records")},
        "hyper": {k: h.value for k, h in cfg.physiology.hyper.items() if h.calibrate},
        "effects": {e.name: e.calibrated for e in cfg.effects if e.calibrated is not None},
    })
    return overlay


def save_overlay(overlay: dict, path: str | Path) -> Path:
    """Write a calibration overlay as YAML, atomically (complete or absent)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(f"# Calibration of population {overlay.get('population')!r}, written by `vpop calibrate`.\n"
                "# Loaded over the population YAML of the same name by vpop.load_population.\n")
        yaml.safe_dump(json.loads(json.dumps(overlay)), f, sort_keys=False, allow_unicode=True, width=110)
    os.replace(tmp, path)
    return path


def check_calibration(cfg: PopulationConfig, n_people: int = 20000, seed: int = 2026, mode: str = "fast"):
    """Hard-threshold achieved targets of ``cfg`` on a fresh cohort (not the calibration sample)."""
    draw = draw_population(cfg, n_people, seed=seed)
    return evaluate(cfg, draw, mode=mode)
