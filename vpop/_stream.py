"""Streaming cohort studies: million-person cohorts in flat memory.

:func:`stream_study` runs a study config chunk by chunk (``chunk_size`` people per compiled call,
the last chunk filled up to the same size so that nothing is compiled twice) and appends each
chunk's per-person summary to ``summary.parquet`` with a :class:`pyarrow.parquet.ParquetWriter`.
Only one chunk's trajectories exist at any time, so host and device memory do not grow with the
cohort; the output directory is written under a temporary name and renamed when complete (results
are complete or absent).

People are sampled in fixed blocks of :data:`SAMPLE_BLOCK` people, block ``b`` of cohort ``c``
with its own seed ``SeedSequence([seed, c, b])`` (:func:`block_seed`). Person ``i`` of a cohort is
therefore the same whatever the chunk size and the cohort size, and (the fast mode padding people to
a multiple of 8, see :data:`vpop._engine.LANE_MULTIPLE`) so are their results: changing
``chunk_size`` changes nothing in ``summary.parquet`` (tested). The streamed population is not the
one :func:`vpop._study.run_study` samples for the same seed (that draws a whole cohort from one
seed); both follow the same distribution.

``cohort_summary.csv`` has the statistics of :func:`vpop._study.summarize_cohorts`, computed after
the last chunk by reading ``summary.parquet`` back one column at a time (8 bytes per person).
Streaming writes no traces and no figure.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from tqdm.auto import tqdm

from ._config import StudyConfig
from ._engine import TRACE_COUNTS, Status, select_people, simulate
from ._observables import summarize
from ._population import sample_population
from .models._dallaman2007_exercise import with_protocol_exercise

#: People per sampling block (each block has its own seed; see :func:`block_seed`).
SAMPLE_BLOCK = 65536
_SAVED = ("glucose_plasma", "insulin_plasma")
_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_COMPILE_EVENTS = (_COMPILE_EVENT, "/jax/core/compile/jaxpr_trace_duration",
                   "/jax/core/compile/jaxpr_to_mlir_module_duration")


def block_seed(seed: int, cohort_index: int, block: int) -> int:
    """Seed of sampling block ``block`` of cohort ``cohort_index`` of a study with ``seed``."""
    return int(np.random.SeedSequence([seed, cohort_index, block]).generate_state(1)[0])


class CohortSampler:
    """People ``[start, stop)`` of a streamed cohort, sampled block by block (last block cached)."""

    def __init__(self, cohort, seed: int, cohort_index: int, block_size: int | None = None):
        self.cohort, self.seed, self.index = cohort, seed, cohort_index
        self.block_size = int(block_size or SAMPLE_BLOCK)
        self._cache: tuple[int, tuple] | None = None

    def _block(self, b: int):
        if self._cache is None or self._cache[0] != b:
            c = self.cohort
            corr = {(x.a, x.b): x.rho for x in c.variability.correlations}
            out = sample_population(c.parameter_set, self.block_size, cv=c.variability.cv, correlations=corr,
                                    overrides=c.override_values(), seed=block_seed(self.seed, self.index, b))
            model, params, init = out
            # host arrays: cutting chunks out of blocks at varying offsets must not compile a
            # gather for every new slice shape
            self._cache = (b, (model, jax.tree_util.tree_map(np.asarray, params), init))
        return self._cache[1]

    def people(self, start: int, stop: int):
        """``(model, params, initial_state_overrides)`` of people ``start … stop − 1``."""
        pieces, model, init = [], None, None
        for b in range(start // self.block_size, (stop - 1) // self.block_size + 1):
            model, params, init = self._block(b)
            lo = max(start, b * self.block_size) - b * self.block_size
            hi = min(stop, (b + 1) * self.block_size) - b * self.block_size
            pieces.append(select_people(params, np.arange(lo, hi)))
        params = pieces[0] if len(pieces) == 1 else jax.tree_util.tree_map(lambda *a: np.concatenate(a), *pieces)
        return model, jax.tree_util.tree_map(jnp.asarray, params), init


class _CompileCounter:
    """Counts XLA compilations (and sums compile-related seconds) through :mod:`jax.monitoring`."""

    def __init__(self):
        self.compiles, self.seconds = 0, 0.0

    def __call__(self, event: str, duration: float, **kwargs) -> None:
        if event == _COMPILE_EVENT:
            self.compiles += 1
        if event in _COMPILE_EVENTS:
            self.seconds += duration

    def __enter__(self):
        jax.monitoring.register_event_duration_secs_listener(self)
        return self

    def __exit__(self, *exc):
        jax.monitoring.unregister_event_duration_listener(self)


def _rss_mb() -> float | None:
    """Current resident memory of this process [MiB] (Linux ``/proc/self/statm``), else ``None``."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


