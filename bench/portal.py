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
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leads import Postgres, free_port, rss_kb, wait_ready  # noqa: E402
from parse_wrk import to_ms  # noqa: E402

LUA = Path(__file__).resolve().parent / "lua" / "request.lua"
UNLIMITED = "1000000000/1s"
EMAIL = "bench-sales@example.com"
PASSWORD = "violet tractor ninety lanterns"
TARGETS = {"session_added_ms": 1.0}


def wrk(url: str, connections: int, seconds: int, method: str = "GET", body: str = "", cookie: str = "") -> dict:
    env = dict(os.environ, BENCH_METHOD=method, BENCH_BODY=body, BENCH_COOKIE=cookie)
    threads = min(2, connections)
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA), url],
        check=True, capture_output=True, text=True, env=env,
    ).stdout
    pct = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M)}
    avg = re.search(r"Latency\s+(\S+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "avg_ms": to_ms(avg.group(1)) if avg else None,
        "p50_ms": pct.get("50"), "p99_ms": pct.get("99"),
        "non_2xx_3xx": int(errors.group(1)) if errors else 0,
    }


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # noqa: D102
        return None


def sign_in(base: str) -> str:
    body = urllib.parse.urlencode({"email": EMAIL, "password": PASSWORD}).encode()
    req = urllib.request.Request(base + "/admin/login", data=body, method="POST",
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    try:
        urllib.request.build_opener(NoRedirect).open(req)
    except urllib.error.HTTPError as e:
        if e.code != 303:
            raise RuntimeError(f"sign-in answered {e.code}") from e
        return e.headers["Set-Cookie"].split(";")[0]
    raise RuntimeError("sign-in did not redirect")


def engine_run(args, engine: str, pg: Postgres, log) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vantus-bench-portal-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"], "VANTUS_LISTEN": f"127.0.0.1:{port}", "VANTUS_DATA_DIR": str(work / "data"),
        "RUST_LOG": "info", "VANTUS_RATE_LIMIT_LOGIN": UNLIMITED, "VANTUS_RATE_LIMIT_LOGIN_ACCOUNT": UNLIMITED,
    }
    pg_name = f"vantus_bench_portal_{os.getpid()}"
    if engine == "postgres":
        env["DATABASE_URL"] = pg.fresh(pg_name)
    subprocess.run([args.bin, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([args.bin, "user", "create", "--email", EMAIL, "--role", "sales", "--name", "Load Test",
                    "--password-stdin"], env=env, input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    with open(work / "vantus.err", "w") as err:
        proc = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_ready(base, proc)
        login_body = urllib.parse.urlencode({"email": EMAIL, "password": PASSWORD})
        logins = []
        for conns in (1, args.login_connections):
            r = wrk(base + "/admin/login", conns, args.duration, "POST", login_body)
            r.update(connections=conns)
            logins.append(r)
            log(f"   {engine} sign-in at {conns} connections: {r['rps']:.1f}/s, p50 {r['p50_ms']} ms, "
                f"p99 {r['p99_ms']} ms, non-2xx/3xx {r['non_2xx_3xx']}")
        cookie = sign_in(base)
        for path in ("/admin", "/admin/login"):  # warm-up
            wrk(base + path, args.connections, 2, cookie=cookie if path == "/admin" else "")
        pages = []
        for n in range(1, args.rounds + 1):
            for page in ("/admin", "/admin/login"):
                r = wrk(base + page, args.connections, args.duration, cookie=cookie if page == "/admin" else "")
                r.update(page=page, round=n)
                pages.append(r)
                log(f"   {engine} GET {page} round {n}: {r['rps']:.0f} req/s, avg {r['avg_ms']} ms, "
                    f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, non-2xx/3xx {r['non_2xx_3xx']}")
        return {"engine": engine, "logins": logins, "pages": pages, "rss_kb": rss_kb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if engine == "postgres":
            pg.drop(pg_name)
        shutil.rmtree(work, ignore_errors=True)


def med(rows, key):
    return round(statistics.median(r[key] for r in rows), 3)


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for e in runs:
        dash = [r for r in e["pages"] if r["page"] == "/admin"]
        bare = [r for r in e["pages"] if r["page"] == "/admin/login"]
        one, many = e["logins"]
        rows.append({
            "engine": e["engine"],
            "login_1_per_s": one["rps"], "login_1_p50_ms": one["p50_ms"], "login_1_p99_ms": one["p99_ms"],
            "login_n": many["connections"], "login_n_per_s": many["rps"], "login_n_p50_ms": many["p50_ms"],
            "login_n_p99_ms": many["p99_ms"], "login_errors": one["non_2xx_3xx"] + many["non_2xx_3xx"],
            "dashboard_rps": med(dash, "rps"), "dashboard_avg_ms": med(dash, "avg_ms"),
            "dashboard_p50_ms": med(dash, "p50_ms"), "dashboard_p99_ms": med(dash, "p99_ms"),
            "bare_rps": med(bare, "rps"), "bare_avg_ms": med(bare, "avg_ms"),
            "bare_p50_ms": med(bare, "p50_ms"), "bare_p99_ms": med(bare, "p99_ms"),
            "page_errors": sum(r["non_2xx_3xx"] for r in e["pages"]),
            # Per request, on a saturated server: what one request of each costs in server time.
            "added_ms_per_request": round(1000 / med(dash, "rps") - 1000 / med(bare, "rps"), 3),
            "rss_mb": round(e["rss_kb"] / 1024, 1),
        })
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [f"# Portal benchmark ({args.meta})", "",
             "Sign-in: wrk POSTs a right address and password to `/admin/login` for "
             f"{args.duration} s; each answer is a 303 with a new session. Argon2id at the shipped defaults "
             "(19 MiB, 2 passes, 1 lane), `VANTUS_PASSWORD_HASHES_AT_ONCE=2`.", "",
             "| engine | 1 connection: logins/s, p50 / p99 ms | "
             f"{args.login_connections} connections: logins/s, p50 / p99 ms | non-2xx/3xx |",
             "| --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['login_1_per_s']:.1f}, {r['login_1_p50_ms']} / {r['login_1_p99_ms']} | "
                     f"{r['login_n_per_s']:.1f}, {r['login_n_p50_ms']} / {r['login_n_p99_ms']} | {r['login_errors']} |")
    lines += ["", f"Dashboard for a signed-in `sales` user beside the sign-in page (same layout, no session, "
              f"no query), medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections, "
              "alternating. Added per request = 1/rate(dashboard) − 1/rate(sign-in page): the server time the "
              "session check, the tenant and the new-lead count add to one request.", "",
              "| engine | `/admin` req/s | avg / p50 / p99 ms | `/admin/login` req/s | avg / p50 / p99 ms | "
              "added per request | non-2xx/3xx | RSS MB |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['dashboard_rps']:.0f} | {r['dashboard_avg_ms']} / {r['dashboard_p50_ms']} / "
                     f"{r['dashboard_p99_ms']} | {r['bare_rps']:.0f} | {r['bare_avg_ms']} / {r['bare_p50_ms']} / "
                     f"{r['bare_p99_ms']} | {r['added_ms_per_request']} ms | {r['page_errors']} | {r['rss_mb']} |")
    lines += ["", "Targets:"]
    for r in rows:
        ok = r["added_ms_per_request"] < TARGETS["session_added_ms"]
        lines.append(f"- {r['engine']}: the session check adds {r['added_ms_per_request']} ms per request "
                     f"(target < {TARGETS['session_added_ms']} ms) {'met' if ok else 'MISSED'}; "
                     f"errors {r['login_errors'] + r['page_errors']} (target 0) "
                     f"{'met' if r['login_errors'] + r['page_errors'] == 0 else 'MISSED'}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--engines", default="sqlite postgres")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--login-connections", type=int, default=16)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    log = lambda m: print(m, flush=True)  # noqa: E731
    pg = Postgres()
    runs = []
    for engine in args.engines.split():
        log(f"==> portal: {engine}")
        runs.append(engine_run(args, engine, pg, log))
    rows = summarise(runs)
    stem = Path(args.out) / f"{args.stamp}-portal"
    stem.with_suffix(".json").write_text(json.dumps({"meta": args.meta, "targets": TARGETS, "rows": rows,
                                                     "raw": runs}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(rows, args))
    log(f"==> results: {stem}.md")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
