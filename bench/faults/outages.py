"""Fault scenarios where a dependency fails under load, one `vantus serve` each (loopback only,
every load bounded by --duration). Each prints a PASS/FAIL verdict with its figures, writes
bench/results/<stamp>-fault-<scenario>.{json,md} and exits 1 on FAIL.

* redis: Vantus with its own Redis (REDIS_URL); Redis is stopped mid-load for --outage seconds,
  then started again. Pass: no failed request and no lost lead; a rate-limited client is still
  refused (429) while Redis is down, i.e. the limiter fails closed through its local fallback;
  the fallbacks show in `vantus_rate_limit_fallbacks_total`.
* smtp: Vantus with a real SMTP server (aiosmtpd, writing a maildir); SMTP is stopped for
  --outage seconds under lead load. Pass: every lead acknowledged during the outage, and once
  SMTP is back every stored lead's notification is delivered exactly once (one message per
  Message-ID, as many as leads).
* postgres: Vantus on its own PostgreSQL cluster (initdb as the postgres user), restarted
  mid-load with --outage seconds of downtime. Pass: /readyz answers 503 within one probe
  interval (1 s) of the stop and 200 again within 10 s of the start, without restarting
  Vantus; every acknowledged lead is stored. Reports the outage window seen by /readyz.
* replica: Vantus on a PostgreSQL primary of its own with a streaming replica
  (DATABASE_REPLICA_URLS), page reads while publishes keep invalidating the page cache; the
  replica is stopped a third of the way in. Pass: no failed request, and the renders fell back
  to the primary (`vantus_db_replica_fallbacks_total` grew).
* disk: Vantus on SQLite in a small tmpfs, filled up mid-load. Pass: writes answer 503 (never
  500) with a log line while pages go on being served; writes succeed again once space is
  freed; `PRAGMA integrity_check` is ok; a backup into a full folder fails and leaves no
  partial archive.
* slowloris: --slow connections trickle their headers one byte a second, and others a body.
  Pass: the server closes every slow-header connection within VANTUS_HEADER_READ_TIMEOUT (+2 s
  slack) and answers every slow body within VANTUS_REQUEST_TIMEOUT (+2 s), and the p99 of
  normal clients during the attack stays within 2x of their p99 measured just before.
"""
import argparse
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "faults"))
from harness import free_port  # noqa: E402
from restarts import ready, wait_until  # noqa: E402

LUA = BENCH / "lua" / "mixed_acked.lua"
UNLIMITED = "1000000000/1s"
PG_BIN = os.environ.get("PG_BIN") or max(
    (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "pg_ctl").exists()), default="")


def log(message: str) -> None:
    print(message, flush=True)


