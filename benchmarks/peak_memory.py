"""Peak memory of the real ``vidcolor`` command line, run in a child process (shared by benchmarks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CODE = (
    "import resource, sys; from vidcolor.cli import main; sys.argv=['vidcolor', *sys.argv[1:]];\n"
    "try:\n    main()\nexcept SystemExit:\n    pass\n"
    "print('PEAK', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def cli_peak_mib(*args: str) -> float:
    """Peak resident memory (MiB) of ``vidcolor ARGS...`` from start to exit.

    Raises:
        subprocess.CalledProcessError: the child failed.
    """
    result = subprocess.run([sys.executable, "-c", _CODE, *args], capture_output=True, text=True, check=True, cwd=ROOT)
    line = [x for x in result.stdout.splitlines() if x.startswith("PEAK")][0]
    return int(line.split()[1]) / 1024
