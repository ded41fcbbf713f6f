r"""Observables: pure functions of trajectories, per person (reductions over people belong to studies).

Glucose in mg/dL, insulin in pmol/L at the interface; the clinical indices convert insulin to
µU/mL with the single factor 6.0 pmol/L per µU/mL (:mod:`vpop._units`).

* HOMA-IR (Matthews 1985): :math:`\mathrm{FPG[mg/dL]}\cdot\mathrm{FPI[µU/mL]}/405`.
* HOMA-%B (Matthews 1985): :math:`360\cdot\mathrm{FPI[µU/mL]}/(\mathrm{FPG[mg/dL]} - 63)`.
* Matsuda index (Matsuda & DeFronzo 1999):
  :math:`10000/\sqrt{G_0 I_0 \bar G \bar I}` with G in mg/dL, I in µU/mL, means over the OGTT
  samples at 0, 30, 60, 90 and 120 min.
* AUC by the trapezoidal rule [mg/dL·min]; incremental AUC above the t = 0 value, negative parts
  clipped to 0 at each sample (a common convention; see Wolever 2004).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pandas as pd

from ._engine import SimulationResult, Status
from ._units import PMOL_PER_L_PER_UU_PER_ML

OGTT_SAMPLES_MIN = (0.0, 30.0, 60.0, 90.0, 120.0)


def value_at(x, time_min, t: float):
    """Values of ``x`` (…, T) at grid time ``t`` [min] (must be on the grid)."""
    time_min = np.asarray(time_min)
    k = int(np.argmin(np.abs(time_min - t)))
    if abs(time_min[k] - t) > 1e-9:
        raise ValueError(f"t={t} min is not on the output grid (step {time_min[1] - time_min[0]} min)")
    return x[..., k]


def auc(x, time_min):
    """Area under ``x`` over the whole grid (trapezoid), e.g. mg/dL·min."""
    dt = jnp.diff(jnp.asarray(time_min))
    return jnp.sum(0.5 * (x[..., 1:] + x[..., :-1]) * dt, axis=-1)


def incremental_auc(x, time_min):
    """AUC above the value at the first sample, negative increments clipped to 0."""
    return auc(jnp.maximum(x - x[..., :1], 0.0), time_min)


def peak(x, time_min):
    """``(peak value, time of peak [min])`` along the last axis."""
    k = jnp.argmax(x, axis=-1)
    return jnp.max(x, axis=-1), jnp.asarray(time_min)[k]


def homa_ir(fpg_mg_per_dl, fpi_pmol_per_l):
    """HOMA-IR = FPG [mg/dL] · FPI [µU/mL] / 405."""
    return fpg_mg_per_dl * (fpi_pmol_per_l / PMOL_PER_L_PER_UU_PER_ML) / 405.0


def homa_beta_percent(fpg_mg_per_dl, fpi_pmol_per_l):
    """HOMA-%B = 360 · FPI [µU/mL] / (FPG [mg/dL] − 63) (Matthews 1985); NaN at FPG ≤ 63 mg/dL."""
    fpi = fpi_pmol_per_l / PMOL_PER_L_PER_UU_PER_ML
    denom = fpg_mg_per_dl - 63.0
    return jnp.where(denom > 0, 360.0 * fpi / jnp.where(denom > 0, denom, 1.0), jnp.nan)


def matsuda_index(glucose_mg_per_dl, insulin_pmol_per_l):
    """Matsuda index from OGTT samples (last axis: 0, 30, 60, 90, 120 min)."""
    g = jnp.asarray(glucose_mg_per_dl)
    i = jnp.asarray(insulin_pmol_per_l) / PMOL_PER_L_PER_UU_PER_ML
    return 1e4 / jnp.sqrt(g[..., 0] * i[..., 0] * jnp.mean(g, axis=-1) * jnp.mean(i, axis=-1))


def summarize(result: SimulationResult) -> pd.DataFrame:
    """One row per person: status and the standard observables of the protocol.

    Columns carry units. Rows of people whose solve failed keep their status and NaN observables:
    they are never silently averaged in.
    """
    t = result.time_min
    missing = {"glucose_plasma", "insulin_plasma"} - set(result.states)
    if missing:
        raise ValueError(f"summarize needs the saved states {sorted(missing)}; pass them in saved_states")
    g = result.glucose_mg_per_dl()
    ins = result.insulin_pmol_per_l()
    g0 = g[:, 0]
    i0 = ins[:, 0]
    gmax, tmax = peak(g, t)
    imax, timax = peak(ins, t)
    cols = {
        "person": np.arange(result.n_people),
        "status": [Status(int(s)).name for s in np.asarray(result.status)],
        "glucose_peak [mg/dL]": gmax,
        "glucose_time_to_peak [min]": tmax,
        "insulin_peak [pmol/L]": imax,
        "insulin_time_to_peak [min]": timax,
        "glucose_auc [mg/dL*min]": auc(g, t),
        "glucose_iauc [mg/dL*min]": incremental_auc(g, t),
        "insulin_auc [pmol/L*min]": auc(ins, t),
        "glucose_mean [mg/dL]": jnp.mean(g, axis=-1),
        "glucose_end [mg/dL]": g[:, -1],
    }
    kind = result.protocol.kind
    # Runs start from the basal (post-absorptive) state by default, and a meal at t = 0 only fills
    # the stomach, so the t = 0 sample is the fasting sample.
    cols["fpg [mg/dL]"] = g0
    cols["fasting_insulin [pmol/L]"] = i0
    cols["homa_ir [1]"] = homa_ir(g0, i0)
    cols["homa_beta [%]"] = homa_beta_percent(g0, i0)
    if kind == "ogtt":
        gs = jnp.stack([value_at(g, t, s) for s in OGTT_SAMPLES_MIN], axis=-1)
        is_ = jnp.stack([value_at(ins, t, s) for s in OGTT_SAMPLES_MIN], axis=-1)
        cols["ogtt_2h_glucose [mg/dL]"] = gs[:, -1]
        cols["matsuda [1]"] = matsuda_index(gs, is_)
    df = pd.DataFrame({k: np.asarray(v, dtype=float) if k not in ("person", "status") else v for k, v in cols.items()})
    bad = np.asarray(result.status) != Status.OK
    num = [c for c in df.columns if c not in ("person", "status")]
    df.loc[bad, num] = np.nan
    return df


def traces(result: SimulationResult, every_min: float | None = None) -> pd.DataFrame:
    """Long (tidy) table of glucose and insulin: one row per person and time.

    People whose solve failed keep their rows (with their status) but NaN values.

    ``every_min`` thins the grid (must be a multiple of the protocol's output step).
    """
    t = result.time_min
    step = 1
    if every_min is not None:
        ratio = every_min / result.protocol.save_every_min
        if ratio < 1 or abs(ratio - round(ratio)) > 1e-9:
            raise ValueError(f"every_min={every_min} must be a multiple of save_every_min={result.protocol.save_every_min}")
        step = int(round(ratio))
    g = np.array(result.glucose_mg_per_dl(), dtype=float)[:, ::step]
    ins = np.array(result.insulin_pmol_per_l(), dtype=float)[:, ::step]
    bad = np.asarray(result.status) != Status.OK
    g[bad] = np.nan  # failed people are never plotted or averaged in
    ins[bad] = np.nan
    tt = t[::step]
    n, T = g.shape
    return pd.DataFrame({
        "person": np.repeat(np.arange(n), T),
        "time [min]": np.tile(tt, n),
        "glucose [mg/dL]": g.reshape(-1),
        "insulin [pmol/L]": ins.reshape(-1),
        "status": np.repeat([Status(int(s)).name for s in np.asarray(result.status)], T),
    })
