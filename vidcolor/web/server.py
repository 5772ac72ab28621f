"""``vidcolor serve``: the local web page's HTTP interface (Flask).

Routes (JSON unless said otherwise; errors are ``{"error": message}`` with a 4xx status):

* ``GET /``: the page. ``GET /api/files``: the photos and films under the served folder, and
  its eval reports.
* Photos: ``POST /api/photos`` (multipart ``files``) keeps uploads;
  ``GET /api/photos/<id>/grey.png``, ``/colour.png`` (pictures for the page),
  ``POST /api/photos/<id>/render`` (multipart: ``settings`` JSON, optional ``hints`` PNG),
  ``GET /api/photos/<id>/download`` (full resolution, the command line's format),
  ``GET /api/photos.zip`` (every result). ``POST /api/photos/from-folder`` takes a photo of the folder.
* Films: ``POST /api/films`` (upload into ``DIR/uploads``), ``GET /api/films/facts?path=``,
  ``GET /api/films/frame.png?path=&t=``, ``POST /api/films/keyframe`` (path, t, hints),
  ``GET /api/films/keyframes?path=``, ``POST /api/films/preview`` (path, seconds, settings) then
  ``GET /api/previews/<name>``.
* Jobs: ``POST /api/jobs`` (path, settings, overwrite), ``GET /api/jobs``,
  ``GET /api/jobs/events`` (server-sent events: every job's progress twice a second),
  ``POST /api/jobs/<id>/cancel``, ``GET /api/jobs/<id>/download``.
* ``GET /reports/<path>``: the files of an eval report folder (one holding ``metrics.json``)
  under the served folder.

Paths from the page are resolved inside the served folder (:func:`vidcolor.web.files.inside`);
uploads are stored under names made here.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from flask import Flask, Response, jsonify, request, send_file
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from vidcolor.colorizer import ColorizerSpec
from vidcolor.decoding import ALL_DECODINGS
from vidcolor.errors import VidcolorError
from vidcolor.film.engine import colorize_film
from vidcolor.film.job import FilmJob, FilmOptions
from vidcolor.image import read_image
from vidcolor.inputs import sniff_kind
from vidcolor.web.files import Refused, inside, list_media, relative_name, served_files, store_upload
from vidcolor.web.films import (
    LONGEST_PREVIEW,
    PREVIEW_SECONDS,
    FilmQueue,
    colour_keyframe,
    cut_opening,
    film_facts,
    film_frame,
    keyframes_of,
    page_keyframes,
    quiet_console,
)
from vidcolor.web.photos import ColorizerCache, PhotoDesk, grey_png, preview_png

STATIC = Path(__file__).with_name("static")
UPLOADS_FOLDER = "uploads"
DEFAULT_UPLOAD_LIMIT = 2_000_000_000
REPORT_SUFFIXES = {".html", ".json", ".csv", ".png", ".jpg", ".jpeg", ".css"}
EVENT_SECONDS = 0.5


def page_spec(base: ColorizerSpec, settings: dict, desk: PhotoDesk | None = None) -> ColorizerSpec:
    """The colorizer the page's settings ask for, on top of ``base`` (the server's model, size,
    device and runtime). ``settings``: ``decode`` (one of ALL_DECODINGS or empty for the model's),
    ``temperature``, ``mrf_iters``, ``mrf_sigma``, ``temporal``, ``reference`` (a photo id).

    Raises:
        Refused: a setting out of range or of the wrong type.
    """
    try:
        method = settings.get("decode") or None
        if method is not None and method not in ALL_DECODINGS:
            raise Refused(f"decode: {method!r} is not one of {', '.join(ALL_DECODINGS)}")
        temperature = settings.get("temperature")
        temperature = None if temperature in (None, "") else float(temperature)
        if temperature is not None and not 0 < temperature <= 2:
            raise Refused("temperature: must be in (0, 2]")
        iterations = int(settings.get("mrf_iters") or base.mrf.iterations)
        sigma = float(settings.get("mrf_sigma") or base.mrf.sigma)
        if not 1 <= iterations <= 100 or sigma <= 0:
            raise Refused("MRF: sweeps 1-100 and a positive sigma")
    except (TypeError, ValueError) as error:
        raise Refused(f"settings: {error}") from None
    reference = None
    if settings.get("reference") and desk is not None:
        reference = desk.get(str(settings["reference"])).source
    return replace(
        base,
        decode_method=method,
        temperature=temperature,
        mrf=replace(base.mrf, iterations=iterations, sigma=sigma),
        temporal=bool(settings.get("temporal", True)),
        reference=reference,
    )


def _settings() -> dict:
    raw = request.form.get("settings") if request.form else None
    if raw is None:
        return (request.get_json(silent=True) or {}).get("settings", {})
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        raise Refused("settings: not JSON") from None


def _hints_bytes() -> bytes | None:
    hints = request.files.get("hints")
    return hints.read() if hints is not None else None


def _body() -> dict:
    if request.form:
        return request.form.to_dict()
    return request.get_json(silent=True) or {}


def create_app(
    root: Path,
    base: ColorizerSpec | None = None,
    upload_limit: int = DEFAULT_UPLOAD_LIMIT,
    film_base: FilmOptions | None = None,
) -> Flask:
    """The page's Flask app, serving ``root`` (nothing outside it) with colorizers built from
    ``base`` and the page's settings, film jobs run with ``film_base``'s options (segments,
    batch size, encoder; the film's keyframes added); uploads above ``upload_limit`` bytes are
    refused."""
    root = root.resolve()
    base = base or ColorizerSpec()
    film_base = film_base or FilmOptions()
    app = Flask(__name__, static_folder=STATIC, static_url_path="/static")  # Flask's safe static files
    app.config["MAX_CONTENT_LENGTH"] = upload_limit
    work = Path(tempfile.mkdtemp(prefix="vidcolor-serve-"))  # the page's photos, frames, previews
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    colorizers = ColorizerCache()
    desk = PhotoDesk(work / "photos", colorizers, upload_limit)
    films = FilmQueue()
    app.extensions["vidcolor"] = {"root": root, "desk": desk, "films": films, "work": work}

    @app.errorhandler(Refused)
    def refused(error: Refused):
        return jsonify(error=str(error)), 400

    @app.errorhandler(VidcolorError)
    def failed(error: VidcolorError):
        return jsonify(error=str(error)), 422

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(error: RequestEntityTooLarge):
        return jsonify(
            error=f"upload larger than the {upload_limit / 1e6:.0f} MB limit (vidcolor serve --max-upload)"
        ), 413

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return jsonify(error=f"{error.code} {error.name}"), error.code

    @app.get("/")
    def page():
        return send_file(STATIC / "index.html")

    def media(relative: str, kind: str) -> Path:
        path = inside(root, relative)
        if not path.is_file():
            raise Refused(f"{relative}: no such file in the served folder")
        if sniff_kind(path) != kind:
            raise Refused(f"{relative}: not a {'photo' if kind == 'image' else 'film'}")
        return path

    @app.get("/api/files")
    def files():
        reports = sorted(
            relative_name(root, p.parent)
            for p in served_files(root)
            if p.name == "metrics.json" and (p.parent / "index.html").is_file()
        )
        return jsonify(files=list_media(root), reports=reports, folder=root.name)

    # photos
    def photo_json(photo) -> dict:
        return {
            "id": photo.id,
            "name": photo.name,
            "width": photo.width,
            "height": photo.height,
            "rendered": photo.result is not None,
            "seconds": round(photo.seconds, 3),
            "notices": photo.notices,
        }

    @app.post("/api/photos")
    def add_photos():
        uploads = request.files.getlist("files")
        if not uploads:
            raise Refused("no file in the upload")
        added, errors = [], []
        for upload in uploads:
            try:
                added.append(photo_json(desk.add(upload.stream, upload.filename or "upload")))
            except Refused as error:
                errors.append(str(error))
        status = 200 if added else 400
        return jsonify(photos=added, errors=errors, error="; ".join(errors) if errors else None), status

    @app.post("/api/photos/from-folder")
    def photo_from_folder():
        path = media(str(_body().get("path", "")), "image")
        with path.open("rb") as stream:
            return jsonify(photos=[photo_json(desk.add(stream, path.name))], errors=[])

    @app.get("/api/photos/<photo_id>/grey.png")
    def photo_grey(photo_id: str):
        return Response(grey_png(read_image(desk.get(photo_id).source)), mimetype="image/png")

    @app.get("/api/photos/<photo_id>/colour.png")
    def photo_colour(photo_id: str):
        photo = desk.get(photo_id)
        if photo.result is None:
            raise Refused(f"{photo.name}: not rendered yet")
        return Response(preview_png(photo.result), mimetype="image/png", headers={"Cache-Control": "no-store"})

    @app.post("/api/photos/<photo_id>/render")
    def render_photo(photo_id: str):
        photo = desk.render(photo_id, page_spec(base, _settings(), desk), _hints_bytes())
        return jsonify(photo=photo_json(photo))

    @app.get("/api/photos/<photo_id>/download")
    def download_photo(photo_id: str):
        photo = desk.get(photo_id)
        if photo.result is None:
            raise Refused(f"{photo.name}: not rendered yet")
        return send_file(photo.result, as_attachment=True, download_name=desk.download_name(photo))

    @app.get("/api/photos.zip")
    def download_photos():
        if not any(p.result for p in desk.photos.values()):
            raise Refused("no photo rendered yet")
        return Response(
            desk.archive(),
            mimetype="application/zip",
            headers={"Content-Disposition": "attachment; filename=vidcolor-photos.zip"},
        )

    # films
    @app.post("/api/films")
    def upload_film():
        upload = request.files.get("file")
        if upload is None:
            raise Refused("no file in the upload")
        path, _ = store_upload(
            upload.stream, upload.filename or "film", root / UPLOADS_FOLDER, ("video",), upload_limit
        )
        return jsonify(path=relative_name(root, path))

    @app.get("/api/films/facts")
    def facts():
        return jsonify(film_facts(media(request.args.get("path", ""), "video")))

    @app.get("/api/films/frame.png")
    def frame():
        path = media(request.args.get("path", ""), "video")
        try:
            seconds = float(request.args.get("t", "0"))
        except ValueError:
            raise Refused("t: not a number of seconds") from None
        written = film_frame(path, seconds, work / "frames" / path.stem)
        return send_file(written, mimetype="image/png", download_name=written.name)

    @app.post("/api/films/keyframe")
    def keyframe():
        body = _body()
        path = media(str(body.get("path", "")), "video")
        seconds = float(body.get("t", 0))
        hints = _hints_bytes()
        if hints is None:
            raise Refused("a keyframe needs colour strokes on its frame")
        grey = film_frame(path, seconds, work / "frames" / path.stem)
        target = colour_keyframe(grey, hints, keyframes_of(root, path), colorizers, page_spec(base, _settings()))
        return jsonify(keyframe=relative_name(root, target))

    @app.get("/api/films/keyframes")
    def keyframes():
        path = media(request.args.get("path", ""), "video")
        return jsonify(keyframes=[relative_name(root, k) for k in page_keyframes(root, path)])

    @app.get("/api/folder-file")
    def folder_file():
        """A picture of the served folder (a keyframe made here, say), for the page to show."""
        path = media(request.args.get("path", ""), "image")
        return Response(preview_png(path), mimetype="image/png", headers={"Cache-Control": "no-store"})

    def film_options(path: Path) -> FilmOptions:
        has_keyframes = bool(page_keyframes(root, path))
        return replace(film_base, keyframes=keyframes_of(root, path) if has_keyframes else None)

    @app.post("/api/films/preview")
    def preview():
        body = request.get_json(silent=True) or {}
        path = media(str(body.get("path", "")), "video")
        seconds = min(LONGEST_PREVIEW, max(0.5, float(body.get("seconds") or PREVIEW_SECONDS)))
        spec = page_spec(base, body.get("settings", {}))
        folder = work / "previews"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = f"{path.stem}-{time.time_ns()}"
        opening, target = folder / f"{stamp}-grey.mkv", folder / f"{stamp}.mp4"
        cut_opening(path, seconds, opening)
        options = replace(film_options(path), segment_seconds=0, accept_truncated=True)
        try:
            with colorizers.lock:
                colorize_film(FilmJob(opening, target, options), colorizers.use(spec), quiet_console(), quiet=True)
        finally:
            opening.unlink(missing_ok=True)
        return jsonify(preview=f"/api/previews/{target.name}", seconds=seconds)

    @app.get("/api/previews/<name>")
    def preview_file(name: str):
        path = inside(work / "previews", name)
        if not path.is_file():
            raise Refused(f"no preview {name!r}")
        return send_file(path, mimetype="video/mp4")

    # jobs
    @app.post("/api/jobs")
    def submit():
        body = request.get_json(silent=True) or {}
        relative = str(body.get("path", ""))
        path = media(relative, "video")
        task = films.submit(
            path, relative, page_spec(base, body.get("settings", {})), film_options(path), bool(body.get("overwrite"))
        )
        return jsonify(job=task.snapshot())

    @app.get("/api/jobs")
    def jobs():
        return jsonify(jobs=films.snapshot())

    @app.get("/api/jobs/events")
    def job_events():
        def stream():
            last = None
            while True:
                now = json.dumps(films.snapshot())
                if now != last:
                    yield f"data: {now}\n\n"
                    last = now
                else:
                    yield ": still here\n\n"
                time.sleep(EVENT_SECONDS)

        return Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.post("/api/jobs/<task_id>/cancel")
    def cancel(task_id: str):
        return jsonify(job=films.cancel(task_id).snapshot())

    @app.get("/api/jobs/<task_id>/download")
    def download_film(task_id: str):
        task = films.get(task_id)
        if task.state != "done" or not task.target.is_file():
            raise Refused(f"{task.label}: not finished")
        return send_file(task.target, as_attachment=True, download_name=task.target.name)

    # eval reports
    @app.get("/reports/<path:relative>")
    def report_file(relative: str):
        path = inside(root, relative)
        folder = path if path.is_dir() else path.parent
        if path.is_dir():
            path = path / "index.html"
        folders = [f for f in (folder, *folder.parents) if f == root or root in f.parents]
        within = any((f / "metrics.json").is_file() for f in folders)
        if not within or path.suffix.lower() not in REPORT_SUFFIXES or not path.is_file():
            raise Refused(f"{relative}: not a file of an eval report")
        return send_file(path)

    return app
