"""Calibrate the five fitted parameters of the compact liver (:mod:`vpop.models._liver`) to published
numbers that the ``vpop validate`` liver checks do NOT test.

Deterministic (fixed start, ``scipy.optimize.least_squares``, trust-region reflective, no randomness);
prints the targets and what the fitted parameters achieve. Run from the repository root:

    python tools/calibrate_liver.py

Fitted parameters (log-scale, within their spec ranges): ``hgu_max``, ``insulin_half_glycogenolysis``,
``glycogenolysis_max``, ``glycogen_km``, ``gng_rate``. Everything else stays at its default.

Targets (the simulations are the checks' drivers: the Dalla Man 2007 normal subject's 78 g meal from
Taylor's overnight glycogen 207 mmol/L, and the fast from 14 h at the Dalla Man basal glucose and
insulin; a residual is the model value minus the target, divided by the scale in brackets):

Meal (Taylor 1996, JCI 97:126, abstract):
  * direct-pathway share of glycogen synthesis over 2–6 h, 57% = the mean of Taylor's 46% (2–4 h) and
    68% (4–6 h) [1]: ∫HGU / ∫(HGU + indirect) over 120–360 min (HGU includes the first-pass part). The
    two windows are not separate targets: in the model the direct share falls from the first window to
    the second (direct uptake follows plasma glucose and insulin, the indirect pathway the delayed
    insulin signal) while Taylor's rises, and with both as targets the fit ran ``hgu_max`` to its
    lower bound. Both windows are printed.
  * the liver's EGP follows the Dalla Man 2007 normal subject's EGP (the published model, fitted to
    triple-tracer meal data) for the same 78 g meal, every 30 min over 0–420 min [1.90·sqrt(15)].
    Taylor's own hepatic glucose output after his (larger, liquid) meal — "completely suppressed
    within 30 min", 0.31 mg/kg/min at 60 min rising to 0.49 at 255 min — was tried first and dropped:
    the liver's glycogenolysis follows the delayed insulin signal (Dalla Man ``ki``), which has hardly
    risen by 30–60 min, and gluconeogenesis keeps EGP above 0.49 at 255 min, so with those targets
    the fit ran ``glycogenolysis_max`` to its upper bound and ``insulin_half_glycogenolysis`` to
    ~5 pmol/L (basal insulin would then suppress glycogenolysis by 96%, and the glucagon and
    epinephrine gains, relative to it, would lose their meaning).
Fast:
  * EGP 1.90 mg/kg/min after the overnight fast (Taylor 1996 basal HGO) [1.90]: EGP at 14 h;
  * GNG 67% of EGP at 22 h (Landau 1996, JCI 98:378) [1];
  * net glycogenolysis 0.77 mg/kg/min (Rothman 1991, Science 254:573: 4.3 µmol/kg/min over the first
    22 h of the fast) [0.77]: the mean fall of glycogen over the modelled 14–22 h. Caveat: Rothman's
    rate is the mean over 0–22 h; the model's fast starts at 14 h.

``--prompt-insulin`` fits the liver with the prompt insulin inhibition of glycogenolysis on
(``prompt_insulin_weight`` = 1; :data:`vpop.models._liver.PROMPT_INSULIN_LIVER_VALUES`, not the default;
the issue-6 analysis in the module docstring of :mod:`vpop.models._liver`), with
``insulin_half_glycogenolysis_prompt`` fitted as well, to the same targets. Taylor's meal HGO (0 at 30 min,
0.31 at 60, 0.49 at 255 min) was tried again as extra targets with that channel on and dropped: it
conflicts with the Dalla Man EGP for the simulated (smaller) meal.

NOT targets (the checks test them): the glycogen peak time (Taylor 4–6 h, 318 min) and net synthesis
(15–25%, Taylor 19%) after the meal; the GNG fraction at 14 h (Landau 47%; check 45–65%) and at 40 h
(check > 80%; Landau 93% at 42 h, Rothman 82% over 22–36 h).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax

jax.config.update("jax_enable_x64", True)

import numpy as np
from scipy.optimize import least_squares

from vpop._mechanism_checks import OVERNIGHT_GLYCOGEN_MMOL_PER_L, liver_meal
from vpop._sets import parameters_from_set
from vpop.models._liver import (
    LIVER_DEFAULTS,
    LIVER_PARAMETER_SPECS,
    MG_PER_KG_PER_MMOL_PER_L_LIVER,
    PROMPT_INSULIN_LIVER_VALUES,
    LiverParams,
    simulate_liver,
)

FITTED = ("hgu_max", "insulin_half_glycogenolysis", "glycogenolysis_max", "glycogen_km", "gng_rate")
#: ``--prompt-insulin``: the prompt insulin channel on (``prompt_insulin_weight`` = 1) and its K fitted too
FITTED_PROMPT = ("hgu_max", "insulin_half_glycogenolysis", "insulin_half_glycogenolysis_prompt", "glycogenolysis_max",
                 "glycogen_km", "gng_rate")
#: Start of the fit (deterministic; deliberately not the previous calibration).
START = {"hgu_max": 5.0, "insulin_half_glycogenolysis": 50.0, "insulin_half_glycogenolysis_prompt": 200.0,
         "glycogenolysis_max": 3.0, "glycogen_km": 800.0, "gng_rate": 1.0}
BASAL_HGO = 1.90  # Taylor 1996 [mg/kg/min]

#: Taylor 1996 hepatic glucose output after his meal [(min, mg/kg/min)]: "completely suppressed within 30 min",
#: 0.31 at 60 min rising to 0.49 at 255 min (printed for comparison; not a target, see the module docstring)
TAYLOR_HGO = ((30.0, 0.0), (60.0, 0.31), (255.0, 0.49))

#: (name, target, scale, source); the Dalla Man EGP rows are residuals already (target 0)
TARGETS = (
    ("direct share 2-6 h", 0.57, 1.0, "Taylor 1996: 46% (2-4 h), 68% (4-6 h)"),
    *((f"EGP − Dalla Man EGP at {m:.0f} min [mg/kg/min]/sqrt(15)", 0.0, BASAL_HGO, "Dalla Man 2007")
      for m in np.arange(0.0, 421.0, 30.0)),
    ("EGP at 14 h fast [mg/kg/min]", BASAL_HGO, BASAL_HGO, "Taylor 1996 basal HGO"),
    ("GNG/EGP at 22 h", 0.67, 1.0, "Landau 1996"),
    ("net glycogenolysis 14-22 h [mg/kg/min]", 0.77, 0.77, "Rothman 1991 (first 22 h)"),
)


DM_TIMES = np.arange(0.0, 421.0, 30.0)


def dallaman_egp() -> np.ndarray:
    """The Dalla Man 2007 normal subject's EGP [mg/kg/min] on :data:`DM_TIMES` (78 g meal, reference engine)."""
    from vpop._engine import simulate
    from vpop._protocols import Meal, Protocol

    model, params, _ = parameters_from_set("DallaMan2007_normal")
    res = simulate(model, params, Protocol(720.0, (Meal(0.0, 78.0),), 1.0, name="meal"), mode="reference")
    return np.interp(DM_TIMES, np.asarray(res.time_min), np.asarray(res.fluxes().EGP[0]))