class Vantus:
    def __init__(self, bin_: str, env: dict, work: Path):
        self.bin, self.port, self.metrics_port, self.work = bin_, free_port(), free_port(), work
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict({"PATH": os.environ["PATH"], "RUST_LOG": "warn", "VANTUS_DATA_DIR": str(work / "data"),
                         "VANTUS_RATE_LIMIT_API": UNLIMITED, "VANTUS_RATE_LIMIT_FORMS": UNLIMITED},
                        **env, VANTUS_LISTEN=f"127.0.0.1:{self.port}",
                        VANTUS_METRICS_LISTEN=f"127.0.0.1:{self.metrics_port}")
        self.log_path = work / "vantus.log"
        self.proc = None

    def start(self) -> None:
        self.proc = subprocess.Popen([self.bin, "serve"], env=self.env, stdout=open(self.log_path, "a"),
                                     stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: self.proc.poll() is None and ready(self.port), 60, "vantus ready")
        except RuntimeError as e:
            raise RuntimeError(f"{e}; its log ends:\n{self.logs()[-2000:]}") from None

    def stop(self) -> int:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            return self.proc.wait(timeout=60)
        return self.proc.returncode if self.proc else 0

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def metric(self, name: str) -> float:
        """Sum of a Prometheus metric's samples on /metrics (0 when absent)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith(name) and not line.startswith("#"))


def load(base: str, seconds: int, connections: int, spread: bool = False, posts: bool = True) -> subprocess.Popen:
    """wrk with bench/lua/mixed_acked.lua: 90 % GET / and 10 % lead posts (or pages only)."""
    env = dict(os.environ, WRK_SPREAD_CLIENTS="1" if spread else "0", WRK_POST_EVERY="10" if posts else "0")
    return subprocess.Popen(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA), base],
                            stdout=subprocess.PIPE, text=True, env=env)


def load_result(wrk: subprocess.Popen, seconds: int) -> dict:
    out, _ = wrk.communicate(timeout=seconds + 60)
    return json.loads(next(line[7:] for line in out.splitlines() if line.startswith("RESULT ")))


def post_lead(base: str, key: str, client: str | None = None) -> int:
    body = json.dumps({"name": "Probe Client", "email": "probe@example.com", "message": "A probe lead for a fault scenario.",
                       "consent": True}).encode()
    headers = {"Content-Type": "application/json", "Idempotency-Key": key}
    if client:
        headers["X-Forwarded-For"] = client
    req = urllib.request.Request(base + "/api/leads", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def failures(result: dict) -> int:
    return result["failed"] + sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))


def readyz_watch(port: int, stop: threading.Event, samples: list) -> None:
    while not stop.is_set():
        samples.append((time.monotonic(), ready(port)))
        time.sleep(0.1)


# --- scenarios ------------------------------------------------------------------------------

def redis_scenario(args, work: Path) -> dict:
    port = free_port()
    redis_cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 10, "redis up")
    quota = 5
    v = Vantus(args.bin, {"REDIS_URL": f"redis://127.0.0.1:{port}", "VANTUS_TRUSTED_PROXIES": "127.0.0.1/32",
                          "VANTUS_RATE_LIMIT_API": f"{quota}/1m"}, work)
    v.start()
    try:
        wrk = load(v.base, args.duration, args.connections, spread=True)
        time.sleep(args.duration / 4)
        redis.terminate()
        redis.wait(10)
        down_at = time.monotonic()
        # One client over its quota while Redis is down: the local limiter must refuse it.
        probe = [post_lead(v.base, f"redis-probe-{i}-{os.getpid()}", "203.0.113.9") for i in range(quota + 5)]
        time.sleep(max(0.0, args.outage - (time.monotonic() - down_at)))
        redis = subprocess.Popen(redis_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = load_result(wrk, args.duration)
        # The next limited request after Redis is back switches the limiter back to it.
        wait_until(lambda: post_lead(v.base, f"redis-back-{time.monotonic()}", "203.0.113.10") in (202, 429)
                   and v.metric("vantus_rate_limit_backend") == 1.0, 20, "the limiter back on Redis")
        fallbacks = v.metric("vantus_rate_limit_fallbacks_total")
        backend = v.metric("vantus_rate_limit_backend")
    finally:
        v.stop()
        redis.terminate()
    refused = probe.count(429)
    admitted = sum(1 for s in probe if 200 <= s < 300)
    ok = failures(result) == 0 and admitted <= quota and refused >= 5 and fallbacks >= 1 and backend == 1.0
    return {"verdict": ok, "wrk": result, "outage_s": args.outage, "probe_statuses": probe,
            "probe_admitted": admitted, "probe_refused": refused, "quota": quota,
            "rate_limit_fallbacks": fallbacks, "rate_limit_backend_after": backend,
            "summary": f"{failures(result)} failed of {result['requests']} requests; over-quota client: "
                       f"{admitted} admitted (quota {quota}), {refused} refused with Redis down; "
                       f"{fallbacks:.0f} limiter fallbacks counted"}


def maildir_ids(maildir: Path) -> list[str]:
    ids = []
    for sub in ("new", "cur"):
        for f in (maildir / sub).glob("*") if (maildir / sub).is_dir() else []:
            m = re.search(rb"^Message-ID:\s*(\S+)", f.read_bytes(), re.M | re.I)
            ids.append(m.group(1).decode() if m else f.name)
    return ids


def smtp_scenario(args, work: Path) -> dict:
    port, maildir = free_port(), work / "maildir"
    cmd = ["python3", "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Mailbox", str(maildir)]
    smtp = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_until(lambda: socket.socket().connect_ex(("127.0.0.1", port)) == 0, 20, "aiosmtpd up")
    v = Vantus(args.bin, {"SMTP_URL": f"smtp://127.0.0.1:{port}", "SMTP_FROM": "site@vantus.example",
                          "VANTUS_LEADS_NOTIFY": "sales@vantus.example", "VANTUS_OUTBOX_RETRY_BASE": "500ms",
                          "VANTUS_OUTBOX_RETRY_MAX": "2s", "VANTUS_OUTBOX_MAX_ATTEMPTS": "100"}, work)
    v.start()
    db = work / "data" / "vantus.db"
    try:
        wrk = load(v.base, args.duration, args.connections)
        time.sleep(2)
        smtp.terminate()
        smtp.wait(10)
        down_at = time.monotonic()
        time.sleep(args.outage)
        smtp = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        up_at = time.monotonic()
        result = load_result(wrk, args.duration)
        leads = lambda: sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(  # noqa: E731
            "SELECT count(*) FROM leads WHERE spam_reason IS NULL").fetchone()[0]
        drained = wait_until(lambda: pending(db) == 0 and len(maildir_ids(maildir)) >= leads(), 300, "the backlog drained")
        time.sleep(3)  # anything delivered twice would arrive now
        ids, stored = maildir_ids(maildir), leads()
    finally:
        v.stop()
        smtp.terminate()
    duplicates = len(ids) - len(set(ids))
    ok = failures(result) == 0 and result["acked"] <= stored and len(set(ids)) == stored and duplicates == 0
    return {"verdict": ok, "wrk": result, "outage_s": round(up_at - down_at, 1), "leads_acknowledged": result["acked"],
            "leads_stored": stored, "messages": len(ids), "duplicate_messages": duplicates,
            "drain_wait_s": round(drained, 1),
            "summary": f"{result['acked']} leads acknowledged, {stored} stored, {failures(result)} failed requests during "
                       f"a {up_at - down_at:.0f} s SMTP outage; {len(set(ids))} notifications delivered, "
                       f"{duplicates} duplicates; backlog drained {drained:.1f} s after the load ended"}


def pending(db: Path) -> int:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True).execute(
        "SELECT count(*) FROM outbox WHERE status = 'pending'").fetchone()[0]


def as_postgres(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + list(cmd), check=True, capture_output=True, text=True)


class Cluster:
    """A PostgreSQL cluster of its own in `folder` (initdb as the postgres user), so a scenario
    can stop it without touching the test server; or a streaming replica of one."""

    def __init__(self, folder: Path):
        if not PG_BIN:
            raise RuntimeError("no PostgreSQL server binaries (set PG_BIN)")
        self.folder, self.pgdata, self.port = folder, folder / "pgdata", free_port()
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The postgres user must reach the folder through the scenario's private one.
            os.chmod(folder.parent, 0o755)
            shutil.chown(folder, "postgres")
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    @classmethod
    def primary(cls, folder: Path) -> "Cluster":
        c = cls(folder)
        c.pgdata.mkdir()
        if os.geteuid() == 0:
            shutil.chown(c.pgdata, "postgres")
        as_postgres(f"{PG_BIN}/initdb", "-D", str(c.pgdata), "-A", "trust", "-U", "postgres")
        return c

    @classmethod
    def replica_of(cls, primary: "Cluster", folder: Path) -> "Cluster":
        c = cls(folder)
        as_postgres(f"{PG_BIN}/pg_basebackup", "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres",
                    "-D", str(c.pgdata), "-R", "-X", "stream", "--no-sync")
        return c

    def ctl(self, *args: str) -> None:
        as_postgres(f"{PG_BIN}/pg_ctl", "-D", str(self.pgdata), "-w", "-l", str(self.folder / "pg.log"),
                    "-o", f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1", *args)

    def start(self) -> None:
        self.ctl("start")

    def stop(self, mode: str = "fast") -> None:
        self.ctl("stop", "-m", mode)

    def kill(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass  # not running


def postgres_scenario(args, work: Path) -> dict:
    cluster = Cluster.primary(work / "primary")
    cluster.start()
    url = cluster.url
    v = Vantus(args.bin, {"DATABASE_URL": url}, work)
    subprocess.run([args.bin, "migrate"], env=v.env, check=True, capture_output=True)
    v.start()
    samples, stop = [], threading.Event()
    try:
        count = lambda: int(subprocess.run(["psql", "-qtAX", url, "-c", "SELECT count(*) FROM leads"],  # noqa: E731
                                           check=True, capture_output=True, text=True).stdout)
        before = count()
        watcher = threading.Thread(target=readyz_watch, args=(v.port, stop, samples))
        watcher.start()
        wrk = load(v.base, args.duration, args.connections)
        time.sleep(args.duration / 4)
        stopped_at = time.monotonic()
        cluster.stop()
        time.sleep(args.outage)
        started_at = time.monotonic()
        cluster.start()
        result = load_result(wrk, args.duration)
        recovered = wait_until(lambda: ready(v.port), 30, "readiness after the restart")
        stop.set()
        watcher.join()
        stored = count() - before
        same_process = v.proc.poll() is None
    finally:
        stop.set()
        v.stop()
        cluster.kill()
    first_503 = next((t for t, up in samples if t >= stopped_at and not up), None)
    back = next((t for t, up in samples if t >= started_at and up), None)
    to_503 = None if first_503 is None else first_503 - stopped_at
    to_200 = None if back is None else back - started_at
    lost = max(0, result["acked"] - stored)
    ok = (to_503 is not None and to_503 <= 1.0 and to_200 is not None and to_200 <= 10 and lost == 0 and same_process)
    return {"verdict": ok, "wrk": result, "outage_s": args.outage, "readyz_503_after_stop_s": rnd(to_503),
            "readyz_200_after_start_s": rnd(to_200), "readyz_unready_window_s": rnd(back - first_503 if back and first_503 else None),
            "recovered_after_load_s": round(recovered, 2), "leads_acknowledged": result["acked"], "leads_stored": stored,
            "leads_lost": lost, "vantus_restarted": not same_process,
            "summary": f"/readyz 503 {fmt(to_503)} s after the stop, 200 {fmt(to_200)} s after the start "
                       f"(no process restart); {result['acked']} leads acknowledged, {stored} stored, {lost} lost; "
                       f"{failures(result)} requests failed during the outage"}


def replica_scenario(args, work: Path) -> dict:
    """Page reads while the read replica stops: every render falls back to the primary."""
    primary = Cluster.primary(work / "primary")
    primary.start()
    replica = None
    try:
        replica = Cluster.replica_of(primary, work / "replica")
        replica.start()
        v = Vantus(args.bin, {"DATABASE_URL": primary.url, "DATABASE_REPLICA_URLS": replica.url}, work)
        subprocess.run([args.bin, "migrate"], env=v.env, check=True, capture_output=True)
        v.start()
        stop = threading.Event()
        try:
            wait_until(lambda: replica_state(v.port) == "healthy", 30, "the replica to be probed healthy")
            # Publishes keep arriving, so pages keep being rendered (from the replica) rather
            # than served from the page cache.
            publisher = threading.Thread(target=keep_publishing, args=(primary.url, stop))
            publisher.start()
            reads_before = v.metric("vantus_db_replica_fallbacks_total")
            wrk = load(v.base, args.duration, args.connections, posts=False)
            time.sleep(args.duration / 3)
            replica.stop("immediate")
            state_after = wait_until(lambda: replica_state(v.port) != "healthy", 15, "the replica marked down")
            result = load_result(wrk, args.duration)
            fallbacks = v.metric("vantus_db_replica_fallbacks_total") - reads_before
            stop.set()
            publisher.join()
            state = replica_state(v.port)
        finally:
            stop.set()
            v.stop()
    finally:
        if replica:
            replica.kill()
        primary.kill()
    failed = failures(result)
    ok = failed == 0 and result["get_ok"] > 0 and fallbacks > 0
    return {"verdict": ok, "wrk": result, "fallbacks": fallbacks, "replica_state_after": state,
            "marked_down_after_s": round(state_after, 2),
            "summary": f"{result['get_ok']} pages served, {failed} failed; the replica was stopped a third of the "
                       f"way in and marked {state} {state_after:.2f} s later; {fallbacks:.0f} reads fell back to "
                       f"the primary (vantus_db_replica_fallbacks_total)"}


def replica_state(port: int) -> str:
    """The first replica's state as /readyz reports it ("healthy", "unreachable", ...)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        body = json.loads(e.read())
    except OSError:
        return "unknown"
    check = next((c for c in body.get("checks", []) if c.get("name") == "replicas"), {})
    replicas = check.get("replicas") or [{}]
    return replicas[0].get("state", "unknown")


