"""Public pages: Vantus against nginx serving the same bytes, on SQLite and PostgreSQL, and cold
start. Called by bench/run (--scenarios pages); writes bench/results/<stamp>.{json,md}.

For each engine: a fresh Vantus on a fresh database; the rendered bytes of / and a case-study
page saved as static files for nginx (2 workers, sendfile, keep-alive), checked to be the same
bytes; then both servers loaded alternately with wrk (same connections, 2 threads, same
duration), --rounds rounds, medians reported. The server's RSS after the loads and its peak.
On SQLite, cold start: process start to a 200 from /readyz on the existing database, 10 times
(each then stopped with SIGTERM, which it must obey within 10 s).
Targets: Vantus at least 0.85x nginx's rate (issue 13), p99 < 10 ms, RSS < 64 MB, cold start < 300 ms.
Every load goes to 127.0.0.1 only and is bounded by its duration.
"""
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cold_start import cold_start  # noqa: E402
from harness import (Vantus, arguments, combine, free_port, latencies, log, parse, per_engine, row, rss_kb,  # noqa: E402
                     table, terminate, verdict, write_results, wrk, wrk_line)

TARGETS = {"ratio": 0.85, "p99_ms": 10.0, "rss_mb": 64.0, "cold_start_ms": 300.0}
PAGES = ("/", "/work/shopify-erp-sync")
COLD_STARTS = 10


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


