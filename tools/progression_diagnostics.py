"""Diagnostics of the progression model behind the ``dpp_lifestyle`` and ``bmi_incidence_rr`` misses
(issue 5), so a change to the model can be judged on the same numbers.

Prints:

1. **The DPP-like trial** (:func:`vpop._progression.dpp_trial`).
   * Per arm: the 3-year incidence on measured tests and on the noise-free levels, by FPG and
     by 2-h glucose.
   * The median FPG, 2-h glucose, HbA1c and log beta-cell function at years 0, 1, 2 and 3 of the
     randomised people.
2. **Ten years of progression** on ``us_adults``.
   * The Mantel–Haenszel RR of diabetes by BMI class
     (:func:`vpop._progression.incidence_rr_by_bmi`) with the ADA definition.
   * The same RR with FPG/HbA1c only, and among people normoglycaemic at baseline.

Usage: ``python tools/progression_diagnostics.py [--n-dpp 8000] [--n-rr 8000] [--seed 0]``
(about 4 minutes on 2 CPU cores with the defaults).
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd


def _dpp(n: int, seed: int) -> None:
    from vpop._progression import _confirmed, _visit_steps, _wide, dpp_trial

    summary, people, tr = dpp_trial(n_people=n, seed=seed)
    print(summary.to_string(index=False))
    idx = people["person"].unique()
    for arm in summary["arm"]:
        t = tr[(tr["arm"] == arm) & tr["person"].isin(idx)]
        fv, ov = _visit_steps(t, 0.5), _visit_steps(t, 1.0)
        measured = {k: _confirmed(t, v, seed, col, thr).any(axis=1).mean() for k, v, col, thr in
                    (("FPG", fv, "fpg [mg/dL]", 126.0), ("2-h", ov, "ogtt_2h_glucose [mg/dL]", 200.0))}
        true = {k: (_wide(t, col)[v] >= thr).any(axis=1).mean() for k, v, col, thr in
                (("FPG", fv, "fpg [mg/dL]", 126.0), ("2-h", ov, "ogtt_2h_glucose [mg/dL]", 200.0))}
        print(f"{arm}: measured tests FPG {measured['FPG']:.3f}, 2-h {measured['2-h']:.3f}; "
              f"noise-free FPG {true['FPG']:.3f}, 2-h {true['2-h']:.3f}")
        for col in ("fpg [mg/dL]", "ogtt_2h_glucose [mg/dL]", "hba1c [%]", "log_beta_cell_function [1]"):
            w = _wide(t, col)
            cols = [min(w.columns, key=lambda c, y=y: abs(c - y)) for y in (0.0, 1.0, 2.0, 3.0)]
            print(f"    {col}: " + ", ".join(f"{c:.2f} y {w[c].median():.3f}" for c in cols))


def _bmi(n: int, seed: int) -> None:
    from vpop._progression import (
        ProgressionConfig,
        _visit_steps,
        incidence_rr_by_bmi,
        simulate_progression,
    )
    from vpop._virtual_population import load_population

    people, tr = simulate_progression(load_population("us_adults"), n, config=ProgressionConfig(years=10.0), seed=seed)
    cols = ["bmi_class", "n_people", "cumulative_incidence [1]", "normal_weight_cumulative_incidence [1]",
            "relative_risk_mh [1]", "abdullah2010_rr [1]"]
    print("ADA definition (FPG, 2-h glucose, HbA1c; every 30-day step):")
    print(incidence_rr_by_bmi(people)[cols].to_string(index=False))
    w = tr[tr["time [years]"].isin(_visit_steps(tr, 1.0))]
    hit = ((w["fpg [mg/dL]"] >= 126) | (w["hba1c [%]"] >= 6.5)).groupby(w["person"]).any()
    t0 = tr[tr["time [years]"] == 0].set_index("person")
    base_ok = ((t0["fpg [mg/dL]"] < 126) & (t0["hba1c [%]"] < 6.5))
    p2 = people.set_index("person")
    p2 = p2[base_ok.reindex(p2.index, fill_value=False).to_numpy()].copy()
    p2["baseline_ada_class"] = "normal"
    p2["time_to_diabetes [years]"] = np.where(hit.reindex(p2.index, fill_value=False).to_numpy(), 1.0, np.nan)
    print("FPG ≥ 126 or HbA1c ≥ 6.5% at yearly visits only:")
    print(incidence_rr_by_bmi(p2.reset_index())[cols].to_string(index=False))
    print("people normoglycaemic (ADA) at baseline:")
    print(incidence_rr_by_bmi(people[people["baseline_ada_class"] == "normal"])[cols].to_string(index=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-dpp", type=int, default=8000)
    ap.add_argument("--n-rr", type=int, default=8000)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    pd.set_option("display.width", 160)
    _dpp(a.n_dpp, a.seed)
    _bmi(a.n_rr, a.seed)


if __name__ == "__main__":
    main()
