r"""Oral glucose minimal model (OMM) with the oral C-peptide minimal model, fitted to the Ohashi 2018
OGTTs (glucose, insulin, C-peptide); the clamp-GIR prediction and parameter-recovery checks.

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
  60, 90 and 120 min (with the C-peptide samples below) with :mod:`vpop._fit`, every subject in one
  vmapped job.
* Integration: classic RK4, 1-min steps, float64 (time constants ≥ 6 min, the fast C-peptide
  exchange included; the fitted T_static keeps RK4 stable down to 0.36 min; the forcing and Ra are linear between breakpoints that fall on steps and are
  evaluated at the stage times before the time loop).

C-peptide: the oral C-peptide minimal model (Breda E, Cavaghan MK, Toffolo G, Polonsky KS, Cobelli C,
Diabetes 2001;50:150; indices as in Cobelli C et al., Diabetes 2007;56:1284), re-derived here, is
fitted in the same job to the C-peptide samples. Breda drives it with the measured glucose; here the
OMM's own glucose G(t) and dG/dt drive it (one joint model: the C-peptide data also inform the
glucose curve, and no noisy finite differences of 30-min samples enter the first-phase term)::

    SR(t)  = SRb + Y(t) + SRd(t)                                      [pmol/L/min]
    SRd    = Φd·max(dG/dt, 0)                                         (dynamic, first phase)
    dY/dt  = −(Y − max(Φs·(G − Gb), −SRb)) / T_static,   Y(0) = 0      (static, threshold h = Gb)
    dCP1/dt = −(k01 + k21)·CP1 + k12·CP2 + SR,   dCP2/dt = k21·CP1 − k12·CP2,   basal steady state

* G in mmol/L (mg/dL ÷ 18.0156, glucose 180.156 g/mol); C-peptide in pmol/L inside the model
  (ng/mL × 331.09, human C-peptide 3020.3 g/mol), compared with the data in ng/mL. SR is per litre
  of the C-peptide accessible volume, so Φs [10⁻⁹/min] = (pmol/L/min)/(mmol/L) and Φd [10⁻⁹] =
  (pmol/L)/(mmol/L), the units of Breda 2001. SRb = k01·CPb; Φb = SRb/Gb is reported.
* The two max(·) rules are rounded over 0.05 mg/dL/min and 1 pmol/L/min (:func:`smooth_ramp`;
  continuously differentiable, exact at basal): with hard corners L-BFGS stalls and fits of people
  whose glucose falls below basal do not converge.
* k01, k12, k21: the population C-peptide kinetics of Van Cauter E, Mestrez F, Sturis J, Polonsky KS,
  Diabetes 1992;41:368 (short half-life 4.95 min, fraction 0.76 in normal weight; 4.55 min, 0.78 if
  obese, taken as BMI ≥ 30 kg/m²; 4.52 min, 0.78 with type 2 diabetes; long half-life
  0.14·age + 29.2 min), turned into rate constants of the two-compartment model
  (:func:`van_cauter_kinetics`); the volume 1.92·BSA + 0.64 L (men), 1.11·BSA + 2.04 L (women)
  converts SR to pmol/min.
* Fitted: Φs, Φd, T_static (log scale; weak log-normal priors Φs median 40 ω 1.5, Φd 500 ω 1.5,
  T_static 15 min ω 0.7) and a proportional 5% C-peptide error (assay CV). Subjects without basal
  C-peptide (3 in Ohashi) have their C-peptide masked; their Φ are then the priors.
* SI still comes from the glucose response to the measured insulin: the C-peptide data change it
  only through the shared glucose curve (Ra shape), so on the Ohashi cohort SI barely moves.

Parameter recovery (:func:`parameter_recovery`, check ``parameter_recovery``): 1,000 synthetic
frequently sampled OGTTs (``FS_OGTT_TIMES_MIN``, 12 samples; assay CVs glucose 2%, insulin 5%,
C-peptide 5%) simulated from truths drawn from ``SYNTHETIC_PARAMETERS`` (the Ohashi-fitted
population and Denti 2010, not the fit's priors); the fit's own Laplace covariance decides which
parameters are identifiable (:func:`recovery_identifiability`), and those must be recovered with a
median absolute relative error ≤ 10%.

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

#: unit conversions (explicit): glucose 180.156 g/mol, human C-peptide 3020.3 g/mol
GLUCOSE_MG_DL_PER_MMOL_L = 18.0156
C_PEPTIDE_PMOL_L_PER_NG_ML = 1e6 / 3020.3

#: beta-cell responsivity of the oral C-peptide minimal model (Breda 2001): weak priors
SECRETION_PARAMS = (
    Param("phi_s", "1e-9/min", 40.0, prior_median=40.0, prior_sd=1.5),
    Param("phi_d", "1e-9", 500.0, prior_median=500.0, prior_sd=1.5),
    Param("T_static", "min", 15.0, prior_median=15.0, prior_sd=0.7),
)
#: every parameter of the joint glucose + C-peptide OGTT fit
OGTT_PARAMS = OMM_PARAMS + SECRETION_PARAMS


def body_surface_area_m2(weight_kg, height_cm):
    """Du Bois & Du Bois 1916: 0.007184 · W^0.425 · H^0.725 [m²]."""
    return 0.007184 * np.asarray(weight_kg, float) ** 0.425 * np.asarray(height_cm, float) ** 0.725


def van_cauter_kinetics(age_years, bmi_kg_m2, type2_diabetes, *, male=None, weight_kg=None, height_cm=None) -> dict:
    """Population C-peptide kinetics (Van Cauter et al., Diabetes 1992;41:368) per person.

    The disappearance after a bolus is ``F·e^(−a t) + (1 − F)·e^(−b t)`` with a = ln2/t½short,
    b = ln2/t½long; matching it to the two-compartment model (bolus into compartment 1) gives
    ``k12 = F·b + (1 − F)·a``, ``k01 = a·b/k12``, ``k21 = a + b − k12 − k01``. Returns ``k01``,
    ``k12``, ``k21`` [1/min] and, when sex, weight and height are given, the volume ``V_L`` [L].
    """
    age = np.asarray(age_years, float)
    bmi = np.asarray(bmi_kg_m2, float)
    t2 = np.asarray(type2_diabetes, bool)
    if np.any(~(age > 0) | ~(age < 120)) or np.any(~(bmi > 10) | ~(bmi < 80)):
        raise ValueError("age [years] must lie in (0, 120) and BMI [kg/m2] in (10, 80)")
    obese = bmi >= 30.0
    t_short = np.where(t2, 4.52, np.where(obese, 4.55, 4.95))
    frac = np.where(t2 | obese, 0.78, 0.76)
    t_long = 0.14 * age + 29.2
    a, b = np.log(2) / t_short, np.log(2) / t_long
    k12 = frac * b + (1 - frac) * a
    k01 = a * b / k12
    out = {"k01": k01, "k12": k12, "k21": a + b - k12 - k01}
    if male is not None and weight_kg is not None and height_cm is not None:
        bsa = body_surface_area_m2(weight_kg, height_cm)
        out["V_L"] = np.where(np.asarray(male, bool), 1.92 * bsa + 0.64, 1.11 * bsa + 2.04)
    return out


def ra_mg_per_kg_min(theta, t_min, dose_mg_per_kg):
    """Piecewise-linear Ra [mg/kg/min] at ``t_min`` with area ``FRACTION_ABSORBED_120 × dose`` over 0–120 min."""
    w = jnp.stack([jnp.zeros_like(theta["ra15"]), theta["ra15"], jnp.ones_like(theta["ra15"]),
                   theta["ra60"], theta["ra90"], theta["ra120"]])
    tb = jnp.asarray(RA_BREAKPOINTS_MIN)
    area = jnp.sum(0.5 * (w[1:] + w[:-1]) * jnp.diff(tb))
    scale = FRACTION_ABSORBED_120 * dose_mg_per_kg / area
    return scale * jnp.interp(t_min, tb, w, right=0.0)


def _rk4_forcings(theta, insulin_uu_per_ml, insulin_t_min, dose_mg_per_kg, n, dt_min):
    """Ra [mg/kg/min] and insulin [µU/mL] at every RK4 stage time (t, t + h/2, t + h of each step), as
    ``(n, 3)`` arrays computed once outside the time loop (a smaller loop body compiles faster)."""
    t = jnp.arange(n) * dt_min
    ts = jnp.stack([t, t + dt_min / 2, t + dt_min], axis=1)
    return ra_mg_per_kg_min(theta, ts, dose_mg_per_kg), jnp.interp(ts, jnp.asarray(insulin_t_min, float), insulin_uu_per_ml)


def _rk4_scan(f, y0, forcings, dt_min):
    """Classic RK4 over the steps; ``f(y, *forcing_at_stage)``; ``forcings`` are ``(n, 3)`` arrays of the
    stage values (start, midpoint, end). Returns the states after each step, ``(n, len(y0))``."""
    h = dt_min

    def step(y, fs):
        at = lambda k: [x[k] for x in fs]
        k1 = f(y, *at(0))
        k2 = f(y + h / 2 * k1, *at(1))
        k3 = f(y + h / 2 * k2, *at(1))
        k4 = f(y + h * k3, *at(2))
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y, y

    return jax.lax.scan(step, y0, forcings)[1]


def simulate_omm(theta, insulin_uu_per_ml, Gb, dose_mg_per_kg, t_end_min=120.0, dt_min=DT_MIN, insulin_t_min=OGTT_TIMES_MIN):
    """Glucose [mg/dL] on the grid 0, dt, …, t_end of the oral minimal model for one subject;
    ``insulin_uu_per_ml`` at ``insulin_t_min`` (first sample basal, at 0 min; no NaN)."""
    Ib = insulin_uu_per_ml[0]
    SI, SG, p2 = theta["SI"], theta["SG"], theta["p2"]

    def f(y, ra, I):
        G, X = y[0], y[1]
        return jnp.stack([-(SG + X) * G + SG * Gb + ra / V_DL_PER_KG, -p2 * X + p2 * SI * (I - Ib)])

    n = round(t_end_min / dt_min)
    ys = _rk4_scan(f, jnp.stack([Gb, jnp.zeros_like(Gb)]),
                   _rk4_forcings(theta, insulin_uu_per_ml, insulin_t_min, dose_mg_per_kg, n, dt_min), dt_min)
    return jnp.concatenate([Gb[None], ys[:, 0]])


#: rounding widths of the two max(·, ·) rules of Breda's secretion model (see :func:`smooth_ramp`):
#: glucose rate [mg/dL/min] and static secretion [pmol/L/min]
RAMP_DGDT_MG_DL_MIN = 0.05
RAMP_SECRETION_PMOL_L_MIN = 1.0


def smooth_ramp(x, eps):
    """max(x, 0) with the corner rounded over [0, eps]: 0 for x ≤ 0, x²/(2 eps) up to eps, then x − eps/2.

    Continuously differentiable (a hard max stalls the gradient-based fit at the corner), exactly 0 for
    x ≤ 0 so the basal state stays steady, and within eps/2 of max(x, 0) everywhere."""
    return jnp.where(x <= 0, 0.0, jnp.where(x < eps, x * x / (2 * eps), x - eps / 2))


def simulate_ogtt(theta, insulin_uu_per_ml, Gb, dose_mg_per_kg, cp_basal_ng_ml, k01, k12, k21, t_end_min=120.0,
                  dt_min=DT_MIN, insulin_t_min=OGTT_TIMES_MIN):
    """Glucose [mg/dL] and C-peptide [ng/mL] on the grid 0, dt, …, t_end of the joint model (module doc)
    for one subject: the oral minimal model (as :func:`simulate_omm`, insulin at ``insulin_t_min`` as
    forcing) and the oral C-peptide minimal model driven by the model glucose G(t) and its derivative;
    ``theta`` holds the OMM parameters and ``phi_s``, ``phi_d``, ``T_static``. Returns ``(glucose, c_peptide)``."""
    Ib = insulin_uu_per_ml[0]
    SI, SG, p2 = theta["SI"], theta["SG"], theta["p2"]
    phi_s, phi_d, T = theta["phi_s"], theta["phi_d"], theta["T_static"]
    cpb = cp_basal_ng_ml * C_PEPTIDE_PMOL_L_PER_NG_ML  # pmol/L
    srb = k01 * cpb  # basal secretion [pmol/L/min]

    def f(y, ra, I):
        G, X, c1, c2, Y = y[0], y[1], y[2], y[3], y[4]  # mg/dL, 1/min, pmol/L above basal ×2, pmol/L/min
        dG = -(SG + X) * G + SG * Gb + ra / V_DL_PER_KG
        dX = -p2 * X + p2 * SI * (I - Ib)
        static = phi_s * (G - Gb) / GLUCOSE_MG_DL_PER_MMOL_L
        target = static + smooth_ramp(-srb - static, RAMP_SECRETION_PMOL_L_MIN)  # ≈ max(static, −SRb)
        srd = phi_d * smooth_ramp(dG, RAMP_DGDT_MG_DL_MIN) / GLUCOSE_MG_DL_PER_MMOL_L  # ≈ Φd·max(dG/dt, 0)
        return jnp.stack([dG, dX, -(k01 + k21) * c1 + k12 * c2 + Y + srd, k21 * c1 - k12 * c2, -(Y - target) / T])

    n = round(t_end_min / dt_min)
    z = jnp.zeros_like(Gb)
    ys = _rk4_scan(f, jnp.stack([Gb, z, z, z, z]),
                   _rk4_forcings(theta, insulin_uu_per_ml, insulin_t_min, dose_mg_per_kg, n, dt_min), dt_min)
    g = jnp.concatenate([Gb[None], ys[:, 0]])
    cp = (cpb + jnp.concatenate([z[None], ys[:, 2]])) / C_PEPTIDE_PMOL_L_PER_NG_ML
    return g, cp


def _predict(theta, d):
    """Glucose at ``d["t_glucose"]`` and C-peptide at ``d["t_c_peptide"]`` (samples after 0 min); insulin
    forcing sampled at ``d["t_insulin"]``."""
    g, cp = simulate_ogtt(theta, d["insulin"], d["Gb"], d["dose"], d["CPb"], d["k01"], d["k12"], d["k21"],
                          insulin_t_min=d["t_insulin"])
    grid = jnp.arange(g.shape[0]) * DT_MIN
    return {"glucose": jnp.interp(d["t_glucose"], grid, g), "c_peptide": jnp.interp(d["t_c_peptide"], grid, cp)}


#: the joint OGTT fit: glucose (OMM, insulin as forcing) and C-peptide (Breda 2001, driven by the model glucose)
OMM_PROBLEM = FitProblem(OGTT_PARAMS, (ErrorModel("glucose", "mg/dL", proportional_sd=0.02),
                                       ErrorModel("c_peptide", "ng/mL", proportional_sd=0.05)), _predict,
                         name="oral_minimal_model_glucose_c_peptide_ogtt_v2")


def _read(name):
    with (resources.files("vpop") / "data" / "ohashi2018_ogtt_clamp" / name).open() as f:
        df = pd.read_csv(f, sep=";", dtype=str)
    # some cells use decimal commas; every column but the group label is numeric
    return df.apply(lambda c: c if c.name == "type" else pd.to_numeric(c.str.replace(",", ".", regex=False), errors="coerce"))


def load_ohashi() -> pd.DataFrame:
    """One row per subject: ``subject``, ``group`` (NGT/IGT/T2DM), ``male [1]``, ``age [years]``,
    ``height [cm]``, ``body_weight [kg]``, ``bmi [kg/m2]``, OGTT glucose
    [mg/dL], insulin [µU/mL], C-peptide [ng/mL] at 0/30/60/90/120 min, and clamp ``gir [mg/kg/min]``."""
    o, c, s = _read("ohashi_OGTT.csv"), _read("ohashi_clamp_indices.csv"), _read("ohashi_subjectinfo.csv")
    o.columns = [col.replace(" ", "") for col in o.columns]
    out = pd.DataFrame({"subject": o["No"].astype(int)})
    for t in OGTT_TIMES_MIN.astype(int):
        out[f"glucose_{t} [mg/dL]"] = pd.to_numeric(o[f"O-PG({t})"], errors="coerce")
        out[f"insulin_{t} [µU/mL]"] = pd.to_numeric(o[f"O-IRI({t})"], errors="coerce")
        out[f"c_peptide_{t} [ng/mL]"] = pd.to_numeric(o[f"O-CPR({t})"], errors="coerce")
    s = s.rename(columns={"No": "subject", "type": "group", "BW": "body_weight [kg]", "age": "age [years]", "BMI": "bmi [kg/m2]",
                          "BH": "height [cm]", "sex(male1)": "male [1]"})
    c = c.rename(columns={"No": "subject", "GIR": "gir [mg/kg/min]"})
    out = out.merge(s[["subject", "group", "male [1]", "age [years]", "height [cm]", "body_weight [kg]", "bmi [kg/m2]"]], on="subject")
    return out.merge(c[["subject", "gir [mg/kg/min]"]], on="subject", how="left")


def matsuda_index(glucose_mg_dl: np.ndarray, insulin_uu_ml: np.ndarray) -> np.ndarray:
    """Matsuda & DeFronzo 1999: 10,000/√(G0·I0·Ḡ·Ī), means over the OGTT samples (NaN if any is missing)."""
    g, i = np.asarray(glucose_mg_dl, float), np.asarray(insulin_uu_ml, float)
    return 1e4 / np.sqrt(g[:, 0] * i[:, 0] * g.mean(1) * i.mean(1))


def _fill(t, a):
    """Each row of ``a`` linear between its finite samples (rows without any stay NaN)."""
    out = np.array(a, float)
    for r in range(len(out)):
        ok = np.isfinite(out[r])
        if ok.any():
            out[r] = np.interp(t, t[ok], out[r, ok])
    return out


def _joint_data(t, g, ins, cp, bw_kg, dose_g, kinetics):
    """Fit inputs of ``OMM_PROBLEM`` for samples at ``t`` (first 0 min): glucose/C-peptide after 0 min are
    the observations (NaN = missing), insulin (missing samples interpolated) the forcing;
    a subject without basal C-peptide gets all its C-peptide masked (CPb is then a placeholder)."""
    n = len(g)
    cp = np.array(cp, float)
    no_cpb = ~np.isfinite(cp[:, 0])
    cp[no_cpb] = np.nan
    return {"glucose": g[:, 1:], "insulin": _fill(t, ins), "Gb": g[:, 0], "dose": dose_g * 1000.0 / np.asarray(bw_kg, float),
            "c_peptide": cp[:, 1:], "CPb": np.where(no_cpb, 1.0, cp[:, 0]),
            "k01": kinetics["k01"], "k12": kinetics["k12"], "k21": kinetics["k21"],
            "t_glucose": np.tile(t[1:], (n, 1)), "t_c_peptide": np.tile(t[1:], (n, 1)), "t_insulin": np.tile(t, (n, 1))}


def ogtt_arrays(df: pd.DataFrame, dose_g: float = 75.0):
    """Fit inputs of ``OMM_PROBLEM`` from :func:`load_ohashi`-style rows: glucose and C-peptide [ng/mL]
    at 30–120 min (NaN = missing), insulin at 0–120 min as forcing (missing samples linearly
    interpolated from the others), Gb, CPb, dose [mg/kg] and the Van Cauter C-peptide
    kinetics from age, BMI and group (T2DM)."""
    T = OGTT_TIMES_MIN.astype(int)
    g = df[[f"glucose_{t} [mg/dL]" for t in T]].to_numpy(float)
    ins = df[[f"insulin_{t} [µU/mL]" for t in T]].to_numpy(float)
    cp = df[[f"c_peptide_{t} [ng/mL]" for t in T]].to_numpy(float)
    bw = df["body_weight [kg]"].to_numpy(float)
    if np.any(~np.isfinite(g[:, 0])) or np.any(~np.isfinite(ins[:, 0])):
        raise ValueError("every subject needs basal (0 min) glucose and insulin")
    if np.any(~(bw > 20) | ~(bw < 400)):
        raise ValueError("'body_weight [kg]' must lie in (20, 400) kg")
    kin = van_cauter_kinetics(df["age [years]"], df["bmi [kg/m2]"], df["group"].to_numpy() == "T2DM")
    return _joint_data(OGTT_TIMES_MIN, g, ins, cp, bw, dose_g, kin)


def fit_ohashi(df: pd.DataFrame | None = None, **kw) -> tuple[pd.DataFrame, FitResult]:
    """Fit glucose (OMM) and C-peptide (Breda 2001) of every subject's OGTT (those with basal glucose and
    insulin) in one vmapped job; returns (subjects table with ``SI``, ``phi_s`` … and their SEs, fit).

    Derived columns: ``phi_b [1e-9/min]`` = SRb/Gb (basal responsivity; NaN without C-peptide),
    ``c_peptide_volume [L]`` (Van Cauter) and ``basal_secretion [pmol/min]`` = SRb × volume.
    """
    df = load_ohashi() if df is None else df
    has_ogtt = df["glucose_0 [mg/dL]"].notna() & df["insulin_0 [µU/mL]"].notna()
    df = df[has_ogtt].reset_index(drop=True)  # subject 89 has no OGTT at all
    kw = {"n_starts": 3, "max_iter": 400, "checkpoint_every": 100, **kw}
    data = ogtt_arrays(df)
    res = fit_individuals(OMM_PROBLEM, data, subjects=list(df["subject"]), **kw)
    out = df.copy()
    for i, p in enumerate(OGTT_PARAMS):
        out[f"{p.name} [{p.unit}]"] = res.estimates[:, i]
        out[f"{p.name}_se [{p.unit}]"] = res.standard_errors[:, i]
    out["converged"] = res.converged
    cpb = df["c_peptide_0 [ng/mL]"].to_numpy(float) * C_PEPTIDE_PMOL_L_PER_NG_ML
    srb = data["k01"] * cpb  # pmol/L/min
    out["phi_b [1e-9/min]"] = srb / (data["Gb"] / GLUCOSE_MG_DL_PER_MMOL_L)
    vol = van_cauter_kinetics(df["age [years]"], df["bmi [kg/m2]"], df["group"].to_numpy() == "T2DM",
                              male=df["male [1]"], weight_kg=df["body_weight [kg]"], height_cm=df["height [cm]"])["V_L"]
    out["c_peptide_volume [L]"] = vol
    out["basal_secretion [pmol/min]"] = srb * vol
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

#: the 7-sample research OGTT of the oral-minimal-model validation studies (Dalla Man C, Campioni M,
#: Polonsky KS, et al., Diabetes 2005;54:3265; Dalla Man et al., AJP Endo 2005;289:E909)
RESEARCH_OGTT_TIMES_MIN = np.array([0.0, 10.0, 20.0, 30.0, 60.0, 90.0, 120.0])
#: the frequently sampled 2-h OGTT of the ``parameter_recovery`` check (vpop's choice): the 7 samples
#: above plus 15, 40, 50, 75 and 105 min, denser in the first hour where glucose rises and the
#: first-phase (dynamic) secretion acts; 12 samples of glucose, insulin and C-peptide.
FS_OGTT_TIMES_MIN = np.array([0.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 75.0, 90.0, 105.0, 120.0])
#: generating distribution of the synthetic cohort, log-normal (median, SD of log), deliberately not the
#: fit's priors: SI, the Ra shape and the beta-cell parameters are the median and SD of log of the
#: estimates of the full Ohashi fit (``fit_ohashi()``, all 120 subjects, 3 significant digits; where the
#: data barely inform a parameter its spread is narrower than the population's); SG and p2 the healthy-
#: adult population values of Denti et al., AJP Endo 2010;298:E950 (SG 0.0192/min, IIV 21%;
#: p2 0.0254/min, IIV 37.9%), with their correlation ρ(log SI, log p2) = 0.876 from the same paper.
SYNTHETIC_PARAMETERS = {"SI": (3.56e-4, 1.53), "SG": (0.0192, 0.21), "p2": (0.0254, 0.379),
                        "ra15": (0.841, 0.52), "ra60": (0.74, 0.413), "ra90": (0.838, 0.542), "ra120": (0.63, 0.564),
                        "phi_s": (30.8, 0.786), "phi_d": (457.0, 1.03), "T_static": (18.4, 0.66)}
SYNTHETIC_CORRELATION_SI_P2 = 0.876


def synthetic_ogtt_cohort(n_people: int, *, seed: int = 0, times_min=FS_OGTT_TIMES_MIN,
                          cv_glucose: float = 0.02, cv_insulin: float = 0.05, cv_c_peptide: float = 0.05):
    """``n_people`` synthetic 75 g OGTTs (glucose, insulin, C-peptide) from the joint model with known parameters.

    Each person takes the insulin curve (linear between its 5 samples: the true forcing), basal glucose
    and C-peptide, body weight, age, BMI and group (hence the Van Cauter kinetics) of an Ohashi subject
    with complete insulin and C-peptide, drawn at random, and parameters drawn from
    ``SYNTHETIC_PARAMETERS``, simulated with :func:`simulate_ogtt` (the fit's model). Measurements at
    ``times_min``, each with a proportional Gaussian error (assay CVs: glucose ``cv_glucose`` 2%,
    insulin ``cv_insulin`` 5%, C-peptide ``cv_c_peptide`` 5%). Returns ``(fit_data, truth)``: the inputs
    of ``OMM_PROBLEM`` as measured, and the true parameters.
    """
    if n_people < 1:
        raise ValueError(f"n_people must be ≥ 1, got {n_people}")
    times_min = np.asarray(times_min, float)
    if times_min[0] != 0.0 or np.any(np.diff(times_min) <= 0) or times_min[-1] > 120.0:
        raise ValueError(f"times_min must start at 0, increase and end by 120 min; got {times_min.tolist()}")
    rng = np.random.default_rng(seed)
    df = load_ohashi()
    T = OGTT_TIMES_MIN.astype(int)
    cols_i = [f"insulin_{t} [µU/mL]" for t in T]
    cols_c = [f"c_peptide_{t} [ng/mL]" for t in T]
    df = df[df[cols_i + cols_c].notna().all(axis=1) & df["glucose_0 [mg/dL]"].notna()].reset_index(drop=True)
    pick = rng.integers(0, len(df), n_people)
    d = df.iloc[pick].reset_index(drop=True)
    ins5 = d[cols_i].to_numpy(float)
    gb = d["glucose_0 [mg/dL]"].to_numpy(float)
    cpb = d["c_peptide_0 [ng/mL]"].to_numpy(float)
    bw = d["body_weight [kg]"].to_numpy(float)
    dose = 75_000.0 / bw
    kin = van_cauter_kinetics(d["age [years]"], d["bmi [kg/m2]"], d["group"].to_numpy() == "T2DM")
    eps = rng.standard_normal((len(SYNTHETIC_PARAMETERS), n_people))
    names = list(SYNTHETIC_PARAMETERS)
    rho = SYNTHETIC_CORRELATION_SI_P2
    eps[names.index("p2")] = rho * eps[names.index("SI")] + np.sqrt(1 - rho ** 2) * eps[names.index("p2")]
    truth = {k: m * np.exp(s * e) for (k, (m, s)), e in zip(SYNTHETIC_PARAMETERS.items(), eps)}

    g_true, c_true = jax.jit(jax.vmap(simulate_ogtt))({k: jnp.asarray(v) for k, v in truth.items()}, ins5, gb, dose, cpb,
                                            kin["k01"], kin["k12"], kin["k21"])
    grid = np.arange(np.shape(g_true)[1]) * DT_MIN
    noisy = lambda curves, cv: np.stack([np.interp(times_min, grid, x) for x in np.asarray(curves)]) * (
        1.0 + cv * rng.standard_normal((n_people, len(times_min))))
    g_obs = noisy(g_true, cv_glucose)
    c_obs = noisy(c_true, cv_c_peptide)
    i_obs = np.stack([np.interp(times_min, OGTT_TIMES_MIN, i) for i in ins5]) * (
        1.0 + cv_insulin * rng.standard_normal((n_people, len(times_min))))
    data = _joint_data(times_min, g_obs, np.maximum(i_obs, 0.0), np.maximum(c_obs, 0.0), bw, 75.0, kin)
    return data, truth


#: a parameter counts as identifiable when the fit's own Laplace uncertainty predicts a median absolute
#: relative error ≤ 10% over the cohort (:func:`predicted_median_abs_relative_error`) and the data, not
#: the prior, determine it (median posterior/prior variance ≤ 0.5). The truth never enters this verdict.
RECOVERY_TARGET = 0.10
RECOVERY_SHRINKAGE_MAX = 0.5


def predicted_median_abs_relative_error(res: FitResult) -> np.ndarray:
    """Per parameter, the median absolute relative error that the fit's own Laplace covariance predicts
    over the cohort: with the posterior of subject i's log-parameter N(ẑ_i, s_i²) the relative error is
    e^δ − 1, δ ~ N(0, s_i²); the cohort's error distribution is the mixture over subjects, and its
    median m solves mean_i P(|e^δ_i − 1| ≤ m) = ½ (bisection). Subjects without a covariance are
    left out. Every parameter must be on the log scale."""
    from scipy.stats import norm

    if any(p.transform != "log" for p in res.problem.params):
        raise ValueError("predicted_median_abs_relative_error needs log-transformed parameters")
    sd = np.sqrt(np.diagonal(res.covariance_z, axis1=1, axis2=2))
    out = []
    for k in range(sd.shape[1]):
        s = sd[:, k][np.isfinite(sd[:, k]) & (sd[:, k] > 0)]
        if s.size == 0:
            out.append(np.nan)
            continue

        def frac_within(m, s=s):
            hi = norm.cdf(np.log1p(m) / s)
            lo = norm.cdf(np.log1p(-m) / s) if m < 1 else 0.0
            return float(np.mean(hi - lo))

        a, b = 0.0, 1.0
        while frac_within(b) < 0.5 and b < 1e6:
            b *= 2
        for _ in range(60):
            mid = 0.5 * (a + b)
            a, b = (mid, b) if frac_within(mid) < 0.5 else (a, mid)
        out.append(0.5 * (a + b))
    return np.asarray(out)


def recovery_identifiability(res: FitResult) -> pd.DataFrame:
    """The identifiability report from the fit alone: per parameter the median relative SE, the median
    prior shrinkage, the predicted median absolute relative error, ``identifiable`` and the reason if not."""
    ident = res.identifiable()[["parameter", "unit", "median_relative_se [1]", "median_shrinkage [1]"]].copy()
    pred = predicted_median_abs_relative_error(res)
    ident["predicted_median_abs_relative_error [1]"] = pred
    ok, why = [], []
    for p, e, shr in zip(res.problem.params, pred, ident["median_shrinkage [1]"]):
        w = []
        if not e <= RECOVERY_TARGET:
            w.append(f"predicted median |relative error| {e:.3f} > {RECOVERY_TARGET:g}")
        if p.prior_sd is not None and not shr <= RECOVERY_SHRINKAGE_MAX:
            w.append(f"prior-dominated (posterior/prior variance {shr:.2f} > {RECOVERY_SHRINKAGE_MAX:g})")
        ok.append(not w)
        why.append("; ".join(w))
    ident["identifiable"] = ok
    ident["reason"] = why
    return ident


def parameter_recovery(n_people: int = 1000, *, seed: int = 0, n_starts: int = 1, **kw):
    """Fit the synthetic cohort (one vmapped job; ``kw`` go to :func:`synthetic_ogtt_cohort`); returns
    the identifiability report of :func:`recovery_identifiability` (from the fit alone) with, beside
    it, the achieved ``median_abs_relative_error [1]`` against the truth, plus the fit."""
    data, truth = synthetic_ogtt_cohort(n_people, seed=seed, **kw)
    res = fit_individuals(OMM_PROBLEM, data, n_starts=n_starts, max_iter=400, checkpoint_every=100)
    ident = recovery_identifiability(res)
    err = [float(np.median(np.abs(res.estimates[:, i] / truth[p.name] - 1.0))) for i, p in enumerate(OGTT_PARAMS)]
    ident.insert(2, "median_abs_relative_error [1]", err)
    return ident, res


# ---------------------------------------------------------------------------------------------
# Tidy (long) OGTT tables

TIDY_COLUMNS = {"glucose": "mg/dL", "insulin": "µU/mL", "c_peptide": "ng/mL", "body_weight": "kg", "age": "years",
                "bmi": "kg/m2", "type_2_diabetes": "1"}


def ohashi_tidy(df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The Ohashi OGTTs as a tidy table: ``subject``, ``group``, ``time [min]``, ``glucose [mg/dL]``,
    ``insulin [µU/mL]``, ``c_peptide [ng/mL]``, ``body_weight [kg]``, ``age [years]``, ``bmi [kg/m2]``,
    ``type_2_diabetes [1]`` (1 for the T2DM group; one row per subject and time)."""
    df = load_ohashi() if df is None else df
    parts = []
    for t in OGTT_TIMES_MIN.astype(int):
        parts.append(pd.DataFrame({"subject": df["subject"], "group": df["group"], "time [min]": float(t),
                                   "glucose [mg/dL]": df[f"glucose_{t} [mg/dL]"], "insulin [µU/mL]": df[f"insulin_{t} [µU/mL]"],
                                   "c_peptide [ng/mL]": df[f"c_peptide_{t} [ng/mL]"], "body_weight [kg]": df["body_weight [kg]"],
                                   "age [years]": df["age [years]"], "bmi [kg/m2]": df["bmi [kg/m2]"],
                                   "type_2_diabetes [1]": (df["group"] == "T2DM").astype(float)}))
    return pd.concat(parts).sort_values(["subject", "time [min]"], kind="stable").reset_index(drop=True)


def omm_data_from_tidy(df: pd.DataFrame, dose_g: float = 75.0):
    """Fit inputs of ``OMM_PROBLEM`` from a tidy OGTT table (columns ``subject``, ``time [min]``,
    ``glucose [mg/dL]``, ``insulin [µU/mL]``, ``c_peptide [ng/mL]``, ``body_weight [kg]``, ``age [years]``,
    ``bmi [kg/m2]``, ``type_2_diabetes [1]`` (0/1; with age and BMI it sets the Van Cauter C-peptide
    kinetics); units checked). Every subject is placed on the union of sample times, which must start
    at 0 and end by 120 min; missing glucose and C-peptide are masked, missing insulin
    interpolated; a subject without basal C-peptide has all
    its C-peptide masked. Returns ``(subjects, data)``."""
    from ._fit import tidy_to_arrays

    if not 1.0 <= dose_g <= 200.0:
        raise ValueError(f"dose_g must lie in [1, 200] g, got {dose_g}")
    subjects, t, arr = tidy_to_arrays(df, TIDY_COLUMNS)
    if t[0] != 0.0 or t[-1] > 120.0 or len(t) < 3:
        raise ValueError(f"'time [min]' must include 0 and end by 120 min with ≥ 3 sample times; got {t.tolist()}")
    g, ins = arr["glucose"], arr["insulin"]
    per_subject = {k: np.nanmax(arr[k], axis=1) for k in ("body_weight", "age", "bmi", "type_2_diabetes")}
    bw = per_subject["body_weight"]
    if np.any(~(bw > 20) | ~(bw < 400)):
        bad = [s for s, b in zip(subjects, bw) if not 20 < b < 400]
        raise ValueError(f"'body_weight [kg]' must lie in (20, 400) kg; subjects {bad[:5]}")
    t2 = per_subject["type_2_diabetes"]
    if np.any(~np.isin(t2, (0.0, 1.0))):
        raise ValueError("'type_2_diabetes [1]' must be 0 or 1 for every subject")
    missing = [s for s, a, b in zip(subjects, g[:, 0], ins[:, 0]) if not (np.isfinite(a) and np.isfinite(b))]
    if missing:
        raise ValueError(f"subjects {missing[:5]} lack basal (0 min) glucose or insulin")
    kin = van_cauter_kinetics(per_subject["age"], per_subject["bmi"], t2 == 1.0)
    return subjects, _joint_data(t, g, ins, arr["c_peptide"], bw, dose_g, kin)
