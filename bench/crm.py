"""The leads CRM list under load: p50 and p99 of GET /admin/leads with --leads leads (100,000 by
default) in the site tenant, on SQLite and PostgreSQL.

Called by bench/run (--scenarios crm); writes bench/results/<stamp>-crm.{json,md}.

For each engine: a fresh Vantus database (`vantus migrate`), seeded directly with SQL (the
capture path's group commit is measured by the leads scenario; here only the list matters):
leads a few seconds apart over the past months, spread over the stages, both sources, a few
owners' worth of unassigned leads and 5 % spam, each with a message drawn from a small
vocabulary plus one rare word. On SQLite the rows go in through Python's sqlite3 module (the FTS5
triggers index them as they arrive); on PostgreSQL through one INSERT … SELECT over
generate_series (the GIN index is maintained by PostgreSQL). Then one `sales` account made with
`vantus user create`, `vantus serve`, a sign-in, and wrk at --connections on:

* first: the first page, newest first;
* filtered: stage = qualified, source = form;
* search: a word in about 1 % of the messages;
* search-common: a word in about 46 % of them (the search walks the list instead);
* deep: a keyset page 40,000 leads deep (the cursor of a lead found in the seeded data).

Each --rounds times for --duration seconds, alternating; medians reported. Target: p99 < 25 ms.
Every load goes to 127.0.0.1 only and is bounded by its duration.
"""
import argparse
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leads import Postgres, free_port, rss_kb, wait_ready  # noqa: E402
from portal import EMAIL, PASSWORD, sign_in, wrk  # noqa: E402

TARGETS = {"p99_ms": 25.0}
STAGES = ["new", "contacted", "qualified", "proposal", "won", "lost"]
WORDS = ("design build launch website platform mobile app redesign budget timeline migration "
         "integration analytics commerce booking portal dashboard api brand content").split()
SEARCH_WORD = "zeppelin"  # in 1 of every 100 messages
COMMON_WORD = "design"  # one of 20 words drawn 12 times: in about 46 % of the messages


def message(n: int, rng: random.Random) -> str:
    words = rng.choices(WORDS, k=12)
    if n % 100 == 7:
        words.insert(5, SEARCH_WORD)
    return "We need " + " ".join(words) + "."


