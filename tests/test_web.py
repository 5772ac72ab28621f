"""`vidcolor serve`'s HTTP interface through Flask's test client: photos, hints, films, jobs,
keyframes, reports, and the refusals (paths outside the folder, oversize and bad uploads)."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.clips import make_clip
from tests.conftest import smooth_colour_image
from tests.test_hints import lab_of

flask = pytest.importorskip("flask")

from vidcolor.film.job import FilmOptions  # noqa: E402
from vidcolor.film.journal import work_folder  # noqa: E402
from vidcolor.web.files import Refused, inside, safe_stem  # noqa: E402
from vidcolor.web.server import create_app  # noqa: E402


def grey_photo(path: Path, height: int = 64, width: int = 96, sixteen: bool = False) -> None:
    grey = np.asarray(Image.fromarray(smooth_colour_image(height, width)).convert("L"))
    if sixteen:
        Image.fromarray(grey.astype(np.uint16) * 257).save(path)
    else:
        Image.fromarray(grey).save(path)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A served folder with a photo and a film with sound, and a client of its page."""
    root = tmp_path_factory.mktemp("served")
    grey_photo(root / "photo.png")
    make_clip(root / "film.mp4", frames=24)
    app = create_app(root, upload_limit=3_000_000, film_base=FilmOptions(segment_seconds=2))
    return root, app.test_client()


def upload(client, name: str, data: bytes):
    return client.post("/api/photos", data={"files": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def png_bytes(array: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, "PNG")
    return out.getvalue()


def render(client, photo_id: str, settings: dict | None = None, hints: bytes | None = None):
    data = {"settings": json.dumps(settings or {})}
    if hints is not None:
        data["hints"] = (io.BytesIO(hints), "hints.png")
    return client.post(f"/api/photos/{photo_id}/render", data=data, content_type="multipart/form-data")


def test_paths_from_the_page_never_lead_outside_the_served_folder(served, tmp_path):
    root, client = served
    outside = tmp_path / "secret.mp4"
    make_clip(outside, frames=4)
    (root / "link.mp4").symlink_to(outside)
    for bad in ("../secret.mp4", str(outside), "link.mp4", "..%2fsecret.mp4", ""):
        response = client.get("/api/films/facts", query_string={"path": bad})
        assert (
            response.status_code == 400
            and "inside the served folder" in response.json["error"]
            or (response.status_code == 400 and "no such file" in response.json["error"])
        ), (bad, response.json)
    response = client.post("/api/photos/from-folder", json={"path": "../" + outside.name})
    assert response.status_code == 400
    assert client.get("/reports/../" + outside.name).status_code in (400, 404)
    assert "link.mp4" not in [f["path"] for f in client.get("/api/files").json["files"]]
    (root / "link.mp4").unlink()
    with pytest.raises(Refused):
        inside(root, "a/../../b")
    assert inside(root, "a/../photo.png") == (root / "photo.png").resolve()
    assert safe_stem("../../etc/pass wd.jpg") == "pass_wd" and safe_stem("..") == "upload"


def test_a_non_image_upload_and_an_oversize_one_are_refused_with_a_message_and_leave_nothing(served):
    root, client = served
    app = client.application
    photos = app.extensions["vidcolor"]["desk"].folder
    before = sorted(photos.glob("*")) if photos.exists() else []
    response = upload(client, "notes.jpg", b"these are not pixels")
    assert response.status_code == 400 and "notes.jpg: neither an image nor a video" in response.json["error"]
    response = upload(client, "huge.png", b"\0" * 3_100_000)
    assert response.status_code == 413 and "upload larger than the 3 MB limit" in response.json["error"]
    response = client.post(
        "/api/films", data={"file": (io.BytesIO(b"nope"), "../../film.mp4")}, content_type="multipart/form-data"
    )
    assert response.status_code == 400 and "film.mp4" in response.json["error"]
    assert (sorted(photos.glob("*")) if photos.exists() else []) == before
    assert not list((root / "uploads").glob("*")) if (root / "uploads").exists() else True
    assert not (root.parent / "film.mp4").exists()


def test_a_photo_renders_at_full_resolution_and_a_hint_pulls_the_colour_under_it(served):
    _, client = served
    response = upload(client, "portrait.png", (served[0] / "photo.png").read_bytes())
    photo = response.json["photos"][0]
    assert (photo["width"], photo["height"]) == (96, 64)
    assert render(client, photo["id"]).status_code == 200
    plain = np.asarray(Image.open(io.BytesIO(client.get(f"/api/photos/{photo['id']}/download").data)))
    assert plain.shape == (64, 96, 3)
    strokes = np.zeros((64, 96, 4), np.uint8)
    strokes[20:44, 30:66] = (30, 60, 220, 255)  # blue, opaque
    response = render(client, photo["id"], hints=png_bytes(strokes))
    assert response.status_code == 200, response.json
    hinted = np.asarray(Image.open(io.BytesIO(client.get(f"/api/photos/{photo['id']}/download").data)))
    b_plain, b_hinted = lab_of(plain[24:40, 34:62])[..., 2].mean(), lab_of(hinted[24:40, 34:62])[..., 2].mean()
    assert b_hinted < b_plain - 15  # much bluer under the stroke
    wrong = render(client, photo["id"], hints=png_bytes(strokes[:10]))
    assert wrong.status_code == 400 and "hints" in wrong.json["error"]
    bad = render(client, photo["id"], settings={"decode": "sepia"})
    assert bad.status_code == 400 and "decode" in bad.json["error"]


def test_downloads_keep_the_command_lines_format_and_bit_depth(served, tmp_path):
    _, client = served
    grey_photo(tmp_path / "deep.png", sixteen=True)
    photo = upload(client, "deep.png", (tmp_path / "deep.png").read_bytes()).json["photos"][0]
    assert render(client, photo["id"], {"decode": "mrf", "mrf_iters": 3}).status_code == 200
    response = client.get(f"/api/photos/{photo['id']}/download")
    assert "deep_color.png" in response.headers["Content-Disposition"]
    assert cv2_depth(response.data) == np.uint16
    archive = zipfile.ZipFile(io.BytesIO(client.get("/api/photos.zip").data))
    assert "deep_color.png" in archive.namelist() and "portrait_color.png" in archive.namelist()


def cv2_depth(data: bytes):
    import cv2

    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).dtype


def wait_for(client, job_id: str, seconds: float = 120) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = next(j for j in client.get("/api/jobs").json["jobs"] if j["id"] == job_id)
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['state']}")


