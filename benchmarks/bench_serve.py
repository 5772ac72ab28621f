"""The web page against the command line, same machine, same run (issue: the page's speed).

    python benchmarks/bench_serve.py [--photo PHOTO] [--film FILM] [--runs 2]

Photo: a grey photo of about 1 Mpx (default: a Kodak photo of ../shared/data/val scaled to
1152x864). The command line's time is the whole `vidcolor PHOTO -o OUT` process (start, model
load, colouring, writing); the page's, with a `vidcolor serve` process already started, is the
browser's work: upload, render at full resolution and fetch the picture shown; the first render
builds the colorizer (as every CLI run does), later ones reuse it. Target: page <= 2x the CLI.

Film: frames per second of `vidcolor FILM -o OUT` (the whole process, and the rate it reports for
the film itself, after start-up) against a film job of the page (submitted through the API, timed
from the submission to the job's end, its first run building the colorizer); runs alternate.
Target: page >= 0.9x the CLI.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import av
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, fields: dict[str, str] | None = None, files: dict[str, Path] | None = None) -> dict:
    """POST multipart form data (or nothing) and return the JSON answer."""
    boundary = uuid.uuid4().hex
    body = b""
    for name, value in (fields or {}).items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    for name, path in (files or {}).items():
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{path.name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            + path.read_bytes()
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    request = urllib.request.Request(url, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def post_json(url: str, payload: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(payload).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=3600) as response:
        return json.loads(response.read())


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=3600) as response:
        return response.read()


def start_server(folder: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "vidcolor", "serve", str(folder), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            get(url + "/api/files")
            return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


def cli_seconds(*args: str) -> tuple[float, str]:
    """The whole process's wall time, and what it printed."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "vidcolor", *args, "--overwrite", "--quiet"], check=True, capture_output=True, text=True
    )
    return time.perf_counter() - started, done.stdout + done.stderr


def page_photo_seconds(url: str, photo: Path) -> float:
    started = time.perf_counter()
    photo_id = post(url + "/api/photos", files={"files": photo})["photos"][0]["id"]
    post(f"{url}/api/photos/{photo_id}/render", fields={"settings": "{}"})
    get(f"{url}/api/photos/{photo_id}/colour.png")
    return time.perf_counter() - started


def film_frames(film: Path) -> int:
    with av.open(str(film)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def page_film_seconds(url: str, relative: str) -> float:
    started = time.perf_counter()
    job = post_json(url + "/api/jobs", {"path": relative, "settings": {}, "overwrite": True})["job"]
    while True:
        jobs = {j["id"]: j for j in json.loads(get(url + "/api/jobs"))["jobs"]}
        if jobs[job["id"]]["state"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    if jobs[job["id"]]["state"] != "done":
        raise SystemExit(f"the page's job ended {jobs[job['id']]}")
    return time.perf_counter() - started


def default_photo(folder: Path) -> Path:
    source = sorted((SHARED / "data" / "val" / "kodak24").glob("*"))[0]
    grey = Image.open(source).convert("L").resize((1152, 864), Image.LANCZOS)
    path = folder / "megapixel.png"
    grey.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path)
    parser.add_argument("--film", type=Path, default=SHARED / "data" / "video" / "chaplin-bw.mp4")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        photo = folder / "photo.png"
        Image.open(args.photo or default_photo(folder)).save(photo)
        film = folder / ("film" + args.film.suffix)
        film.write_bytes(args.film.read_bytes())
        frames = film_frames(film)
        width, height = Image.open(photo).size
        print(f"photo {width}x{height} ({width * height / 1e6:.2f} Mpx); film {frames} frames")
        server, url = start_server(folder)
        try:
            for run in range(args.runs):
                cli, _ = cli_seconds(str(photo), "-o", str(folder / "cli_color.png"))
                page = [page_photo_seconds(url, photo) for _ in range(2)]
                print(
                    f"run {run + 1} photo: CLI {cli:.2f} s; page {page[0]:.2f} s ({page[0] / cli:.2f}x)"
                    + (" first render" if run == 0 else "")
                    + f", {page[1]:.2f} s ({page[1] / cli:.2f}x) again"
                )
            for run in range(args.runs):
                cli, printed = cli_seconds(str(film), "-o", str(folder / "cli_color.mp4"))
                inner = float(re.search(r"\(([\d.]+) fps\)", printed).group(1))  # its own count, after start-up
                page = page_film_seconds(url, film.name)
                print(
                    f"run {run + 1} film: CLI process {frames / cli:.1f} fps ({cli:.1f} s), its film {inner:.1f} fps; "
                    f"page job {frames / page:.1f} fps ({page:.1f} s): page/CLI process {cli / page:.2f}, "
                    f"page/CLI film {frames / page / inner:.2f}"
                )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
