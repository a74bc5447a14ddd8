"""Fault scenarios with three `vantus serve` instances behind HAProxy on one PostgreSQL database,
under constant load (bench/lua/mixed_acked.lua: 90% GET /, 10% POST /api/leads):

* rolling: each instance in turn gets SIGTERM (it turns /readyz 503 and serves on for
  VANTUS_SHUTDOWN_DELAY, then drains and exits 0), is started again and must be ready before
  the next. Pass: zero failed requests, zero socket errors, and every acknowledged lead stored.
* crash: one instance gets SIGKILL mid-load and is started again 2 s later (systemd's
  RestartSec in deploy/systemd). Pass: the failed requests are
  at most that instance's share of the connections (what it had in flight), and every
  acknowledged lead is stored.

Loopback only; the load is bounded by --duration. Writes
bench/results/<stamp>-fault-<scenario>.{json,md} and exits 1 on a FAIL verdict.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
from harness import Postgres, free_port  # noqa: E402

LUA = BENCH / "lua" / "mixed_acked.lua"
UNLIMITED = "1000000000/1s"


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def wait_until(check, within: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < within:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not happen within {within} s")


class Instance:
    def __init__(self, n: int, bin_: str, env: dict, work: Path):
        self.n, self.bin, self.port = n, bin_, free_port()
        self.env = dict(env, VANTUS_LISTEN=f"127.0.0.1:{self.port}", VANTUS_DATA_DIR=str(work / f"data{n}"))
        self.log = open(work / f"vantus{n}.log", "a")
        self.proc = None

    def start(self) -> float:
        self.proc = subprocess.Popen([self.bin, "serve"], env=self.env, stdout=subprocess.DEVNULL, stderr=self.log)
        return wait_until(lambda: ready(self.port), 60, f"instance {self.n} ready")

    def signal(self, sig: str) -> None:
        subprocess.run(["kill", f"-{sig}", str(self.proc.pid)], check=True)

    def wait(self, within: float) -> int:
        return self.proc.wait(timeout=within)


def haproxy_config(port: int, backends: list[Instance], work: Path) -> Path:
    servers = "\n".join(f"    server v{i.n} 127.0.0.1:{i.port} check" for i in backends)
    cfg = work / "haproxy.cfg"
    cfg.write_text(f"""global
    maxconn 4096
    pidfile {work}/haproxy.pid
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    # Each retry may go to another server (a killed one refuses at once).
    option redispatch 1
    # A request is retried on another server when it could not be sent, or when the server
    # died before answering. Safe for POST /api/leads here because every lead carries an
    # Idempotency-Key: a lead the dead server committed is replayed, not stored twice.
    retry-on conn-failure empty-response
frontend web
    bind 127.0.0.1:{port}
    default_backend vantus
