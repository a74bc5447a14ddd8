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
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Vantus, arguments, cpu_seconds, log, parse, row, write_results  # noqa: E402

TARGETS = {"median_ms": 200.0}


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def run(args) -> dict:
    with Vantus(args.bin, "postgres", "publish", {"RUST_LOG": "warn"}) as one, \
         Vantus(args.bin, "postgres", "publish-2", {"RUST_LOG": "warn"}, database_url=one.db) as two:
        replicas = (one.start(), two.start())
        # Both listen once ready; give the LISTEN connections a moment.
        time.sleep(1)
        cpu_before = sum(cpu_seconds(v.pid) for v in replicas)
        samples = []
        # One session for every sample: psql's own start (tens of ms) is not part of a publish.
        session = subprocess.Popen(["psql", "-qtAX", "-v", "ON_ERROR_STOP=1", one.db], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, text=True, bufsize=1)
        for n in range(args.samples):
            marker = f"Bench publish {n} {time.time_ns()}"
            for v in replicas:  # both have the old page cached
                assert marker not in fetch(v.base + "/about")
            sql = (f"BEGIN; UPDATE content_items SET body_markdown = '## {marker}' WHERE kind = 'page' AND slug = 'about';"
                   " UPDATE site_state SET content_generation = content_generation + 1; COMMIT;")
            start = time.perf_counter()
            session.stdin.write(sql + "\n\\echo committed\n")
            session.stdin.flush()
            if session.stdout.readline().strip() != "committed":
                raise RuntimeError(f"sample {n}: the publish transaction failed")
            while marker not in fetch(two.base + "/about"):
                if time.perf_counter() - start > 10:
                    raise RuntimeError(f"sample {n}: not visible on replica two after 10 s")
                time.sleep(0.002)
            ms = (time.perf_counter() - start) * 1000
            samples.append(round(ms, 2))
            log(f"   sample {n + 1}: {ms:.1f} ms")
        session.stdin.close()
        session.wait(timeout=10)
        return {"samples_ms": samples, "median_ms": round(statistics.median(samples), 2),
                "max_ms": max(samples), "min_ms": min(samples),
                "cpu_s": round(sum(cpu_seconds(v.pid) for v in replicas) - cpu_before, 2),
                "peak_rss_mb": max(v.peak_rss_mb() for v in replicas)}


def main() -> None:
    ap = arguments(__doc__, rounds=None, duration=None, engines=False)
    ap.add_argument("--samples", type=int, default=20)
    args = parse(ap)
    if args.samples < 1:
        ap.error("--samples must be at least 1")
    log("==> publish: postgres, two replicas")
    r = run(args)
    ok = r["median_ms"] < TARGETS["median_ms"]
    md = (f"# Publish to visible on a second replica ({args.meta})\n\n"
          f"Two `vantus serve` on one PostgreSQL; {len(r['samples_ms'])} publishes (body + generation, one "
          "transaction, sent through an open psql session); time from sending it to the first response of replica "
          "two with the new text.\n\n"
          "| median ms | min ms | max ms | CPU s (both replicas) | peak RSS MB |\n| --- | --- | --- | --- | --- |\n"
          f"| {r['median_ms']} | {r['min_ms']} | {r['max_ms']} | {r['cpu_s']} | {r['peak_rss_mb']} |\n\n"
          f"Target: median < {TARGETS['median_ms']} ms {'met' if ok else 'MISSED'}\n")
    rows = [row("publish", f"publish → visible on replica 2 ({len(r['samples_ms'])} samples)", "postgres",
                result=f"median {r['median_ms']} ms, max {r['max_ms']} ms", peak_rss_mb=r["peak_rss_mb"],
                cpu_s=r["cpu_s"], reference=f"target median < {TARGETS['median_ms']:.0f} ms",
                checks=[(f"median {r['median_ms']} ms < {TARGETS['median_ms']:.0f} ms", ok)])]
    write_results(args, "publish", {"targets": TARGETS, **r}, md, rows)


if __name__ == "__main__":
    main()
