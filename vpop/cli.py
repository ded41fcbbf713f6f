"""Command line: ``vpop run``, ``vpop validate``, ``vpop bench``, ``vpop parameter-sets``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_run(args) -> int:
    from ._config import ConfigError, load_config
    from ._study import run_study, write_results

    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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

    rows = run_checks(args.check or None)
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
    sub.add_parser("bench", help="benchmarks (patient-days/s vs a naive vmap(diffeqsolve) baseline); see --help", add_help=False)
    sub.add_parser("parameter-sets", help="list the shipped parameter sets")
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
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
