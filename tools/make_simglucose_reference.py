"""Generate the simglucose 0.2.11 reference trajectories of the 30 UVA/Padova 2008 patients.

Reproducible: no randomness (noise-free sensor), fixed scenario. Run in an environment with
simglucose 0.2.11 installed (``pip install simglucose==0.2.11``, MIT licence; an optional dev
dependency of vpop, not needed to run or test vpop):

    python tools/make_simglucose_reference.py vpop/data/reference/simglucose_0.2.11_bb_24h.csv.gz

Scenario: simglucose's own ``T1DSimEnv`` with its ``BBController`` (basal u2ss·BW/6000 U/min, meal
boluses CHO/CR plus a correction (G − 140)/CF above 150 mg/dL), the ``Insulet`` pump, and a
noise-free CGM (the ``Dexcom`` sensor with its noise generator replaced by zero, 3-min samples);
meals of 45 g at 07:00, 70 g at 12:00 and 80 g at 18:00; 24 h from midnight.

For every patient and every minute the script records what the patient model actually received
over that minute (carbohydrate eaten [g/min] and insulin [U/min], after the pump's rounding and
simglucose's 5 g/min eating) and the state at the start of the minute: plasma glucose Gp/Vg
[mg/dL] (blood glucose) and subcutaneous glucose Gs/Vg [mg/dL] (what simglucose reports as "BG").
vpop replays those inputs (``vpop validate`` check ``simglucose_30_patients``).
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

import numpy as np
import pandas as pd

from simglucose.actuator.pump import InsulinPump
from simglucose.controller.basal_bolus_ctrller import BBController
from simglucose.patient.t1dpatient import T1DPatient
from simglucose.sensor.cgm import CGMSensor
from simglucose.simulation.env import T1DSimEnv
from simglucose.simulation.scenario import CustomScenario

MEALS_H_G = [(7.0, 45.0), (12.0, 70.0), (18.0, 80.0)]
DURATION_MIN = 24 * 60
SENSOR = "Dexcom"
PUMP = "Insulet"


class _ZeroNoise:
    def __next__(self):
        return 0.0

    def __iter__(self):
        return self


class NoiseFreeCGM(CGMSensor):
    """simglucose's CGM sensor with its noise replaced by zero (clipping and sample-and-hold kept)."""

    @property
    def seed(self):
        return self._seed

    @seed.setter
    def seed(self, seed):
        self._seed = seed
        self._noise_generator = _ZeroNoise()

    def reset(self):
        self._noise_generator = _ZeroNoise()
        self._last_CGM = 0


def run_patient(name: str) -> tuple[pd.DataFrame, float]:
    patient = T1DPatient.withName(name)
    sensor = NoiseFreeCGM.withName(SENSOR)
    pump = InsulinPump.withName(PUMP)
    start = datetime(2025, 1, 1, 0, 0, 0)
    scenario = CustomScenario(start_time=start, scenario=list(MEALS_H_G))
    env = T1DSimEnv(patient, sensor, pump, scenario)
    controller = BBController()
    Vg = patient._params.Vg

    rows = []
    original_step = patient.step

    def logged_step(action):
        t = patient.t
        gp, gs = patient.state[3] / Vg, patient.state[12] / Vg
        original_step(action)
        eaten = patient._last_action  # the action the ODE received over [t, t+1)
        rows.append((t, float(eaten.CHO), float(eaten.insulin), gp, gs))

    patient.step = logged_step
    t0 = time.perf_counter()
    obs, reward, done, info = env.reset()
    for _ in range(int(DURATION_MIN / env.sample_time)):
        action = controller.policy(obs, reward, done, **info)
        obs, reward, done, info = env.step(action)
    wall = time.perf_counter() - t0
    rows.append((patient.t, np.nan, np.nan, patient.state[3] / Vg, patient.state[12] / Vg))
    df = pd.DataFrame(rows, columns=["time [min]", "carbs [g/min]", "insulin [U/min]",
                                     "blood_glucose [mg/dL]", "subcutaneous_glucose [mg/dL]"])
    df.insert(0, "patient", name)
    return df, wall


def main(out: str) -> None:
    names = pd.read_csv(
        __import__("pkg_resources").resource_filename("simglucose", "params/vpatient_params.csv")
    )["Name"].tolist()
    frames, walls = [], []
    for name in names:
        df, wall = run_patient(name)
        frames.append(df)
        walls.append(wall)
        print(f"{name}: {wall:.1f} s per patient-day", file=sys.stderr)
    pd.concat(frames, ignore_index=True).to_csv(out, index=False, float_format="%.10g")
    print(f"wrote {out}; simglucose median {np.median(walls):.1f} s per patient-day", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "simglucose_0.2.11_bb_24h.csv.gz")
