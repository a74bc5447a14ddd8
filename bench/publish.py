"""Publish to visible on a second replica: two `vantus serve` processes on one PostgreSQL.

Called by bench/run (--scenarios publish); writes bench/results/<stamp>-publish.{json,md}.

Both replicas serve /about from their page caches. Each sample commits what a publish writes
(the page's body and the tenant's content generation, one transaction, through one psql
session kept open, as replica one's connection would) and then polls replica two's /about
every 2 ms until the new text appears. The time runs from just before the transaction is sent
(so it includes the commit) to the first response with the new text: an upper bound on what a
visitor of the other replica waits. Median of
--samples (default 20); target < 200 ms. PostgreSQL only: SQLite has one server process.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leads import Postgres, free_port, wait_ready  # noqa: E402

TARGETS = {"median_ms": 200.0}


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def run(args, log) -> dict:
    pg = Postgres()
    name = f"vantus_bench_publish_{os.getpid()}"
    url = pg.fresh(name)
    work = Path(tempfile.mkdtemp(prefix="vantus-bench-publish-"))
    procs, bases = [], []
    try:
        for i in (1, 2):
            port = free_port()
            env = {"PATH": os.environ["PATH"], "VANTUS_LISTEN": f"127.0.0.1:{port}", "DATABASE_URL": url,
                   "VANTUS_DATA_DIR": str(work / f"data{i}"), "RUST_LOG": "warn"}
            err = open(work / f"vantus{i}.err", "w")
            procs.append(subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err))
            bases.append(f"http://127.0.0.1:{port}")
            wait_ready(bases[-1], procs[-1])
        # Both listen once ready; give the LISTEN connections a moment.
        time.sleep(1)
        samples = []
        # One session for every sample: psql's own start (tens of ms) is not part of a publish.
        session = subprocess.Popen(["psql", "-qtAX", "-v", "ON_ERROR_STOP=1", url], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, bufsize=1)
        procs.append(session)
        for n in range(args.samples):
            marker = f"Bench publish {n} {time.time_ns()}"
            for b in bases:  # both have the old page cached
                assert marker not in fetch(b + "/about")
            sql = (f"BEGIN; UPDATE content_items SET body_markdown = '## {marker}' WHERE kind = 'page' AND slug = 'about';"
                   " UPDATE site_state SET content_generation = content_generation + 1; COMMIT;")
            start = time.perf_counter()
            session.stdin.write(sql + "\n\\echo committed\n")
            session.stdin.flush()
            if session.stdout.readline().strip() != "committed":
                raise RuntimeError(f"sample {n}: the publish transaction failed")
            while marker not in fetch(bases[1] + "/about"):
                if time.perf_counter() - start > 10:
                    raise RuntimeError(f"sample {n}: not visible on replica two after 10 s")
                time.sleep(0.002)
            ms = (time.perf_counter() - start) * 1000
            samples.append(round(ms, 2))
            log(f"   sample {n + 1}: {ms:.1f} ms")
        return {"samples_ms": samples, "median_ms": round(statistics.median(samples), 2),
                "max_ms": max(samples), "min_ms": min(samples)}
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=30)
        pg.drop(name)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--samples", type=int, default=20)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    log = lambda m: print(m, flush=True)  # noqa: E731
    log("==> publish: postgres, two replicas")
    r = run(args, log)
    ok = r["median_ms"] < TARGETS["median_ms"]
    md = (f"# Publish to visible on a second replica ({args.meta})\n\n"
          f"Two `vantus serve` on one PostgreSQL; {len(r['samples_ms'])} publishes (body + generation, one "
          "transaction, sent through an open psql session); time from sending it to the first response of replica "
          "two with the new text.\n\n"
          "| median ms | min ms | max ms |\n| --- | --- | --- |\n"
          f"| {r['median_ms']} | {r['min_ms']} | {r['max_ms']} |\n\n"
          f"Target: median < {TARGETS['median_ms']} ms {'met' if ok else 'MISSED'}\n")
    stem = Path(args.out) / f"{args.stamp}-publish"
    stem.with_suffix(".json").write_text(json.dumps({"meta": args.meta, "targets": TARGETS, **r}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(md)
    log(f"==> results: {stem}.md")
    print(md)


if __name__ == "__main__":
    main()
