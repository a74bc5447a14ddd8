"""Lead capture under load: POST /contact and POST /api/leads with wrk, on SQLite and PostgreSQL,
beside the in-process limit of the same transaction (crates/vantus/benches/lead_tx.rs).

Called by bench/run (--scenarios leads); writes bench/results/<stamp>-leads.{json,md}.

For each engine: a fresh Vantus on a fresh database, with the rate limits raised out of the way
(VANTUS_RATE_LIMIT_FORMS / _API = 1000000000/1s: one request per nanosecond per client, a
quota no load here comes near) and VANTUS_FORM_MIN_FILL_TIME=1s. One form token is fetched from
GET /contact and reused (valid for VANTUS_FORM_MAX_AGE, one day by default) once a second has
passed; each request carries a fresh idempotency key (bench/lua/post_lead.lua). Per round and
door: real leads counted in the database before and after (spam_reason IS NULL; no spam may be
added) divided by wrk's own duration, wrk's latency percentiles, and its errors (non-2xx/3xx answers
and socket errors), which must be 0. Then a --soak-second run (60 by default) on the form with
RSS sampled every 10 s. Without --harness the in-process rate is not measured and the rows have
no ratio. Every load goes to 127.0.0.1 only and is bounded by its duration.
"""
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (MIN_FILL_SECONDS, UNLIMITED, Postgres, Vantus, arguments, combine, form_token,  # noqa: E402
                     latencies, log, measured, median, parse, row, rss_kb, verdict, write_results, wrk, wrk_line)

TARGETS = {"leads_per_s": {"sqlite": 2000, "postgres": 1500}, "ratio": 0.5, "p99_ms": 50.0, "rss_growth_mb": 1.0}
DOORS = ("form", "api")


def post_leads(v: Vantus, door: str, token: str, connections: int, seconds: int) -> dict:
    return wrk(v.base, connections, seconds, "post_lead.lua", {"BENCH_TARGET": door, "BENCH_FORM_TOKEN": token},
               pids=(v.pid,))


def http_engine(args, engine: str) -> dict:
    env = {"VANTUS_FORM_MIN_FILL_TIME": f"{MIN_FILL_SECONDS}s",
           "VANTUS_RATE_LIMIT_FORMS": UNLIMITED, "VANTUS_RATE_LIMIT_API": UNLIMITED}
    with Vantus(args.bin, engine, "leads", env) as v:
        v.start()
        rss_start = rss_kb(v.pid)
        token = form_token(v.base)
        for door in DOORS:  # warm-up, not counted
            post_leads(v, door, token, args.connections, 3)
        rounds = []
        for n in range(1, args.rounds + 1):
            for door in DOORS:
                r = measured(engine, v.db, lambda: post_leads(v, door, token, args.connections, args.duration))
                r.update(engine=engine, door=door, round=n)
                rounds.append(r)
                log(f"   {engine} {door} round {n}: {r['leads_per_s']} leads/s, {wrk_line(r)}, spam {r['spam_added']}")
        # --soak seconds on the form, RSS every 10 s.
        samples = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(10):
                samples.append({"s": round(time.monotonic() - t0), "rss_kb": rss_kb(v.pid)})

        rss_before_soak = rss_kb(v.pid)
        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            soak = measured(engine, v.db, lambda: post_leads(v, "form", token, args.connections, args.soak))
        finally:
            stop.set()
            sampler.join()
        soak.update(engine=engine, door="form", rss_before_kb=rss_before_soak, rss_after_kb=rss_kb(v.pid),
                    rss_samples=samples)
        log(f"   {engine} soak {args.soak}s: {soak['leads_per_s']} leads/s, p99 {soak['p99_ms']} ms, RSS "
            f"{rss_start / 1024:.1f} MB at start, {rss_before_soak / 1024:.1f} before, "
            f"{soak['rss_after_kb'] / 1024:.1f} after (" + ", ".join(f"{x['rss_kb'] / 1024:.1f}" for x in samples) + ")")
        return {"engine": engine, "rss_start_kb": rss_start, "rounds": rounds, "soak": soak,
                "peak_rss_mb": v.peak_rss_mb()}


