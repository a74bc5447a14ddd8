"""What every bench scenario shares: the Vantus server it starts, throwaway PostgreSQL databases,
wrk runs with one result format, the server's CPU time and memory from /proc, sign-in, the
common command-line arguments, and the rows of the combined report (bench/report.py).

Every load goes to 127.0.0.1 only and is bounded by its duration.
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
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import closing
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LUA = BENCH / "lua"
# Rate limits out of the way: one request per nanosecond per client, a quota no load here comes
# near, so the limiter still runs (its cost is measured) but never answers 429.
UNLIMITED = "1000000000/1s"
PASSWORD = "violet tractor ninety lanterns"
MIN_FILL_SECONDS = 1


def log(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kb(pid: int, key: str) -> int:
    """A figure of /proc/<pid>/status in kB: VmRSS (now) or VmHWM (the peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for process {pid}")


def rss_kb(pid: int) -> int:
    return status_kb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far (utime + stime of /proc/<pid>/stat)."""
    # The command name, field 2, may hold spaces; the fields after its closing parenthesis do not.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        p = subprocess.run(["psql", "-qtAX", url, "-c", sql], capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"psql failed ({p.returncode}): {p.stderr.strip()[-1000:]}")
        return p.stdout

    def fresh(self, name: str) -> str:
        self.drop(name)
        self.psql(self.admin, f"CREATE DATABASE {name}")
        return self.admin.rsplit("/", 1)[0] + "/" + name

    def drop(self, name: str) -> None:
        self.psql(self.admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class Vantus:
    """One Vantus in a temporary directory of its own, on a fresh database of the engine (SQLite in
    the data directory, or a PostgreSQL database made here, or `database_url` to share one).
    `run` calls its CLI, `start` serves; `close` stops it and removes what it made."""

    def __init__(self, bin_: str, engine: str, name: str, env: dict | None = None, database_url: str = ""):
        self.bin, self.engine = bin_, engine
        self.pg = Postgres()
        self.work = Path(tempfile.mkdtemp(prefix=f"vantus-bench-{name}-"))
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {"PATH": os.environ["PATH"], "VANTUS_LISTEN": f"127.0.0.1:{self.port}",
                    "VANTUS_DATA_DIR": str(self.work / "data"), "RUST_LOG": "info", **(env or {})}
        self.pg_name = ""
        if database_url:
            self.env["DATABASE_URL"] = database_url
        elif engine == "postgres":
            self.pg_name = f"vantus_bench_{name.replace('-', '_')}_{os.getpid()}"
            self.env["DATABASE_URL"] = self.pg.fresh(self.pg_name)
        # Where the bench itself reads the database: the SQLite file or the PostgreSQL URL.
        self.db = self.env.get("DATABASE_URL") or str(self.work / "data" / "vantus.db")
        self.proc: subprocess.Popen | None = None
        self.stopped = False

    def __enter__(self) -> "Vantus":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type and self.proc and not self.stopped and self.proc.poll() is not None:
            # The server died under the bench: how, and what it said, are the first things to read.
            log(f"bench: vantus serve exited by itself with {self.proc.returncode} (negative: killed by that "
                "signal); the end of its stderr:\n" + (self.work / "vantus.err").read_text()[-3000:])
        self.close()

    def run(self, *args: str, stdin: str | None = None) -> str:
        p = subprocess.run([self.bin, *args], env=self.env, input=stdin, text=True, capture_output=True)
        if p.returncode != 0:
            raise RuntimeError(f"vantus {' '.join(args)} failed ({p.returncode}): {p.stderr[-2000:]}")
        return p.stdout

    def create_user(self, email: str, role: str) -> None:
        self.run("user", "create", "--email", email, "--role", role, "--name", "Load Test", "--password-stdin",
                 stdin=PASSWORD + "\n")

    def start(self) -> "Vantus":
        with open(self.work / "vantus.err", "a") as err:
            self.proc = subprocess.Popen([self.bin, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=err)
        wait_ready(self.base, self.proc)
        return self

    @property
    def pid(self) -> int:
        assert self.proc, "the server was not started"
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        return round(status_kb(self.pid, "VmHWM") / 1024, 1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.stopped = True
            terminate(self.proc)

    def close(self) -> None:
        self.stop()
        if self.pg_name:
            self.pg.drop(self.pg_name)
        shutil.rmtree(self.work, ignore_errors=True)


def terminate(proc: subprocess.Popen, within: float = 30) -> None:
    """SIGTERM, and the process must exit within `within` seconds (else it is killed: an error)."""
    proc.terminate()
    try:
        proc.wait(timeout=within)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"{' '.join(map(str, proc.args))} did not exit within {within:.0f} s of SIGTERM") from None


def wrk(url: str, connections: int, seconds: float, script: str = "", env: dict | None = None,
        pids: tuple = ()) -> dict:
    """One wrk run through bench/lua/report.lua (which loads `script`, a file in bench/lua, if
    given): requests, requests/s, p50/p95/p99/max ms, errors (non-2xx/3xx answers and socket
    errors), the scenario script's counters, and the CPU seconds `pids` spent during the run."""
    threads = min(2, connections)
    run_env = dict(os.environ, **(env or {}), BENCH_SCRIPT=str(LUA / script) if script else "")
    cpu_before = [cpu_seconds(p) for p in pids]
    p = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "-s", str(LUA / "report.lua"), url],
                       capture_output=True, text=True, env=run_env)
    cpu = round(sum(cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before)), 2)
    line = re.search(r"^BENCH_RESULT (.*)$", p.stdout, re.M)
    if p.returncode != 0 or not line:
        raise RuntimeError(f"wrk {url} failed ({p.returncode}): {(p.stderr or p.stdout)[-1000:]}")
    r = json.loads(line.group(1))
    r["seconds"] = r.pop("duration_us") / 1e6
    r["rps"] = round(r["requests"] / r["seconds"], 1)
    r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    r["errors"] = r["status_errors"] + r["socket_errors"]
    if pids:
        r["cpu_s"] = cpu
    return r


