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
import random
import sqlite3
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (Postgres, Vantus, arguments, combine, latencies, log, parse, per_engine, row,  # noqa: E402
                     sign_in, verdict, write_results, wrk, wrk_line)

EMAIL = "bench-sales@example.com"

TARGETS = {"p99_ms": 25.0}
STAGES = ["new", "contacted", "qualified", "proposal", "won", "lost"]
WORDS = ("design build launch website platform mobile app redesign budget timeline migration "
         "integration analytics commerce booking portal dashboard api brand content").split()
SEARCH_WORD = "zeppelin"  # in 1 of every 100 messages
COMMON_WORD = "design"  # one of 20 words drawn 12 times: in about 46 % of the messages
PAGES = ("first", "filtered", "search", "search-common", "deep")


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


def engine_run(args, engine: str) -> dict:
    with Vantus(args.bin, engine, "crm", {"RUST_LOG": "warn"}) as v:
        v.run("migrate")
        started = time.monotonic()
        if engine == "sqlite":
            seed_sqlite(v.db, args.leads)
        else:
            seed_postgres(v.pg, v.db, args.leads)
        seeded_s = round(time.monotonic() - started, 1)
        log(f"   {engine}: {args.leads} leads seeded in {seeded_s} s")
        v.create_user(EMAIL, "sales")
        cursor = deep_cursor(engine, v.db, v.pg, deep_depth(args))
        pages = {
            "first": "/admin/leads",
            "filtered": "/admin/leads?stage=qualified&source=form",
            "search": f"/admin/leads?q={SEARCH_WORD}",
            "search-common": f"/admin/leads?q={COMMON_WORD}",
            "deep": f"/admin/leads?after={cursor}",
        }
        v.start()
        cookie = sign_in(v.base, EMAIL)

        def load(path: str, seconds: int) -> dict:
            return wrk(v.base + path, args.connections, seconds, "request.lua", {"BENCH_COOKIE": cookie},
                       pids=(v.pid,))

        for path in pages.values():  # warm-up
            load(path, 1)
        runs = []
        for n in range(1, args.rounds + 1):
            for name, path in pages.items():
                r = load(path, args.duration)
                r.update(page=name, round=n)
                runs.append(r)
                log(f"   {engine} {name} round {n}: {wrk_line(r)}")
        return {"engine": engine, "leads": args.leads, "seeded_s": seeded_s, "pages": runs,
                "peak_rss_mb": v.peak_rss_mb()}


def deep_depth(args) -> int:
    return min(40_000, args.leads * 2 // 5)


def summarise(runs: list[dict]) -> list[dict]:
    return [{"engine": e["engine"], "page": page, "leads": e["leads"], "peak_rss_mb": e["peak_rss_mb"],
             **combine([r for r in e["pages"] if r["page"] == page])}
            for e in runs for page in PAGES]


def report_rows(rows: list[dict]) -> list[dict]:
    return [row("crm", f"GET /admin/leads {r['page']} ({r['leads']} leads)", r["engine"], r,
                peak_rss_mb=r["peak_rss_mb"],
                reference=f"target p99 < {TARGETS['p99_ms']:.0f} ms",
                checks=[(f"p99 < {TARGETS['p99_ms']:.0f} ms", r["p99_ms"] < TARGETS["p99_ms"]),
                        ("no errors", r["errors"] == 0)])
            for r in rows]


def markdown(rows: list[dict], args) -> str:
    lines = [f"# CRM list benchmark ({args.meta})", "",
             f"`GET /admin/leads` as a signed-in `sales` user with {args.leads} leads (5 % spam) in the tenant; "
             f"medians of {args.rounds} rounds of {args.duration} s at {args.connections} connections. "
             f"first: the newest page; filtered: stage=qualified&source=form; search: a word in 1 % of the "
             f"messages; search-common: a word in about 46 %; deep: a keyset page {deep_depth(args)} leads deep.", "",
             "| engine | page | req/s | p50 / p95 / p99 / max ms | errors | CPU s per run | peak RSS MB |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['engine']} | {r['page']} | {r['rps']:.0f} | {latencies(r)} | "
                     f"{r['errors']} | {r['cpu_s']} | {r['peak_rss_mb']} |")
    lines += ["", "Targets:"]
    for r in rows:
        ok = r["p99_ms"] < TARGETS["p99_ms"] and r["errors"] == 0
        lines.append(f"- {r['engine']} {r['page']}: p99 {r['p99_ms']} ms (target < {TARGETS['p99_ms']} ms, "
                     f"no errors) {verdict(ok)}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = arguments(__doc__, connections=16)
    ap.add_argument("--leads", type=int, default=100_000)
    args = parse(ap)
    if args.leads < 1:
        ap.error("--leads must be at least 1")
    runs = per_engine(args, "crm", engine_run)
    rows = summarise(runs)
    write_results(args, "crm", {"targets": TARGETS, "rows": rows, "raw": runs}, markdown(rows, args),
                  report_rows(rows))


if __name__ == "__main__":
    main()