class Nginx:
    """nginx in the foreground, serving the files under `www` on a port of its own, until closed."""

    def __init__(self, www: Path):
        self.work = Path(tempfile.mkdtemp(prefix="vantus-bench-nginx-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        conf = self.work / "nginx.conf"
        conf.write_text(f"""daemon off;
worker_processes 2;
pid {self.work}/nginx.pid;
error_log {self.work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  default_type text/html;
  server {{
    listen 127.0.0.1:{self.port};
    root {www};
    location / {{ try_files $uri $uri/index.html =404; }}
  }}
}}
""")
        with open(self.work / "stderr.log", "w") as err:
            self.proc = subprocess.Popen(["nginx", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=err)
        for _ in range(200):
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: "
                                   f"{(self.work / 'stderr.log').read_text()[-500:]}")
            try:
                fetch(self.base + "/")
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx never answered")

    def __enter__(self) -> "Nginx":
        return self

    def __exit__(self, *exc) -> None:
        terminate(self.proc)
        shutil.rmtree(self.work, ignore_errors=True)


def engine_run(args, engine: str) -> dict:
    www = Path(tempfile.mkdtemp(prefix="vantus-bench-www-"))
    www.chmod(0o755)
    try:
        with Vantus(args.bin, engine, "pages") as v:
            v.start()
            # Same bytes for nginx: what Vantus serves uncompressed.
            for page in PAGES:
                (www / page.strip("/")).mkdir(parents=True, exist_ok=True)
                (www / page.strip("/") / "index.html").write_bytes(fetch(v.base + page))
            runs = []
            with Nginx(www) as nginx:
                for page in PAGES:
                    if fetch(v.base + page) != fetch(nginx.base + page):
                        raise RuntimeError(f"nginx and vantus bytes differ for {page}")
                for n in range(1, args.rounds + 1):
                    for page in PAGES:
                        for server, base, pids in (("nginx", nginx.base, ()), ("vantus", v.base, (v.pid,))):
                            r = wrk(base + page, args.connections, args.duration, pids=pids)
                            r.update(server=server, page=page, round=n)
                            runs.append(r)
                            log(f"   {engine} round {n} {server} {page}: {wrk_line(r)}")
            memory = {"rss_after_mb": round(rss_kb(v.pid) / 1024, 1), "peak_rss_mb": v.peak_rss_mb()}
            v.stop()
            cold = None
            if engine == "sqlite":
                log("==> cold start on the existing SQLite database")
                cold = cold_start(args.bin, v.env["VANTUS_DATA_DIR"], COLD_STARTS)
                log(f"   {cold}")
    finally:
        shutil.rmtree(www, ignore_errors=True)
    return {"engine": engine, "runs": runs, **memory, "cold_start": cold}


def round_ratios(runs: list[dict], page: str) -> list[float]:
    """Vantus ÷ nginx within each round: the two loads of a round run back to back, so a drift
    of the machine between rounds moves both."""
    def rps(server: str, n: int) -> float:
        return next(r["rps"] for r in runs if r["page"] == page and r["server"] == server and r["round"] == n)
    return [round(rps("vantus", n) / rps("nginx", n), 2) for n in sorted({r["round"] for r in runs})]


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for e in results:
        for page in PAGES:
            mine = combine([r for r in e["runs"] if r["page"] == page and r["server"] == "vantus"])
            nginx = combine([r for r in e["runs"] if r["page"] == page and r["server"] == "nginx"])
            rows.append({"engine": e["engine"], "page": page, "vantus": mine, "nginx": nginx,
                         "ratio": round(mine["rps"] / nginx["rps"], 3),
                         "round_ratios": round_ratios(e["runs"], page), "rss_after_mb": e["rss_after_mb"],
                         "peak_rss_mb": e["peak_rss_mb"]})
    return rows


def checks(r: dict) -> list[tuple[str, bool]]:
    return [(f"ratio {r['ratio']:.2f} ≥ {TARGETS['ratio']}", r["ratio"] >= TARGETS["ratio"]),
            (f"p99 {r['vantus']['p99_ms']} ms < {TARGETS['p99_ms']:.0f}", r["vantus"]["p99_ms"] < TARGETS["p99_ms"]),
            (f"RSS {r['rss_after_mb']} MB < {TARGETS['rss_mb']:.0f}", r["rss_after_mb"] < TARGETS["rss_mb"]),
            (f"{r['vantus']['errors']} errors", r["vantus"]["errors"] == 0)]


def cold_checks(cold: dict) -> list[tuple[str, bool]]:
    c, hung = cold["cold_start_median_ms"], cold["kept_running_after_sigterm"]
    return [(f"cold start {c} ms < {TARGETS['cold_start_ms']:.0f}", c < TARGETS["cold_start_ms"]),
            (f"{hung} of {len(cold['cold_start_ms'])} still running 10 s after SIGTERM", hung == 0)]


def report_rows(rows: list[dict], results: list[dict], args) -> list[dict]:
    out = [row("pages", f"GET {r['page']}, {args.connections} conn.", r["engine"], r["vantus"],
               result=f"RSS after {r['rss_after_mb']} MB", peak_rss_mb=r["peak_rss_mb"],
               reference=f"nginx, same bytes: {r['nginx']['rps']:.0f} req/s", ratio=r["ratio"], checks=checks(r))
           for r in rows]
    for e in results:
        if e["cold_start"]:
            c = e["cold_start"]
            out.append(row("pages", f"cold start to /readyz 200 ({len(c['cold_start_ms'])} runs)", e["engine"],
                           result=f"median {c['cold_start_median_ms']} ms",
                           reference=f"target < {TARGETS['cold_start_ms']:.0f} ms; exits on SIGTERM",
                           checks=cold_checks(c)))
    return out


def markdown(rows: list[dict], results: list[dict], args) -> str:
    lines = [f"# Benchmark ({args.meta})", "",
             f"Medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections, wrk -t2, "
             "Vantus and nginx alternating on the same bytes.", "",
             *table(["engine", "page", "vantus req/s", "nginx req/s", "ratio", "ratio per round",
                     "vantus p50 / p95 / p99 / max ms",
                     "nginx p50 / p95 / p99 / max ms", "vantus CPU s per run", "RSS after / peak MB", "errors"],
                    ([r["engine"], f"`{r['page']}`", f"{r['vantus']['rps']:.0f}", f"{r['nginx']['rps']:.0f}",
                      f"{r['ratio']:.2f}", ", ".join(f"{x:.2f}" for x in r["round_ratios"]), latencies(r["vantus"]), latencies(r["nginx"]), r["vantus"]["cpu_s"],
                      f"{r['rss_after_mb']} / {r['peak_rss_mb']}", r["vantus"]["errors"]] for r in rows))]
    verdicts = [f"- {r['engine']} `{r['page']}`: " + "; ".join(f"{t} {verdict(ok)}" for t, ok in checks(r))
                for r in rows]
    for e in results:
        if e["cold_start"]:
            c = e["cold_start"]
            lines += ["", f"Cold start to a ready /readyz on an existing SQLite database: median "
                          f"{c['cold_start_median_ms']} ms (runs: {', '.join(str(t) for t in c['cold_start_ms'])})."]
            verdicts += [f"- {what} {verdict(ok)}" for what, ok in cold_checks(c)]
    lines += ["", "Targets:", *verdicts, ""]
    return "\n".join(lines)


def main() -> None:
    args = parse(arguments(__doc__, connections=64))
    results = per_engine(args, "pages", engine_run)
    rows = summarise(results)
    write_results(args, "", {"targets": TARGETS, "rows": rows, "raw": results}, markdown(rows, results, args),
                  report_rows(rows, results, args))


if __name__ == "__main__":
    main()
