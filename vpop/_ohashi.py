r"""Oral glucose minimal model (OMM) fitted to the Ohashi 2018 OGTTs; the clamp-GIR prediction check.

Model (after Dalla Man C, Caumo A, Cobelli C, IEEE TBME 2002;49:419, re-derived here)::

    dG/dt = −(SG + X)·G + SG·Gb + Ra(t)/V,     G(0) = Gb          [mg/dL]
    dX/dt = −p2·X + p2·SI·(I(t) − Ib),          X(0) = 0           [1/min]

* ``I(t)``: measured plasma insulin [µU/mL], linear between the OGTT samples (forcing); Gb, Ib the
  t = 0 samples; V = 1.45 dL/kg (Dalla Man 2002).
* ``Ra(t)`` [mg/kg/min]: piecewise linear through breakpoints 0, 15, 30, 60, 90, 120 min with
  Ra(0) = 0. Its shape is free (values at 15, 60, 90, 120 min relative to the value at 30 min, the
  parameters ``ra15``, ``ra60``, ``ra90``, ``ra120``); its area over 0–120 min is fixed at
  ``FRACTION_ABSORBED_120`` of the dose per kg body weight. That fraction (0.528) and the prior
  medians of the shape come from vpop's Dalla Man 2007 normal-subject gut model for a 75 g OGTT
  (f = 0.9 included; recomputed by the tests), so no OGTT data enter them.
* Fitted: SI [1/min per µU/mL], SG [1/min], p2 [1/min] and the four Ra shape ratios, on the log
  scale, by MAP with log-normal priors (SG: median 0.025, ω 0.3; p2: median 0.015, ω 0.5; Ra
  ratios: the Dalla Man shape, ω 0.5; SI: a weak prior, median 3.5e-4, ω 2) and a proportional
  2% glucose error (the assay CV used for the minimal model). Fit to the glucose samples at 30,
  60, 90 and 120 min with :mod:`vpop._fit`, every subject in one vmapped job.
* Integration: classic RK4, 1-min steps, float64 (time constants ≥ 10 min; the forcing and Ra
  are linear between breakpoints that fall on steps).

C-peptide is loaded with the OGTT but not used for SI: in this model structure insulin is the
measured forcing, so secretion does not inform SI.

Data: Ohashi K et al., npj Syst Biol Appl 2018;4:14 (CC BY 4.0), ``vpop/data/ohashi2018_ogtt_clamp``.
"""

from __future__ import annotations

from importlib import resources

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from ._fit import ErrorModel, FitProblem, FitResult, Param, fit_individuals

OGTT_TIMES_MIN = np.array([0.0, 30.0, 60.0, 90.0, 120.0])
RA_BREAKPOINTS_MIN = np.array([0.0, 15.0, 30.0, 60.0, 90.0, 120.0])
V_DL_PER_KG = 1.45
#: fraction of an oral 75 g glucose dose appearing in plasma by 120 min, and Ra at the breakpoints
#: relative to Ra(30 min): vpop's DallaMan2007_normal (BW 78 kg) for ``vpop.ogtt(75)``.
FRACTION_ABSORBED_120 = 0.5283
RA_SHAPE_PRIOR = {"ra15": 1.0304, "ra60": 0.7018, "ra90": 0.5670, "ra120": 0.4570}
DT_MIN = 1.0

OMM_PARAMS = (
    Param("SI", "1/min per µU/mL", 3.5e-4, prior_median=3.5e-4, prior_sd=2.0),
    Param("SG", "1/min", 0.025, prior_median=0.025, prior_sd=0.3),
    Param("p2", "1/min", 0.015, prior_median=0.015, prior_sd=0.5),
    *(Param(k, "1", v, prior_median=v, prior_sd=0.5) for k, v in RA_SHAPE_PRIOR.items()),
)


def ra_mg_per_kg_min(theta, t_min, dose_mg_per_kg):
    """Piecewise-linear Ra [mg/kg/min] at ``t_min`` with area ``FRACTION_ABSORBED_120 × dose`` over 0–120 min."""
    w = jnp.stack([jnp.zeros_like(theta["ra15"]), theta["ra15"], jnp.ones_like(theta["ra15"]),
                   theta["ra60"], theta["ra90"], theta["ra120"]])
    tb = jnp.asarray(RA_BREAKPOINTS_MIN)
    area = jnp.sum(0.5 * (w[1:] + w[:-1]) * jnp.diff(tb))
    scale = FRACTION_ABSORBED_120 * dose_mg_per_kg / area
    return scale * jnp.interp(t_min, tb, w, right=0.0)


