"""A mixed workload at 256 connections on SQLite and PostgreSQL: of every 100 requests, 90 page
reads (/, a case study and /insights), 9 enquiries to POST /contact and 1 GET /admin for a
signed-in user (bench/lua/mixed.lua). Called by bench/run (--scenarios mixed); writes
bench/results/<stamp>-mixed.{json,md}.

For each engine: a fresh Vantus on a fresh database, trusting 127.0.0.1 as a proxy so each
request can claim a client address of its own (X-Forwarded-For): the rate limits keep their
shipped settings and run for every request, as for many visitors, without refusing the load.
VANTUS_FORM_MIN_FILL_TIME=1s and one form token reused (as in bench/leads.py), a fresh
idempotency key per enquiry, one `sales` account's session for /admin. A 2-second warm-up, then
--rounds rounds of --duration seconds; per round wrk's rate and latency over the whole mix, its
errors, the answers by kind (enquiries accepted with a 303, sessions turned away, anything else
that is not a 200) and the real leads the database gained, which must be at least the accepted
enquiries and at most those sent (wrk stops with requests in flight that the server still stores).
Every load goes to 127.0.0.1 only and is bounded by its duration.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (MIN_FILL_SECONDS, Vantus, arguments, combine, form_token, latencies, log, measured,  # noqa: E402
                     parse, per_engine, row, sign_in, verdict, write_results, wrk, wrk_line)

EMAIL = "bench-sales@example.com"
COUNTERS = ("reads", "posts", "admin", "accepted", "signed_out", "failed")


def engine_run(args, engine: str) -> dict:
    env = {"VANTUS_TRUSTED_PROXIES": "127.0.0.1/32", "VANTUS_FORM_MIN_FILL_TIME": f"{MIN_FILL_SECONDS}s"}
    with Vantus(args.bin, engine, "mixed", env) as v:
        v.run("migrate")
        v.create_user(EMAIL, "sales")
        v.start()
        mix_env = {"BENCH_TARGET": "form", "BENCH_FORM_TOKEN": form_token(v.base), "BENCH_COOKIE": sign_in(v.base, EMAIL)}

        def load(seconds: int) -> dict:
            return wrk(v.base, args.connections, seconds, "mixed.lua", mix_env, pids=(v.pid,))

        load(2)  # warm-up
        rounds = []
        for n in range(1, args.rounds + 1):
            r = measured(engine, v.db, lambda: load(args.duration))
            r.update(round=n)
            rounds.append(r)
            c = r["counters"]
            log(f"   {engine} round {n}: {wrk_line(r)}; sent {c['reads']} reads / {c['posts']} enquiries / "
                f"{c['admin']} admin; {c['accepted']} accepted, {r['leads_added']} leads stored, "
                f"{c['signed_out']} signed out, {c['failed']} other answers")
        return {"engine": engine, "rounds": rounds, "peak_rss_mb": v.peak_rss_mb()}


def summarise(results: list[dict]) -> list[dict]:
    rows = []
    for e in results:
        rs = e["rounds"]
        totals = {k: sum(r["counters"][k] for r in rs) for k in COUNTERS}
        rows.append({"engine": e["engine"], **combine(rs), **totals,
                     "leads_added": sum(r["leads_added"] for r in rs), "spam_added": sum(r["spam_added"] for r in rs),
                     "peak_rss_mb": e["peak_rss_mb"]})
    return rows


def checks(r: dict) -> list[tuple[str, bool]]:
    return [(f"{r['errors']} errors", r["errors"] == 0),
            (f"{r['failed']} answers neither 200 nor 303, {r['signed_out']} sessions lost",
             r["failed"] == 0 and r["signed_out"] == 0),
            (f"{r['accepted']} accepted ≤ {r['leads_added']} leads stored ≤ {r['posts']} sent, {r['spam_added']} spam",
             r["accepted"] <= r["leads_added"] <= r["posts"] and r["spam_added"] == 0)]


def report_rows(rows: list[dict], args) -> list[dict]:
    return [row("mixed", f"90 % pages / 9 % POST /contact / 1 % /admin, {args.connections} conn.", r["engine"], r,
                result=f"{r['accepted']} enquiries accepted, {r['leads_added']} stored", peak_rss_mb=r["peak_rss_mb"],
                reference="no errors; every accepted enquiry stored", checks=checks(r))
            for r in rows]


def markdown(rows: list[dict], args) -> str:
    lines = [f"# Mixed workload ({args.meta})", "",
             f"Medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections (wrk -t2): of "
             "every 100 requests 90 page reads (`/`, a case study, `/insights`), 9 `POST /contact` and 1 `GET /admin` "
             "signed in, each from a client address of its own. Rates and latencies are over the whole mix; the "
             "counts are totals over the rounds.", "",
             "| engine | req/s | p50 / p95 / p99 / max ms | errors | sent: reads / enquiries / admin | accepted | "
             "leads stored | sessions lost | other answers | CPU s per run | peak RSS MB |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['rps']:.0f} | {latencies(r)} | "
                     f"{r['errors']} | {r['reads']} / {r['posts']} / {r['admin']} | {r['accepted']} | {r['leads_added']} | "
                     f"{r['signed_out']} | {r['failed']} | {r['cpu_s']} | {r['peak_rss_mb']} |")
    lines += ["", "Checks:", *[f"- {r['engine']}: " + "; ".join(f"{t} {verdict(ok)}" for t, ok in checks(r))
                               for r in rows], ""]
    return "\n".join(lines)


def main() -> None:
    args = parse(arguments(__doc__, connections=256))
    results = per_engine(args, "mixed", engine_run)
    rows = summarise(results)
    write_results(args, "mixed", {"rows": rows, "raw": results}, markdown(rows, args), report_rows(rows, args))


if __name__ == "__main__":
    main()
