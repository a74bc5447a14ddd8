"""Aggregates bench JSON lines into medians per engine, page and server, and checks targets."""
import argparse
import json
import statistics
from collections import defaultdict

TARGETS = {"ratio": 0.5, "p99_ms": 10.0, "rss_mb": 64.0, "cold_start_ms": 300.0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--meta", default="")
    args = ap.parse_args()
    runs = defaultdict(list)
    memory, cold = {}, None
    with open(args.input) as f:
        for line in f:
            r = json.loads(line)
            if "server" in r:
                runs[(r["engine"], r["page"], r["server"])].append(r)
            elif "rss_after_kb" in r:
                memory[r["engine"]] = r
            elif "cold_start_ms" in r:
                cold = r
    rows = []
    for (engine, page, server), rs in sorted(runs.items()):
        if server != "vantus":
            continue
        ng = runs[(engine, page, "nginx")]
        v_rps = statistics.median(x["rps"] for x in rs)
        n_rps = statistics.median(x["rps"] for x in ng)
        rows.append({
            "engine": engine, "page": page,
            "vantus_rps": round(v_rps), "nginx_rps": round(n_rps), "ratio": round(v_rps / n_rps, 3),
            "vantus_p50_ms": statistics.median(x["p50_ms"] for x in rs),
            "vantus_p99_ms": statistics.median(x["p99_ms"] for x in rs),
            "nginx_p50_ms": statistics.median(x["p50_ms"] for x in ng),
            "nginx_p99_ms": statistics.median(x["p99_ms"] for x in ng),
            "errors": sum(x["non_2xx"] for x in rs),
            "rss_after_mb": round(memory.get(engine, {}).get("rss_after_kb", 0) / 1024, 1),
            "peak_rss_mb": round(memory.get(engine, {}).get("peak_rss_kb", 0) / 1024, 1),
        })
    out = {"meta": args.meta, "rows": rows, "cold_start": cold, "targets": TARGETS}
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    lines = [f"# Benchmark ({args.meta})", "",
             "| engine | page | vantus req/s | nginx req/s | ratio | vantus p50 / p99 ms | nginx p50 / p99 ms | RSS after / peak MB | non-2xx |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['engine']} | `{r['page']}` | {r['vantus_rps']} | {r['nginx_rps']} | {r['ratio']:.2f} | "
                     f"{r['vantus_p50_ms']} / {r['vantus_p99_ms']} | {r['nginx_p50_ms']} / {r['nginx_p99_ms']} | "
                     f"{r['rss_after_mb']} / {r['peak_rss_mb']} | {r['errors']} |")
    if cold:
        lines += ["", f"Cold start to a ready /readyz on an existing SQLite database: median {cold['cold_start_median_ms']} ms "
                      f"(runs: {', '.join(str(t) for t in cold['cold_start_ms'])})."]
    verdicts = []
    for r in rows:
        verdicts.append(f"- {r['engine']} `{r['page']}`: ratio {r['ratio']:.2f} (target ≥ {TARGETS['ratio']}) "
                        f"{'met' if r['ratio'] >= TARGETS['ratio'] else 'MISSED'}; p99 {r['vantus_p99_ms']} ms "
                        f"(target < {TARGETS['p99_ms']}) {'met' if r['vantus_p99_ms'] < TARGETS['p99_ms'] else 'MISSED'}; "
                        f"RSS {r['rss_after_mb']} MB (target < {TARGETS['rss_mb']}) {'met' if r['rss_after_mb'] < TARGETS['rss_mb'] else 'MISSED'}")
    if cold:
        c = cold["cold_start_median_ms"]
        verdicts.append(f"- cold start {c} ms (target < {TARGETS['cold_start_ms']}) {'met' if c < TARGETS['cold_start_ms'] else 'MISSED'}")
    lines += ["", "Targets:", *verdicts, ""]
    with open(args.markdown, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
