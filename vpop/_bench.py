"""Throughput benchmark: ``vpop bench``.

Case ``meal_model_1day``: a cohort sampled around the Dalla Man 2007 normal-subject parameter set
(:data:`COHORT_CV`, ``seed=0``) lives one day with three mixed meals (:func:`vpop.mixed_meals`)
on a 1-min output grid. For each cohort size the benchmark measures, in one process and on one
device:

* **vpop fast mode** (``mode="fast"``, saving only :data:`SAVED_STATES`): the first call (which
  includes tracing and XLA compilation) and the median of ``repeats`` further calls;
* **vpop reference mode** at the small sizes only (it is slow), as case
  ``meal_model_1day_reference``;
* a **baseline**: what a user would write by hand with diffrax, ``jax.jit(jax.vmap(one_person))``
  where ``one_person`` solves each inter-meal segment with its own ``diffrax.diffeqsolve``
  (``Tsit5``, ``PIDController(rtol=1e-6, atol=1e-6)``, ``SaveAt(ts=…)`` on the 1-min grid) and
  applies the meal as a jump of the state between segments (:meth:`model.apply_meal`). It uses the
  model's own ``vector_field``. For large cohorts it runs on the first ``baseline_cap`` people and
  its throughput is scaled per patient-day (field ``baseline_n_people``).

Every call is blocked on by converting plasma glucose to a NumPy array. Throughput is
``patient_days_per_s = n_people · protocol.duration_days / median_s``. ``compile_s`` is
``first_call_s − median_s`` (the first call's extra time: tracing + compilation).

The baseline's glucose is checked against vpop fast mode on the baseline people
(:data:`AGREEMENT_TOL_MG_DL`); a disagreement adds a ``…_warning`` row.

One JSON object per line goes to stdout; progress messages go to stderr. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from typing import Callable, Sequence

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

import vpop

#: Case name of the fast-mode rows; the reference-mode rows append ``_reference``.
CASE = "meal_model_1day"
PARAMETER_SET = "DallaMan2007_normal"
#: Between-person coefficients of variation of the benchmark cohort.
COHORT_CV: dict[str, float] = {
    "Vmx": 0.3,  # insulin sensitivity of utilisation
    "kp3": 0.25,  # insulin action on EGP
    "kabs": 0.25,  # intestinal absorption
    "kmax": 0.2,  # gastric emptying
    "k1": 0.2,  # plasma → tissue glucose
    "m1": 0.2,  # insulin kinetics
    "beta": 0.3,  # static secretion gain
    "K": 0.3,  # dynamic secretion
}
SAVED_STATES = ("glucose_plasma", "insulin_plasma")

QUICK_SIZES = (100, 1000)
FULL_SIZES = (100, 1000, 10_000, 100_000)
QUICK_REPEATS = 3
FULL_REPEATS = 5
#: Full runs (``repeats`` not given) time at most this many calls above :data:`LARGE_N` people.
LARGE_N_REPEATS = 3
LARGE_N = 10_000
#: Reference mode runs only at sizes up to this (and always at the smallest size).
QUICK_REFERENCE_MAX_N = 100
FULL_REFERENCE_MAX_N = 1000
#: Reference mode is slow; it is timed with at most this many repeats.
REFERENCE_MAX_REPEATS = 3
#: The baseline runs on at most this many people; its throughput is scaled per patient-day.
BASELINE_CAP = 2000
BASELINE_RTOL = 1e-6
BASELINE_ATOL = 1e-6
#: Max |glucose_baseline − glucose_vpop_fast| [mg/dL] before a warning row is printed.
AGREEMENT_TOL_MG_DL = 1.0
#: Skip a size when its estimated memory exceeds this fraction of the available memory.
MEMORY_FRACTION = 0.6


def _log(message: str) -> None:
    """Progress message to stderr (stdout carries only JSON)."""
    print(f"[vpop bench] {message}", file=sys.stderr, flush=True)


def _cpu_model() -> str:
    """Host CPU model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_description() -> str:
    """The JAX device the benchmark runs on, plus the host CPU model and core count."""
    dev = jax.devices()[0]
    return f"{dev.platform}:{dev.device_kind} ({dev}); host {_cpu_model()} x{os.cpu_count()} cores"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far [MiB] (``getrusage`` ``ru_maxrss``)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0  # bytes on macOS, KiB on Linux