def wrk_line(r: dict) -> str:
    """One wrk result as the scenarios log it."""
    return (f"{r['rps']:.0f} req/s, p50 {r['p50_ms']} / p95 {r['p95_ms']} / p99 {r['p99_ms']} / max {r['max_ms']} ms, "
            f"errors {r['errors']}" + (f", CPU {r['cpu_s']} s" if "cpu_s" in r else ""))


def median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def combine(runs: list[dict]) -> dict:
    """Several rounds of one load: medians of the rates, percentiles and CPU time; the largest
    maximum; every error."""
    out = {k: median(runs, k) for k in ("rps", "p50_ms", "p95_ms", "p99_ms") if all(k in r for r in runs)}
    out["max_ms"] = max(r["max_ms"] for r in runs)
    out["errors"] = sum(r["errors"] for r in runs)
    if all("cpu_s" in r for r in runs):
        out["cpu_s"] = median(runs, "cpu_s")
    return out


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # noqa: D102
        return None


def post(url: str, body: bytes, headers: dict, timeout: float = 30) -> urllib.error.HTTPError:
    """POSTs and returns the redirect (as urllib's HTTPError) the server must answer with."""
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        urllib.request.build_opener(NoRedirect).open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        return e
    raise RuntimeError(f"{url} did not redirect")