def simulate_omm(theta, insulin_uu_per_ml, Gb, dose_mg_per_kg, t_end_min=120.0, dt_min=DT_MIN, insulin_t_min=OGTT_TIMES_MIN):
    """Glucose [mg/dL] on the grid 0, dt, …, t_end of the oral minimal model for one subject;
    ``insulin_uu_per_ml`` at ``insulin_t_min`` (first sample basal, at 0 min; no NaN)."""
    ti = jnp.asarray(insulin_t_min, float)
    Ib = insulin_uu_per_ml[0]
    SI, SG, p2 = theta["SI"], theta["SG"], theta["p2"]

    def f(t, y):
        G, X = y[0], y[1]
        I = jnp.interp(t, ti, insulin_uu_per_ml)
        dG = -(SG + X) * G + SG * Gb + ra_mg_per_kg_min(theta, t, dose_mg_per_kg) / V_DL_PER_KG
        dX = -p2 * X + p2 * SI * (I - Ib)
        return jnp.stack([dG, dX])

    def step(y, t):
        h = dt_min
        k1 = f(t, y)
        k2 = f(t + h / 2, y + h / 2 * k1)
        k3 = f(t + h / 2, y + h / 2 * k2)
        k4 = f(t + h, y + h * k3)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y, y[0]

    n = int(round(t_end_min / dt_min))
    y0 = jnp.stack([Gb, jnp.zeros_like(Gb)])
    _, g = jax.lax.scan(step, y0, jnp.arange(n) * dt_min)
    return jnp.concatenate([Gb[None], g])


def _predict(theta, d):
    """Glucose at ``d["t_glucose"]`` (the samples after 0 min); insulin forcing sampled at ``d["t_insulin"]``."""
    g = simulate_omm(theta, d["insulin"], d["Gb"], d["dose"], insulin_t_min=d["t_insulin"])
    grid = jnp.arange(g.shape[0]) * DT_MIN
    return {"glucose": jnp.interp(d["t_glucose"], grid, g)}


OMM_PROBLEM = FitProblem(OMM_PARAMS, (ErrorModel("glucose", "mg/dL", proportional_sd=0.02),), _predict,
                         name="oral_minimal_model_ogtt_v1")


def _read(name):
    with (resources.files("vpop") / "data" / "ohashi2018_ogtt_clamp" / name).open() as f:
        df = pd.read_csv(f, sep=";", dtype=str)
    # some cells use decimal commas; every column but the group label is numeric
    return df.apply(lambda c: c if c.name == "type" else pd.to_numeric(c.str.replace(",", ".", regex=False), errors="coerce"))


def load_ohashi() -> pd.DataFrame:
    """One row per subject: ``subject``, ``group`` (NGT/IGT/T2DM), ``body_weight [kg]``, OGTT glucose
    [mg/dL], insulin [µU/mL], C-peptide [ng/mL] at 0/30/60/90/120 min, and clamp ``gir [mg/kg/min]``."""
    o, c, s = _read("ohashi_OGTT.csv"), _read("ohashi_clamp_indices.csv"), _read("ohashi_subjectinfo.csv")
    o.columns = [col.replace(" ", "") for col in o.columns]
    out = pd.DataFrame({"subject": o["No"].astype(int)})
    for t in OGTT_TIMES_MIN.astype(int):
        out[f"glucose_{t} [mg/dL]"] = pd.to_numeric(o[f"O-PG({t})"], errors="coerce")
        out[f"insulin_{t} [µU/mL]"] = pd.to_numeric(o[f"O-IRI({t})"], errors="coerce")
        out[f"c_peptide_{t} [ng/mL]"] = pd.to_numeric(o[f"O-CPR({t})"], errors="coerce")
    s = s.rename(columns={"No": "subject", "type": "group", "BW": "body_weight [kg]", "age": "age [years]", "BMI": "bmi [kg/m2]"})
    c = c.rename(columns={"No": "subject", "GIR": "gir [mg/kg/min]"})
    out = out.merge(s[["subject", "group", "age [years]", "body_weight [kg]", "bmi [kg/m2]"]], on="subject")
    return out.merge(c[["subject", "gir [mg/kg/min]"]], on="subject", how="left")


