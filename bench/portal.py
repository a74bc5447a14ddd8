"""The portal under load: sign-in rate with the shipped argon2id parameters, and the dashboard
for a signed-in user beside the same layout without a session. On SQLite and PostgreSQL.

Called by bench/run (--scenarios portal); writes bench/results/<stamp>-portal.{json,md}.

For each engine: a fresh Vantus on a fresh database with its default password hashing (argon2id
19 MiB, 2 passes, 1 lane; VANTUS_PASSWORD_HASHES_AT_ONCE=2) and the sign-in rate limits raised
out of the way, and one `sales` account made with `vantus user create` (sales: the dashboard
counts its new leads; MFA is not required of it by default).

* Sign-in: wrk POSTs the right address and password to /admin/login, at 1 connection (one
  login's own latency: mostly one hash) and at --login-connections (the semaphore's limit: at
  most HASHES_AT_ONCE hashes run at once, the rest queue). Each 303 is a real session.
* Dashboard: one session's cookie, wrk GET /admin (session lookup, tenant, new-lead count,
  render) and GET /admin/login (the same layout, no session, no database), alternately,
  --rounds rounds each at --connections. The difference between the two is what the session
  check (and the dashboard's one count query) adds to a request.
Every load goes to 127.0.0.1 only and is bounded by its duration.
"""
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (PASSWORD, UNLIMITED, Vantus, arguments, combine, latencies, log, parse, per_engine,  # noqa: E402
                     row, sign_in, table, verdict, write_results, wrk, wrk_line)

EMAIL = "bench-sales@example.com"
TARGETS = {"session_added_ms": 1.0}
HASHES_AT_ONCE = 2  # VANTUS_PASSWORD_HASHES_AT_ONCE: its default, set explicitly for the server here
PAGES = ("/admin", "/admin/login")


def engine_run(args, engine: str) -> dict:
    env = {"VANTUS_RATE_LIMIT_LOGIN": UNLIMITED, "VANTUS_RATE_LIMIT_LOGIN_ACCOUNT": UNLIMITED,
           "VANTUS_PASSWORD_HASHES_AT_ONCE": str(HASHES_AT_ONCE)}
    with Vantus(args.bin, engine, "portal", env) as v:
        v.run("migrate")
        v.create_user(EMAIL, "sales")
        v.start()
        login_body = urllib.parse.urlencode({"email": EMAIL, "password": PASSWORD})
        logins = []
        for conns in (1, args.login_connections):
            r = wrk(v.base + "/admin/login", conns, args.duration, "request.lua",
                    {"BENCH_METHOD": "POST", "BENCH_BODY": login_body}, pids=(v.pid,))
            r.update(connections=conns)
            logins.append(r)
            log(f"   {engine} sign-in at {conns} connections: {wrk_line(r)}")
        cookie = sign_in(v.base, EMAIL)

        def page_load(page: str, seconds: int) -> dict:
            return wrk(v.base + page, args.connections, seconds, "request.lua",
                       {"BENCH_COOKIE": cookie if page == "/admin" else ""}, pids=(v.pid,))

        for page in PAGES:  # warm-up
            page_load(page, 2)
        pages = []
        for n in range(1, args.rounds + 1):
            for page in PAGES:
                r = page_load(page, args.duration)
                r.update(page=page, round=n)
                pages.append(r)
                log(f"   {engine} GET {page} round {n}: {wrk_line(r)}")
        return {"engine": engine, "logins": logins, "pages": pages, "peak_rss_mb": v.peak_rss_mb()}


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for e in runs:
        one, many = e["logins"]
        dash = combine([r for r in e["pages"] if r["page"] == "/admin"])
        bare = combine([r for r in e["pages"] if r["page"] == "/admin/login"])
        rows.append({
            "engine": e["engine"], "login_1": combine([one]), "login_n_connections": many["connections"],
            "login_n": combine([many]), "dashboard": dash, "bare": bare,
            # Per request, on a saturated server: what one request of each costs in server time.
            "added_ms_per_request": round(1000 / dash["rps"] - 1000 / bare["rps"], 3),
            "peak_rss_mb": e["peak_rss_mb"],
        })
    return rows


