"""Benchmark case ``fit_ogtt_1000``: time to fit 1,000 OGTTs (oral minimal model with the C-peptide model,
``vpop._ohashi.OMM_PROBLEM``; glucose, insulin and C-peptide of a standard 5-sample 75 g OGTT, synthetic
cohort of :func:`vpop._ohashi.synthetic_ogtt_cohort`) in one vmapped job.

Reports the first call (JIT compilation included) and the median of the repeated calls (compiled),
with the number of fits that converged; one start per subject, at most 400 L-BFGS iterations.
"""

from __future__ import annotations

import time

import numpy as np

CASE = "fit_ogtt_1000"


def run_fit_case(n_people: int = 1000, *, repeats: int = 2, device: str = "", emit=print) -> dict:
    from ._fit import fit_individuals
    from ._ohashi import OGTT_TIMES_MIN, OMM_PROBLEM, synthetic_ogtt_cohort

    data, _ = synthetic_ogtt_cohort(n_people, seed=0, times_min=OGTT_TIMES_MIN)
    times, res = [], None
    for _ in range(1 + repeats):
        t0 = time.perf_counter()
        res = fit_individuals(OMM_PROBLEM, data, n_starts=1, max_iter=400, checkpoint_every=100)
        times.append(time.perf_counter() - t0)
    row = {"case": CASE, "n_ogtts": n_people, "first_call_s": round(times[0], 3),
           "median_s": round(float(np.median(times[1:])), 3) if repeats else None,
           "ogtts_per_s": round(n_people / float(np.median(times[1:] or times)), 2),
           "n_converged": int(np.sum(res.converged)), "median_iterations": float(np.median(res.iterations)),
           "device": device}
    emit(row)
    return row