def keep_publishing(url: str, stop: threading.Event) -> None:
    """Bumps the content generation ten times a second through one session, as publishes do."""
    session = subprocess.Popen(["psql", "-qtAX", url], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        while not stop.wait(0.1):
            session.stdin.write("UPDATE site_state SET content_generation = content_generation + 1;\n")
            session.stdin.flush()
    finally:
        session.stdin.close()
        session.wait(timeout=10)


def rnd(x):
    return None if x is None else round(x, 2)


def fmt(x) -> str:
    return "never" if x is None else f"{x:.2f}"


def fill(path: Path) -> None:
    """Writes `path` until the file system has no space left."""
    with open(path, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def disk_scenario(args, work: Path) -> dict:
    mnt, dest = work / "small", work / "backup-disk"
    mnt.mkdir()
    dest.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], check=True)
    try:
        v = Vantus(args.bin, {"VANTUS_DATA_DIR": str(mnt / "data")}, work)
        v.start()
        db = mnt / "data" / "vantus.db"
        ballast = mnt / "ballast"
        free = shutil.disk_usage(mnt).free
        with open(ballast, "wb") as f:  # everything but 256 KiB
            f.write(b"\0" * max(0, free - 256 * 1024))
        wrk = load(v.base, args.duration, args.connections)
        result_full = load_result(wrk, args.duration)
        page_ok = urllib.request.urlopen(v.base + "/", timeout=5).status == 200
        full_status = post_lead(v.base, f"disk-full-{os.getpid()}")
        log_line = any(w in v.logs().lower() for w in ("full", "no space", "disk"))
        ballast.unlink()
        resumed = wait_until(lambda: 200 <= post_lead(v.base, f"disk-freed-{time.monotonic()}") < 300, 30,
                             "writes after freeing space")
        # A backup into a destination that is full fails and leaves nothing behind.
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(dest)], check=True)
        fill(dest / "ballast")
        backup = subprocess.run([args.bin, "backup", "--to", str(dest / "backups")], env=v.env,
                                capture_output=True, text=True)
        leftovers = [str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file() and p.name != "ballast"]
        v.stop()
        integrity = sqlite3.connect(str(db)).execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        subprocess.run(["umount", "-l", str(dest)], capture_output=True)
    s500 = result_full["failed"] - result_full["status_503"] - result_full["status_502"] - result_full["status_504"]
    ok = (result_full["status_503"] > 0 and s500 == 0 and page_ok and full_status == 503 and log_line
          and backup.returncode != 0 and not leftovers and integrity == "ok")
    return {"verdict": ok, "wrk": result_full, "writes_503": result_full["status_503"], "other_failures": s500,
            "page_while_full": page_ok, "post_while_full": full_status, "log_line": log_line,
            "backup_exit": backup.returncode, "backup_error": backup.stderr.strip().splitlines()[-1:] or [""],
            "backup_leftovers": leftovers, "writes_resumed_after_s": round(resumed, 2), "integrity_check": integrity,
            "summary": f"full disk: {result_full['status_503']} writes answered 503, {s500} other failures, pages "
                       f"{'served' if page_ok else 'FAILED'}; backup exit {backup.returncode}, {len(leftovers)} files left; "
                       f"writes back {resumed:.1f} s after freeing space; integrity_check {integrity}"}