def _available_memory_bytes() -> int | None:
    """``MemAvailable`` from ``/proc/meminfo``, or ``None`` where unknown."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _estimated_bytes(n_people: int, protocol: vpop.Protocol) -> int:
    """Rough peak memory of one fast-mode call plus the baseline (float32 outputs, with copies)."""
    n_points = protocol.n_intervals + 1
    fast = n_people * n_points * len(SAVED_STATES) * 4 * 5  # scan stack, concat, transpose, mg/dL, NumPy
    n_base = min(n_people, BASELINE_CAP)
    baseline = n_base * n_points * 13 * 8 * 3  # every state saved, float64 worst case
    return fast + baseline


def sample_cohort(n_people: int, seed: int = 0):
    """The benchmark cohort: ``(model, params)`` with leaves of shape ``(n_people,)``, sampled with
    ``vpop.sample_population(PARAMETER_SET, n_people, cv=COHORT_CV, seed=seed)``."""
    model, params, _ = vpop.sample_population(PARAMETER_SET, int(n_people), cv=COHORT_CV, seed=seed)
    return model, params


def _take(params, m: int):
    """The first ``m`` people of a population."""
    return jax.tree_util.tree_map(lambda x: x[:m], params)


def make_baseline(model, protocol: vpop.Protocol, dtype=jnp.float32) -> Callable:
    """Build the hand-written diffrax baseline: ``params → glucose [mg/dL]`` of shape ``(n, T)``.

    ``jax.jit(jax.vmap(one_person))``; ``one_person`` starts from the person's basal state and
    solves each inter-meal segment with its own adaptive ``diffeqsolve`` (a Python loop over the
    static segments), applying the meal jump at the start of each segment. The output node at a
    meal time holds the state just after the meal, as in vpop. Only protocols whose meals are the
    same for everybody are supported.
    """
    doses = np.asarray(protocol.doses_mg())
    if doses.ndim != 1:
        raise ValueError("the baseline supports only meals that are the same for everybody")
    grid = protocol.time_min
    n_int = protocol.n_intervals
    meal_nodes = sorted({int(k) for k in np.flatnonzero(doses > 0)})
    bounds = sorted({0, *meal_nodes, n_int})
    # (t0, t1, dose at t0 [mg], output times in [t0, t1]) per segment
    segments = [
        (float(grid[a]), float(grid[b]), float(doses[a]), grid[a : b + 1])
        for a, b in zip(bounds[:-1], bounds[1:])
    ]
    term = diffrax.ODETerm(model.vector_field)
    solver = diffrax.Tsit5()
    controller = diffrax.PIDController(rtol=BASELINE_RTOL, atol=BASELINE_ATOL)

    def one_person(p):
        y = model.basal_state(p)
        pieces = []
        for i, (t0, t1, dose, ts) in enumerate(segments):
            if dose > 0:
                y = model.apply_meal(y, jnp.asarray(dose, dtype))
            sol = diffrax.diffeqsolve(
                term, solver, jnp.asarray(t0, dtype), jnp.asarray(t1, dtype), None, y, args=p,
                saveat=diffrax.SaveAt(ts=jnp.asarray(ts, dtype)), stepsize_controller=controller,
            )
            y = jax.tree_util.tree_map(lambda a: a[-1], sol.ys)
            glucose = sol.ys.glucose_plasma / p.VG
            # the segment's last node is the next segment's first (after its meal), except at the end
            pieces.append(glucose if i == len(segments) - 1 else glucose[:-1])
        return jnp.concatenate(pieces)

    batched = jax.jit(jax.vmap(one_person))

    def run(params) -> np.ndarray:
        params = jax.tree_util.tree_map(lambda x: jnp.asarray(x, dtype), params)
        return np.asarray(batched(params))

    return run


def _time_calls(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Time ``fn()`` once (first call), then ``repeats`` more times.

    Returns ``(first_call_s, median_s, last_result)``; ``fn`` must block until its result is ready.
    """
    t0 = time.perf_counter()
    out = fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return first, statistics.median(times), out


