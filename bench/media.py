"""Media ingest: the time and peak memory to take in a 24-megapixel JPEG and make its variants.

Called by bench/run (--scenarios media); writes bench/results/<stamp>-media.{json,md}.

A fresh Vantus on SQLite (the engine does not matter here: one row per upload) and one `editor`
account. Each round uploads the same photo through the real form (multipart, form token first)
and waits until its file page says the variants are ready. Reported per round:

* wall time from the POST to the variants being ready (upload, sniff, decode, orientation,
  re-encode of the original, then the background job: decode again, five WebP widths);
* CPU seconds the server process spent on it (user + system, from /proc/<pid>/stat);
* the server's peak RSS (VmHWM) over the whole run, and its peak before the first upload.

Targets: under 3 s of CPU and under 300 MB peak RSS per 24-megapixel photo (release build).

The photo is made with Pillow (pip install pillow) when --image is not given: 6000×4000 of
smooth gradients plus noise, so the encoders have photo-like work to do, saved at quality 90
with an EXIF block (orientation 6), so the orientation path runs too. `--megapixels` makes a
smaller one, for a smoke test against a debug build.
"""
import io
import re
import statistics
import sys
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Vantus, arguments, cpu_seconds, log, parse, post, row, sign_in, verdict, write_results  # noqa: E402

EMAIL = "bench-editor@example.com"
TARGETS = {"cpu_s": 3.0, "peak_rss_mb": 300.0}


def make_photo(megapixels: float) -> bytes:
    try:
        from PIL import Image
    except ImportError as e:
        raise SystemExit("bench/media.py: Pillow makes the test photo (pip install pillow), or pass --image") from e
    width = int((megapixels * 1_000_000 * 1.5) ** 0.5)
    height = int(width / 1.5)
    gradient = Image.linear_gradient("L").resize((width, height))
    noise = Image.effect_noise((width, height), 40)
    rgb = Image.merge("RGB", (gradient, noise, gradient.rotate(180)))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turned 90° clockwise
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def get(url: str, cookie: str) -> str:
    req = urllib.request.Request(url, headers={"Cookie": cookie, "Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def multipart(token: str, photo: bytes) -> tuple:
    boundary = "----vantus-bench-boundary"
    parts = []
    for name, value in (("csrf_token", token), ("alt_text", "Benchmark photo"), ("visibility", "public")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="bench.jpg"\r\n'
                 'Content-Type: image/jpeg\r\n\r\n'.encode())
    parts.append(photo)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def run(args) -> dict:
    photo = Path(args.image).read_bytes() if args.image else make_photo(args.megapixels)
    log(f"   photo: {len(photo) / 1e6:.1f} MB")
    env = {"RUST_LOG": "warn", "VANTUS_MEDIA_MAX_BYTES": "64MiB", "VANTUS_REQUEST_TIMEOUT": "120s"}
    with Vantus(args.bin, "sqlite", "media", env) as v:
        v.run("migrate")
        v.create_user(EMAIL, "editor")
        v.start()
        cookie = sign_in(v.base, EMAIL)
        page = get(v.base + "/admin/media", cookie)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        idle_rss = v.peak_rss_mb()
        rounds = []
        for n in range(1, args.rounds + 1):
            content_type, body = multipart(token, photo)
            cpu0, t0 = cpu_seconds(v.pid), time.monotonic()
            e = post(v.base + "/admin/media", body, {"Content-Type": content_type, "Cookie": cookie}, timeout=120)
            if e.code != 303:
                raise RuntimeError(f"upload answered {e.code}: {e.read()[:300]!r}")
            uploaded = time.monotonic() - t0
            location = e.headers["Location"].split("?")[0]
            deadline = time.monotonic() + args.timeout
            while 'id="variants-state">ready<' not in get(v.base + location, cookie):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"variants not ready after {args.timeout} s")
                time.sleep(0.05)
            r = {"round": n, "upload_s": round(uploaded, 3), "total_s": round(time.monotonic() - t0, 3),
                 "cpu_s": round(cpu_seconds(v.pid) - cpu0, 3)}
            rounds.append(r)
            log(f"   round {n}: upload answered in {r['upload_s']} s, variants ready after {r['total_s']} s, "
                f"{r['cpu_s']} s CPU")
        return {"photo_bytes": len(photo), "rounds": rounds, "peak_rss_before_mb": idle_rss,
                "peak_rss_mb": v.peak_rss_mb()}


def markdown(args, result: dict, summary: dict) -> str:
    return (f"# Media ingest ({args.stamp})\n\n{args.meta}\n\n"
            f"A {args.megapixels:g}-megapixel JPEG ({result['photo_bytes'] / 1e6:.1f} MB), uploaded and its five "
            f"WebP variants made, {len(result['rounds'])} rounds.\n\n"
            "| measure | median | target |\n|---|---|---|\n"
            f"| CPU (upload + variants) | {summary['median_cpu_s']} s | < {TARGETS['cpu_s']} s "
            f"{verdict(summary['meets_cpu_target'])} |\n"
            f"| wall time to variants ready | {summary['median_total_s']} s | |\n"
            f"| peak RSS of the server | {result['peak_rss_mb']} MB | < {TARGETS['peak_rss_mb']} MB "
            f"{verdict(summary['meets_rss_target'])} |\n"
            f"| peak RSS before the first upload | {result['peak_rss_before_mb']} MB | |\n")


def main() -> None:
    ap = arguments(__doc__, duration=None, engines=False)
    ap.add_argument("--megapixels", type=float, default=24.0)
    ap.add_argument("--image", help="a JPEG to upload instead of the generated photo")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = parse(ap)
    if args.megapixels <= 0:
        ap.error("--megapixels must be above 0")
    log(f"==> media: ingest of a {args.megapixels:g}-megapixel JPEG with its variants, {args.rounds} rounds")
    result = run(args)
    cpu = statistics.median(r["cpu_s"] for r in result["rounds"])
    total = statistics.median(r["total_s"] for r in result["rounds"])
    summary = {
        "median_cpu_s": cpu, "median_total_s": total, "peak_rss_mb": result["peak_rss_mb"],
        "meets_cpu_target": cpu < TARGETS["cpu_s"], "meets_rss_target": result["peak_rss_mb"] < TARGETS["peak_rss_mb"],
    }
    rows = [row("media", f"ingest a {args.megapixels:g} MP JPEG + 5 WebP variants", "sqlite",
                result=f"variants ready in {total} s", peak_rss_mb=result["peak_rss_mb"], cpu_s=cpu,
                reference=f"< {TARGETS['cpu_s']} s CPU, < {TARGETS['peak_rss_mb']:.0f} MB (for 24 MP)",
                checks=[(f"CPU {cpu} s < {TARGETS['cpu_s']} s", summary["meets_cpu_target"]),
                        (f"peak RSS {result['peak_rss_mb']} MB < {TARGETS['peak_rss_mb']:.0f} MB",
                         summary["meets_rss_target"])])]
    write_results(args, "media", {"scenario": "media", "megapixels": args.megapixels, "targets": TARGETS,
                                  "summary": summary, **result}, markdown(args, result, summary), rows)


if __name__ == "__main__":
    main()