def slowloris_scenario(args, work: Path) -> dict:
    header_timeout, request_timeout = 3, 5
    v = Vantus(args.bin, {"VANTUS_HEADER_READ_TIMEOUT": f"{header_timeout}s",
                          "VANTUS_REQUEST_TIMEOUT": f"{request_timeout}s"}, work)
    v.start()
    try:
        base_run = load_result(load(v.base, args.duration, args.connections), args.duration)
        slow_headers, slow_bodies = [], []
        opened = time.monotonic()
        for i in range(args.slow):
            s = socket.create_connection(("127.0.0.1", v.port))
            s.setblocking(False)
            if i % 2:
                s.send(b"POST /api/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{")
                slow_bodies.append([s, None, b""])
            else:
                s.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
                slow_headers.append([s, None, b""])
        wrk = load(v.base, args.duration, args.connections)
        until = time.monotonic() + args.duration
        while time.monotonic() < until:
            for entry in slow_headers + slow_bodies:
                s, closed, _ = entry
                if closed is not None:
                    continue
                try:
                    data = s.recv(4096)
                    if data:
                        entry[2] += data
                    else:
                        entry[1] = time.monotonic() - opened
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    entry[1] = time.monotonic() - opened
                    continue
                try:
                    s.send(b"X" if entry in slow_headers else b" ")
                except OSError:
                    entry[1] = time.monotonic() - opened
            time.sleep(1)
        attack_run = load_result(wrk, args.duration)
    finally:
        v.stop()
    header_closed = [e[1] for e in slow_headers if e[1] is not None]
    body_answered = [e for e in slow_bodies if e[2].startswith(b"HTTP/1.1 ")]
    ratio = attack_run["p99_ms"] / base_run["p99_ms"] if base_run["p99_ms"] else float("inf")
    ok = (len(header_closed) == len(slow_headers) and max(header_closed, default=0) <= header_timeout + 2
          and len(body_answered) == len(slow_bodies) and ratio <= 2.0 and failures(attack_run) == 0)
    return {"verdict": ok, "baseline": base_run, "wrk": attack_run, "slow_connections": args.slow,
            "slow_header_closed": len(header_closed), "slow_header_closed_max_s": rnd(max(header_closed, default=None)),
            "slow_body_answered": len(body_answered),
            "slow_body_statuses": sorted({e[2][9:12].decode() for e in body_answered}),
            "p99_baseline_ms": base_run["p99_ms"], "p99_attack_ms": attack_run["p99_ms"], "p99_ratio": round(ratio, 2),
            "summary": f"{len(header_closed)}/{len(slow_headers)} slow-header connections closed by the server "
                       f"(latest after {fmt(max(header_closed, default=None))} s), {len(body_answered)}/{len(slow_bodies)} "
                       f"slow bodies answered; normal clients' p99 {base_run['p99_ms']:.1f} -> {attack_run['p99_ms']:.1f} ms "
                       f"({ratio:.2f}x)"}


