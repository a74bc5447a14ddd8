"""Cold start: time from spawning `vantus serve` on an existing SQLite database to the first
200 from /readyz, polled every millisecond; then SIGTERM, which must stop it within 10 s (a run
that does not is killed and counted: a server that ignores SIGTERM is a finding, not a reason to
stop the bench). Used by bench/pages.py; run alone, it prints one JSON line with every run, the
median and that count."""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import free_port, terminate  # noqa: E402


def ready(port: int) -> bool:
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        c.request("GET", "/readyz")
        ok = c.getresponse().status == 200
        c.close()
        return ok
    except OSError:
        return False


def cold_start(bin_: str, data: str, runs: int) -> dict:
    times, kept_running = [], 0
    for _ in range(runs):
        port = free_port()
        env = {"PATH": os.environ.get("PATH", ""), "VANTUS_LISTEN": f"127.0.0.1:{port}",
               "VANTUS_DATA_DIR": data, "RUST_LOG": "warn"}
        started = time.perf_counter()
        p = subprocess.Popen([bin_, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = started + 10
        while not ready(port):
            if time.perf_counter() > deadline or p.poll() is not None:
                p.kill()
                raise RuntimeError("cold start: the server never became ready")
            time.sleep(0.001)
        times.append(round((time.perf_counter() - started) * 1000, 1))
        try:
            terminate(p, within=10)
        except RuntimeError:
            kept_running += 1
    return {"cold_start_ms": times, "cold_start_median_ms": round(statistics.median(times), 1),
            "kept_running_after_sigterm": kept_running}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    print(json.dumps(cold_start(args.bin, args.data, args.runs)))


if __name__ == "__main__":
    main()