def model_values(values: dict) -> np.ndarray:
    """The model's value of each target (same order as :data:`TARGETS`)."""
    t, _gly, lf, _bw = liver_meal(values=values)
    hgu = np.asarray(lf.hepatic_uptake_mg_per_kg_min)
    ind = np.asarray(lf.indirect_synthesis_mg_per_kg_min)
    egp = np.asarray(lf.egp_mg_per_kg_min)

    def direct(a, b):
        w = (t >= a) & (t <= b)
        return np.trapezoid(hgu[w], t[w]) / np.trapezoid(hgu[w] + ind[w], t[w])

    _, dm, _ = parameters_from_set("DallaMan2007_normal")
    tf = np.arange(0.0, 8 * 60 + 1.0, 10.0)  # 14 h -> 22 h
    G, I = np.full_like(tf, float(dm.Gb)), np.full_like(tf, float(dm.Ib))
    gly0 = OVERNIGHT_GLYCOGEN_MMOL_PER_L * MG_PER_KG_PER_MMOL_PER_L_LIVER
    glyf, ff = simulate_liver(LiverParams.from_dict(values), gly0, tf, G, I)
    egpf = np.asarray(ff.egp_mg_per_kg_min)
    gng_net = np.asarray(ff.gluconeogenesis_mg_per_kg_min - ff.indirect_synthesis_mg_per_kg_min)
    glyf = np.asarray(glyf)
    return np.array([
        direct(120.0, 360.0),
        *list((np.interp(DM_TIMES, t, egp) - dallaman_egp()) / np.sqrt(len(DM_TIMES))),
        egpf[0], gng_net[-1] / egpf[-1], (glyf[0] - glyf[-1]) / (tf[-1] - tf[0]),
    ])


