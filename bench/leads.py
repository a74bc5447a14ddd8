"""Lead capture under load: POST /contact and POST /api/leads with wrk, on SQLite and PostgreSQL,
beside the in-process limit of the same transaction (crates/vantus/benches/lead_tx.rs).

Called by bench/run (--scenarios leads); writes bench/results/<stamp>-leads.{json,md}.

For each engine: a fresh Vantus on a fresh database, with the rate limits raised out of the way
(VANTUS_RATE_LIMIT_FORMS / _API = 1000000000/1s: one request per nanosecond per client, a
quota no load here comes near) and VANTUS_FORM_MIN_FILL_TIME=1s. One form token is fetched from
GET /contact and reused (valid for VANTUS_FORM_MAX_AGE, one day by default) once a second has
passed; each request carries a fresh idempotency key (bench/lua/post_lead.lua). Per round and
door: real leads counted in the database before and after (spam_reason IS NULL; no spam may be
added) divided by wrk's own duration, wrk's latency percentiles, and its non-2xx/3xx count,
which must be 0. Then a 60-second run on the form with RSS sampled every 10 s. Every load goes
to 127.0.0.1 only and is bounded by its duration.
"""
import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from parse_wrk import to_ms  # noqa: E402

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "lua" / "post_lead.lua"
TARGETS = {"leads_per_s": {"sqlite": 2000, "postgres": 1500}, "ratio": 0.5, "p99_ms": 50.0}
UNLIMITED = "1000000000/1s"
MIN_FILL_SECONDS = 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_ready(base: str, proc: subprocess.Popen) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"vantus exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{base}/readyz never answered 200")


class Postgres:
    """Throwaway databases on the PostgreSQL the test suite uses (VANTUS_TEST_PG_URL)."""

    def __init__(self) -> None:
        self.admin = os.environ.get("VANTUS_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")

    def psql(self, url: str, sql: str) -> str:
        return subprocess.run(["psql", "-qtAX", url, "-c", sql], check=True, capture_output=True, text=True).stdout

    def fresh(self, name: str) -> str:
        self.psql(self.admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.psql(self.admin, f"CREATE DATABASE {name}")
        return self.admin.rsplit("/", 1)[0] + "/" + name

    def drop(self, name: str) -> None:
        self.psql(self.admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def lead_counts(engine: str, where: str) -> tuple[int, int]:
    """(real leads, spam) in the database at `where` (a SQLite file or a PostgreSQL URL)."""
    sql = "SELECT count(*) FILTER (WHERE spam_reason IS NULL), count(*) FILTER (WHERE spam_reason IS NOT NULL) FROM leads"
    if engine == "sqlite":
        with sqlite3.connect(f"file:{where}?mode=ro", uri=True) as db:
            real, spam = db.execute(sql).fetchone()
    else:
        real, spam = Postgres().psql(where, sql).strip().split("|")
    return int(real), int(spam)


def wrk(base: str, target: str, token: str, connections: int, seconds: int) -> dict:
    env = dict(os.environ, BENCH_TARGET=target, BENCH_FORM_TOKEN=token)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA), base],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    pct = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: (.*)", out)
    return {
        "requests": int(done.group(1)),
        "seconds": to_ms(done.group(2) + done.group(3)) / 1000,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": pct.get("50"), "p99_ms": pct.get("99"),
        "non_2xx_3xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1).strip() if sock else "",
    }


def form_token(base: str) -> str:
    """A token from a rendering of the form, once it is older than the minimum fill time."""
    with urllib.request.urlopen(base + "/contact") as r:
        html = r.read().decode()
    token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    issued = int(token.split(".")[1])
    time.sleep(max(0.0, issued + MIN_FILL_SECONDS + 0.3 - time.time()))
    return token


def measured(engine: str, db: str, run) -> dict:
    """Runs wrk via `run`, counting the leads it added (after in-flight requests settle)."""
    before = lead_counts(engine, db)
    result = run()
    time.sleep(0.5)
    after = lead_counts(engine, db)
    result["leads_added"] = after[0] - before[0]
    result["spam_added"] = after[1] - before[1]
    result["leads_per_s"] = round(result["leads_added"] / result["seconds"], 1)
    return result