def fixed(t: datetime) -> str:
    """The SQLite storage form of a timestamp (store::Timestamp::to_fixed_string)."""
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seed_sqlite(path: str, count: int) -> None:
    rng = random.Random(42)
    db = sqlite3.connect(path)
    tenant = db.execute("SELECT id FROM tenants ORDER BY created_at LIMIT 1").fetchone()[0]
    start = datetime.now(timezone.utc) - timedelta(seconds=count * 5 + 60)
    rows = []
    for n in range(count):
        at = fixed(start + timedelta(seconds=n * 5, microseconds=rng.randrange(1_000_000)))
        rows.append((uuid.uuid4().bytes, tenant, STAGES[n % 6], "link farm" if n % 20 == 0 else None,
                     "form" if n % 3 else "api", f"Bench Lead {n}", f"lead{n}@example.org",
                     f"Company {n % 500}", "CTO", "25k-50k", message(n, rng), at, at))
    with db:
        db.executemany("INSERT INTO leads (id, tenant_id, stage, spam_reason, source, name, email, company, "
                       "role, budget, message, created_at, updated_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    db.execute("ANALYZE")
    db.close()


def seed_postgres(pg: Postgres, url: str, count: int) -> None:
    words = "ARRAY[" + ",".join(f"'{w}'" for w in WORDS) + "]"
    pick = f"({words})[1 + (random() * {len(WORDS) - 1})::int]"
    msg = " || ' ' || ".join([pick] * 12)
    pg.psql(url, f"""
        INSERT INTO leads (id, tenant_id, stage, spam_reason, source, name, email, company, role,
                           budget, message, created_at, updated_at)
        SELECT gen_random_uuid(), t.id, (ARRAY['new','contacted','qualified','proposal','won','lost'])[1 + n % 6],
               CASE WHEN n % 20 = 0 THEN 'link farm' END, CASE WHEN n % 3 = 0 THEN 'api' ELSE 'form' END,
               'Bench Lead ' || n, 'lead' || n || '@example.org', 'Company ' || n % 500, 'CTO', '25k-50k',
               'We need ' || CASE WHEN n % 100 = 7 THEN '{SEARCH_WORD} ' ELSE '' END || {msg} || '.',
               now() - make_interval(secs => ({count} - n) * 5), now() - make_interval(secs => ({count} - n) * 5)
        FROM generate_series(0, {count - 1}) AS n, (SELECT id FROM tenants ORDER BY created_at LIMIT 1) AS t;
        ANALYZE leads;""")


def deep_cursor(engine: str, where: str, pg: Postgres, depth: int) -> str:
    """The list's cursor after `depth` leads (newest first): `<unix micros>_<id>`."""
    sql = ("SELECT created_at, id FROM leads WHERE spam_reason IS NULL "
           f"ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET {depth}")
    if engine == "sqlite":
        db = sqlite3.connect(where)
        at, raw = db.execute(sql).fetchone()
        db.close()
        t = datetime.strptime(at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
        return f"{int(t.timestamp()) * 1_000_000 + t.microsecond}_{uuid.UUID(bytes=raw)}"
    out = pg.psql(where, "SELECT (extract(epoch FROM created_at) * 1000000)::bigint || '_' || id FROM ("
                  + sql + ") AS x").strip()
    return out


def engine_run(args, engine: str, pg: Postgres, log) -> dict:
    work = Path(tempfile.mkdtemp(prefix="vantus-bench-crm-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"PATH": os.environ["PATH"], "VANTUS_LISTEN": f"127.0.0.1:{port}", "VANTUS_DATA_DIR": str(work / "data"),
           "RUST_LOG": "warn"}
    pg_name = f"vantus_bench_crm_{os.getpid()}"
    where = str(work / "data" / "vantus.db")
    if engine == "postgres":
        where = env["DATABASE_URL"] = pg.fresh(pg_name)
    subprocess.run([args.bin, "migrate"], env=env, check=True, capture_output=True)
    started = time.monotonic()
    if engine == "sqlite":
        seed_sqlite(where, args.leads)
    else:
        seed_postgres(pg, where, args.leads)
    seeded_s = round(time.monotonic() - started, 1)
    log(f"   {engine}: {args.leads} leads seeded in {seeded_s} s")
    subprocess.run([args.bin, "user", "create", "--email", EMAIL, "--role", "sales", "--name", "Load Test",
                    "--password-stdin"], env=env, input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    cursor = deep_cursor(engine, where, pg, min(40_000, args.leads * 2 // 5))
    pages = {
        "first": "/admin/leads",
        "filtered": "/admin/leads?stage=qualified&source=form",
        "search": f"/admin/leads?q={SEARCH_WORD}",
        "search-common": f"/admin/leads?q={COMMON_WORD}",
        "deep": f"/admin/leads?after={cursor}",
    }
    with open(work / "vantus.err", "w") as err:
        proc = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_ready(base, proc)
        cookie = sign_in(base)
        for path in pages.values():  # warm-up
            wrk(base + path, args.connections, 1, cookie=cookie)
        runs = []
        for n in range(1, args.rounds + 1):
            for name, path in pages.items():
                r = wrk(base + path, args.connections, args.duration, cookie=cookie)
                r.update(page=name, round=n)
                runs.append(r)
                log(f"   {engine} {name} round {n}: {r['rps']:.0f} req/s, p50 {r['p50_ms']} ms, "
                    f"p99 {r['p99_ms']} ms, non-2xx/3xx {r['non_2xx_3xx']}")
        return {"engine": engine, "leads": args.leads, "seeded_s": seeded_s, "pages": runs,
                "rss_kb": rss_kb(proc.pid)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if engine == "postgres":
            pg.drop(pg_name)
        shutil.rmtree(work, ignore_errors=True)


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for e in runs:
        for page in ("first", "filtered", "search", "search-common", "deep"):
            rs = [r for r in e["pages"] if r["page"] == page]
            rows.append({
                "engine": e["engine"], "page": page, "leads": e["leads"],
                "rps": round(statistics.median(r["rps"] for r in rs), 1),
                "p50_ms": round(statistics.median(r["p50_ms"] for r in rs), 3),
                "p99_ms": round(statistics.median(r["p99_ms"] for r in rs), 3),
                "errors": sum(r["non_2xx_3xx"] for r in rs),
                "rss_mb": round(e["rss_kb"] / 1024, 1),
            })
    return rows


def markdown(rows: list[dict], args) -> str:
    lines = [f"# CRM list benchmark ({args.meta})", "",
             f"`GET /admin/leads` as a signed-in `sales` user with {args.leads} leads (5 % spam) in the tenant; "
             f"medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections. "
             f"first: the newest page; filtered: stage=qualified&source=form; search: a word in 1 % of the "
             f"messages; search-common: a word in about 46 %; deep: a keyset page {min(40_000, args.leads * 2 // 5)} leads deep.", "",
             "| engine | page | req/s | p50 ms | p99 ms | non-2xx/3xx | RSS MB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['page']} | {r['rps']:.0f} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['errors']} | {r['rss_mb']} |")
    lines += ["", "Targets:"]
    for r in rows:
        ok = r["p99_ms"] < TARGETS["p99_ms"] and r["errors"] == 0
        lines.append(f"- {r['engine']} {r['page']}: p99 {r['p99_ms']} ms (target < {TARGETS['p99_ms']} ms, "
                     f"no errors) {'met' if ok else 'MISSED'}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--engines", default="sqlite postgres")
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stamp", required=True)
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    log = lambda m: print(m, flush=True)  # noqa: E731
    pg = Postgres()
    runs = []
    for engine in args.engines.split():
        log(f"==> crm: {engine}")
        runs.append(engine_run(args, engine, pg, log))
    rows = summarise(runs)
    stem = Path(args.out) / f"{args.stamp}-crm"
    stem.with_suffix(".json").write_text(json.dumps({"meta": args.meta, "targets": TARGETS, "rows": rows,
                                                     "raw": runs}, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(rows, args))
    log(f"==> results: {stem}.md")
    print(stem.with_suffix(".md").read_text())


if __name__ == "__main__":
    main()
