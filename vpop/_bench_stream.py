"""Benchmark case ``stream_1m_1day``: a 1,000,000-person single-day cohort summary, streamed.

The cohort of case ``meal_model_1day`` (``DallaMan2007_normal`` with :data:`vpop._bench.COHORT_CV`,
one day of three meals on the 1-min grid, fast mode) run through :func:`vpop._stream.stream_study`
in chunks of :data:`STREAM_CHUNK` people, in a **child process** so that its peak resident memory
(``getrusage`` ``ru_maxrss``) is the stream's own and not the rest of the benchmark's. The row reports:

* ``patient_days_per_s``: ``n_people / wall_s``, end to end (sampling, simulation, summaries,
  parquet writes, the cohort summary);
* ``chunk_patient_days_per_s``: ``chunk_size / median_chunk_s`` (steady state, first chunk excluded);
* ``compile_s``: ``first_chunk_s − median_chunk_s`` (the first chunk's extra time: tracing and
  compilation); ``xla_compile_s``: seconds JAX reports for tracing, lowering and XLA compilation
  over the whole run (``jax.monitoring``);
* ``first_chunk_xla_compile_s``: the part of ``xla_compile_s`` spent during the first chunk (the
  first call's compile time, measured directly rather than as a difference of wall times);
* ``xla_compiles_after_first_chunk``: XLA compilations after the first chunk (0: no recompilation);
  ``engine_traces``: times the fast-mode simulation was traced (1: compiled once for all chunks);
* ``peak_rss_mb``: the child's peak resident memory [MiB];
* ``baseline_patient_days_per_s`` and ``ratio``: the naive ``jit(vmap(diffeqsolve))`` baseline of
  case ``meal_model_1day`` on :data:`vpop._bench.BASELINE_CAP` people, timed in the parent process
  on the same device in the same run (its throughput is pure simulation; vpop's here is end to end).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import jax

import vpop

CASE = "stream_1m_1day"
STREAM_N = 1_000_000
STREAM_CHUNK = 16384


def stream_config(n_people: int, chunk_size: int = STREAM_CHUNK):
    """The benchmark's streamed study config."""
    from ._bench import COHORT_CV, PARAMETER_SET
    from ._config import parse_config

    return parse_config({
        "name": CASE, "seed": 0, "mode": "fast", "save_every_min": 1, "chunk_size": int(chunk_size),
        "stream": True, "protocol": {"kind": "mixed_meals", "days": 1},
        "cohorts": [{"name": "normal", "parameter_set": PARAMETER_SET, "n_people": int(n_people),
                     "variability": {"cv": dict(COHORT_CV)}}],
        "outputs": {"traces": False, "figure": False},
    })


def _child(n_people: int, chunk_size: int) -> None:
    """Run the stream (in the child process) and print its manifest's figures as one JSON line."""
    from ._stream import stream_study

    with tempfile.TemporaryDirectory() as tmp:
        out = stream_study(stream_config(n_people, chunk_size), Path(tmp) / "out", progress=False)
        m = json.loads((out / "manifest.json").read_text())
        rows = m["n_people"]
        print(json.dumps({"wall_s": m["wall_time_s"], "n_failed": m["n_failed"], "n_people": rows,
                          "summary_bytes": m["files"]["summary.parquet"]["bytes"], **m["stream"]}))


def run_stream_case(n_people: int = STREAM_N, chunk_size: int = STREAM_CHUNK, *, device: str = "",
                    baseline: bool = True, emit=None) -> list[dict]:
    """Measure case ``stream_1m_1day`` (``n_people`` may be set lower for a quick look)."""
    from ._bench import BASELINE_CAP, _log, _sig, _time_calls, make_baseline, sample_cohort

    _log(f"{CASE}: {n_people} people in chunks of {chunk_size}, child process")
    code = f"import vpop._bench_stream as s; s._child({int(n_people)}, {int(chunk_size)})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{CASE} child failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    base_pds = None
    if baseline:
        _log(f"{CASE}: baseline jit(vmap(diffeqsolve)) on {BASELINE_CAP} people")
        model, params = sample_cohort(BASELINE_CAP)
        protocol = vpop.mixed_meals(1)
        run = make_baseline(model, protocol)
        _, b_median, _ = _time_calls(lambda: run(params), 3)
        base_pds = BASELINE_CAP * protocol.duration_days / b_median
    pds = n_people / child["wall_s"]
    row = {
        "case": CASE,
        "device": device,
        "n_people": int(n_people),
        "patient_days_per_s": _sig(pds),
        "baseline_patient_days_per_s": None if base_pds is None else _sig(base_pds),
        "ratio": None if base_pds is None else _sig(pds / base_pds, 4),
        "compile_s": _sig(max(child["first_chunk_s"] - child["median_chunk_s"], 0.0), 4),
        "xla_compile_s": child["compile_s"],
        "first_chunk_xla_compile_s": child["first_chunk_compile_s"],
        "engine_traces": child["engine_traces"]["fast"],
        "xla_compiles": child["xla_compiles"],
        "xla_compiles_after_first_chunk": child["xla_compiles_after_first_chunk"],
        "peak_rss_mb": child["peak_rss_mb"],
        "wall_s": child["wall_s"],
        "chunk_size": child["chunk_size"],
        "n_chunks": child["n_chunks"],
        "first_chunk_s": child["first_chunk_s"],
        "median_chunk_s": child["median_chunk_s"],
        "chunk_patient_days_per_s": _sig(child["chunk_size"] / child["median_chunk_s"]),
        "baseline_n_people": BASELINE_CAP if baseline else None,
        "n_failed": sum(child["n_failed"].values()),
        "summary_parquet_mb": round(child["summary_bytes"] / 2**20, 1),
        "mode": "fast",
        "dtype": "float32",
        "vpop_version": vpop.__version__,
        "jax_version": jax.__version__,
    }
    if emit is not None:
        emit(row)
    return [row]


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps(run_stream_case(int(sys.argv[1]) if len(sys.argv) > 1 else STREAM_N)[0]))