SCENARIOS = {"redis": redis_scenario, "smtp": smtp_scenario, "postgres": postgres_scenario,
             "replica": replica_scenario, "disk": disk_scenario, "slowloris": slowloris_scenario}
TITLES = {"redis": "Redis stopped mid-load", "smtp": "SMTP down under lead load",
          "postgres": "PostgreSQL primary restarted mid-load",
          "replica": "Read replica stopped mid-load", "disk": "Disk full under the SQLite data folder",
          "slowloris": "Slow clients (slowloris) beside normal load"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=int, default=20)
    ap.add_argument("--outage", type=float, default=8)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--slow", type=int, default=200)
    ap.add_argument("--out", default=str(BENCH / "results"))
    args = ap.parse_args()
    for tool in ("wrk", "psql", "redis-server"):
        if not shutil.which(tool):
            sys.exit(f"faults: {tool} is required (apt-get install wrk postgresql-client redis-server)")
    work = Path(tempfile.mkdtemp(prefix=f"vantus-fault-{args.scenario}-"))
    try:
        report = SCENARIOS[args.scenario](args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verdict = "PASS" if report.pop("verdict") else "FAIL"
    report = {"scenario": args.scenario, "verdict": verdict, "connections": args.connections,
              "duration_s": args.duration, **report}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stem = Path(args.out) / f"{stamp}-fault-{args.scenario}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    w = report["wrk"]
    md = [f"# {TITLES[args.scenario]}: {verdict}", "", report["summary"] + ".", "",
          "| requests | failed | p50 / p99 / max ms |", "| --- | --- | --- |",
          f"| {w['requests']} | {failures(w)} | {w['p50_ms']:.1f} / {w['p99_ms']:.1f} / {w['max_ms']:.1f} |", "",
          "```json", json.dumps({k: v for k, v in report.items() if k not in ("wrk", "baseline", "summary")}, indent=2),
          "```", ""]
    stem.with_suffix(".md").write_text("\n".join(md))
    log("\n".join(md))
    log(f"==> results: {stem}.md")
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