def in_process(args, engine: str) -> list[dict]:
    pg = Postgres()
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


def report(args, http: list[dict], tx: list[dict]) -> dict:
    inproc = {}
    for variant in sorted({r["engine"] for r in tx}):
        rs = [r for r in tx if r["engine"] == variant]
        inproc[variant] = {"tx_per_s": median(rs, "tx_per_s"), "p50_ms": median(rs, "p50_ms"), "p99_ms": median(rs, "p99_ms"),
                           "sqlite_synchronous": rs[0]["sqlite_synchronous"], "runs": [r["tx_per_s"] for r in rs]}
    rows = []
    for e in http:
        limit = inproc.get(e["engine"], {}).get("tx_per_s")
        for door in DOORS:
            rs = [r for r in e["rounds"] if r["door"] == door]
            lps = median(rs, "leads_per_s")
            rows.append({
                "engine": e["engine"], "door": door, "leads_per_s": lps, **combine(rs),
                "spam_added": sum(r["spam_added"] for r in rs), "peak_rss_mb": e["peak_rss_mb"],
                "in_process_tx_per_s": limit, "ratio": round(lps / limit, 3) if limit else None,
                "runs": [r["leads_per_s"] for r in rs],
            })
    memory = []
    for e in http:
        soak = e["soak"]
        samples = [round(s["rss_kb"] / 1024, 1) for s in soak["rss_samples"]]
        after = round(soak["rss_after_kb"] / 1024, 1)
        before = round(soak["rss_before_kb"] / 1024, 1)
        memory.append({"engine": e["engine"], "rss_start_mb": round(e["rss_start_kb"] / 1024, 1),
                       "rss_before_soak_mb": before, "rss_samples_mb": samples, "rss_after_soak_mb": after,
                       # From the first sample (10 s in, once the caches have filled) to the end.
                       "growth_mb": round(after - (samples[0] if samples else before), 1),
                       "soak_leads_per_s": soak["leads_per_s"], **combine([soak]), "peak_rss_mb": e["peak_rss_mb"]})
    return {"targets": TARGETS, "rows": rows, "in_process": inproc, "memory": memory,
            "raw": {"http": http, "in_process": tx}}


def door_name(door: str) -> str:
    return "POST /contact" if door == "form" else "POST /api/leads"


def checks(r: dict) -> list[tuple[str, bool]]:
    want = TARGETS["leads_per_s"][r["engine"]]
    out = [(f"{r['leads_per_s']:.0f} leads/s ≥ {want}", r["leads_per_s"] >= want)]
    if r["ratio"] is not None:
        out.append((f"ratio {r['ratio']:.3f} ≥ {TARGETS['ratio']}", r["ratio"] >= TARGETS["ratio"]))
    out += [(f"p99 {r['p99_ms']} ms < {TARGETS['p99_ms']:.0f}", r["p99_ms"] < TARGETS["p99_ms"]),
            (f"{r['errors']} errors, {r['spam_added']} spam (target 0)", r["errors"] == 0 and r["spam_added"] == 0)]
    return out


def report_rows(out: dict, args) -> list[dict]:
    rows = []
    for r in out["rows"]:
        reference = (f"in-process {r['in_process_tx_per_s']:.0f} tx/s" if r["ratio"] is not None
                     else "in-process rate not measured")
        rows.append(row("leads", f"{door_name(r['door'])}, {args.connections} conn.", r["engine"], r,
                        result=f"{r['leads_per_s']:.0f} leads/s", peak_rss_mb=r["peak_rss_mb"],
                        reference=f"{reference}; ≥ {TARGETS['leads_per_s'][r['engine']]} leads/s, p99 < "
                                  f"{TARGETS['p99_ms']:.0f} ms", ratio=r["ratio"], checks=checks(r)))
    for m in out["memory"]:
        rows.append(row("leads", f"POST /contact for {args.soak} s (RSS)", m["engine"], m,
                        result=f"RSS {m['rss_before_soak_mb']} → {m['rss_after_soak_mb']} MB",
                        peak_rss_mb=m["peak_rss_mb"], reference=f"growth ≤ {TARGETS['rss_growth_mb']} MB after 10 s",
                        checks=[(f"growth {m['growth_mb']:+} MB", m["growth_mb"] <= TARGETS["rss_growth_mb"]),
                                ("no errors", m["errors"] == 0)]))
    return rows


