"""Benchmark case ``progression_10y``: N people of the calibrated ``us_adults`` population over 10
years (30-day slow steps; in each step the fasting steady state, one simulated day with the
population's three daily meals and a 75-g OGTT; HbA1c chain; Topp beta-cell adaptation).

The daily meal pattern enters through one simulated day per 30-day slow step (the day stands for
every day of its step), and the OGTT is simulated at every step (yearly visits are read from it):
10 years × 10,000 people is 1.22 M simulated patient-days plus 1.22 M OGTTs. Reports wall time of
the first call (compilation included) and the peak resident memory of the process.
"""

from __future__ import annotations

import time

CASE = "progression_10y"


def run_progression_case(n_people: int = 10_000, years: float = 10.0, *, device: str = "", emit=print) -> dict:
    from ._bench import peak_rss_mb
    from ._progression import ProgressionConfig, simulate_progression
    from ._virtual_population import load_population

    pop = load_population("us_adults")
    cfg = ProgressionConfig(years=years)
    t0 = time.perf_counter()
    people, tr = simulate_progression(pop, n_people, config=cfg, seed=0)
    wall = time.perf_counter() - t0
    n_steps = tr["time [years]"].nunique() - 1
    row = {"case": CASE, "n_people": n_people, "years": years, "step_days": cfg.step_days, "slow_steps": n_steps,
           "wall_s": round(wall, 1), "simulated_patient_days": n_people * n_steps,
           "people_years_per_s": round(n_people * years / wall, 1),
           "n_failed": int((people["status"] != "OK").sum()), "peak_rss_mb": round(peak_rss_mb(), 1),
           "target": "under 600 s on the 2-core CPU", "device": device}
    emit(row)
    return row