def _vpop_call(model, params, protocol: vpop.Protocol, mode: str) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
    """A blocking call of :func:`vpop.simulate`: returns ``(glucose [mg/dL] as NumPy, status)``."""

    def call():
        res = vpop.simulate(model, params, protocol, mode=mode, saved_states=SAVED_STATES)
        return np.asarray(res.glucose_mg_per_dl()), np.asarray(res.status)

    return call


def _sig(x: float, digits: int = 6) -> float:
    """Round to ``digits`` significant digits (readable JSON)."""
    return float(f"{x:.{digits}g}")


def run_bench(
    quick: bool,
    sizes: Sequence[int] | None = None,
    repeats: int | None = None,
    *,
    baseline_cap: int = BASELINE_CAP,
    baseline_dtype: str = "float32",
    emit: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run the benchmark and return its rows (one dict per case and size).

    Args:
        quick: small sizes (:data:`QUICK_SIZES`) and few repeats; else :data:`FULL_SIZES`.
        sizes: cohort sizes to run instead of the defaults.
        repeats: timed calls after the first one (default: 3 quick; 5 full, 3 above
            :data:`LARGE_N` people).
        baseline_cap: the baseline runs on at most this many people.
        baseline_dtype: ``"float32"`` (the precision of vpop fast mode; default) or ``"float64"``.
        emit: called with each row as soon as it is measured (``main`` prints it).

    Returns:
        The rows, in the order measured. Fast-mode rows have ``case == "meal_model_1day"``,
        reference-mode rows ``"meal_model_1day_reference"``, agreement warnings
        ``"meal_model_1day_warning"``.
    """
    sizes = list(QUICK_SIZES if quick else FULL_SIZES) if sizes is None else [int(s) for s in sizes]
    if not sizes or any(s < 1 for s in sizes):
        raise ValueError(f"sizes={sizes} must be a non-empty list of positive integers")
    default_repeats = repeats is None
    repeats = (QUICK_REPEATS if quick else FULL_REPEATS) if default_repeats else int(repeats)
    if repeats < 1:
        raise ValueError(f"repeats={repeats} must be ≥ 1")
    if baseline_cap < 1:
        raise ValueError(f"baseline_cap={baseline_cap} must be ≥ 1")
    base_dtype = {"float32": jnp.float32, "float64": jnp.float64}.get(baseline_dtype)
    if base_dtype is None:
        raise ValueError(f"baseline_dtype={baseline_dtype!r}; allowed: 'float32', 'float64'")
    reference_max_n = max(QUICK_REFERENCE_MAX_N if quick else FULL_REFERENCE_MAX_N, min(sizes))

    protocol = vpop.mixed_meals(1)
    days = protocol.duration_days
    device = device_description()
    common = {
        "device": device,
        "vpop_version": vpop.__version__,
        "jax_version": jax.__version__,
        "diffrax_version": diffrax.__version__,
        "baseline_dtype": baseline_dtype,
    }
    rows: list[dict] = []

    def push(row: dict) -> None:
        rows.append(row)
        if emit is not None:
            emit(row)

    _log(f"device: {device}")
    available = _available_memory_bytes()
    for n in sizes:
        need = _estimated_bytes(n, protocol)
        if available is not None and need > MEMORY_FRACTION * available:
            _log(f"n={n}: skipped (needs ~{need / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available)")
            continue
        t_size = time.perf_counter()
        n_repeats = min(repeats, LARGE_N_REPEATS) if default_repeats and n > LARGE_N else repeats
        _log(f"n={n}: sampling the cohort")
        model, params = sample_cohort(n)
        jax.block_until_ready(params)

        _log(f"n={n}: vpop fast mode (first call + {n_repeats} timed)")
        first, median, (glucose, status) = _time_calls(_vpop_call(model, params, protocol, "fast"), n_repeats)
        fast = {"first": first, "median": median, "glucose": glucose, "status": status, "rss": peak_rss_mb()}

        n_base = min(n, baseline_cap)
        _log(f"n={n}: baseline jit(vmap(diffeqsolve)) on {n_base} people ({baseline_dtype})")
        baseline = make_baseline(model, protocol, base_dtype)
        base_params = _take(params, n_base)
        b_first, b_median, b_glucose = _time_calls(lambda: baseline(base_params), n_repeats)
        baseline_pds = n_base * days / b_median

        ok = fast["status"][:n_base] == vpop.Status.OK
        diff = np.abs(b_glucose[ok] - fast["glucose"][:n_base][ok])
        max_diff = float(np.max(diff)) if diff.size else float("nan")
        agree = bool(np.isfinite(max_diff) and max_diff <= AGREEMENT_TOL_MG_DL)

        def row(case: str, mode: str, dtype: str, first_s: float, median_s: float, rss: float, n_ok: int) -> dict:
            pds = n * days / median_s
            return {
                "case": case,
                "device": device,
                "n_people": n,
                "patient_days_per_s": _sig(pds),
                "baseline_patient_days_per_s": _sig(baseline_pds),
                "ratio": _sig(pds / baseline_pds, 4),
                "compile_s": _sig(max(first_s - median_s, 0.0), 4),
                "baseline_n_people": n_base,
                "median_s": _sig(median_s, 4),
                "repeats": n_repeats,
                "first_call_s": _sig(first_s, 4),
                "baseline_median_s": _sig(b_median, 4),
                "baseline_compile_s": _sig(max(b_first - b_median, 0.0), 4),
                "peak_rss_mb": _sig(rss, 5),
                "mode": mode,
                "dtype": dtype,
                "n_ok": n_ok,
                "agreement_max_abs_mg_dl": _sig(max_diff, 3),
                **common,
            }

        fast_row = row(CASE, "fast", "float32", fast["first"], fast["median"], fast["rss"],
                       int(np.sum(fast["status"] == vpop.Status.OK)))
        push(fast_row)
        if not agree:
            message = (f"baseline and vpop fast glucose differ by {max_diff:.3g} mg/dL "
                       f"(> {AGREEMENT_TOL_MG_DL} mg/dL) on the first {n_base} people")
            _log(f"WARNING n={n}: {message}")
            push({**fast_row, "case": f"{CASE}_warning", "warning": message})

        if n <= reference_max_n:
            ref_repeats = min(n_repeats, REFERENCE_MAX_REPEATS)
            _log(f"n={n}: vpop reference mode (first call + {ref_repeats} timed)")
            r_first, r_median, (_, r_status) = _time_calls(_vpop_call(model, params, protocol, "reference"),
                                                           ref_repeats)
            ref_row = row(f"{CASE}_reference", "reference", "float64", r_first, r_median, peak_rss_mb(),
                          int(np.sum(r_status == vpop.Status.OK)))
            ref_row["repeats"] = ref_repeats
            push(ref_row)
        _log(f"n={n}: done in {time.perf_counter() - t_size:.1f} s")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (``vpop bench``). Returns 0, or 1 if a sanity check failed."""
    parser = argparse.ArgumentParser(
        prog="vpop bench",
        description="Throughput of vpop (fast and reference mode) against a hand-written "
                    "jit(vmap(diffrax.diffeqsolve)) baseline, on a one-day three-meal protocol. "
                    "Prints one JSON object per line.",
    )
    parser.add_argument("--quick", action="store_true",
                        help=f"small sizes {list(QUICK_SIZES)} and {QUICK_REPEATS} repeats (default sizes "
                             f"{list(FULL_SIZES)}, {FULL_REPEATS} repeats)")
    parser.add_argument("--sizes", type=int, nargs="+", metavar="N", help="cohort sizes to run")
    parser.add_argument("--repeats", type=int, help="timed calls after the first (compiling) call")
    parser.add_argument("--baseline-cap", type=int, default=BASELINE_CAP,
                        help=f"run the baseline on at most this many people (default {BASELINE_CAP})")
    parser.add_argument("--baseline-dtype", choices=("float32", "float64"), default="float32",
                        help="precision of the baseline (default float32, as vpop fast mode)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON lines to FILE")
    parser.add_argument("--case", choices=("all", "meal", "t1d", "stream", "fit", "progression"), default="all",
                        help="which cases to run (default all): meal_model_1day, t1d_uva_padova, stream_1m_1day, fit_ogtt_1000, progression_10y "
                             "(not with --quick unless asked for by name)")
    parser.add_argument("--t1d-people", type=int, metavar="N",
                        help="people in the t1d_uva_padova case, rounded up to whole copies of the 30 patients "
                             "(default 10,020; 1,020 with --quick; on a GPU use about 1,000,000 to fill it)")
    parser.add_argument("--t1d-naive-cap", type=int, metavar="M",
                        help="run the t1d_uva_padova naive baseline on at most M people (default 1,020; raise it on "
                             "a GPU so the baseline fills the device too)")
    parser.add_argument("--stream-people", type=int, metavar="N",
                        help="people in the stream_1m_1day case (default 1,000,000)")
    parser.add_argument("--simglucose-python", metavar="PYTHON",
                        help="interpreter with simglucose 0.2.11 installed, to time it for t1d_uva_padova "
                             "(default: this interpreter)")
    args = parser.parse_args(argv)
    if args.sizes is not None and any(s < 1 for s in args.sizes):
        parser.error("--sizes must be positive integers")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be ≥ 1")
    if args.baseline_cap < 1:
        parser.error("--baseline-cap must be ≥ 1")
    if args.t1d_people is not None and args.t1d_people < 1:
        parser.error("--t1d-people must be ≥ 1")
    if args.t1d_naive_cap is not None and args.t1d_naive_cap < 1:
        parser.error("--t1d-naive-cap must be ≥ 1")

    out = open(args.out, "w", encoding="utf-8") if args.out else None
    failed = False

    def emit(row: dict) -> None:
        nonlocal failed
        line = json.dumps(row)
        print(line, flush=True)
        if out is not None:
            out.write(line + "\n")
            out.flush()
        failed = failed or "warning" in row

    t0 = time.perf_counter()
    try:
        if args.case in ("all", "meal"):
            run_bench(args.quick, args.sizes, args.repeats, baseline_cap=args.baseline_cap,
                      baseline_dtype=args.baseline_dtype, emit=emit)
        if args.case in ("all", "t1d"):
            from ._bench_t1d import NAIVE_CAP, run_t1d_case

            _log("t1d_uva_padova: 30 UVA/Padova patients replicated, 1 day, basal-bolus, fast mode")
            run_t1d_case(args.quick, n_people=args.t1d_people, repeats=args.repeats or 3,
                         simglucose_python=args.simglucose_python, device=device_description(), emit=emit,
                         naive_cap=args.t1d_naive_cap or NAIVE_CAP)
        if args.case == "fit" or (args.case == "all" and not args.quick):
            from ._bench_fit import run_fit_case  # fit_ogtt_1000 (vpop._bench_fit)

            run_fit_case(1000, repeats=args.repeats or 2, device=device_description(), emit=emit)
        if args.case == "progression" or (args.case == "all" and not args.quick):
            from ._bench_progression import run_progression_case  # progression_10y

            run_progression_case(device=device_description(), emit=emit)
        if args.case == "stream" or (args.case == "all" and not args.quick):
            from ._bench_stream import STREAM_N, run_stream_case

            run_stream_case(args.stream_people or STREAM_N, device=device_description(), emit=emit)
    finally:
        if out is not None:
            out.close()
    _log(f"total wall time {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
