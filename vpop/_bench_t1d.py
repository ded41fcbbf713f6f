"""Benchmark case ``t1d_uva_padova``: the 30 UVA/Padova patients replicated to a large cohort, one day
of basal–bolus therapy with noisy CGM in fast mode (outputs and control every 5 min), against
simglucose 0.2.11 on one patient-day and against a naive ``jax.jit(jax.vmap(...))`` of adaptive
diffrax solves, both measured in the same run.

The naive baseline (:func:`make_naive_baseline`) is what a user would write with diffrax for the
same closed loop: per person, a ``lax.scan`` over the 5-min control steps that runs the same sensor →
controller → pump policy and then ``diffrax.diffeqsolve(Tsit5(), PIDController(rtol=1e-6,
atol=1e-6), dt0=None)`` over the step, in float32, ``jax.vmap``-ed over people. It is fed exactly the
inputs vpop gets (captured from :func:`vpop.simulate_t1d`'s call of the engine) and timed on the
first :data:`NAIVE_CAP` people; its throughput is per patient-day.

Each fast-mode configuration in :data:`FAST_CONFIGS` gets a row, with its accuracy measured in the
same run: the max |blood glucose − float64 reference| over every 5-min output of the 30 patients
(one day, noise-free CGM), field ``max_abs_error_mg_dl`` (the issue's bound: 1 mg/dL).

simglucose is an optional dev dependency (``pip install simglucose==0.2.11``). It is timed in this
process when importable, or in a separate interpreter given by ``--simglucose-python`` (for an
environment of its own); otherwise the row reports the vpop figures with no ratio.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import vpop

from . import _engine
from ._bench import _time_calls, peak_rss_mb
from ._t1d import default_t1d_substeps

CASE = "t1d_uva_padova"
#: Fast-mode configurations timed: (fast_solver, substeps per 5-min step, host devices); ``None``
#: substeps = the :func:`vpop.simulate_t1d` default (steps of at most 5/3 min: 3 per 5-min step);
#: 5 = 1-min steps. Host devices ``"cores"``: the default configuration in a child process with one
#: XLA host device per CPU core (``--xla_force_host_platform_device_count``) and the person axis
#: sharded across them (:func:`vpop.use_devices`), i.e. every core busy; ``None``: this process,
#: one device (XLA:CPU runs one computation on one thread).
FAST_CONFIGS = (("bosh3", None, None), ("bosh3", 5, None), ("bosh3", None, "cores"))

_CHILD = """
import json, sys, hashlib
import numpy as np, jax, vpop
from vpop._bench import _time_calls
n_rep, repeats = int(sys.argv[1]), int(sys.argv[2])
cohort = vpop.uva_padova_cohort(replicate=n_rep)
scenario = vpop.T1DScenario.daily(1, step_min=5.0)
def call():
    with vpop.use_devices("all"):
        res = vpop.simulate_t1d(cohort, scenario, vpop.BasalBolus(), mode="fast", seed=0, saved_states=("glucose_plasma",))
    return np.asarray(res.states["glucose_plasma"]), np.asarray(res.status)
first, median, (g, status) = _time_calls(call, repeats)
print(json.dumps({"first": first, "median": median, "n": cohort.n_people, "n_devices": len(jax.devices()),
                  "sha256": hashlib.sha256(np.ascontiguousarray(g).tobytes()).hexdigest(),
                  "n_ok": int(np.sum(status == 0))}))
"""


def _sharded_child(replicate: int, repeats: int, n_devices: int) -> dict:
    """Time the default configuration in a child process with ``n_devices`` XLA host devices."""
    import os

    env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={n_devices}").strip())
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(replicate), str(repeats)], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"sharded T1D child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
#: The naive baseline runs on at most this many people.
NAIVE_CAP = 1020
NAIVE_RTOL = 1e-6
NAIVE_ATOL = 1e-6


class _Captured(Exception):
    pass


def engine_arguments(run):
    """The arguments ``run()`` passes to the engine's :func:`vpop._engine.solve` (the call is not made)."""
    captured = {}
    original = _engine.solve

    def capture(*args, **kwargs):
        captured.update(kwargs, model=args[0], params=args[1], y0=args[2], xs=args[3])
        raise _Captured

    _engine.solve = capture
    try:
        run()
    except _Captured:
        pass
    finally:
        _engine.solve = original
    if not captured:
        raise RuntimeError("the engine was not called")
    return captured


def make_naive_baseline(a: dict, n: int):
    """``jit(vmap(one_person))`` with an adaptive Tsit5 ``diffeqsolve`` per control step, for the first
    ``n`` people of the captured engine arguments ``a``; returns a blocking call giving glucose ``(n, T)``."""
    model, policy, dt, n_int = a["model"], a["policy"], float(a["dt"]), int(a["n_intervals"])
    f32 = lambda t: jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32)[:n] if jnp.ndim(x) else x, t)  # noqa: E731
    params, y0, pstate0 = f32(a["params"]), f32(a["y0"]), f32(a["pstate0"])
    xs = jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32)[:n] if jnp.ndim(x) == 2 else jnp.asarray(x, jnp.float32),
                                a["xs"])
    in_axes_xs = jax.tree_util.tree_map(lambda x: 0 if jnp.ndim(x) == 2 else None, xs)
    term = diffrax.ODETerm(lambda t, y, args: model.vector_field(t, y, args[0], args[1]))
    controller = diffrax.PIDController(rtol=NAIVE_RTOL, atol=NAIVE_ATOL)

    def one_person(p, y, person_xs, ps):
        def body(carry, inp):
            y, ps = carry
            k, x = inp
            ps, u, _ = policy(ps, y, x, p, k, dt)
            y = model.at_node(y, u, dt)
            t0 = k * dt
            sol = diffrax.diffeqsolve(term, diffrax.Tsit5(), t0, t0 + dt, None, y, args=(p, u),
                                      saveat=diffrax.SaveAt(t1=True), stepsize_controller=controller)
            y1 = jax.tree_util.tree_map(lambda v: v[-1], sol.ys)
            return (y1, ps), y.glucose_plasma

        ks = jnp.arange(n_int, dtype=jnp.float32)
        _, g = jax.lax.scan(body, (y, ps), (ks, person_xs))
        return g / p.VG

    batched = jax.jit(jax.vmap(one_person, in_axes=(0, 0, in_axes_xs, 0)))
    return lambda: np.asarray(batched(params, y0, xs, pstate0))


