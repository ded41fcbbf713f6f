"""Benchmark case ``t1d_uva_padova``: the 30 UVA/Padova patients replicated to a large cohort, one day
of basal–bolus therapy with noisy CGM in fast mode, against simglucose 0.2.11 on one patient-day
measured in the same run.

simglucose is an optional dev dependency (``pip install simglucose==0.2.11``). It is timed in this
process when importable, or in a separate interpreter given by ``--simglucose-python`` (for an
environment of its own); otherwise the row reports the vpop figures with no ratio.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import jax
import numpy as np

import vpop

from ._bench import _time_calls, peak_rss_mb

CASE = "t1d_uva_padova"

#: Times one simglucose patient-day (its own env, BBController, Dexcom CGM, Insulet pump, 3 meals).
SIMGLUCOSE_SNIPPET = r"""
import json, time, logging
from datetime import datetime
logging.disable(logging.CRITICAL)
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.sensor.cgm import CGMSensor
from simglucose.actuator.pump import InsulinPump
from simglucose.simulation.scenario import CustomScenario
from simglucose.simulation.env import T1DSimEnv
from simglucose.controller.basal_bolus_ctrller import BBController
import importlib.metadata as md
env = T1DSimEnv(T1DPatient.withName("adolescent#001"), CGMSensor.withName("Dexcom", seed=1),
                InsulinPump.withName("Insulet"),
                CustomScenario(datetime(2025, 1, 1), [(7.0, 45.0), (12.0, 70.0), (18.0, 80.0)]))
ctrl = BBController()
t0 = time.perf_counter()
obs, reward, done, info = env.reset()
for _ in range(int(1440 / env.sample_time)):
    obs, reward, done, info = env.step(ctrl.policy(obs, reward, done, **info))
print(json.dumps({"seconds_per_patient_day": time.perf_counter() - t0, "version": md.version("simglucose")}))
"""


def time_simglucose(python: str | None = None) -> dict | None:
    """Seconds simglucose takes for one patient-day, or ``None`` if simglucose is not available."""
    exe = python or sys.executable
    try:
        out = subprocess.run([exe, "-c", SIMGLUCOSE_SNIPPET], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_t1d_case(quick: bool, *, n_people: int | None = None, repeats: int = 3, simglucose_python: str | None = None,
                 device: str = "", emit=None) -> list[dict]:
    """Measure the ``t1d_uva_padova`` case; returns one row."""
    n_target = n_people or (1020 if quick else 10_020)
    replicate = max(1, math.ceil(n_target / 30))
    cohort = vpop.uva_padova_cohort(replicate=replicate)
    scenario = vpop.T1DScenario.daily(1, step_min=5.0)
    ctrl = vpop.BasalBolus()

    def call():
        res = vpop.simulate_t1d(cohort, scenario, ctrl, mode="fast", seed=0, saved_states=("glucose_plasma",))
        return np.asarray(res.states["glucose_plasma"]), np.asarray(res.status)

    first, median, (_, status) = _time_calls(call, repeats)
    n = cohort.n_people
    pd_per_s = n * scenario.duration_days / median
    sg = time_simglucose(simglucose_python)
    sg_rate = 1.0 / sg["seconds_per_patient_day"] if sg else None
    row = {
        "case": CASE,
        "device": device,
        "n_people": n,
        "patient_days_per_s": round(pd_per_s, 1),
        "baseline_patient_days_per_s": None if sg_rate is None else round(sg_rate, 5),
        "ratio": None if sg_rate is None else round(pd_per_s / sg_rate, 1),
        "compile_s": round(max(first - median, 0.0), 3),
        "baseline": "simglucose %s, one patient-day (adolescent#001, BBController)" % (sg["version"] if sg else "not available"),
        "baseline_seconds_per_patient_day": None if sg is None else round(sg["seconds_per_patient_day"], 3),
        "median_s": round(median, 4),
        "repeats": repeats,
        "mode": "fast",
        "dtype": "float32",
        "n_ok": int(np.sum(status == vpop.Status.OK)),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "vpop_version": vpop.__version__,
        "jax_version": jax.__version__,
    }
    if emit is not None:
        emit(row)
    return [row]