def report_rows(rows: list[dict], args) -> list[dict]:
    out = []
    for r in rows:
        rss = r["peak_rss_mb"]
        one, many = r["login_1"], r["login_n"]
        out.append(row("portal", "sign-in, 1 connection", r["engine"], one, result=f"{one['rps']:.1f} sign-ins/s",
                       peak_rss_mb=rss, reference="one argon2id hash at a time",
                       checks=[("no errors", one["errors"] == 0)]))
        # At most HASHES_AT_ONCE hashes run at once, so the rate with many waiting is at best that
        # many times the rate of one connection.
        bound = HASHES_AT_ONCE * one["rps"]
        out.append(row("portal", f"sign-in, {r['login_n_connections']} connections", r["engine"], many,
                       result=f"{many['rps']:.1f} sign-ins/s", peak_rss_mb=rss,
                       reference=f"{HASHES_AT_ONCE} hashes at once × 1-connection rate = {bound:.1f}/s",
                       ratio=round(many["rps"] / bound, 3), checks=[("no errors", many["errors"] == 0)]))
        added = r["added_ms_per_request"]
        out.append(row("portal", f"GET /admin (signed in), {args.connections} conn.", r["engine"], r["dashboard"],
                       result=f"+{added} ms per request", peak_rss_mb=rss,
                       reference=f"GET /admin/login {r['bare']['rps']:.0f} req/s; added < "
                                 f"{TARGETS['session_added_ms']} ms",
                       ratio=round(r["dashboard"]["rps"] / r["bare"]["rps"], 3),
                       checks=[(f"added {added} ms < {TARGETS['session_added_ms']} ms",
                                added < TARGETS["session_added_ms"]),
                               ("no errors", r["dashboard"]["errors"] + r["bare"]["errors"] == 0)]))
    return out


def markdown(rows: list[dict], args) -> str:
    lines = [f"# Portal benchmark ({args.meta})", "",
             "Sign-in: wrk POSTs a right address and password to `/admin/login` for "
             f"{args.duration} s; each answer is a 303 with a new session. Argon2id at the shipped defaults "
             "(19 MiB, 2 passes, 1 lane), `VANTUS_PASSWORD_HASHES_AT_ONCE=2`.", "",
             *table(["engine", "1 connection: logins/s, p50 / p95 / p99 / max ms",
                     f"{args.login_connections} connections: logins/s, p50 / p95 / p99 / max ms", "errors"],
                    ([r["engine"], f"{r['login_1']['rps']:.1f}, {latencies(r['login_1'])}",
                      f"{r['login_n']['rps']:.1f}, {latencies(r['login_n'])}",
                      r["login_1"]["errors"] + r["login_n"]["errors"]] for r in rows))]
    lines += ["", f"Dashboard for a signed-in `sales` user beside the sign-in page (same layout, no session, "
              f"no query), medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections, "
              "alternating. Added per request = 1/rate(dashboard) − 1/rate(sign-in page): the server time the "
              "session check, the tenant and the new-lead count add to one request.", "",
              *table(["engine", "`/admin` req/s", "p50 / p95 / p99 / max ms", "`/admin/login` req/s",
                      "p50 / p95 / p99 / max ms", "added per request", "errors", "peak RSS MB"],
                     ([r["engine"], f"{r['dashboard']['rps']:.0f}", latencies(r["dashboard"]),
                       f"{r['bare']['rps']:.0f}", latencies(r["bare"]), f"{r['added_ms_per_request']} ms",
                       r["dashboard"]["errors"] + r["bare"]["errors"], r["peak_rss_mb"]] for r in rows))]
    lines += ["", "Targets:"]
    for r in rows:
        errors = r["login_1"]["errors"] + r["login_n"]["errors"] + r["dashboard"]["errors"] + r["bare"]["errors"]
        lines.append(f"- {r['engine']}: the session check adds {r['added_ms_per_request']} ms per request "
                     f"(target < {TARGETS['session_added_ms']} ms) "
                     f"{verdict(r['added_ms_per_request'] < TARGETS['session_added_ms'])}; "
                     f"errors {errors} (target 0) {verdict(errors == 0)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = arguments(__doc__, connections=32)
    ap.add_argument("--login-connections", type=int, default=16)
    args = parse(ap)
    runs = per_engine(args, "portal", engine_run)
    rows = summarise(runs)
    write_results(args, "portal", {"targets": TARGETS, "rows": rows, "raw": runs}, markdown(rows, args),
                  report_rows(rows, args))


if __name__ == "__main__":
    main()
