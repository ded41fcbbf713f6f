"""Calibrate the position of the glucotoxicity switch (``glucotoxicity_shift_mg_per_dl``) of
:mod:`vpop._progression` to Nichols et al. 2007's progression from impaired fasting glucose.

Superseded for the defaults by ``tools/calibrate_progression.py``, which calibrates the shift jointly
with the risk-factor decline (``beta_decline_risk_factor_per_year``); this tool grids the shift
alone, with the other settings at their defaults (or ``--beta-decline-sd``), as it was used before.

Target: the annual diabetes incidence of people with a measured baseline fasting glucose of
110–125 mg/dL, 5.56 %/yr (Nichols, Hillier & Brown 2007, Diabetes Care 30:228;
:data:`vpop._progression.NICHOLS2007_IFG_RATES_PER_YEAR`), measured as :func:`ifg_progression_rates`
does (single measured tests, FPG every half year, confirmed). The FPG 100–109 band (1.34 %/yr), the
DPP-like trial (:func:`vpop._progression.dpp_trial`) and the whole population's incidence are
printed for information only; the DPP trial is what ``vpop validate --check dpp_lifestyle`` tests
and is never a calibration target.

Usage::

    python tools/calibrate_glucotoxicity.py --shifts 0 5 10 15 [--drive mean_24h --n 6000 --seed 7 --years 5]

One line per shift: the band rates and the incidence among people without diabetes at baseline
(noise-free yearly FPG / HbA1c, the same definition as the module docstring's). Pick the shift
whose 110–125 band rate is closest to 5.56 %/yr (a grid, no interpolation).
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv=None):
    from vpop._progression import (
        ProgressionConfig,
        _visit_steps,
        ifg_progression_rates,
        simulate_progression,
    )
    from vpop._virtual_population import load_population

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drive", default="mean_24h", choices=["mean_24h", "fasting"])
    ap.add_argument("--shifts", type=float, nargs="+", required=True)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--years", type=float, default=5.0)
    ap.add_argument("--beta-decline-sd", type=float, nargs="+", default=[None],
                    help="SD of the intrinsic log beta-cell slope [1/yr] (default: ProgressionConfig's)")
    a = ap.parse_args(argv)
    pop = load_population("us_adults")
    for shift, sd in [(s, d) for d in a.beta_decline_sd for s in a.shifts]:
        t0 = time.perf_counter()
        extra = {} if sd is None else {"beta_decline_sd_per_year": sd}
        cfg = ProgressionConfig(years=a.years, glucotoxicity_glucose=a.drive, glucotoxicity_shift_mg_per_dl=shift, **extra)
        people, tr = simulate_progression(pop, a.n, config=cfg, seed=a.seed)
        rates = ifg_progression_rates(tr, seed=a.seed)
        ok = people["status"] == "OK"
        at_risk = ok & (people["baseline_ada_class"] != "diabetes")
        # whole population: first yearly noise-free FPG >= 126 or HbA1c >= 6.5 among the non-diabetic
        w = tr[tr["person"].isin(people.loc[at_risk, "person"])]
        yearly = _visit_steps(w, 1.0)
        w = w[w["time [years]"].isin(yearly)]
        hit = ((w["fpg [mg/dL]"] >= 126) | (w["hba1c [%]"] >= 6.5)).groupby(w["person"]).any()
        pop_rate = -np.log1p(-hit.mean()) / yearly[-1]
        bands = "; ".join(f"FPG {r['fpg_band [mg/dL]']}: {100 * r['annual_rate [1/yr]']:.2f} %/yr (n={r['n_people']}, "
                          f"Nichols {100 * r['nichols2007_annual_rate [1/yr]']:.2f})" for _, r in rates.iterrows())
        print(f"drive {a.drive}, shift {shift:g} mg/dL, beta decline SD {cfg.beta_decline_sd_per_year:g}/yr: {bands}; non-diabetic adults {100 * pop_rate:.2f} %/yr "
              f"(n={int(at_risk.sum())}, failed {int((~ok).sum())}); {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