def fast_mode_error_mg_dl(fast_solver: str, substeps: int | None) -> tuple[float, int]:
    """Max |BG_fast − BG_reference| [mg/dL] over the 30 patients' 5-min outputs (one day, noise-free
    CGM, basal–bolus), and the number of patients whose fast solve did not succeed."""
    cohort = vpop.uva_padova_cohort()
    scenario = vpop.T1DScenario.daily(1, step_min=5.0)
    cgm = vpop.CGM.named("Dexcom", noise=False)
    ref = vpop.simulate_t1d(cohort, scenario, vpop.BasalBolus(), cgm=cgm, mode="reference")
    fast = vpop.simulate_t1d(cohort, scenario, vpop.BasalBolus(), cgm=cgm, mode="fast", substeps=substeps,
                             fast_solver=fast_solver)
    d = np.abs(np.asarray(fast.blood_glucose_mg_per_dl(), float) - np.asarray(ref.blood_glucose_mg_per_dl()))
    return float(np.max(d)), int(np.sum(np.asarray(fast.status) != vpop.Status.OK))

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
                 device: str = "", emit=None, naive_cap: int = NAIVE_CAP) -> list[dict]:
    """Measure the ``t1d_uva_padova`` case; returns one row per configuration of :data:`FAST_CONFIGS`
    (``quick``: the first configuration only, without the naive baseline and the accuracy check)."""
    n_target = n_people or (1020 if quick else 10_020)
    replicate = max(1, math.ceil(n_target / 30))
    cohort = vpop.uva_padova_cohort(replicate=replicate)
    scenario = vpop.T1DScenario.daily(1, step_min=5.0)
    ctrl = vpop.BasalBolus()

    n = cohort.n_people
    sg = time_simglucose(simglucose_python)
    sg_rate = 1.0 / sg["seconds_per_patient_day"] if sg else None

    # naive jit(vmap(diffeqsolve)) baseline on the same inputs, same device, same run (not with --quick)
    naive_rate = naive_first = naive_median = None
    n_naive = min(n, int(naive_cap))
    if not quick:
        args = engine_arguments(lambda: vpop.simulate_t1d(cohort, scenario, ctrl, mode="fast", seed=0))
        naive_first, naive_median, _ = _time_calls(make_naive_baseline(args, n_naive), repeats)
        naive_rate = n_naive * scenario.duration_days / naive_median

    rows = []
    single_sha = None
    for fast_solver, substeps, host in FAST_CONFIGS[:1] if quick else FAST_CONFIGS:
        n_devices = 1
        if host == "cores":
            n_devices = os.cpu_count() or 1
            if jax.default_backend() != "cpu" or n_devices < 2:
                continue  # one core (or an accelerator): nothing to shard across host cores
            child = _sharded_child(replicate, repeats, n_devices)
            first, median, status = child["first"], child["median"], np.zeros(child["n_ok"])
            identical = child["sha256"] == single_sha
        else:
            def call():
                res = vpop.simulate_t1d(cohort, scenario, ctrl, mode="fast", seed=0, saved_states=("glucose_plasma",),
                                        substeps=substeps, fast_solver=fast_solver)
                return np.asarray(res.states["glucose_plasma"]), np.asarray(res.status)

            first, median, (g, status) = _time_calls(call, repeats)
            identical = None
            if substeps is None:
                single_sha = hashlib.sha256(np.ascontiguousarray(g).tobytes()).hexdigest()
        pd_per_s = n * scenario.duration_days / median
        # the sharded row gives the same numbers bit for bit (identical_to_one_device): its accuracy is the first row's
        error, n_failed_30 = (None, None) if (quick or host) else fast_mode_error_mg_dl(fast_solver, substeps)
        steps = substeps or default_t1d_substeps(scenario.step_min)
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
            "naive_baseline_patient_days_per_s": None if naive_rate is None else round(naive_rate, 1),
            "naive_ratio": None if naive_rate is None else round(pd_per_s / naive_rate, 3),
            "naive_baseline_n_people": None if naive_rate is None else n_naive,
            "naive_baseline_compile_s": None if naive_rate is None else round(max(naive_first - naive_median, 0.0), 3),
            "fast_solver": fast_solver,
            "host_devices": n_devices,
            "identical_to_one_device": identical,
            "step_min": round(scenario.step_min / steps, 4),
            "output_every_min": scenario.step_min,
            "max_abs_error_mg_dl": None if error is None else round(error, 4),
            "n_failed_of_30": n_failed_30,
            "median_s": round(median, 4),
            "repeats": repeats,
            "mode": "fast",
            "dtype": "float32",
            "n_ok": int(status.size) if host == "cores" else int(np.sum(status == vpop.Status.OK)),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "vpop_version": vpop.__version__,
            "jax_version": jax.__version__,
        }
        rows.append(row)
        if emit is not None:
            emit(row)
    return rows