def matsuda_index(glucose_mg_dl: np.ndarray, insulin_uu_ml: np.ndarray) -> np.ndarray:
    """Matsuda & DeFronzo 1999: 10,000/√(G0·I0·Ḡ·Ī), means over the OGTT samples (NaN if any is missing)."""
    g, i = np.asarray(glucose_mg_dl, float), np.asarray(insulin_uu_ml, float)
    return 1e4 / np.sqrt(g[:, 0] * i[:, 0] * g.mean(1) * i.mean(1))


def ogtt_arrays(df: pd.DataFrame, dose_g: float = 75.0):
    """Fit inputs from :func:`load_ohashi`-style rows: glucose at 30–120 min (NaN = missing), insulin
    at 0–120 min (missing samples linearly interpolated from the others), Gb and dose [mg/kg]."""
    g = df[[f"glucose_{t} [mg/dL]" for t in OGTT_TIMES_MIN.astype(int)]].to_numpy(float)
    ins = df[[f"insulin_{t} [µU/mL]" for t in OGTT_TIMES_MIN.astype(int)]].to_numpy(float)
    bw = df["body_weight [kg]"].to_numpy(float)
    if np.any(~np.isfinite(g[:, 0])) or np.any(~np.isfinite(ins[:, 0])):
        raise ValueError("every subject needs basal (0 min) glucose and insulin")
    if np.any(~(bw > 20) | ~(bw < 400)):
        raise ValueError("'body_weight [kg]' must lie in (20, 400) kg")
    ins_f = ins.copy()
    for r in range(len(ins)):
        ok = np.isfinite(ins[r])
        ins_f[r] = np.interp(OGTT_TIMES_MIN, OGTT_TIMES_MIN[ok], ins[r, ok])
    n = len(g)
    return {"glucose": g[:, 1:], "insulin": ins_f, "Gb": g[:, 0], "dose": np.full(n, dose_g * 1000.0) / bw,
            "t_glucose": np.tile(OGTT_TIMES_MIN[1:], (n, 1)), "t_insulin": np.tile(OGTT_TIMES_MIN, (n, 1))}


def fit_ohashi(df: pd.DataFrame | None = None, **kw) -> tuple[pd.DataFrame, FitResult]:
    """Fit the OMM to every subject's OGTT (those with basal samples) in one vmapped job; returns (subjects table with ``SI`` etc., fit)."""
    df = load_ohashi() if df is None else df
    has_ogtt = df["glucose_0 [mg/dL]"].notna() & df["insulin_0 [µU/mL]"].notna()
    df = df[has_ogtt].reset_index(drop=True)  # subject 89 has no OGTT at all
    kw = {"n_starts": 3, "max_iter": 400, "checkpoint_every": 100, **kw}
    res = fit_individuals(OMM_PROBLEM, ogtt_arrays(df), subjects=list(df["subject"]), **kw)
    out = df.copy()
    for i, p in enumerate(OMM_PARAMS):
        out[f"{p.name} [{p.unit}]"] = res.estimates[:, i]
        out[f"{p.name}_se [{p.unit}]"] = res.standard_errors[:, i]
    out["converged"] = res.converged
    out["matsuda [1]"] = matsuda_index(df[[f"glucose_{t} [mg/dL]" for t in OGTT_TIMES_MIN.astype(int)]].to_numpy(float),
                                      df[[f"insulin_{t} [µU/mL]" for t in OGTT_TIMES_MIN.astype(int)]].to_numpy(float))
    return out, res


def spearman(x, y) -> float:
    from scipy.stats import spearmanr
    return float(spearmanr(x, y)[0])