def sign_in(base: str, email: str) -> str:
    """A session cookie (name=value) for an account made with Vantus.create_user."""
    body = urllib.parse.urlencode({"email": email, "password": PASSWORD}).encode()
    e = post(base + "/admin/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    if e.code != 303:
        raise RuntimeError(f"sign-in answered {e.code}")
    return e.headers["Set-Cookie"].split(";")[0]


def form_token(base: str) -> str:
    """A token from a rendering of the contact form, once it is older than the minimum fill time
    (the server runs with VANTUS_FORM_MIN_FILL_TIME=MIN_FILL_SECONDS)."""
    with urllib.request.urlopen(base + "/contact") as r:
        html = r.read().decode()
    token = re.search(r'name="form_token" value="([^"]+)"', html).group(1)
    issued = int(token.split(".")[1])
    time.sleep(max(0.0, issued + MIN_FILL_SECONDS + 0.3 - time.time()))
    return token


def lead_counts(engine: str, where: str) -> tuple[int, int]:
    """(real leads, spam) in the database at `where` (a SQLite file or a PostgreSQL URL)."""
    sql = "SELECT count(*) FILTER (WHERE spam_reason IS NULL), count(*) FILTER (WHERE spam_reason IS NOT NULL) FROM leads"
    if engine == "sqlite":
        with closing(sqlite3.connect(f"file:{where}?mode=ro", uri=True)) as db:
            real, spam = db.execute(sql).fetchone()
    else:
        real, spam = Postgres().psql(where, sql).strip().split("|")
    return int(real), int(spam)


def settled_lead_counts(engine: str, where: str) -> tuple[int, int]:
    """lead_counts once the requests still in flight when wrk stopped are stored: the same
    counts twice, a quarter of a second apart (at most 10 s)."""
    last = lead_counts(engine, where)
    for _ in range(40):
        time.sleep(0.25)
        now = lead_counts(engine, where)
        if now == last:
            break
        last = now
    return last


def measured(engine: str, db: str, run) -> dict:
    """Runs wrk via `run`, counting the leads it added, in flight ones included."""
    before = settled_lead_counts(engine, db)
    result = run()
    after = settled_lead_counts(engine, db)
    result["leads_added"] = after[0] - before[0]
    result["spam_added"] = after[1] - before[1]
    result["leads_per_s"] = round(result["leads_added"] / result["seconds"], 1)
    return result


def arguments(doc: str, rounds: int | None = 3, duration: int | None = 10, connections: int | None = None,
              engines: bool = True) -> argparse.ArgumentParser:
    """The arguments bench/run passes every scenario; a scenario adds its own."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--bin", required=True, help="the vantus binary")
    if rounds is not None:
        ap.add_argument("--rounds", type=int, default=rounds)
    if duration is not None:
        ap.add_argument("--duration", type=int, default=duration, help="seconds of each load")
    if connections is not None:
        ap.add_argument("--connections", type=int, default=connections)
    if engines:
        ap.add_argument("--engines", default="sqlite postgres")
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--stamp", default=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    ap.add_argument("--meta", default="", help="a line describing the run, for the reports")
    return ap


def parse(ap: argparse.ArgumentParser):
    """Parses the arguments, refusing what no scenario can run with."""
    args = ap.parse_args()
    for name in ("rounds", "duration", "connections"):
        if getattr(args, name, 1) < 1:
            ap.error(f"--{name} must be at least 1")
    if hasattr(args, "engines"):
        names = args.engines.split()
        if not names or any(e not in ("sqlite", "postgres") for e in names):
            ap.error(f"--engines takes sqlite and/or postgres, not {args.engines!r}")
    return args


def per_engine(args, scenario: str, engine_run) -> list[dict]:
    """engine_run(args, engine) for each of --engines, in turn."""
    results = []
    for engine in args.engines.split():
        log(f"==> {scenario}: {engine}")
        results.append(engine_run(args, engine))
    return results


def table(header: list[str], rows) -> list[str]:
    """The lines of a Markdown table."""
    return ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
            *("| " + " | ".join(str(cell) for cell in cells) + " |" for cells in rows)]


def latencies(load: dict) -> str:
    return f"{load['p50_ms']} / {load['p95_ms']} / {load['p99_ms']} / {load['max_ms']}"


ENGINE_NAMES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


def row(scenario: str, case: str, engine: str, load: dict | None = None, *, result: str = "",
        peak_rss_mb: float | None = None, cpu_s: float | None = None, reference: str = "",
        ratio: float | None = None, checks: list[tuple[str, bool]] = ()) -> dict:
    """One row of the combined report. `load` is a `combine`d wrk result (absent for scenarios
    that are not a request load); `checks` are (what, met) pairs against the scenario's targets."""
    load = load or {}
    return {
        "scenario": scenario, "case": case, "engine": ENGINE_NAMES.get(engine, engine),
        **{k: load.get(k) for k in ("rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors")},
        "peak_rss_mb": peak_rss_mb, "cpu_s": cpu_s if cpu_s is not None else load.get("cpu_s"),
        "result": result, "reference": reference, "ratio": ratio,
        "verdict": verdict(all(ok for _, ok in checks)),
        "checks": [f"{what} {verdict(ok)}" for what, ok in checks],
    }


def write_results(args, name: str, data: dict, markdown: str, rows: list[dict]) -> None:
    """Writes <stamp>-<name>.{json,md} (or <stamp>.{json,md} for the unnamed pages scenario), the
    JSON with its rows for the combined report under "report_rows"."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"{args.stamp}-{name}" if name else args.stamp)
    Path(f"{stem}.json").write_text(json.dumps({"meta": args.meta, **data, "report_rows": rows}, indent=2) + "\n")
    Path(f"{stem}.md").write_text(markdown)
    log(f"==> results: {stem}.md")
    print(markdown, flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"