def _base(prompt_insulin: bool) -> dict:
    return {**LIVER_DEFAULTS, "prompt_insulin_weight": 1.0 if prompt_insulin else 0.0}


def calibrate(verbose: int = 0, prompt_insulin: bool = False) -> dict:
    fitted = FITTED_PROMPT if prompt_insulin else FITTED
    target = np.array([x[1] for x in TARGETS])
    scale = np.array([x[2] for x in TARGETS])
    lo = np.log([max(LIVER_PARAMETER_SPECS[k].lower, 1e-3) for k in fitted])
    hi = np.log([LIVER_PARAMETER_SPECS[k].upper for k in fitted])
    z0 = np.log([START[k] for k in fitted])
    values = lambda z: {**_base(prompt_insulin), **{k: float(np.exp(v)) for k, v in zip(fitted, z)}}
    res = least_squares(lambda z: (model_values(values(z)) - target) / scale, z0, bounds=(lo, hi),
                        method="trf", x_scale=1.0, diff_step=1e-4, xtol=1e-10, ftol=1e-10, verbose=verbose)
    return {k: float(np.exp(v)) for k, v in zip(fitted, res.x)}


def main(argv=None) -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompt-insulin", action="store_true",
                    help="prompt insulin channel on (prompt_insulin_weight = 1), its K fitted too "
                         "(reproduces PROMPT_INSULIN_LIVER_VALUES)")
    args = ap.parse_args(argv)
    fitted = FITTED_PROMPT if args.prompt_insulin else FITTED
    reference = PROMPT_INSULIN_LIVER_VALUES if args.prompt_insulin else LIVER_DEFAULTS
    fit = calibrate(prompt_insulin=args.prompt_insulin)
    print("fitted parameters:")
    for k in fitted:
        print(f"  {k:36s} {fit[k]:.6g}   (stored in _liver.py {reference[k]:.6g})")
    v = {**_base(args.prompt_insulin), **fit}
    achieved = model_values(v)
    t, _gly, lf, _bw = liver_meal(values=v)
    hgu, ind = np.asarray(lf.hepatic_uptake_mg_per_kg_min), np.asarray(lf.indirect_synthesis_mg_per_kg_min)
    for a, b, taylor in ((120.0, 240.0, 0.46), (240.0, 360.0, 0.68)):
        w = (t >= a) & (t <= b)
        share = np.trapezoid(hgu[w], t[w]) / np.trapezoid(hgu[w] + ind[w], t[w])
        print(f"  (not a target) direct share {a / 60:.0f}-{b / 60:.0f} h: {share:.3f} (Taylor {taylor:.2f})")
    egp = np.asarray(lf.egp_mg_per_kg_min)
    print("  (not a target) EGP vs Taylor's meal HGO: " + ", ".join(
        f"{m:.0f} min {np.interp(m, t, egp):.2f} (Taylor {h:.2f})" for m, h in TAYLOR_HGO))
    print("targets (not tested by the checks) and achieved:")
    n = len(DM_TIMES)
    d = achieved[1:1 + n] * np.sqrt(n)
    print(f"  {'liver EGP vs Dalla Man 2007 EGP, 0-420 min':42s} RMS {np.sqrt(np.mean(d ** 2)):.3f}, max |diff| "
          f"{np.max(np.abs(d)):.3f} mg/kg/min   [Dalla Man 2007]")
    for (name, tgt, _s, src), v in zip(TARGETS, achieved):
        if src != "Dalla Man 2007":
            print(f"  {name:42s} target {tgt:6.3f}  achieved {v:6.3f}   [{src}]")


if __name__ == "__main__":
    main()