def markdown(out: dict, args) -> str:
    in_process = (f"In-process = the same transaction (`leads::submit::store`: idempotency key, lead, outbox row, "
                  f"audit entry) from {args.connections} tasks without HTTP, {args.transactions} transactions a run "
                  "(crates/vantus/benches/lead_tx.rs)." if args.harness else "The in-process rate was not measured.")
    lines = [f"# Lead capture benchmark ({args.meta})", "",
             f"Medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections (wrk -t2), "
             "each request a new lead with its own idempotency key. Accepted leads/s = real leads added in the "
             f"database (spam_reason NULL) / wrk's duration. {in_process}", "",
             "| engine | door | accepted leads/s | wrk req/s | p50 / p95 / p99 / max ms | errors | spam | CPU s per run | "
             "in-process tx/s | ratio |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in out["rows"]:
        limit = f"{r['in_process_tx_per_s']:.0f}" if r["ratio"] is not None else "–"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "–"
        lines.append(f"| {r['engine']} | `{door_name(r['door'])}` | {r['leads_per_s']:.0f} | {r['rps']:.0f} | "
                     f"{latencies(r)} | {r['errors']} | "
                     f"{r['spam_added']} | {r['cpu_s']} | {limit} | {ratio} |")
    if out["in_process"]:
        lines += ["", "In-process transaction (median of runs):", "",
                  "| variant | tx/s | p50 / p99 ms per transaction | runs |", "| --- | --- | --- | --- |"]
        for v, r in out["in_process"].items():
            label = {"sqlite": "SQLite, WAL, synchronous=NORMAL (the server's setting)",
                     "sqlite-full": "SQLite, WAL, synchronous=FULL", "postgres": "PostgreSQL"}[v]
            lines.append(f"| {label} | {r['tx_per_s']:.0f} | {r['p50_ms']} / {r['p99_ms']} | "
                         f"{', '.join(f'{x:.0f}' for x in r['runs'])} |")
    lines += ["", f"Memory: RSS of the server at start, before and after a {args.soak}-second run on `POST /contact` "
              "(sampled every 10 s during it):", "",
              "| engine | start MB | before MB | during (every 10 s) MB | after MB | leads/s | p99 ms | errors |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for m in out["memory"]:
        lines.append(f"| {m['engine']} | {m['rss_start_mb']} | {m['rss_before_soak_mb']} | "
                     f"{', '.join(map(str, m['rss_samples_mb']))} | {m['rss_after_soak_mb']} | "
                     f"{m['soak_leads_per_s']:.0f} | {m['p99_ms']} | {m['errors']} |")
    verdicts = [f"- {r['engine']} {r['door']}: " + "; ".join(f"{t} {verdict(ok)}" for t, ok in checks(r))
                for r in out["rows"]]
    for m in out["memory"]:
        verdicts.append(f"- {m['engine']} RSS from the first 10 s of the {args.soak}-second run to its end: "
                        f"{m['growth_mb']:+} MB (target: no growth) {verdict(m['growth_mb'] <= TARGETS['rss_growth_mb'])}")
    lines += ["", "Targets:", *verdicts, ""]
    return "\n".join(lines)


def main() -> None:
    ap = arguments(__doc__, connections=32)
    ap.add_argument("--harness", default="", type=lambda v: "" if v == "none" else v,
                    help="the lead_tx bench executable (omitted or none: HTTP only)")
    ap.add_argument("--soak", type=int, default=60, help="seconds of the memory run")
    ap.add_argument("--transactions", type=int, default=10000)
    args = parse(ap)
    http, tx = [], []
    for engine in args.engines.split():
        if args.harness:
            log(f"==> leads: {engine}, in process")
            tx += in_process(args, engine)
        log(f"==> leads: {engine}, over HTTP")
        http.append(http_engine(args, engine))
    out = report(args, http, tx)
    write_results(args, "leads", out, markdown(out, args), report_rows(out, args))


if __name__ == "__main__":
    main()
