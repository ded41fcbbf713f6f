"""Cohort studies from a config: sample, simulate in chunks, summarise, write results atomically."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from ._config import StudyConfig
from ._engine import Status, select_people, simulate
from ._observables import summarize, traces
from ._population import sample_population
from .models._dallaman2007_exercise import with_protocol_exercise

_SAVED = ("glucose_plasma", "insulin_plasma")


@dataclass
class StudyResult:
    """Tables of a study run (pandas, units in column names) and run metadata."""

    config: StudyConfig
    summary: pd.DataFrame  #: one row per person
    cohort_summary: pd.DataFrame  #: one row per cohort and observable (failed people excluded)
    traces: pd.DataFrame | None  #: long table of glucose/insulin
    manifest: dict = field(default_factory=dict)


def cohort_seed(seed: int, index: int) -> int:
    """Independent, reproducible seed of cohort ``index`` of a study with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def device_description() -> dict:
    """Which JAX backend and devices ran (JAX silently falls back to CPU: say which)."""
    devs = jax.devices()
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in devs],
        "device_kind": devs[0].device_kind if devs else "",
        "n_devices": len(devs),
    }


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in ("vpop", "jax", "jaxlib", "diffrax", "equinox", "optimistix", "optax", "numpy", "pandas", "pyarrow", "pydantic"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def run_study(config: StudyConfig, *, progress: bool = True) -> StudyResult:
    """Run every cohort of ``config`` through its protocol (no files written; see :func:`write_results`)."""
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    protocol = config.build_protocol()
    chunk = config.chunk_size
    n_chunks = sum(-(-c.n_people // chunk) for c in config.cohorts)
    summaries, trace_tables = [], []
    bar = tqdm(total=n_chunks, desc=f"vpop {config.name}", unit="chunk", disable=not progress, file=sys.stderr)
    for ci, cohort in enumerate(config.cohorts):
        corr = {(c.a, c.b): c.rho for c in cohort.variability.correlations}
        model, params, init = sample_population(
            cohort.parameter_set, cohort.n_people, cv=cohort.variability.cv, correlations=corr,
            overrides=cohort.override_values(), seed=cohort_seed(config.seed, ci),
        )
        n = cohort.n_people
        size = min(chunk, n)
        for start in range(0, n, size):
            stop = min(start + size, n)
            # pad the last chunk by repeating its last person so every call has the same shape
            idx = np.minimum(np.arange(start, start + size), n - 1)
            p = select_people(params, idx)
            model_c, p = with_protocol_exercise(model, p, protocol)
            y0 = model_c.initial_state(p, init)
            res = simulate(model_c, p, protocol, y0=y0, mode=config.mode, saved_states=_SAVED)
            keep = stop - start
            df = summarize(res).iloc[:keep].copy()
            df["person"] = np.arange(start, stop)
            for name, spec in model_c.parameter_specs.items():
                df[f"param.{name} [{spec.unit}]"] = np.asarray(getattr(p, name))[:keep]
            df.insert(0, "cohort", cohort.name)
            summaries.append(df)
            if config.outputs.traces:
                tr = traces(res, every_min=max(config.outputs.traces_every_min, config.save_every_min))
                tr = tr[tr["person"] < keep].copy()
                tr["person"] += start
                tr.insert(0, "cohort", cohort.name)
                trace_tables.append(tr)
            bar.update(1)
    bar.close()
    summary = pd.concat(summaries, ignore_index=True)
    cohort_summary = summarize_cohorts(summary)
    n_failed = {c: int((g["status"] != Status.OK.name).sum()) for c, g in summary.groupby("cohort", sort=False)}
    manifest = study_manifest(config, protocol, started, t_start, n_failed)
    return StudyResult(config, summary, cohort_summary, pd.concat(trace_tables, ignore_index=True) if trace_tables else None, manifest)


def study_manifest(config: StudyConfig, protocol, started: str, t_start: float, n_failed: dict, **extra) -> dict:
    """Run metadata of a cohort study: config, protocol, sizes, failures, versions, device, command."""
    return {
        "vpop_run": config.name,
        "started_utc": started,
        "wall_time_s": round(time.perf_counter() - t_start, 3),
        "seed": config.seed,
        "mode": config.mode,
        "config": config.model_dump(mode="json"),
        "protocol": {"name": protocol.name, "kind": protocol.kind, "duration_min": protocol.duration_min,
                     "save_every_min": protocol.save_every_min,
                     "meals": [{"time_min": m.time_min, "carbs_g": float(np.mean(m.carbs_g))} for m in protocol.meals]},
        "n_people": {c.name: c.n_people for c in config.cohorts},
        "n_failed": n_failed,
        **extra,
        "versions": package_versions(),
        "device": device_description(),
        "command": sys.argv,
        "platform": platform.platform(),
    }


def summarize_cohorts(summary: pd.DataFrame) -> pd.DataFrame:
    """Per cohort and observable: number of people used, failures, median, quartiles, mean, SD.

    Failed people are excluded from every statistic and counted in ``n_failed``.
    """
    rows = []
    observables = [c for c in summary.columns if c not in ("cohort", "person", "status") and not c.startswith("param.")]
    for cohort, g in summary.groupby("cohort", sort=False):
        ok = g[g["status"] == Status.OK.name]
        for col in observables:
            v = ok[col].to_numpy(dtype=float)
            rows.append({
                "cohort": cohort, "observable": col, "n_ok": len(v), "n_failed": len(g) - len(ok),
                "median": np.median(v) if len(v) else np.nan,
                "q25": np.quantile(v, 0.25) if len(v) else np.nan,
                "q75": np.quantile(v, 0.75) if len(v) else np.nan,
                "mean": v.mean() if len(v) else np.nan,
                "sd": v.std(ddof=1) if len(v) > 1 else np.nan,
            })
    return pd.DataFrame(rows)


def plot_study(result: StudyResult, path: Path) -> None:
    """Median and interquartile band of glucose and insulin over time, per cohort (PNG)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    tr = result.traces
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for cohort, g in tr[tr["status"] == Status.OK.name].groupby("cohort", sort=False):
        for ax, col in zip(axes, ("glucose [mg/dL]", "insulin [pmol/L]")):
            q = g.groupby("time [min]")[col].quantile([0.25, 0.5, 0.75]).unstack()
            line, = ax.plot(q.index, q[0.5], label=f"{cohort} (median)")
            ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.25, color=line.get_color(), label=f"{cohort} IQR")
    for ax, col in zip(axes, ("glucose [mg/dL]", "insulin [pmol/L]")):
        ax.set_xlabel("time [min]")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"{result.config.name}: {result.config.protocol.kind}")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def move_into_place(tmp: Path, out: Path) -> None:
    """Rename the finished directory ``tmp`` to ``out``, replacing an existing ``out`` last."""
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
        os.replace(out, old / out.name)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


@contextmanager
def atomic_directory(out_dir: str | Path, *, overwrite: bool = False):
    """Yield a temporary sibling directory that becomes ``out_dir`` only if the block succeeds.

    Results are complete or absent: an exception removes the temporary directory and leaves any
    existing ``out_dir`` untouched; an existing ``out_dir`` is replaced only with ``overwrite=True``.
    """
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(f"output directory {out} exists; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
        move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_manifest(tmp: Path, manifest: dict) -> None:
    """``manifest.json`` with the size and SHA-256 of every file already in ``tmp``."""
    manifest = dict(manifest)
    manifest["files"] = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))


def write_results(result: StudyResult, out_dir: str | Path, *, overwrite: bool = False) -> Path:
    """Write parquet tables, a CSV cohort summary, the config, a figure and ``manifest.json``.

    Results are complete or absent (:func:`atomic_directory`).
    """
    out = Path(out_dir)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        result.summary.to_parquet(tmp / "summary.parquet", index=False)
        result.cohort_summary.to_csv(tmp / "cohort_summary.csv", index=False)
        if result.traces is not None:
            result.traces.to_parquet(tmp / "traces.parquet", index=False)
            if result.config.outputs.figure:
                plot_study(result, tmp / "glucose_insulin.png")
        (tmp / "config.yaml").write_text(yaml.safe_dump(result.config.model_dump(mode="json"), sort_keys=False))
        write_manifest(tmp, result.manifest)
    return out