def test_a_keyframe_made_on_the_page_colours_the_film_job_and_the_download_is_the_film(served):
    root, client = served
    assert client.get("/api/films/frame.png", query_string={"path": "film.mp4", "t": 99}).status_code == 422
    frame = client.get("/api/films/frame.png", query_string={"path": "film.mp4", "t": 0.5})
    assert frame.status_code == 200
    shape = np.asarray(Image.open(io.BytesIO(frame.data))).shape
    strokes = np.zeros((*shape[:2], 4), np.uint8)
    strokes[:, :] = (40, 200, 60, 255)  # the whole frame green
    response = client.post(
        "/api/films/keyframe",
        data={"path": "film.mp4", "t": "0.5", "settings": "{}", "hints": (io.BytesIO(png_bytes(strokes)), "h.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.json
    assert response.json["keyframe"].startswith("keyframes/film/t0.5")
    assert client.get("/api/films/keyframes", query_string={"path": "film.mp4"}).json["keyframes"]
    job = client.post("/api/jobs", json={"path": "film.mp4", "settings": {}}).json["job"]
    again = client.post("/api/jobs", json={"path": "film.mp4"})
    assert again.status_code == 400 and "already queued" in again.json["error"]
    done = wait_for(client, job["id"])
    assert done["state"] == "done", done
    assert done["frames"] == done["total"] == 24
    film = client.get(f"/api/jobs/{job['id']}/download")
    path = root / "downloaded.mkv"
    path.write_bytes(film.data)
    with av.open(str(path)) as container:
        assert container.streams.audio
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 24
    middle = lab_of(frames[12])
    assert middle[..., 1].mean() < -10  # green: the keyframe's colour carried through the shot
    exists = client.post("/api/jobs", json={"path": "film.mp4"})
    assert exists.status_code == 400 and "exists" in exists.json["error"]
    path.unlink()
    for name in ("film_color.mp4",):
        (root / name).unlink()
    for keyframe in (root / "keyframes" / "film").glob("*"):
        keyframe.unlink()
    assert client.get("/api/films/keyframes", query_string={"path": "film.mp4"}).json["keyframes"] == []


def test_a_running_job_can_be_cancelled_keeping_its_segments_and_the_events_stream_progress(served, tmp_path):
    root, client = served
    make_clip(root / "long.mp4", frames=240, gop=12)
    job = client.post("/api/jobs", json={"path": "long.mp4", "settings": {"decode": "mrf"}}).json["job"]
    events = client.get("/api/jobs/events", buffered=False)
    first = next(events.response).decode()
    assert first.startswith("data: ") and "long.mp4" in first
    events.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = next(j for j in client.get("/api/jobs").json["jobs"] if j["id"] == job["id"])
        if state["state"] == "running" and state["frames"] > 60:  # past the first 2-second segment
            break
        time.sleep(0.05)
    client.post(f"/api/jobs/{job['id']}/cancel")
    ended = wait_for(client, job["id"])
    assert ended["state"] == "cancelled" and "start it again to resume" in ended["message"]
    assert not (root / "long_color.mp4").exists()
    assert list(work_folder(root / "long_color.mp4").glob("*"))  # the finished segments and the journal
    resumed = wait_for(
        client, client.post("/api/jobs", json={"path": "long.mp4", "settings": {"decode": "mrf"}}).json["job"]["id"]
    )
    assert resumed["state"] == "done" and "kept" in resumed["message"], resumed
    with av.open(str(root / "long_color.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 240
    (root / "long_color.mp4").unlink()


def test_eval_reports_in_the_folder_are_listed_and_served_and_nothing_else_is(served):
    root, client = served
    report = root / "report"
    report.mkdir()
    (report / "metrics.json").write_text("{}")
    (report / "index.html").write_text("<h1>report</h1>")
    (root / "private.html").write_text("secret")
    assert client.get("/api/files").json["reports"] == ["report"]
    assert client.get("/reports/report/index.html").data == b"<h1>report</h1>"
    assert client.get("/reports/private.html").status_code == 400
    assert client.get("/reports/report/../private.html").status_code in (400, 404)


def test_an_uploaded_film_lands_in_the_uploads_folder_under_a_name_made_by_the_server(served, tmp_path):
    root, client = served
    make_clip(tmp_path / "reel.mp4", frames=6)
    response = client.post(
        "/api/films",
        data={"file": ((tmp_path / "reel.mp4").open("rb"), "../../my reel.mp4")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200, response.json
    relative = response.json["path"]
    assert relative.startswith("uploads/my_reel-") and relative.endswith(".mp4")
    assert (root / relative).is_file() and relative in [f["path"] for f in client.get("/api/files").json["files"]]
    assert client.get("/api/films/facts", query_string={"path": relative}).json["frames"] == 6
    (root / relative).unlink()


def test_vidcolor_serve_prints_its_loopback_address_and_serves_the_folder(tmp_path):
    import subprocess
    import sys
    import urllib.request

    grey_photo(tmp_path / "photo.png")
    server = subprocess.Popen(
        [sys.executable, "-m", "vidcolor", "serve", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = server.stdout.readline()
        assert "http://127.0.0.1:" in line and str(tmp_path) in line, line
        url = line.split(" at ")[1].split()[0]
        with urllib.request.urlopen(url + "api/files", timeout=30) as response:
            assert json.loads(response.read())["files"] == [{"kind": "image", "path": "photo.png"}]
        with urllib.request.urlopen(url, timeout=30) as response:
            assert b"<title>vidcolor</title>" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
