"""The threading layer of vidcolor's parallel numba kernels (the Potts-model MRF, the film chroma).

numba runs a parallel kernel on the first threading layer it can load from a priority list,
TBB first. OpenVINO ships its own libtbb, so in a process that has loaded OpenVINO numba takes
TBB as well, and at exit numba's TBB pool can wait forever as it unloads: measured here,
``taskset -c 0 vidcolor film.mp4`` (one CPU) wrote the film and then hung in numba's
``unload_tbb``. OpenMP first avoids that; TBB and the workqueue stay as fallbacks (e.g. macOS
without libomp). A priority the user sets (``NUMBA_THREADING_LAYER_PRIORITY``) is kept.
Import this module before any parallel kernel first runs.
"""

from __future__ import annotations

import os

import numba

LAYER_PRIORITY = ["omp", "tbb", "workqueue"]

if "NUMBA_THREADING_LAYER_PRIORITY" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = LAYER_PRIORITY