def _peak_rss_mb() -> float:
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0


def cohort_summary_from_parquet(path: str | Path) -> pd.DataFrame:
    """:func:`vpop._study.summarize_cohorts` of a summary file, read one column at a time."""
    f = pq.ParquetFile(path)
    names = f.schema_arrow.names
    cohorts = pq.read_table(path, columns=["cohort"], read_dictionary=["cohort"]).column("cohort").combine_chunks()
    status = pq.read_table(path, columns=["status"]).column("status").to_numpy(zero_copy_only=False)
    ok_all = status == Status.OK.name
    del status
    codes = cohorts.indices.to_numpy(zero_copy_only=False)
    labels = cohorts.dictionary.to_pylist()
    # cohorts in order of first appearance, as groupby(sort=False)
    order = [labels[c] for c in pd.unique(codes)]
    members = {labels[c]: codes == c for c in pd.unique(codes)}
    observables = [c for c in names if c not in ("cohort", "person", "status") and not c.startswith("param.")]
    stats: dict[tuple[str, str], dict] = {}
    for col in observables:
        values = pq.read_table(path, columns=[col]).column(col).to_numpy()
        for cohort in order:
            m = members[cohort]
            v = values[m & ok_all].astype(float)
            n_all = int(m.sum())
            stats[cohort, col] = {
                "cohort": cohort, "observable": col, "n_ok": len(v), "n_failed": n_all - len(v),
                "median": np.median(v) if len(v) else np.nan,
                "q25": np.quantile(v, 0.25) if len(v) else np.nan,
                "q75": np.quantile(v, 0.75) if len(v) else np.nan,
                "mean": v.mean() if len(v) else np.nan,
                "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
            }
        del values
    return pd.DataFrame([stats[c, o] for c in order for o in observables])


