"""Backup and restore: a generated data set (--audit-rows rows in the largest table, --content-items
content items) backed up and restored on each engine, timing each command with its CPU seconds and
peak RSS (from wait4). Called by bench/backup-restore and bench/run (--scenarios backup);
writes bench/results/<stamp>-backup-restore.{json,md}.
"""
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Postgres, Vantus, arguments, log, parse, per_engine, row, verdict, write_results  # noqa: E402

TARGETS = {"backup_s": 10.0, "restore_s": 20.0, "rss_mb": 200.0}


def timed(cmd: list[str], env: dict) -> dict:
    """Runs a command to completion: its wall and CPU seconds, peak RSS (wait4's rusage of that
    child alone) and stdout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=err)
        out = p.stdout.read()
        p.stdout.close()
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        if p.returncode != 0:
            err.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {err.read().decode()[-2000:]}")
    return {"s": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "rss_mb": round(usage.ru_maxrss / 1024, 1), "out": out.decode()}


def engine_run(args, engine: str) -> dict:
    pg = Postgres()
    with Vantus(args.bin, engine, "backup-src", {"RUST_LOG": "warn"}) as v:
        v.run("migrate")
        v.run("db", "generate", "--content-items", str(args.content_items), "--audit-rows", str(args.audit_rows))
        backups = str(v.work / "backups")
        rounds = []
        for n in range(1, args.rounds + 1):
            backup = timed([args.bin, "backup", "--to", backups, "--json"], v.env)
            made = json.loads(backup.pop("out"))
            target = f"vantus_bench_dst_{os.getpid()}"
            url = pg.fresh(target) if engine == "postgres" else f"sqlite://{v.work}/restore-{n}.db"
            try:
                restore = timed([args.bin, "restore", made["location"], "--json"], dict(v.env, DATABASE_URL=url))
            finally:
                if engine == "postgres":
                    pg.drop(target)
            restored = json.loads(restore.pop("out"))
            ok = all(t["expected_sha256"] == t["actual_sha256"] for t in restored["tables"])
            rounds.append({"round": n, "backup": backup, "restore": restore, "bytes": made["bytes"],
                           "rows": made["rows"], "verified": ok})
            log(f"   {engine} round {n}: backup {backup['s']} s ({backup['cpu_s']} s CPU, {backup['rss_mb']} MB), "
                f"restore {restore['s']} s ({restore['cpu_s']} s CPU, {restore['rss_mb']} MB), {made['rows']} rows, "
                f"{made['bytes'] / 1e6:.1f} MB archive, verified={ok}")
    summary = {"engine": engine, "rows": rounds[0]["rows"], "archive_mb": round(rounds[0]["bytes"] / 1e6, 1),
               "verified": all(r["verified"] for r in rounds), "rounds": rounds}
    for step in ("backup", "restore"):
        summary[step] = {"s": statistics.median(r[step]["s"] for r in rounds),
                         "cpu_s": statistics.median(r[step]["cpu_s"] for r in rounds),
                         "peak_rss_mb": max(r[step]["rss_mb"] for r in rounds)}
    return summary


def checks(r: dict, step: str) -> list[tuple[str, bool]]:
    s, rss = r[step]["s"], r[step]["peak_rss_mb"]
    return [(f"{s} s < {TARGETS[step + '_s']:.0f} s", s < TARGETS[f"{step}_s"]),
            (f"peak RSS {rss} MB < {TARGETS['rss_mb']:.0f} MB", rss < TARGETS["rss_mb"]),
            ("verified" if r["verified"] else "digests differ", r["verified"])]


def report_rows(results: list[dict]) -> list[dict]:
    return [row("backup", f"{step} of {r['rows']} rows ({r['archive_mb']} MB archive)", r["engine"],
                result=f"{r[step]['s']} s", peak_rss_mb=r[step]["peak_rss_mb"], cpu_s=r[step]["cpu_s"],
                reference=f"target < {TARGETS[step + '_s']:.0f} s, < {TARGETS['rss_mb']:.0f} MB",
                checks=checks(r, step))
            for r in results for step in ("backup", "restore")]


def markdown(args, results: list[dict]) -> str:
    lines = [f"# Backup and restore ({args.audit_rows} audit rows + {args.content_items} content items, "
             f"{args.rounds} rounds, medians) {args.meta}", "",
             "| engine | rows | archive MB | backup s | CPU s | peak RSS MB | restore s | CPU s | peak RSS MB | verified |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    verdicts = []
    for r in results:
        b, s = r["backup"], r["restore"]
        lines.append(f"| {r['engine']} | {r['rows']} | {r['archive_mb']} | {b['s']} | {b['cpu_s']} | {b['peak_rss_mb']} | "
                     f"{s['s']} | {s['cpu_s']} | {s['peak_rss_mb']} | {r['verified']} |")
        for step in ("backup", "restore"):
            verdicts.append(f"- {r['engine']} {step}: " + "; ".join(f"{t} {verdict(ok)}" for t, ok in checks(r, step)))
    return "\n".join(lines + ["", "Targets:", *verdicts, ""])


def main() -> None:
    ap = arguments(__doc__, duration=None)
    ap.add_argument("--audit-rows", type=int, default=100_000)
    ap.add_argument("--content-items", type=int, default=1_000)
    args = parse(ap)
    results = per_engine(args, "backup and restore", engine_run)
    write_results(args, "backup-restore", {"audit_rows": args.audit_rows, "content_items": args.content_items,
                                           "results": results, "targets": TARGETS},
                  markdown(args, results), report_rows(results))


if __name__ == "__main__":
    main()
