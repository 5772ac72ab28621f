"""Shared fixtures: paths, the shared data folder, generated images."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"

torch.set_num_threads(2)


@pytest.fixture(scope="session", autouse=True)
def export_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of exported networks for the whole session (the CLI's children inherit it), so
    that tests never write to the user's own cache."""
    folder = tmp_path_factory.mktemp("vidcolor-cache")
    previous = os.environ.get("VIDCOLOR_CACHE")
    os.environ["VIDCOLOR_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("VIDCOLOR_CACHE", None)
    else:
        os.environ["VIDCOLOR_CACHE"] = previous


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def smooth_colour_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A colourful ``(H, W, 3)`` uint8 test image: gradients plus a few coloured blocks."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack(
        [128 + 100 * np.sin(x / 17.0 + seed), 128 + 100 * np.cos(y / 23.0), 128 + 90 * np.sin((x + y) / 31.0)], axis=2
    )
    for _ in range(4):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        image[top : top + height // 4, left : left + width // 4] = rng.integers(0, 256, 3)
    return image.clip(0, 255).astype(np.uint8)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Run the real ``vidcolor`` command line in this process (click's test runner), its output
    captured as text: a child process would spend about 3 s importing torch, OpenVINO and FFmpeg
    each time. An exception that escapes the command is appended to ``stderr`` as a traceback.
    Tests of what only a process shows (signals, exit at the end, resource limits, Ray) use
    :func:`run_cli_process`."""
    from click.testing import CliRunner

    from vidcolor.cli import main

    result = CliRunner().invoke(main, list(args), prog_name="vidcolor")
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["vidcolor", *args], result.exit_code, result.stdout, stderr)


def run_cli_process(*args: str) -> subprocess.CompletedProcess:
    """Run the real ``vidcolor`` command line in a child process; output captured as text."""
    return subprocess.run([sys.executable, "-m", "vidcolor", *args], capture_output=True, text=True, timeout=600)
