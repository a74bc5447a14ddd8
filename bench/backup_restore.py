"""Backup/restore benchmark driver (see bench/backup-restore)."""
import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

TARGETS = {"backup_s": 10.0, "restore_s": 20.0, "rss_mb": 200.0}


def run(cmd, env):
    """Runs a command to completion; returns its stdout."""
    p = subprocess.run(cmd, env=env, capture_output=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return p.stdout.decode()


def timed(cmd, env):
    """Like run, but measures the child's peak RSS with wait4."""
    started = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    return seconds, usage.ru_maxrss / 1024.0, out.decode()


def psql(admin, sql):
    env = dict(os.environ, PGOPTIONS="--client-min-messages=warning")
    subprocess.run(["psql", "-q", admin, "-c", sql], check=True, stdout=subprocess.DEVNULL, env=env)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", default="sqlite postgres")
    ap.add_argument("--audit-rows", type=int, default=100_000)
    ap.add_argument("--content-items", type=int, default=1_000)
    args = ap.parse_args()
    admin = os.environ.get("VANTUS_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    base = admin.rsplit("/", 1)[0]
    results = []
    for engine in args.engines.split():
        with tempfile.TemporaryDirectory(prefix="vantus-bench-") as work:
            env = {"PATH": os.environ["PATH"], "VANTUS_DATA_DIR": os.path.join(work, "var"), "RUST_LOG": "warn"}
            if engine == "postgres":
                db = f"vantus_bench_src_{os.getpid()}"
                psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
                psql(admin, f"CREATE DATABASE {db}")
                env["DATABASE_URL"] = f"{base}/{db}"
            run([args.bin, "migrate"], env)
            run([args.bin, "db", "generate", "--content-items", str(args.content_items), "--audit-rows", str(args.audit_rows)], env)
            backups = os.path.join(work, "backups")
            rounds = []
            for r in range(args.rounds):
                b_s, b_rss, out = timed([args.bin, "backup", "--to", backups, "--json"], env)
                report = json.loads(out)
                target_env = dict(env)
                if engine == "postgres":
                    target = f"vantus_bench_dst_{os.getpid()}"
                    psql(admin, f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
                    psql(admin, f"CREATE DATABASE {target}")
                    target_env["DATABASE_URL"] = f"{base}/{target}"
                else:
                    target_env["DATABASE_URL"] = f"sqlite://{work}/restore-{r}.db"
                r_s, r_rss, out = timed([args.bin, "restore", report["location"], "--json"], target_env)
                restored = json.loads(out)
                ok = all(t["expected_sha256"] == t["actual_sha256"] for t in restored["tables"])
                rounds.append({"backup_s": round(b_s, 2), "backup_rss_mb": round(b_rss, 1), "bytes": report["bytes"],
                               "restore_s": round(r_s, 2), "restore_rss_mb": round(r_rss, 1), "rows": report["rows"], "verified": ok})
                print(f"   {engine} round {r + 1}: backup {b_s:.2f} s ({b_rss:.0f} MB), restore {r_s:.2f} s ({r_rss:.0f} MB), "
                      f"{report['rows']} rows, {report['bytes'] / 1e6:.1f} MB archive, verified={ok}", flush=True)
                if engine == "postgres":
                    psql(admin, f"DROP DATABASE IF EXISTS {target} WITH (FORCE)")
            if engine == "postgres":
                psql(admin, f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            results.append({"engine": engine, "rounds": rounds,
                            "backup_s": statistics.median(x["backup_s"] for x in rounds),
                            "restore_s": statistics.median(x["restore_s"] for x in rounds),
                            "backup_peak_rss_mb": max(x["backup_rss_mb"] for x in rounds),
                            "restore_peak_rss_mb": max(x["restore_rss_mb"] for x in rounds),
                            "rows": rounds[0]["rows"], "archive_mb": round(rounds[0]["bytes"] / 1e6, 1),
                            "verified": all(x["verified"] for x in rounds)})
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{stamp}-backup-restore.json"), "w") as f:
        json.dump({"audit_rows": args.audit_rows, "content_items": args.content_items, "results": results, "targets": TARGETS}, f, indent=2)
    lines = [f"# Backup and restore ({args.audit_rows} audit rows + {args.content_items} content items, {args.rounds} rounds, medians)", "",
             "| engine | rows | archive MB | backup s | backup peak RSS MB | restore s | restore peak RSS MB | verified |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    verdicts = []
    for r in results:
        lines.append(f"| {r['engine']} | {r['rows']} | {r['archive_mb']} | {r['backup_s']} | {r['backup_peak_rss_mb']} | "
                     f"{r['restore_s']} | {r['restore_peak_rss_mb']} | {r['verified']} |")
        rss = max(r["backup_peak_rss_mb"], r["restore_peak_rss_mb"])
        verdicts.append(f"- {r['engine']}: backup {r['backup_s']} s (target < {TARGETS['backup_s']}) {'met' if r['backup_s'] < TARGETS['backup_s'] else 'MISSED'}; "
                        f"restore {r['restore_s']} s (target < {TARGETS['restore_s']}) {'met' if r['restore_s'] < TARGETS['restore_s'] else 'MISSED'}; "
                        f"peak RSS {rss} MB (target < {TARGETS['rss_mb']}) {'met' if rss < TARGETS['rss_mb'] else 'MISSED'}")
    lines += ["", "Targets:", *verdicts, ""]
    md = os.path.join(args.out, f"{stamp}-backup-restore.md")
    with open(md, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
