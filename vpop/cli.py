"""Command line: ``vpop run``, ``vpop validate``, ``vpop bench``, ``vpop calibrate``, ``vpop fit``, ``vpop parameter-sets``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_run_population(args, config) -> int:
    from ._population_study import run_population_study, write_population_results

    out = Path(args.out) if args.out else Path("vpop_results") / config.name
    if out.exists() and not args.overwrite:
        print(f"error: output directory {out} exists; choose another --out or pass --overwrite", file=sys.stderr)
        return 2
    print(f"vpop run {config.name}: population {config.population}, {config.n_people} people × {len(config.arms)} arms, "
          f"{config.worlds} effect-size draws, mode={config.mode}", file=sys.stderr)
    result = run_population_study(config, progress=not args.quiet)
    path = write_population_results(result, out, overwrite=args.overwrite)
    print(f"wrote {path}/ ({', '.join(sorted(p.name for p in path.iterdir()))}) in "
          f"{result.manifest['wall_time_s']:.1f} s; failed solves per arm: {result.manifest['n_failed']}", file=sys.stderr)
    t = result.arm_outcomes
    show = t[t["statistic"].isin(["diabetes_ada [%]", "prediabetes_ada [%]", "diabetes_cdc [%]", "hba1c_mean [%]"])]
    cols = [c for c in ("arm", "statistic", "estimate", "ci95_low", "ci95_high", f"difference_from_{config.arms[0].name}",
                        "difference_ci95_low", "difference_ci95_high") if c in show.columns]
    print(show[cols].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0


def _cmd_run(args) -> int:
    from ._config import ConfigError, StudyConfig, load_study_config
    from ._study import run_study, write_results

    try:
        config = load_study_config(args.config)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not isinstance(config, StudyConfig):
        return _cmd_run_population(args, config)
    out = Path(args.out) if args.out else Path("vpop_results") / config.name
    if out.exists() and not args.overwrite:
        print(f"error: output directory {out} exists; choose another --out or pass --overwrite", file=sys.stderr)
        return 2
    from ._study import device_description

    dev = device_description()
    total = sum(c.n_people for c in config.cohorts)
    print(f"vpop run {config.name}: {total} people, {config.protocol.kind}, mode={config.mode}, "
          f"JAX backend {dev['backend']} ({dev['devices'][0]})", file=sys.stderr)
    if config.stream:
        from ._stream import stream_study

        path = stream_study(config, out, overwrite=args.overwrite, progress=not args.quiet)
        manifest = json.loads((path / "manifest.json").read_text())
        print(f"wrote {path}/ ({', '.join(sorted(p.name for p in path.iterdir()))}) in "
              f"{manifest['wall_time_s']:.1f} s, {manifest['stream']['n_chunks']} chunks, peak RSS "
              f"{manifest['stream']['peak_rss_mb']:.0f} MiB; failed solves per cohort: {manifest['n_failed']}",
              file=sys.stderr)
        return 0
    result = run_study(config, progress=not args.quiet)
    path = write_results(result, out, overwrite=args.overwrite)
    failed = result.manifest["n_failed"]
    print(f"wrote {path}/ ({', '.join(sorted(p.name for p in path.iterdir()))}) in "
          f"{result.manifest['wall_time_s']:.1f} s; failed solves per cohort: {failed}", file=sys.stderr)
    cs = result.cohort_summary
    show = cs[cs["observable"].isin(["fpg [mg/dL]", "ogtt_2h_glucose [mg/dL]", "glucose_peak [mg/dL]", "homa_ir [1]", "matsuda [1]"])]
    print(show[["cohort", "observable", "n_ok", "median", "q25", "q75"]].to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    return 0


def _cmd_validate(args) -> int:
    from ._validate import run_checks, summarize_checks

    rows = run_checks(args.check or None, include_slow=not args.skip_slow)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        import pandas as pd

        df = pd.DataFrame(rows)
        with pd.option_context("display.max_colwidth", 60, "display.width", 200):
            print(df.to_string(index=False, formatters={"value": "{:.3e}".format, "tolerance": "{:.1e}".format}))
        summary = summarize_checks(rows)
        print(f"\n{sum(s['passed'] for s in summary)} of {len(summary)} checks passed "
              f"({sum(r['passed'] for r in rows)} of {len(rows)} metrics)")
    return 0 if all(r["passed"] for r in rows) else 1


def _cmd_calibrate(args) -> int:
    from ._calibrate import calibrate, calibration_overlay, check_calibration, save_overlay
    from ._config import ConfigError
    from ._virtual_population import CALIBRATED_SUFFIX, load_population

    try:
        cfg = load_population(args.population, calibrated=not args.from_scratch)
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = calibrate(cfg, steps=args.steps, n_people=args.n_people, seed=args.seed, progress=not args.quiet)
    overlay = calibration_overlay(result)
    overlay["started_from"] = ("the uncalibrated values of the population YAML" if args.from_scratch or cfg.calibrated is None
                               else "its existing calibration overlay")
    if args.check_n:
        report, n_failed, _ = check_calibration(result.config, n_people=args.check_n)
        overlay["check"] = {"n_people": args.check_n, "seed": 2026, "n_failed": n_failed,
                            "achieved": {r["target"]: round(float(r["achieved"]), 5) for r in report.to_dict("records")},
                            "all_passed": bool(report["passed"].all())}
        print(report[["target", "value", "achieved", "tolerance", "passed"]].to_string(index=False), file=sys.stderr)
    if args.out:
        out = Path(args.out)
    else:
        p = Path(args.population)
        out = p.with_name(p.stem + CALIBRATED_SUFFIX) if p.suffix in (".yaml", ".yml") else Path(f"{cfg.name}{CALIBRATED_SUFFIX}")
    save_overlay(overlay, out)
    print(f"wrote {out} (loss {overlay.get('best_loss', float('nan')):.3g}, {result.wall_time_s:.0f} s)", file=sys.stderr)
    return 0


def _cmd_fit(args) -> int:
    from ._fit_config import load_fit_config, run_fit

    try:
        cfg = load_fit_config(args.config)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("vpop_results") / cfg.name
    report = run_fit(cfg, out)
    c = report["convergence"]
    print(f"wrote {out}/parameters.csv: {c['n_converged']}/{c['n_subjects']} subjects converged "
          f"({c['n_starts']} starts each)", file=sys.stderr)
    return 0 if c["n_converged"] == c["n_subjects"] else 1


def _cmd_bench(args, rest) -> int:
    from . import _bench

    return _bench.main(rest)


def _cmd_sets(args) -> int:
    from ._parameters import available_parameter_sets, load_parameter_set

    for name in available_parameter_sets():
        p = load_parameter_set(name)
        print(f"{name:24s} model={p.model:14s} basal={p.basal:8s} {p.citation.splitlines()[0][:80]}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpop", description="Virtual-population glucose–insulin simulator (JAX).")
    sub = parser.add_subparsers(dest="command")
    r = sub.add_parser("run", help="run a study config (default: the embedded default study)")
    r.add_argument("config", nargs="?", help="YAML study config (default: embedded default_study.yaml)")
    r.add_argument("--out", help="output directory (default: vpop_results/<study name>)")
    r.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    v = sub.add_parser("validate", help="compare vpop against external references")
    v.add_argument("--json", action="store_true", help="one JSON object per line")
    v.add_argument("--check", action="append", help="run only this check (repeatable)")
    v.add_argument("--skip-slow", action="store_true", help="leave out the checks that fit whole cohorts (minutes)")
    sub.add_parser("bench", help="benchmarks (patient-days/s vs a naive vmap(diffeqsolve) baseline); see --help", add_help=False)
    sub.add_parser("parameter-sets", help="list the shipped parameter sets")
    f = sub.add_parser("fit", help="fit a model to measured curves (parameter table with standard errors)")
    f.add_argument("config", help="YAML fit config (see vpop._fit_config)")
    f.add_argument("--out", help="output directory (default: vpop_results/<name>); a checkpoint there is resumed")
    c = sub.add_parser("calibrate", help="fit a population's hyperparameters to its targets (optax, by gradient)")
    c.add_argument("population", nargs="?", default="us_adults", help="shipped population name or YAML path (default us_adults)")
    c.add_argument("--out", help="overlay file to write (default: <population>.calibrated.yaml)")
    c.add_argument("--steps", type=int, help="optimizer steps (default: the population's calibration.steps)")
    c.add_argument("--n-people", type=int, help="people in the calibration sample")
    c.add_argument("--seed", type=int, help="seed of the calibration sample")
    c.add_argument("--check-n", type=int, default=20000, help="people in the out-of-sample check (0: skip)")
    c.add_argument("--from-scratch", action="store_true", help="ignore an existing calibration overlay as the start")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "bench":
        return _cmd_bench(None, argv[1:])
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "run":
        return _cmd_run(args)
    if args.command == "validate":
        return _cmd_validate(args)
    if args.command == "parameter-sets":
        return _cmd_sets(args)
    if args.command == "calibrate":
        return _cmd_calibrate(args)
    if args.command == "fit":
        return _cmd_fit(args)
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
