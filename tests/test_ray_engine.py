"""``--engine ray``: films' segments on a Ray cluster started for the test (2 CPUs)."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clips import make_clip
from tests.conftest import run_cli_process
from tests.test_video_cli import check_film
from vidcolor.film.job import FilmJob
from vidcolor.film.journal import work_folder
from vidcolor.film.ray import _failure_message

RAY_CLI = [sys.executable, "-c", "from ray.scripts.scripts import main; main()"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ray_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A local Ray head with 2 CPUs and token authentication (the token in ``RAY_AUTH_TOKEN``, which
    the command line passes on to Ray), stopped after the module's tests."""
    pytest.importorskip("ray")
    port = _free_port()
    saved = {name: os.environ.get(name) for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    started = subprocess.run(
        [
            *RAY_CLI,
            "start",
            "--head",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--num-gpus",
            "0",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([*RAY_CLI, "stop", "--force"], capture_output=True, timeout=120)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_three_films_on_a_ray_cluster_and_one_that_fails_alone(tmp_path, ray_address):
    films = tmp_path / "films"
    films.mkdir()
    make_clip(films / "a.mp4", frames=60, fps=24, gop=12, preset="medium", audio=["aac"])
    make_clip(films / "b.mkv", frames=48, fps=24, gop=12, audio=["libopus"], rotation=90)
    make_clip(films / "c.mp4", frames=20, fps=24, vfr=True, audio=["aac"], gop=None)  # one segment
    (films / "d.mp4").write_bytes(b"\x00" * 1000)  # not a film: fails alone
    out = tmp_path / "out"
    result = run_cli_process(
        str(films), "-o", str(out), "--size", "64", "--segment-seconds", "0.5", "--engine", "ray",
        "--ray-address", ray_address,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "colorized 3 of 4" in result.stderr and "d.mp4" in result.stderr
    for name, suffix in (("a", ".mp4"), ("b", ".mkv"), ("c", ".mp4")):
        target = out / f"{name}_color{suffix}"
        check_film(films / f"{name}{suffix}", target)
        assert not work_folder(target).exists()
    assert result.stderr.count("(on Ray)") == 3
    for segments in ("; 5 segments", "; 4 segments", "; 1 segment;"):
        assert segments in result.stderr, result.stderr


def test_without_ray_the_engine_is_a_one_line_error(tmp_path):
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "ray.py").write_text("raise ImportError('no ray here')\n")
    make_clip(tmp_path / "film.mp4", frames=10)
    command = [sys.executable, "-m", "vidcolor", str(tmp_path / "film.mp4"), "--engine", "ray"]
    env = {"PYTHONPATH": str(fake), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 1
    assert "--engine ray needs Ray: pip install 'vidcolor[ray]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ray_only_options_need_the_ray_engine(tmp_path):
    make_clip(tmp_path / "film.mp4", frames=10)
    result = run_cli_process(str(tmp_path / "film.mp4"), "--workers", "2")
    assert result.returncode == 2 and "only with --engine ray" in result.stderr


class _Wrapped(Exception):
    def __init__(self, cause: BaseException) -> None:
        super().__init__("wrapped")
        self.cause = cause


def test_worker_failures_name_the_film():
    from vidcolor.errors import VidcolorError

    job = FilmJob(Path("/films/x.mp4"), Path("/films/x_color.mp4"))
    assert _failure_message(job, _Wrapped(VidcolorError("/films/x.mp4: broken"))) == "/films/x.mp4: broken"
    assert _failure_message(job, _Wrapped(ValueError("odd"))) == "/films/x.mp4: ValueError: odd"