def http_engine(args, engine: str, pg: Postgres, log) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vantus-bench-leads-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"], "VANTUS_LISTEN": f"127.0.0.1:{port}", "VANTUS_DATA_DIR": str(work / "data"),
        "RUST_LOG": "info", "VANTUS_FORM_MIN_FILL_TIME": f"{MIN_FILL_SECONDS}s",
        "VANTUS_RATE_LIMIT_FORMS": UNLIMITED, "VANTUS_RATE_LIMIT_API": UNLIMITED,
    }
    pg_name = f"vantus_bench_leads_{os.getpid()}"
    if engine == "postgres":
        env["DATABASE_URL"] = db = pg.fresh(pg_name)
    else:
        db = str(work / "data" / "vantus.db")
    with open(work / "vantus.err", "w") as err:
        proc = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_ready(base, proc)
        rss_start = rss_kb(proc.pid)
        token = form_token(base)
        for target in ("form", "api"):  # warm-up, not counted
            wrk(base, target, token, args.connections, 3)
        rounds = []
        for n in range(1, args.rounds + 1):
            for target in ("form", "api"):
                r = measured(engine, db, lambda: wrk(base, target, token, args.connections, args.duration))
                r.update(engine=engine, door=target, round=n)
                rounds.append(r)
                log(f"   {engine} {target} round {n}: {r['leads_per_s']} leads/s (wrk {r['rps']:.0f} req/s), "
                    f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, non-2xx/3xx {r['non_2xx_3xx']}, spam {r['spam_added']}")
        # 60 s on the form, RSS every 10 s.
        samples = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(10):
                samples.append({"s": round(time.monotonic() - t0), "rss_kb": rss_kb(proc.pid)})

        rss_before_soak = rss_kb(proc.pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            soak = measured(engine, db, lambda: wrk(base, "form", token, args.connections, args.soak))
        finally:
            stop.set()
            sampler.join()
        soak.update(engine=engine, door="form", rss_before_kb=rss_before_soak, rss_after_kb=rss_kb(proc.pid), rss_samples=samples)
        log(f"   {engine} soak {args.soak}s: {soak['leads_per_s']} leads/s, p99 {soak['p99_ms']} ms, RSS "
            f"{rss_start / 1024:.1f} MB at start, {rss_before_soak / 1024:.1f} before, "
            f"{soak['rss_after_kb'] / 1024:.1f} after (" + ", ".join(f"{x['rss_kb'] / 1024:.1f}" for x in samples) + ")")
        return {"engine": engine, "rss_start_kb": rss_start, "rounds": rounds, "soak": soak}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if engine == "postgres":
            pg.drop(pg_name)
        shutil.rmtree(work, ignore_errors=True)


def in_process(args, engine: str, pg: Postgres, log) -> list[dict]:
    runs = []
    variants = ["sqlite", "sqlite-full"] if engine == "sqlite" else ["postgres"]
    for variant in variants:
        for n in range(1, args.rounds + 1):
            cmd = [args.harness, "--engine", variant, "--transactions", str(args.transactions),
                   "--concurrency", str(args.connections)]
            name = f"vantus_bench_tx_{os.getpid()}"
            if variant == "postgres":
                cmd += ["--database-url", pg.fresh(name)]
            try:
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            finally:
                if variant == "postgres":
                    pg.drop(name)
            r = json.loads(out.strip().splitlines()[-1])
            r["round"] = n
            runs.append(r)
            log(f"   in-process {variant} round {n}: {r['tx_per_s']:.0f} tx/s, p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms")
    return runs


def median(rows, key):
    return round(statistics.median(r[key] for r in rows), 3)


def report(args, http: list[dict], tx: list[dict]) -> dict:
    inproc = {}
    for variant in sorted({r["engine"] for r in tx}):
        rs = [r for r in tx if r["engine"] == variant]
        inproc[variant] = {"tx_per_s": median(rs, "tx_per_s"), "p50_ms": median(rs, "p50_ms"), "p99_ms": median(rs, "p99_ms"),
                           "sqlite_synchronous": rs[0]["sqlite_synchronous"], "runs": [r["tx_per_s"] for r in rs]}
    rows = []
    for e in http:
        limit = inproc[e["engine"]]["tx_per_s"]
        for door in ("form", "api"):
            rs = [r for r in e["rounds"] if r["door"] == door]
            lps = median(rs, "leads_per_s")
            rows.append({
                "engine": e["engine"], "door": door, "leads_per_s": lps, "wrk_rps": median(rs, "rps"),
                "p50_ms": median(rs, "p50_ms"), "p99_ms": median(rs, "p99_ms"),
                "non_2xx_3xx": sum(r["non_2xx_3xx"] for r in rs), "spam_added": sum(r["spam_added"] for r in rs),
                "in_process_tx_per_s": limit, "ratio": round(lps / limit, 3), "runs": [r["leads_per_s"] for r in rs],
            })
    memory = [{"engine": e["engine"], "rss_start_mb": round(e["rss_start_kb"] / 1024, 1),
               "rss_before_soak_mb": round(e["soak"]["rss_before_kb"] / 1024, 1),
               "rss_samples_mb": [round(s["rss_kb"] / 1024, 1) for s in e["soak"]["rss_samples"]],
               "rss_after_soak_mb": round(e["soak"]["rss_after_kb"] / 1024, 1),
               "soak_leads_per_s": e["soak"]["leads_per_s"], "soak_p99_ms": e["soak"]["p99_ms"],
               "soak_non_2xx_3xx": e["soak"]["non_2xx_3xx"]} for e in http]
    return {"meta": args.meta, "targets": TARGETS, "rows": rows, "in_process": inproc, "memory": memory,
            "raw": {"http": http, "in_process": tx}}


def markdown(out: dict, args) -> str:
    lines = [f"# Lead capture benchmark ({out['meta']})", "",
             f"Medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections (wrk -t2), "
             "each request a new lead with its own idempotency key. Accepted leads/s = real leads added in the "
             "database (spam_reason NULL) / wrk's duration. In-process = the same transaction "
             f"(`leads::submit::store`: idempotency key, lead, outbox row, audit entry) from {args.connections} "
             f"tasks without HTTP, {args.transactions} transactions a run (crates/vantus/benches/lead_tx.rs).", "",
             "| engine | door | accepted leads/s | wrk req/s | p50 / p99 ms | non-2xx/3xx | spam | in-process tx/s | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in out["rows"]:
        door = "`POST /contact`" if r["door"] == "form" else "`POST /api/leads`"
        lines.append(f"| {r['engine']} | {door} | {r['leads_per_s']:.0f} | {r['wrk_rps']:.0f} | {r['p50_ms']} / {r['p99_ms']} | "
                     f"{r['non_2xx_3xx']} | {r['spam_added']} | {r['in_process_tx_per_s']:.0f} | {r['ratio']:.2f} |")
    lines += ["", "In-process transaction (median of runs):", "",
              "| variant | tx/s | p50 / p99 ms per transaction | runs |", "| --- | --- | --- | --- |"]
    for v, r in out["in_process"].items():
        label = {"sqlite": "SQLite, WAL, synchronous=NORMAL (the server's setting)",
                 "sqlite-full": "SQLite, WAL, synchronous=FULL", "postgres": "PostgreSQL"}[v]
        lines.append(f"| {label} | {r['tx_per_s']:.0f} | {r['p50_ms']} / {r['p99_ms']} | {', '.join(f'{x:.0f}' for x in r['runs'])} |")
    lines += ["", f"Memory: RSS of the server at start, before and after a {args.soak}-second run on `POST /contact` "
              "(sampled every 10 s during it):", "",
              "| engine | start MB | before MB | during (every 10 s) MB | after MB | leads/s | p99 ms | non-2xx/3xx |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in out["memory"]:
        lines.append(f"| {m['engine']} | {m['rss_start_mb']} | {m['rss_before_soak_mb']} | {', '.join(map(str, m['rss_samples_mb']))} | "
                     f"{m['rss_after_soak_mb']} | {m['soak_leads_per_s']:.0f} | {m['soak_p99_ms']} | {m['soak_non_2xx_3xx']} |")
    verdicts = []
    for r in out["rows"]:
        want = TARGETS["leads_per_s"][r["engine"]]
        checks = [
            (f"{r['leads_per_s']:.0f} leads/s (target ≥ {want})", r["leads_per_s"] >= want),
            (f"ratio {r['ratio']:.3f} (target ≥ {TARGETS['ratio']})", r["ratio"] >= TARGETS["ratio"]),
            (f"p99 {r['p99_ms']} ms (target < {TARGETS['p99_ms']:.0f})", r["p99_ms"] < TARGETS["p99_ms"]),
            (f"{r['non_2xx_3xx']} non-2xx/3xx (target 0)", r["non_2xx_3xx"] == 0),
        ]
        verdicts.append(f"- {r['engine']} {r['door']}: " + "; ".join(f"{t} {'met' if ok else 'MISSED'}" for t, ok in checks))
    for m in out["memory"]:
        s = m["rss_samples_mb"]
        growth = round(m["rss_after_soak_mb"] - (s[0] if s else m["rss_before_soak_mb"]), 1)
        verdicts.append(f"- {m['engine']} RSS from the first 10 s of the {args.soak}-second run to its end: "
                        f"{growth:+} MB (target: no growth) {'met' if growth <= 1.0 else 'MISSED'}")
    lines += ["", "Targets:", *verdicts, ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--harness", required=True, help="the lead_tx bench executable")
    ap.add_argument("--engines", default="sqlite postgres")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--soak", type=int, default=60)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--transactions", type=int, default=10000)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    log = lambda m: print(m, flush=True)  # noqa: E731
    pg = Postgres()
    http, tx = [], []
    for engine in args.engines.split():
        log(f"==> leads: {engine}, in process")
        tx += in_process(args, engine, pg, log)
        log(f"==> leads: {engine}, over HTTP")
        http.append(http_engine(args, engine, pg, log))
    out = report(args, http, tx)
    stem = Path(args.out) / f"{args.stamp}-leads"
    stem.with_suffix(".json").write_text(json.dumps(out, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(out, args))
    log(f"==> results: {stem}.md")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
