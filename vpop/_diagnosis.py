"""Diagnosis layer: FPG, 2-h OGTT glucose, HbA1c, HOMA, Matsuda and the ADA classification.

HbA1c from the glucose history
------------------------------
``HbA1c [%] = (AG + 46.7)/28.7 × (RBC age / 58.7 d)`` with ``AG`` the mean glucose [mg/dL].

* The glucose-dependent part is the ADAG regression (Nathan et al., Diabetes Care 2008;31:1473:
  ``AG = 28.7·A1C − 46.7``, 507 people), i.e. the population-average relation.
* The person-specific part is the mean age of their red cells: HbA1c is glycation accumulated over
  the cells' lifetime (``≈ k·AG·L/2`` for small ``k·AG·L``, SCIENCE.md §1(i)), so it scales with
  mean RBC age, and inter-individual variation in RBC age explains the glucose-independent
  variation of HbA1c (Malka, Nathan & Higgins, Sci Transl Med 2016;8:359ra130). Mean RBC age is
  58.7 ± 9.1 (2 SD) days (Khera et al., Am J Hematol 2015), so a per-person ``rbc_age_d`` ~
  N(58.7, 4.55²) gives an HbA1c spread of about ±8% (1 SD) at a given mean glucose — comparable to
  the scatter around the ADAG line.

ADA classification (Standards of Care §2; SCIENCE.md §4)
--------------------------------------------------------
Each available test is classified (FPG ≥ 126 / 100–125; 2-h PG ≥ 200 / 140–199; HbA1c ≥ 6.5 /
5.7–6.4) and the person's class is the worst of them; ``criteria`` names the tests that reached
that class (e.g. ``"FPG+HbA1c"``). A single simulated test stands in for the confirmation a
clinician would require (the simulation has no measurement error unless you add one).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: ADAG regression (Nathan 2008): AG [mg/dL] = slope·A1C [%] − intercept.
ADAG_SLOPE_MG_PER_DL_PER_PERCENT = 28.7
ADAG_INTERCEPT_MG_PER_DL = 46.7
#: Mean RBC age [d] at which the ADAG relation holds unchanged (Khera 2015 mean).
RBC_AGE_REFERENCE_D = 58.7

#: ADA thresholds: (prediabetes lower bound, diabetes lower bound), in each test's unit.
ADA_THRESHOLDS = {
    "FPG": (100.0, 126.0),  # mg/dL
    "2hPG": (140.0, 200.0),  # mg/dL, 75-g OGTT
    "HbA1c": (5.7, 6.5),  # %
}
CLASSES = ("normal", "prediabetes", "diabetes")


def hba1c_percent(mean_glucose_mg_per_dl, rbc_age_d=RBC_AGE_REFERENCE_D):
    """HbA1c [%] from mean glucose [mg/dL] and mean red-cell age [d] (works on numpy or jax arrays)."""
    return (mean_glucose_mg_per_dl + ADAG_INTERCEPT_MG_PER_DL) / ADAG_SLOPE_MG_PER_DL_PER_PERCENT * (
        rbc_age_d / RBC_AGE_REFERENCE_D)


def classify_test(values, test: str) -> np.ndarray:
    """0 normal, 1 prediabetes, 2 diabetes for one test (NaN → -1, not classified)."""
    lo, hi = ADA_THRESHOLDS[test]
    v = np.asarray(values, float)
    cls = np.where(v >= hi, 2, np.where(v >= lo, 1, 0))
    return np.where(np.isfinite(v), cls, -1)


def ada_classification(fpg_mg_per_dl=None, ogtt_2h_mg_per_dl=None, hba1c_pct=None) -> pd.DataFrame:
    """ADA class per person from whichever tests are given.

    Returns a DataFrame with ``ada_class`` (normal / prediabetes / diabetes; ``unclassified`` if a
    given test is NaN for that person), ``ada_criteria`` (the tests that reached the class, joined
    by ``+``; empty for normal) and the per-test classes ``ada_class_<test>``.
    """
    tests = {"FPG": fpg_mg_per_dl, "2hPG": ogtt_2h_mg_per_dl, "HbA1c": hba1c_pct}
    tests = {k: np.asarray(v, float) for k, v in tests.items() if v is not None}
    if not tests:
        raise ValueError("ada_classification needs at least one of fpg_mg_per_dl, ogtt_2h_mg_per_dl, hba1c_pct")
    per = {k: classify_test(v, k) for k, v in tests.items()}
    stack = np.stack(list(per.values()))
    worst = stack.max(axis=0)
    missing = (stack < 0).any(axis=0)
    names = np.array(CLASSES)
    out = pd.DataFrame({"ada_class": np.where(missing, "unclassified", names[np.clip(worst, 0, 2)])})
    crit = []
    for i in range(stack.shape[1]):
        if missing[i] or worst[i] == 0:
            crit.append("")
        else:
            crit.append("+".join(k for k, c in per.items() if c[i] == worst[i]))
    out["ada_criteria"] = crit
    for k, c in per.items():
        out[f"ada_class_{k}"] = np.where(c < 0, "unclassified", names[np.clip(c, 0, 2)])
    return out
