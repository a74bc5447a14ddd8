"""The combined report of one bench/run: every scenario's rows (the "report_rows" of its
<stamp>[-name].json) in one table, written to bench/results/<stamp>-report.{md,json}.

A row is one measured case: its rate and latency (request loads), errors, the Vantus process's
peak RSS and CPU seconds, the scenario's headline figure, what it is compared against, the
ratio to that reference where there is one, and the verdict against the scenario's targets.
A scenario asked for whose results are missing (it failed) is listed as such.
"""
import argparse
import json
from pathlib import Path

# Scenario name (as bench/run --scenarios takes it) → the suffix of its result files.
FILES = {"pages": "", "leads": "-leads", "backup": "-backup-restore", "portal": "-portal", "crm": "-crm",
         "media": "-media", "publish": "-publish", "mixed": "-mixed"}
COLUMNS = [("scenario", "scenario"), ("case", "case"), ("engine", "engine"), ("rps", "req/s"),
           ("p50_ms", "p50 ms"), ("p95_ms", "p95 ms"), ("p99_ms", "p99 ms"), ("max_ms", "max ms"),
           ("errors", "errors"), ("peak_rss_mb", "peak RSS MB"), ("cpu_s", "CPU s"), ("result", "result"),
           ("reference", "reference"), ("ratio", "ratio"), ("verdict", "verdict")]


def number(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def collect(directory: Path, stamp: str, scenarios: list[str]) -> tuple[list[dict], list[str]]:
    rows, missing = [], []
    for name in scenarios:
        path = directory / f"{stamp}{FILES[name]}.json"
        if path.exists():
            rows += json.loads(path.read_text())["report_rows"]
        else:
            missing.append(name)
    return rows, missing


def markdown(args, rows: list[dict], missing: list[str]) -> str:
    minutes, seconds = divmod(int(args.elapsed), 60)
    lines = [f"# Benchmark report {args.stamp}", "", args.meta, "",
             f"Elapsed: {minutes} min {seconds} s for {', '.join(args.scenarios.split())}. "
             "Per-scenario details: the files of the same stamp in this folder.", "",
             "| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + " --- |" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(number(r[key]).replace("|", "/") for key, _ in COLUMNS) + " |")
    lines += ["", "Req/s and latencies are wrk's (medians over the rounds; max is the largest); errors are "
              "non-2xx/3xx answers plus socket errors; peak RSS is the server's VmHWM over its run (the "
              "command's for backup and restore); CPU s is the server's user + system time during one load "
              "(median over the rounds), or for the whole case where there is no load."]
    missed = [f"- {r['scenario']} {r['case']} ({r['engine']}): "
              + "; ".join(c for c in r["checks"] if c.endswith("MISSED")) for r in rows if r["verdict"] != "met"]
    if missed:
        lines += ["", "Missed targets:", *missed]
    if missing:
        lines += ["", f"FAILED (no results): {', '.join(missing)}"]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--scenarios", required=True, help="the scenarios the run asked for, in its order")
    ap.add_argument("--dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--elapsed", type=float, required=True, help="seconds the run took")
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    unknown = [s for s in args.scenarios.split() if s not in FILES]
    if unknown:
        raise SystemExit(f"bench/report.py: unknown scenario {' '.join(unknown)} (known: {' '.join(FILES)})")
    directory = Path(args.dir)
    rows, missing = collect(directory, args.stamp, args.scenarios.split())
    stem = directory / f"{args.stamp}-report"
    Path(f"{stem}.json").write_text(json.dumps({"stamp": args.stamp, "meta": args.meta, "elapsed_s": round(args.elapsed),
                                                "scenarios": args.scenarios.split(), "missing": missing,
                                                "rows": rows}, indent=2) + "\n")
    Path(f"{stem}.md").write_text(markdown(args, rows, missing))
    print(Path(f"{stem}.md").read_text())


if __name__ == "__main__":
    main()
