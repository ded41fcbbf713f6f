"""Progression over years: two nested time scales on a calibrated virtual population.

Time scales (DESIGN §2)
-----------------------
* **slow** (a ``lax.scan`` over steps of ``step_days``, default 30 days): covariates drift (age;
  BMI; interventions from a chosen year), insulin sensitivity follows them through the population's
  effect map, beta-cell function adapts (below), HbA1c follows glycaemia;
* **fast** (inside each slow step): every person's fasting steady state, one simulated day with the
  configured meals (24-h mean glucose → HbA1c) and a 75-g OGTT, with the vpop fast engine.

Only per-step summaries (FPG, fasting insulin, HbA1c, 2-h glucose; a few floats per person and
step) are kept, so memory grows with the number of saved steps, not with the simulated minutes.

Slow states per person
----------------------
* ``log b``: beta-cell function (mass × secretory capacity) relative to the Dalla Man normal
  subject.
* HbA1c: a three-compartment transit chain with mean transit time 38.9 d (the WHIG model, Choy et
  al. 2016, SCIENCE.md §1(i)) driven by the steady-state HbA1c of the current glycaemia
  (:func:`vpop._diagnosis.hba1c_percent`).
* intrinsic beta-cell decline: a per-person slope ``ρ`` [1/yr] of log beta-cell function, normal
  with mean 0 and SD ``beta_decline_sd_per_year`` (an assumption, not a published value; the mean
  age trend is the population's calibrated age effect).

Beta-cell adaptation (Topp et al. 2000, J Theor Biol 206:605)
-------------------------------------------------------------
Topp's glucose-driven mass dynamics ``dβ/dt = β(−d₀ + r₁G − r₂G²)`` (d₀ = 0.06 /d,
r₁ = 0.84e-3 /(mg/dL·d), r₂ = 0.24e-5 /((mg/dL)²·d)) have a stable point at G = 100 mg/dL and a
glucotoxic saddle at 250 mg/dL. vpop applies them to ``log b`` on each person's own glucose scale:
``g = 100 · G / G*``, where ``G*`` is the fasting glucose the person would have at the population's
adapted state for their current covariates (the calibrated cross-sectional law of
:mod:`vpop._virtual_population`, including the compensation exponent). So beta cells expand when
insulin resistance rises (glucose above ``G*``) and return glucose towards ``G*`` within months,
glucose above 2.5·``G*`` makes them collapse (Topp's pathway to diabetes), and the long-run state
is the calibrated population. ``adaptation: "none"`` switches the dynamics off: beta-cell function
then follows only the intrinsic and covariate effects (no compensation for a rise in insulin
resistance).

Diagnosis over time: ADA class at each step from FPG, 2-h glucose and HbA1c; time to prediabetes
and to diabetes is the first step at which the class is reached (people already there at baseline
get time 0). Interventions (arms) change covariates from ``start_year`` in people matching
``where``, and may reduce hepatic glucose output (metformin-like, a factor on ``kp1``).
"""

from __future__ import annotations

import time
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ._population_study import ArmConfig, apply_arm

# Topp 2000 Table 1 (per day; glucose in mg/dL)
TOPP_D0_PER_DAY = 0.06
TOPP_R1 = 0.84e-3
TOPP_R2 = 0.24e-5
#: WHIG HbA1c chain mean transit time [d] (Choy et al. 2016)
HBA1C_MTT_D = 38.9
#: lowest log beta-cell function reached by glucotoxic collapse (2% of normal)
LOG_B_FLOOR = float(np.log(0.02))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProgressionArm(ArmConfig):
    start_year: float = Field(0.0, ge=0, description="intervention start [years from baseline]")
    egp_reduction_fraction: float = Field(0.0, ge=0, lt=0.9, description="metformin-like: kp1 × (1 − fraction)")


class ProgressionConfig(_Strict):
    years: float = Field(10.0, gt=0, le=60)
    step_days: float = Field(30.0, ge=1, le=365)
    adaptation: Literal["topp", "none"] = "topp"
    bmi_drift_kg_per_m2_per_year: float = Field(0.1, description="mean BMI change per year while age < 65 [R: US adults gain ≈ 0.3–0.5 kg/yr]")
    bmi_drift_sd_kg_per_m2_per_year: float = Field(0.15, ge=0)
    beta_decline_sd_per_year: float = Field(0.03, ge=0, description="SD of the intrinsic log beta-cell slope [ASSUMED]")
    ogtt: bool = True


def _chain_step(a, target, dt_days, k):
    """Three-compartment transit chain over ``dt_days`` (implicit Euler, daily substeps)."""
    n_sub = int(np.ceil(dt_days))
    h = dt_days / n_sub

    def sub(a, _):
        a1 = (a[0] + h * k * target) / (1 + h * k)
        a2 = (a[1] + h * k * a1) / (1 + h * k)
        a3 = (a[2] + h * k * a2) / (1 + h * k)
        return jnp.stack([a1, a2, a3]), None

    a, _ = jax.lax.scan(sub, a, None, length=n_sub)
    return a