backend vantus
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 2
{servers}
""")
    return cfg


def lead_count(pg: Postgres, url: str) -> int:
    return int(pg.psql(url, "SELECT count(*) FROM leads").strip())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenario", choices=["rolling", "crash"], required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--duration", type=int, default=40)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--out", default=str(BENCH / "results"))
    args = ap.parse_args()
    for tool in ("haproxy", "wrk", "psql"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            sys.exit(f"faults: {tool} is required (apt-get install haproxy wrk postgresql-client)")
    log = lambda m: print(m, flush=True)  # noqa: E731
    pg = Postgres()
    name = f"vantus_fault_{args.scenario}_{os.getpid()}"
    url = pg.fresh(name)
    work = Path(tempfile.mkdtemp(prefix=f"vantus-fault-{args.scenario}-"))
    env = {
        "PATH": os.environ["PATH"], "DATABASE_URL": url, "RUST_LOG": "warn",
        "VANTUS_RATE_LIMIT_API": UNLIMITED, "VANTUS_RATE_LIMIT_FORMS": UNLIMITED,
        # Above HAProxy's inter 500ms x fall 2: the balancer stops sending before the listener closes.
        "VANTUS_SHUTDOWN_DELAY": "1500ms",
    }
    subprocess.run([args.bin, "migrate"], env=dict(env, VANTUS_DATA_DIR=str(work / "data0")), check=True, capture_output=True)
    instances = [Instance(n, args.bin, env, work) for n in (1, 2, 3)]
    haproxy = wrk = None
    events = []
    try:
        for i in instances:
            i.start()
        port = free_port()
        haproxy = subprocess.Popen(["haproxy", "-f", str(haproxy_config(port, instances, work))],
                                   stdout=subprocess.DEVNULL, stderr=open(work / "haproxy.log", "w"))
        wait_until(lambda: ready(port), 20, "HAProxy to reach an instance")
        time.sleep(1.5)  # every server's first checks pass (rise 2)
        before = lead_count(pg, url)
        started = time.monotonic()
        wrk = subprocess.Popen(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
                                "-s", str(LUA), f"http://127.0.0.1:{port}"],
                               stdout=subprocess.PIPE, text=True)
        time.sleep(5)
        if args.scenario == "rolling":
            for i in instances:
                t0 = time.monotonic()
                i.signal("TERM")
                code = i.wait(60)
                down = time.monotonic() - t0
                up = i.start()
                events.append({"instance": i.n, "at_s": round(t0 - started, 1), "exit_code": code,
                               "stop_s": round(down, 2), "ready_after_restart_s": round(up, 2)})
                log(f"   instance {i.n}: SIGTERM at {t0 - started:.1f}s, exited {code} after {down:.2f}s, "
                    f"ready again {up:.2f}s later")
                time.sleep(2)  # HAProxy's rise 2 at inter 500ms, then the next one
        else:
            victim = instances[1]
            t0 = time.monotonic()
            victim.signal("KILL")
            victim.wait(10)
            # Restarted as systemd does (deploy/systemd: RestartSec=2s). A process that is
            # still starting answers 503 until it is ready, so it must be out of the balancer
            # (HAProxy marks it down on refused checks) before it comes back.
            time.sleep(2)
            up = victim.start()
            events.append({"instance": victim.n, "at_s": round(t0 - started, 1), "signal": "KILL",
                           "ready_after_restart_s": round(up, 2)})
            log(f"   instance {victim.n}: SIGKILL at {t0 - started:.1f}s, ready again {up:.2f}s later")
        roll_ended = time.monotonic() - started
        out, _ = wrk.communicate(timeout=args.duration + 60)
        result = json.loads(next(line[7:] for line in out.splitlines() if line.startswith("RESULT ")))
        time.sleep(1)
        stored = lead_count(pg, url) - before
    finally:
        if wrk and wrk.poll() is None:
            wrk.kill()
        if haproxy:
            haproxy.terminate()
        for i in instances:
            if i.proc and i.proc.poll() is None:
                i.proc.terminate()
                i.proc.wait(timeout=60)
        pg.drop(name)
        subprocess.run(["rm", "-rf", str(work)])
    socket_errors = sum(result[k] for k in ("connect_errors", "read_errors", "write_errors", "timeouts"))
    lost = max(0, result["acked"] - stored)
    if args.scenario == "rolling":
        bound = 0
        ok = result["failed"] == 0 and socket_errors == 0 and lost == 0 and all(e["exit_code"] == 0 for e in events)
    else:
        # What one of three instances can have in flight: its share of the connections.
        bound = -(-args.connections // 3)
        ok = result["failed"] + socket_errors <= bound and lost == 0
    report = {"scenario": args.scenario, "verdict": "PASS" if ok else "FAIL", "connections": args.connections,
              "duration_s": args.duration, "events": events, "events_ended_at_s": round(roll_ended, 1),
              "wrk": result, "leads_acknowledged": result["acked"], "leads_stored": stored, "leads_lost": lost,
              "socket_errors": socket_errors, "failure_bound": bound,
              "requests_per_s": round(result["requests"] / (result["duration_us"] / 1e6), 1)}
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    stem = Path(args.out) / f"{stamp}-fault-{args.scenario}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    title = {"rolling": "Rolling restart of 3 instances behind HAProxy", "crash": "SIGKILL of 1 of 3 instances behind HAProxy"}
    md = [f"# {title[args.scenario]}: {report['verdict']}", "",
          f"{args.connections} connections for {args.duration} s (90% `GET /`, 10% `POST /api/leads`), PostgreSQL, "
          f"`VANTUS_SHUTDOWN_DELAY=1500ms`, HAProxy `inter 500ms fall 2 rise 2`, `retry-on conn-failure empty-response`.", "",
          "| requests | req/s | failed (non-2xx/5xx) | socket errors | leads acknowledged | leads stored | lost | p50 / p99 / max ms |",
          "| --- | --- | --- | --- | --- | --- | --- | --- |",
          f"| {result['requests']} | {report['requests_per_s']} | {result['failed']} | {socket_errors} | {result['acked']} | "
          f"{stored} | {lost} | {result['p50_ms']:.1f} / {result['p99_ms']:.1f} / {result['max_ms']:.1f} |", "",
          "Events:", ""] + [f"- {json.dumps(e)}" for e in events] + [
          "", f"Verdict: {report['verdict']} (failures allowed: {bound}; every acknowledged lead must be stored).", ""]
    stem.with_suffix(".md").write_text("\n".join(md))
    log("\n".join(md))
    log(f"==> results: {stem}.md")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