def gir_correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Spearman r with clamp GIR of the OMM SI and of Matsuda, on the subjects with both (overall, per group)."""
    ok = np.isfinite(table["matsuda [1]"]) & np.isfinite(table["gir [mg/kg/min]"]) & np.isfinite(table["SI [1/min per µU/mL]"])
    t = table[ok]
    rows = []
    for name, sub in [("all", t)] + [(g, t[t["group"] == g]) for g in ("NGT", "IGT", "T2DM")]:
        rows.append({"group": name, "n": len(sub),
                     "spearman_r_SI_vs_GIR": spearman(sub["SI [1/min per µU/mL]"], sub["gir [mg/kg/min]"]),
                     "spearman_r_matsuda_vs_GIR": spearman(sub["matsuda [1]"], sub["gir [mg/kg/min]"])})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Synthetic cohort and parameter recovery

#: the 7-sample research OGTT of the oral-minimal-model validation studies (Dalla Man et al. 2005)
RESEARCH_OGTT_TIMES_MIN = np.array([0.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0])
#: generating distribution of the synthetic cohort: log-normal (median, SD of log); SG, p2 and the Ra
#: shape as the fit's priors, SI wide (about a tenfold 95% range) around the Denti 2010 typical value.
SYNTHETIC_PARAMETERS = {"SI": (3.5e-4, 0.6), "SG": (0.025, 0.3), "p2": (0.015, 0.5),
                        **{k: (v, 0.5) for k, v in RA_SHAPE_PRIOR.items()}}


def synthetic_ogtt_cohort(n_people: int, *, seed: int = 0, times_min=RESEARCH_OGTT_TIMES_MIN,
                          cv_glucose: float = 0.02, cv_insulin: float = 0.05):
    """``n_people`` synthetic 75 g OGTTs from the oral minimal model with known parameters.

    Each person takes the insulin curve (linear between its 5 samples: the true forcing), basal
    glucose and body weight of an Ohashi subject drawn at random, and parameters drawn from
    ``SYNTHETIC_PARAMETERS``. Measurements at ``times_min``: glucose (basal included) with a
    ``cv_glucose`` proportional Gaussian error and insulin with ``cv_insulin``. Returns
    ``(fit_data, truth)``: the inputs of ``OMM_PROBLEM`` as measured, and the true parameters.
    """
    if n_people < 1:
        raise ValueError(f"n_people must be ≥ 1, got {n_people}")
    times_min = np.asarray(times_min, float)
    if times_min[0] != 0.0 or np.any(np.diff(times_min) <= 0) or times_min[-1] > 120.0:
        raise ValueError(f"times_min must start at 0, increase and end by 120 min; got {times_min.tolist()}")
    rng = np.random.default_rng(seed)
    df = load_ohashi()
    cols_i = [f"insulin_{t} [µU/mL]" for t in OGTT_TIMES_MIN.astype(int)]
    df = df[df[cols_i].notna().all(axis=1) & df["glucose_0 [mg/dL]"].notna()].reset_index(drop=True)
    pick = rng.integers(0, len(df), n_people)
    ins5 = df[cols_i].to_numpy(float)[pick]
    gb = df["glucose_0 [mg/dL]"].to_numpy(float)[pick]
    dose = 75_000.0 / df["body_weight [kg]"].to_numpy(float)[pick]
    truth = {k: m * np.exp(s * rng.standard_normal(n_people)) for k, (m, s) in SYNTHETIC_PARAMETERS.items()}
    sim = jax.jit(jax.vmap(lambda th, i, g, d: simulate_omm(th, i, g, d)))
    g_true = np.asarray(sim({k: jnp.asarray(v) for k, v in truth.items()}, ins5, gb, dose))
    grid = np.arange(g_true.shape[1]) * DT_MIN
    g_obs = np.stack([np.interp(times_min, grid, g) for g in g_true])
    g_obs *= 1.0 + cv_glucose * rng.standard_normal(g_obs.shape)
    i_obs = np.stack([np.interp(times_min, OGTT_TIMES_MIN, i) for i in ins5])
    i_obs *= 1.0 + cv_insulin * rng.standard_normal(i_obs.shape)
    data = {"glucose": g_obs[:, 1:], "insulin": np.maximum(i_obs, 0.0), "Gb": g_obs[:, 0], "dose": dose,
            "t_glucose": np.tile(times_min[1:], (n_people, 1)), "t_insulin": np.tile(times_min, (n_people, 1))}
    return data, truth


#: a parameter counts as identifiable when the fit's own median relative SE predicts a median absolute
#: relative error ≤ 10% (for Gaussian errors the median |error| is 0.6745 σ), and the data, not the
#: prior, determine it (posterior/prior variance ≤ 0.5).
RECOVERY_TARGET = 0.10
RECOVERY_RSE_MAX = RECOVERY_TARGET / 0.6745


def parameter_recovery(n_people: int = 1000, *, seed: int = 0, **kw):
    """Fit the synthetic cohort; returns a table per parameter: median absolute relative error,
    median relative SE, prior shrinkage, identifiable (and why not), plus the fit."""
    data, truth = synthetic_ogtt_cohort(n_people, seed=seed, **kw)
    res = fit_individuals(OMM_PROBLEM, data, n_starts=1, max_iter=400, checkpoint_every=100)
    res.rse_max = RECOVERY_RSE_MAX
    ident = res.identifiable()
    err = [float(np.median(np.abs(res.estimates[:, i] / truth[p.name] - 1.0))) for i, p in enumerate(OMM_PARAMS)]
    ident.insert(2, "median_abs_relative_error [1]", err)
    return ident, res


# ---------------------------------------------------------------------------------------------
# Tidy (long) OGTT tables

TIDY_COLUMNS = {"glucose": "mg/dL", "insulin": "µU/mL", "body_weight": "kg"}


def ohashi_tidy(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The Ohashi OGTTs as a tidy table: ``subject``, ``group``, ``time [min]``, ``glucose [mg/dL]``,
    ``insulin [µU/mL]``, ``c_peptide [ng/mL]``, ``body_weight [kg]`` (one row per subject and time)."""
    df = load_ohashi() if df is None else df
    parts = []
    for t in OGTT_TIMES_MIN.astype(int):
        parts.append(pd.DataFrame({"subject": df["subject"], "group": df["group"], "time [min]": float(t),
                                   "glucose [mg/dL]": df[f"glucose_{t} [mg/dL]"], "insulin [µU/mL]": df[f"insulin_{t} [µU/mL]"],
                                   "c_peptide [ng/mL]": df[f"c_peptide_{t} [ng/mL]"], "body_weight [kg]": df["body_weight [kg]"]}))
    return pd.concat(parts).sort_values(["subject", "time [min]"], kind="stable").reset_index(drop=True)


