"""Media ingest: the time and peak memory to take in a 24-megapixel JPEG and make its variants.

Called by bench/run (--scenarios media); writes bench/results/<stamp>-media.{json,md}.

A fresh Vantus on SQLite (the engine does not matter here: one row per upload) and one `editor`
account. Each round uploads the same photo through the real form (multipart, form token first)
and waits until its file page says the variants are ready. Reported per round:

* wall time from the POST to the variants being ready (upload, sniff, decode, orientation,
  re-encode of the original, then the background job: decode again, five WebP widths);
* CPU seconds the server process spent on it (user + system, from /proc/<pid>/stat);
* the server's peak RSS (VmHWM) over the whole run, and its RSS before the first upload.

Targets: under 3 s of CPU and under 300 MB peak RSS per 24-megapixel photo (release build).

The photo is made with Pillow (pip install pillow) when --image is not given: 6000×4000 of
smooth gradients plus noise, so the encoders have photo-like work to do, saved at quality 90
with an EXIF block (orientation 6), so the orientation path runs too. `--megapixels` makes a
smaller one, for a smoke test against a debug build.
"""
import argparse
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from leads import free_port, wait_ready  # noqa: E402

EMAIL = "bench-editor@example.com"
PASSWORD = "violet tractor ninety lanterns"
TARGETS = {"cpu_s": 3.0, "peak_rss_mb": 300.0}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):  # noqa: D102
        return None


def post(url: str, body: bytes, headers: dict) -> urllib.error.HTTPError:
    req = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        urllib.request.build_opener(NoRedirect).open(req, timeout=120)
    except urllib.error.HTTPError as e:
        return e
    raise RuntimeError(f"{url} did not redirect")


def get(url: str, cookie: str) -> str:
    req = urllib.request.Request(url, headers={"Cookie": cookie, "Accept": "text/html"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read().decode()


def sign_in(base: str) -> str:
    body = urllib.parse.urlencode({"email": EMAIL, "password": PASSWORD}).encode()
    e = post(base + "/admin/login", body, {"Content-Type": "application/x-www-form-urlencoded"})
    if e.code != 303:
        raise RuntimeError(f"sign-in answered {e.code}")
    return e.headers["Set-Cookie"].split(";")[0]


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


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} for {pid}")


def run(args) -> dict:
    photo = Path(args.image).read_bytes() if args.image else make_photo(args.megapixels)
    log(f"   photo: {len(photo) / 1e6:.1f} MB")
    work = Path(tempfile.mkdtemp(prefix="vantus-bench-media-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ["PATH"], "VANTUS_LISTEN": f"127.0.0.1:{port}", "VANTUS_DATA_DIR": str(work / "data"),
        "RUST_LOG": "warn", "VANTUS_MEDIA_MAX_BYTES": "64MiB", "VANTUS_REQUEST_TIMEOUT": "120s",
        **({"MALLOC_ARENA_MAX": os.environ["MALLOC_ARENA_MAX"]} if "MALLOC_ARENA_MAX" in os.environ else {}),
    }
    subprocess.run([args.bin, "migrate"], env=env, check=True, capture_output=True)
    subprocess.run([args.bin, "user", "create", "--email", EMAIL, "--role", "editor", "--name", "Bench",
                    "--password-stdin"], env=env, input=PASSWORD + "\n", text=True, check=True, capture_output=True)
    with open(work / "vantus.err", "w") as err:
        proc = subprocess.Popen([args.bin, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_ready(base, proc)
        cookie = sign_in(base)
        page = get(base + "/admin/media", cookie)
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        idle_rss = status_kb(proc.pid, "VmRSS")
        rounds = []
        for n in range(1, args.rounds + 1):
            content_type, body = multipart(token, photo)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            e = post(base + "/admin/media", body, {"Content-Type": content_type, "Cookie": cookie})
            if e.code != 303:
                raise RuntimeError(f"upload answered {e.code}: {e.read()[:300]!r}")
            uploaded = time.monotonic() - t0
            location = e.headers["Location"].split("?")[0]
            deadline = time.monotonic() + args.timeout
            while 'id="variants-state">ready<' not in get(base + location, cookie):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"variants not ready after {args.timeout} s")
                time.sleep(0.05)
            r = {"round": n, "upload_s": round(uploaded, 3), "total_s": round(time.monotonic() - t0, 3),
                 "cpu_s": round(cpu_seconds(proc.pid) - cpu0, 3)}
            rounds.append(r)
            log(f"   round {n}: upload answered in {r['upload_s']} s, variants ready after {r['total_s']} s, "
                f"{r['cpu_s']} s CPU")
        return {"photo_bytes": len(photo), "rounds": rounds, "idle_rss_mb": round(idle_rss / 1024, 1),
                "peak_rss_mb": round(status_kb(proc.pid, "VmHWM") / 1024, 1)}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--megapixels", type=float, default=24.0)
    p.add_argument("--image", help="a JPEG to upload instead of the generated photo")
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--out")
    p.add_argument("--stamp", default=time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    p.add_argument("--meta", default="")
    args = p.parse_args()
    log(f"==> media: ingest of a {args.megapixels:g}-megapixel JPEG with its variants, {args.rounds} rounds")
    result = run(args)
    cpu = sorted(r["cpu_s"] for r in result["rounds"])[len(result["rounds"]) // 2]
    total = sorted(r["total_s"] for r in result["rounds"])[len(result["rounds"]) // 2]
    summary = {
        "median_cpu_s": cpu, "median_total_s": total, "peak_rss_mb": result["peak_rss_mb"],
        "meets_cpu_target": cpu < TARGETS["cpu_s"], "meets_rss_target": result["peak_rss_mb"] < TARGETS["peak_rss_mb"],
    }
    report = {"scenario": "media", "megapixels": args.megapixels, "meta": args.meta, "targets": TARGETS,
              "summary": summary, **result}
    print(json.dumps(summary))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"{args.stamp}-media.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"{args.stamp}-media.md").write_text(
            f"# Media ingest ({args.stamp})\n\n{args.meta}\n\n"
            f"A {args.megapixels:g}-megapixel JPEG ({result['photo_bytes'] / 1e6:.1f} MB), uploaded and its five "
            f"WebP variants made, {len(result['rounds'])} rounds.\n\n"
            "| measure | median | target |\n|---|---|---|\n"
            f"| CPU (upload + variants) | {cpu} s | < {TARGETS['cpu_s']} s |\n"
            f"| wall time to variants ready | {total} s | |\n"
            f"| peak RSS of the server | {result['peak_rss_mb']} MB | < {TARGETS['peak_rss_mb']} MB |\n"
            f"| RSS before the first upload | {result['idle_rss_mb']} MB | |\n")


if __name__ == "__main__":
    main()