def stream_study(config: StudyConfig, out_dir: str | Path, *, overwrite: bool = False, progress: bool = True,
                 devices=None, chunk_size: int | None = None, on_chunk=None) -> Path:
    """Run ``config`` chunk by chunk, streaming per-person summaries to ``out_dir/summary.parquet``.

    Args:
        config: a study config (``stream: true`` makes ``vpop run`` call this; any config works).
        out_dir: output directory: ``summary.parquet`` (one row per person, the columns of
            ``vpop run``), ``cohort_summary.csv``, ``config.yaml``, ``manifest.json``. Written under a
            temporary name and renamed when complete.
        overwrite: replace an existing ``out_dir``.
        progress: progress bar on stderr.
        devices: shard each chunk across devices (see :func:`vpop.simulate`).
        chunk_size: people per compiled call (default ``config.chunk_size``; at most the largest
            cohort's size). Every chunk of every cohort has this size: the last chunk of a cohort is
            filled with the next people of its sampling blocks, whose rows are dropped.
        on_chunk: called after each chunk with a dict (chunk index, wall seconds, XLA compilations so
            far, current resident memory [MiB]) — for monitoring and tests.

    Returns:
        The output directory. Its ``manifest.json`` records the chunking, the number of XLA
        compilations after the first chunk (0: nothing recompiled), the compile seconds, and the
        process's peak resident memory.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output directory {out} exists; choose another --out or pass --overwrite")
    from ._study import move_into_place, study_manifest, write_manifest

    chunk = int(chunk_size or config.chunk_size)
    if chunk < 1:
        raise ValueError(f"chunk_size={chunk} must be ≥ 1")
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    protocol = config.build_protocol()
    # one chunk shape for every cohort (so nothing is compiled twice), no larger than the largest cohort
    size = min(chunk, max(c.n_people for c in config.cohorts))
    n_chunks = sum(-(-c.n_people // size) for c in config.cohorts)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    chunk_s: list[float] = []
    n_failed: dict[str, int] = {}
    writer = None
    traces_before = dict(TRACE_COUNTS)
    try:
        bar = tqdm(total=n_chunks, desc=f"vpop stream {config.name}", unit="chunk", disable=not progress,
                   file=sys.stderr)
        with _CompileCounter() as counter:
            for ci, cohort in enumerate(config.cohorts):
                sampler = CohortSampler(cohort, config.seed, ci)
                n = cohort.n_people
                n_failed[cohort.name] = 0
                for start in range(0, n, size):
                    t0 = time.perf_counter()
                    stop = min(start + size, n)
                    # a full-size chunk every time: the last one runs the next people of the
                    # cohort's blocks and drops them, so every call has the same shapes
                    model, p, init = sampler.people(start, start + size)
                    model, p = with_protocol_exercise(model, p, protocol)
                    y0 = model.initial_state(p, init)
                    res = simulate(model, p, protocol, y0=y0, mode=config.mode, saved_states=_SAVED, devices=devices)
                    keep = stop - start
                    df = summarize(res).iloc[:keep].copy()
                    df["person"] = np.arange(start, stop)
                    for name, spec in model.parameter_specs.items():
                        df[f"param.{name} [{spec.unit}]"] = np.asarray(getattr(p, name), dtype=float)[:keep]
                    df.insert(0, "cohort", cohort.name)
                    n_failed[cohort.name] += int((df["status"] != Status.OK.name).sum())
                    table = pa.Table.from_pandas(df, preserve_index=False)
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(tmp / "summary.parquet", schema)
                    writer.write_table(table.cast(schema))
                    del res, df, table, p, y0
                    chunk_s.append(time.perf_counter() - t0)
                    if len(chunk_s) == 1:
                        compiles_first, compile_s_first = counter.compiles, counter.seconds
                    if on_chunk is not None:
                        on_chunk({"chunk": len(chunk_s) - 1, "wall_s": chunk_s[-1], "xla_compiles": counter.compiles,
                                  "rss_mb": _rss_mb()})
                    bar.update(1)
            bar.close()
            writer.close()
            writer = None
            compile_seconds = counter.seconds
            compiles_total = counter.compiles
        cohort_summary = cohort_summary_from_parquet(tmp / "summary.parquet")
        cohort_summary.to_csv(tmp / "cohort_summary.csv", index=False)
        (tmp / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
        stream_info = {
            "chunk_size": size,
            "sample_block": SAMPLE_BLOCK,
            "n_chunks": len(chunk_s),
            "first_chunk_s": round(chunk_s[0], 3),
            "median_chunk_s": round(statistics.median(chunk_s), 3),
            "xla_compiles": compiles_total,
            "xla_compiles_after_first_chunk": compiles_total - compiles_first,
            "engine_traces": {k: TRACE_COUNTS[k] - traces_before.get(k, 0) for k in TRACE_COUNTS},
            "compile_s": round(compile_seconds, 3),
            "first_chunk_compile_s": round(compile_s_first, 3),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "traces": "not written (stream mode)",
        }
        write_manifest(tmp, study_manifest(config, protocol, started, t_start, n_failed, stream=stream_info))
        move_into_place(tmp, out)
    except BaseException:
        if writer is not None:
            writer.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