def simulate_progression(pop, n_people: int, *, config: ProgressionConfig | None = None, arms: list | None = None,
                         seed: int = 0, covariates=None, mode: str = "fast"):
    """Simulate ``n_people`` from population ``pop`` over ``config.years`` in each arm.

    Returns ``(people, trajectories)``: ``people`` one row per person and arm (baseline covariates,
    time to prediabetes / diabetes [years, NaN if not reached], status), ``trajectories`` a long table
    per person, arm and step (time [years], FPG, fasting insulin, HbA1c, 2-h glucose, ADA class).
    """
    from ._diagnosis import hba1c_percent
    from ._engine import simulate
    from ._units import PMOL_PER_L_PER_UU_PER_ML
    from ._virtual_population import (
        central_effects,
        day_protocol,
        draw_population,
        feature_matrix,
        hyper_values,
        ogtt_protocol,
        parameters_from_factors,
        person_factors,
        physiology_map,
    )

    cfg = config or ProgressionConfig()
    arms = [ProgressionArm(name="control")] if not arms else [a if isinstance(a, ProgressionArm) else ProgressionArm.model_validate(a) for a in arms]
    pm = physiology_map(pop)
    hyper = {k: jnp.asarray(v) for k, v in hyper_values(pop).items()}
    theta = jnp.asarray(central_effects(pop))
    base = draw_population(pop, n_people, seed=seed, covariates=covariates)
    cov0 = base.covariates
    n = cov0.n_people
    rng = np.random.default_rng([seed, 11])
    rho = cfg.beta_decline_sd_per_year * rng.standard_normal(n)
    drift = cfg.bmi_drift_kg_per_m2_per_year + cfg.bmi_drift_sd_kg_per_m2_per_year * rng.standard_normal(n)
    n_steps = int(np.ceil(cfg.years * 365.25 / cfg.step_days))
    t_years = np.arange(n_steps + 1) * cfg.step_days / 365.25
    k_chain = 3.0 / HBA1C_MTT_D
    day, ogtt = day_protocol(pop), ogtt_protocol(pop)

    def features_over_time(arm):
        F, BW, EGP = [], [], []
        for t in t_years:
            age = cov0.numeric("age_y") + t
            bmi = cov0.numeric("bmi_kg_per_m2") + drift * np.clip(np.minimum(65.0, age) - cov0.numeric("age_y"), 0, None)
            cov_t = cov0.replace(age_y=age, bmi_kg_per_m2=np.clip(bmi, 15, 70))
            on = t >= arm.start_year
            mask = np.zeros(n, bool)
            if on:
                cov_t, mask = apply_arm(arm, cov_t)
            F.append(feature_matrix(pop.effects, cov_t))
            BW.append(cov_t.numeric("bmi_kg_per_m2") * cov_t.numeric("height_m") ** 2)
            EGP.append(np.where(mask & on, 1.0 - arm.egp_reduction_fraction, 1.0))
        return (jnp.asarray(np.stack(F), jnp.float32), jnp.asarray(np.stack(BW)), jnp.asarray(np.stack(EGP)))

    def fasting(log_sh, log_sp, log_b, bw, egp):
        p, _ = parameters_from_factors(pm, log_sh, log_sp, log_b, bw, hyper, egp_factor=egp)
        return p

    def factors(F, t):
        d = base.arrays_only()
        d = type(d)(F.astype(d.features.dtype), d.z, d.bw_kg, d.rbc_age_d, d.age_y, None, None)
        log_sh, log_sp, log_b_star = person_factors(pm, d, theta, hyper)
        return log_sh, log_sp, log_b_star + jnp.asarray(rho) * t

    @jax.jit
    def run(F, BW, EGP):
        log_sh0, log_sp0, log_b0 = factors(F[0], 0.0)
        p0 = fasting(log_sh0, log_sp0, log_b0, BW[0], EGP[0])
        a1c0 = hba1c_percent(_mean_day_glucose(p0), base.rbc_age_d)
        chain0 = jnp.stack([a1c0, a1c0, a1c0])
        # "none": beta cells keep the compensation of baseline; only intrinsic/covariate effects on b move
        e0 = (log_sh0 + log_sp0) * 0.5

        def step(carry, inp):
            log_b, chain = carry
            F_k, bw, egp, t = inp
            log_sh, log_sp, log_b_star = factors(F_k, t)
            if cfg.adaptation == "none":
                log_b = log_b_star + hyper["compensation"] * ((log_sh + log_sp) * 0.5 - e0)
            p = fasting(log_sh, log_sp, log_b, bw, egp)
            g_day = _mean_day_glucose(p)
            chain = _chain_step(chain, hba1c_percent(g_day, base.rbc_age_d), cfg.step_days, k_chain)
            if cfg.ogtt:
                o = simulate(pm.model, p, ogtt, mode=mode, saved_states=("glucose_plasma",))
                g2 = o.glucose_mg_per_dl()[:, -1]
                st = o.status
            else:
                g2 = jnp.full_like(p.Gb, jnp.nan)
                st = jnp.zeros(p.Gb.shape, jnp.int8)
            out = (p.Gb, p.Ib / PMOL_PER_L_PER_UU_PER_ML, chain[2], g2, log_b, st)
            if cfg.adaptation == "topp":
                p_star = fasting(log_sh, log_sp, log_b_star, bw, egp)
                g = 100.0 * p.Gb / p_star.Gb
                rate = -TOPP_D0_PER_DAY + TOPP_R1 * g - TOPP_R2 * g * g
                # floor: 2% of the normal subject's function (near-total loss stays a defined state)
                log_b = jnp.maximum(log_b + cfg.step_days * jnp.where(jnp.isfinite(rate), rate, 0.0), LOG_B_FLOOR)
            return (log_b, chain), out

        ts = jnp.asarray(t_years[1:])
        _, outs = jax.lax.scan(step, (log_b0, chain0), (F[1:], BW[1:], EGP[1:], ts))
        first = (p0.Gb, p0.Ib / PMOL_PER_L_PER_UU_PER_ML, a1c0, jnp.full_like(p0.Gb, jnp.nan), log_b0, jnp.zeros(p0.Gb.shape, jnp.int8))
        return tuple(jnp.concatenate([f[None], o]) for f, o in zip(first, outs))

    def _mean_day_glucose(p):
        r = simulate(pm.model, p, day, mode=mode, saved_states=("glucose_plasma",), substeps=1)
        g = r.glucose_mg_per_dl()
        return jnp.where(r.status == 0, jnp.mean(0.5 * (g[:, 1:] + g[:, :-1]), axis=1), jnp.nan)

    people, trajectories = [], []
    for arm in arms:
        t0 = time.perf_counter()
        F, BW, EGP = features_over_time(arm)
        fpg, fpi, a1c, g2, log_b, st = (np.asarray(x) for x in run(F, BW, EGP))
        if not cfg.ogtt:
            g2 = np.full_like(fpg, np.nan)
        from ._diagnosis import classify_test

        cls = np.maximum(np.maximum(classify_test(fpg, "FPG"), classify_test(a1c, "HbA1c")),
                         np.where(np.isfinite(g2), classify_test(g2, "2hPG"), 0))
        failed = ~np.isfinite(fpg).all(axis=0) | ~np.isfinite(a1c).all(axis=0) | (st != 0).any(axis=0)

        def first_time(level):
            hit = cls >= level
            idx = np.argmax(hit, axis=0)
            return np.where(hit.any(axis=0) & ~failed, t_years[idx], np.nan)

        df = cov0.to_frame()
        df.insert(0, "person", np.arange(n))
        df.insert(0, "arm", arm.name)
        df["baseline_ada_class"] = np.array(["normal", "prediabetes", "diabetes", "unclassified"])[np.where(cls[0] < 0, 3, cls[0])]
        df["time_to_prediabetes [years]"] = first_time(1)
        df["time_to_diabetes [years]"] = first_time(2)
        df["beta_decline_slope [1/yr]"] = rho
        df["bmi_drift [kg/m2/yr]"] = drift
        df["status"] = np.where(failed, "FAILED", "OK")
        df["wall_time_s"] = time.perf_counter() - t0
        people.append(df)
        tr = pd.DataFrame({
            "arm": arm.name, "person": np.tile(np.arange(n), len(t_years)), "time [years]": np.repeat(t_years, n),
            "fpg [mg/dL]": fpg.ravel(), "fasting_insulin [uU/mL]": fpi.ravel(), "hba1c [%]": a1c.ravel(),
            "ogtt_2h_glucose [mg/dL]": g2.ravel(), "log_beta_cell_function [1]": log_b.ravel(),
            "ada_class": np.array(["normal", "prediabetes", "diabetes", "unclassified"])[np.where(cls < 0, 3, cls)].ravel()})
        trajectories.append(tr)
    return pd.concat(people, ignore_index=True), pd.concat(trajectories, ignore_index=True)


def incidence_curve(people: pd.DataFrame, event: str = "diabetes", by: str | None = None, at_risk: str = "not_diabetes"):
    """Cumulative incidence [%] over time among people at risk at baseline (failed people excluded).

    ``at_risk``: ``"not_diabetes"`` (default), ``"normal"`` or ``"prediabetes"`` (baseline class).
    """
    col = f"time_to_{event} [years]"
    ok = people[people["status"] == "OK"]
    if at_risk == "not_diabetes":
        ok = ok[ok["baseline_ada_class"].isin(["normal", "prediabetes"])]
    else:
        ok = ok[ok["baseline_ada_class"] == at_risk]
    keys = ["arm"] + ([by] if by else [])
    rows = []
    for key, g in ok.groupby(keys, observed=True):
        times = np.sort(g[col].dropna().unique())
        for t in np.concatenate([[0.0], times]):
            rows.append({**dict(zip(keys, key if isinstance(key, tuple) else (key,))), "time [years]": t,
                         "cumulative_incidence [%]": 100.0 * (g[col] <= t).mean(), "n_at_risk": len(g)})
    return pd.DataFrame(rows)
