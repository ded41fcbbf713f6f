"""Calibrate the progression model's two free constants jointly (issue 5):

* ``glucotoxicity_shift_mg_per_dl`` (the position of Ha 2016's glucotoxic switch) against Nichols
  et al. 2007's annual diabetes incidence at a measured baseline FPG of 110–125 mg/dL, 5.56 %/yr
  (:func:`vpop._progression.ifg_progression_rates`, the first 5 years of follow-up);
* ``beta_decline_risk_factor_per_year`` (κ, the decline of log beta-cell function per unit of
  risk-factor insulin resistance) against Abdullah 2010's relative risk of diabetes for obese against
  normal-weight people, 7.19 (:func:`vpop._progression.incidence_rr_by_bmi`, ten years).

The random intrinsic slope is off (``beta_decline_sd_per_year=0``). Calibration sample: 6,000
``us_adults``, seed 7 (the ``vpop validate`` checks use 8,000 people and seed 0). Printed, not
fitted: the FPG 100–109 band (Nichols 1.34 %/yr), the overweight RR (Abdullah 2.99, the
``bmi_incidence_rr`` check's prediction row), ten-year incidences. The DPP-like trial is never a
target here. Pick the grid point closest to both targets (no interpolation).

Usage::

    python tools/calibrate_progression.py --kappa 0.02 0.03 0.04 --shifts 5 10 15

(about 25 s per grid point on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import itertools
import time


def main(argv=None):
    from vpop._progression import (
        ProgressionConfig,
        ifg_progression_rates,
        incidence_rr_by_bmi,
        simulate_progression,
    )
    from vpop._virtual_population import load_population

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kappa", type=float, nargs="+", required=True)
    ap.add_argument("--shifts", type=float, nargs="+", required=True)
    ap.add_argument("--n", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args(argv)
    pop = load_population("us_adults")
    for k, sh in itertools.product(a.kappa, a.shifts):
        t0 = time.perf_counter()
        cfg = ProgressionConfig(years=10, ogtt=True, beta_decline_sd_per_year=0.0, beta_decline_risk_factor_per_year=k,
                                glucotoxicity_shift_mg_per_dl=sh)
        people, tr = simulate_progression(pop, a.n, config=cfg, seed=a.seed)
        rr = incidence_rr_by_bmi(people).set_index("bmi_class")
        nich = ifg_progression_rates(tr[tr["time [years]"] <= 5.0 + 1e-9], seed=a.seed)
        at_risk = people[(people["status"] == "OK") & (people["baseline_ada_class"] != "diabetes")]
        print(f"kappa {k:g}/yr, shift {sh:g} mg/dL: Nichols (5 y) FPG 100–109 {100 * nich['annual_rate [1/yr]'].iloc[0]:.2f} %/yr "
              f"(1.34), 110–125 {100 * nich['annual_rate [1/yr]'].iloc[1]:.2f} %/yr (target 5.56); RR overweight "
              f"{rr.loc['overweight', 'relative_risk_mh [1]']:.2f} (2.99), obese {rr.loc['obese', 'relative_risk_mh [1]']:.2f} (target 7.19); "
              f"10-y incidence normal weight {rr['normal_weight_cumulative_incidence [1]'].iloc[0]:.3f}, obese "
              f"{rr.loc['obese', 'cumulative_incidence [1]']:.3f}, all {at_risk['time_to_diabetes [years]'].notna().mean():.3f}; "
              f"failed {int((people['status'] != 'OK').sum())}; {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