def omm_data_from_tidy(df: pd.DataFrame, dose_g: float = 75.0):
    """Fit inputs of ``OMM_PROBLEM`` from a tidy OGTT table (columns ``subject``, ``time [min]``,
    ``glucose [mg/dL]``, ``insulin [µU/mL]``, ``body_weight [kg]``; units checked). Every subject is
    placed on the union of sample times, which must start at 0 and end by 120 min; missing glucose
    is masked, missing insulin interpolated. Returns ``(subjects, data)``."""
    from ._fit import tidy_to_arrays

    if not 1.0 <= dose_g <= 200.0:
        raise ValueError(f"dose_g must lie in [1, 200] g, got {dose_g}")
    subjects, t, arr = tidy_to_arrays(df, TIDY_COLUMNS)
    if t[0] != 0.0 or t[-1] > 120.0 or len(t) < 3:
        raise ValueError(f"'time [min]' must include 0 and end by 120 min with ≥ 3 sample times; got {t.tolist()}")
    g, ins = arr["glucose"], arr["insulin"]
    bw = np.nanmax(arr["body_weight"], axis=1)
    if np.any(~(bw > 20) | ~(bw < 400)):
        bad = [s for s, b in zip(subjects, bw) if not 20 < b < 400]
        raise ValueError(f"'body_weight [kg]' must lie in (20, 400) kg; subjects {bad[:5]}")
    missing = [s for s, a, b in zip(subjects, g[:, 0], ins[:, 0]) if not (np.isfinite(a) and np.isfinite(b))]
    if missing:
        raise ValueError(f"subjects {missing[:5]} lack basal (0 min) glucose or insulin")
    ins_f = ins.copy()
    for r in range(len(ins)):
        ok = np.isfinite(ins[r])
        ins_f[r] = np.interp(t, t[ok], ins[r, ok])
    n = len(subjects)
    return subjects, {"glucose": g[:, 1:], "insulin": ins_f, "Gb": g[:, 0], "dose": dose_g * 1000.0 / bw,
                      "t_glucose": np.tile(t[1:], (n, 1)), "t_insulin": np.tile(t, (n, 1))}
