"""Turns wrk --latency output (stdin) into one JSON line."""
import argparse
import json
import re
import sys


def to_ms(value: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if not m:
        raise ValueError(f"unreadable latency {value!r}")
    n, unit = float(m.group(1)), m.group(2)
    return round(n * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit], 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    for a in ("--engine", "--server", "--page", "--round"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    text = sys.stdin.read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    pct = {p: to_ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    sock = re.search(r"Socket errors: (.*)", text)
    print(json.dumps({
        "engine": args.engine, "server": args.server, "page": args.page, "round": int(args.round),
        "rps": rps, "p50_ms": pct.get("50"), "p99_ms": pct.get("99"),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": sock.group(1).strip() if sock else "",
    }))


if __name__ == "__main__":
    main()
