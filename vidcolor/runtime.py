"""Where the network runs: PyTorch itself, or the model exported to an inference runtime.

PyTorch's eager mode leaves much of a CPU unused. On the CPU, vidcolor exports the network
once per weights, input shape and runtime version, caches the export, and runs it with
OpenVINO (the default dependency: ``openvino.convert_model`` converts the PyTorch module
directly, no ONNX needed) or ONNX Runtime (the ``onnx`` extra). On CUDA the network runs in
PyTorch. Every runner takes the network's normalised input ``(B, 1, h, w)`` float32 and
returns its float32 output on the colorizer's device; the batch size B may vary, the shape
(h, w) is fixed per runner. The arithmetic is f32, or bf16 where asked (:func:`resolve_precision`).

Cache entries live under ``$VIDCOLOR_CACHE`` (default ``$XDG_CACHE_HOME/vidcolor`` or
``~/.cache/vidcolor``), in ``runtimes/``, named by a hash of everything the export depends on
(the network's class and every weight, the input shape, the runtime's and torch's versions).
Files are written under temporary names and renamed; a manifest holding every file's SHA-256 is
written last. An entry whose manifest is missing or whose files do not match it is rebuilt,
never used.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidcolor.errors import VidcolorError
from vidcolor.models.base import ColorNet

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
# The network's arithmetic: ``auto`` is bf16 on CUDA (autocast) and f32 on the CPU, where bf16
# (OpenVINO on a CPU with AVX512-BF16 or AMX: about 2x f32) moves the colours by more than the
# 0.5 Lab units the runtimes keep to, so it is asked for by name.
PRECISIONS = ("auto", "f32", "bf16")
# What `auto` tries on the CPU, fastest first: OpenVINO gives the fastest films (bench_video.py;
# the network alone at batch 8 on 2 threads, bench_model.py: OpenVINO 1.5-2.0x eager PyTorch,
# ONNX Runtime 2.0-2.4x, but ONNX Runtime's NCHW output is slower to decode).
CPU_PREFERENCE = ("openvino", "onnxruntime")
INSTALL_HINT = {"openvino": "pip install openvino", "onnxruntime": "pip install 'vidcolor[onnx]'"}
ONNX_OPSET = 17
INPUT_NAME, OUTPUT_NAME = "lightness", "output"

Runner = Callable[[torch.Tensor], torch.Tensor]


def installed(runtime: str) -> bool:
    """Whether the packages ``runtime`` needs can be imported (torch always can)."""
    if runtime == "torch":
        return True
    needs = {"openvino": ("openvino",), "onnxruntime": ("onnxruntime", "onnx")}[runtime]
    return all(importlib.util.find_spec(name) is not None for name in needs)


def resolve_runtime(name: str, device: torch.device) -> str:
    """The runtime that ``--runtime name`` means on ``device``.

    ``auto``: PyTorch on CUDA; on the CPU the fastest runtime installed (OpenVINO, then ONNX
    Runtime, then PyTorch).

    Raises:
        VidcolorError: an unknown runtime, one that is not installed, or a CPU runtime asked for
        on a GPU.
    """
    if name not in RUNTIMES:
        raise VidcolorError(f"--runtime must be one of {', '.join(RUNTIMES)}, got {name!r}")
    if name == "auto":
        if device.type != "cpu":
            return "torch"
        return next((r for r in CPU_PREFERENCE if installed(r)), "torch")
    if name != "torch" and device.type != "cpu":
        raise VidcolorError(f"--runtime {name} runs on the CPU; use --runtime torch (or auto) with --device {device}")
    if not installed(name):
        raise VidcolorError(f"--runtime {name}: not installed ({INSTALL_HINT[name]})")
    return name


def cpu_has_bf16() -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU (AVX512-BF16 or AMX), not emulated."""
    if not installed("openvino"):
        return False
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve_precision(name: str, runtime: str, device: torch.device) -> str:
    """The precision (``f32`` or ``bf16``) that ``--precision name`` means for ``runtime`` (resolved)
    on ``device``.

    ``auto``: bf16 on CUDA (autocast; fp16 where bf16 is missing), f32 on the CPU. ``bf16`` on a
    CPU: OpenVINO's bf16 inference (about 2x f32 where the CPU has AVX512-BF16 or AMX; the colours
    move by 0.24-0.86 Lab units on average, ``benchmarks/RESULTS.md``; f32 where it has neither),
    or PyTorch under bf16 autocast.

    Raises:
        VidcolorError: an unknown precision, or bf16 asked of ONNX Runtime (f32 only on the CPU).
    """
    if name not in PRECISIONS:
        raise VidcolorError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        return "bf16" if device.type == "cuda" else "f32"
    if name == "bf16" and runtime == "onnxruntime":
        raise VidcolorError("--precision bf16: ONNX Runtime computes f32 on the CPU; use --runtime openvino or torch")
    return name


def cache_root() -> Path:
    """The folder for cached exports: ``$VIDCOLOR_CACHE``, else ``$XDG_CACHE_HOME/vidcolor``."""
    if os.environ.get("VIDCOLOR_CACHE"):
        return Path(os.environ["VIDCOLOR_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vidcolor"


def _version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino

        return openvino.__version__
    import onnxruntime

    return onnxruntime.__version__


def export_key(model: ColorNet, runtime: str, shape: tuple[int, int]) -> str:
    """A hash of everything an export depends on: the network's class and weights, the input
    shape ``(h, w)``, the runtime's and torch's versions."""
    height, width = shape
    digest = hashlib.sha256()
    digest.update(f"{type(model).__module__}.{type(model).__qualname__}|{height}x{width}|{runtime}".encode())
    digest.update(f"|{_version(runtime)}|{torch.__version__}".encode())
    for name, tensor in sorted(model.state_dict().items()):
        value = tensor.detach().cpu().contiguous()
        digest.update(f"|{name}|{value.dtype}|{tuple(value.shape)}|".encode())
        digest.update(value.view(-1).view(torch.uint8).numpy().tobytes() if value.numel() else b"")
    return digest.hexdigest()[:32]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ExportCache:
    """Exported networks on disk, one entry per key: its files and a manifest of their hashes."""

    def __init__(self, root: Path | None = None) -> None:
        self.folder = (root or cache_root()) / "runtimes"

    def _manifest(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def lookup(self, key: str) -> dict[str, Path] | None:
        """The entry's files by role (e.g. ``{"model": ...}``) if whole and unchanged, else None."""
        try:
            manifest = json.loads(self._manifest(key).read_text())
            files = {role: self.folder / entry["name"] for role, entry in manifest["files"].items()}
            if all(_sha256(files[role]) == entry["sha256"] for role, entry in manifest["files"].items()):
                return files
        except (OSError, ValueError, KeyError, TypeError):
            pass
        return None

    def store(self, key: str, write: Callable[[Path], dict[str, Path]]) -> dict[str, Path]:
        """Build an entry: ``write(folder)`` writes the files into a scratch folder and returns them
        by role; they are moved into the cache and the manifest written last.

        Raises:
            OSError: the cache folder cannot be written.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.folder, prefix=f".{key}.") as scratch:
            written = write(Path(scratch))
            files: dict[str, Path] = {}
            entries = {}
            for role, path in written.items():
                target = self.folder / f"{key}{''.join(path.suffixes)}"
                entries[role] = {"name": target.name, "sha256": _sha256(path)}
                os.replace(path, target)
                files[role] = target
            manifest = Path(scratch) / "manifest.json"
            manifest.write_text(json.dumps({"files": entries}, indent=1))
            os.replace(manifest, self._manifest(key))
        return files


def _example(shape: tuple[int, int]) -> torch.Tensor:
    return torch.zeros(1, 1, *shape)


def _convert_openvino(model: ColorNet, shape: tuple[int, int]) -> object:
    """``model`` as an OpenVINO model with a dynamic batch of ``(1, h, w)`` inputs."""
    import openvino

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notices
        return openvino.convert_model(
            model, example_input=_example(shape), input=[openvino.PartialShape([-1, 1, *shape])]
        )


def _write_openvino(model: ColorNet, shape: tuple[int, int], folder: Path) -> dict[str, Path]:
    import openvino

    xml = folder / "model.xml"
    openvino.save_model(_convert_openvino(model, shape), str(xml), compress_to_fp16=False)
    return {"model": xml, "weights": xml.with_suffix(".bin")}


def _export_onnx(model: ColorNet, shape: tuple[int, int], destination: str | io.BytesIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (_example(shape),),
            destination,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


def _write_onnx(model: ColorNet, shape: tuple[int, int], folder: Path) -> dict[str, Path]:
    path = folder / "model.onnx"
    _export_onnx(model, shape, str(path))
    return {"model": path}


def _exported(model: ColorNet, runtime: str, shape: tuple[int, int], cache: ExportCache | None) -> dict[str, Path]:
    """The cached export of ``model`` for ``runtime`` (built when missing or damaged)."""
    write = {"openvino": _write_openvino, "onnxruntime": _write_onnx}[runtime]
    cache = cache or ExportCache()
    key = export_key(model, runtime, shape)
    files = cache.lookup(key)
    if files is not None:
        return files
    with torch.no_grad():
        return cache.store(key, lambda folder: write(model, shape, folder))


def _openvino_runner(source: Path | object, threads: int, precision: str = "f32") -> Runner:
    """Compile an OpenVINO model (an IR file, or a converted model in memory) for the CPU, its
    arithmetic in ``precision`` (``f32`` or ``bf16``; bf16 falls back to f32 on a CPU without it).

    The output is asked for in NHWC, closer to the blocked layout OpenVINO computes it in (its
    final reorder of 8 frames' logits took 22 ms on one thread against 33 for NCHW, measured), and
    handed on as an ``(B, Q, h, w)`` view with channels_last strides: the layout the decoding
    reads fastest and the one PyTorch's CPU runner gives.
    """
    import openvino
    from openvino.preprocess import PrePostProcessor

    core = openvino.Core()
    model = core.read_model(str(source)) if isinstance(source, Path) else source
    steps = PrePostProcessor(model)
    steps.output().model().set_layout(openvino.Layout("NCHW"))
    steps.output().tensor().set_layout(openvino.Layout("NHWC"))
    compiled = core.compile_model(
        steps.build(),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision},
    )
    request = compiled.create_infer_request()

    def run(net_input: torch.Tensor) -> torch.Tensor:
        result = request.infer({0: np.ascontiguousarray(net_input.numpy(), dtype=np.float32)}, share_inputs=True)
        return torch.from_numpy(np.array(result[compiled.output(0)], copy=True)).permute(0, 3, 1, 2)

    return run


def _onnx_runner(source: Path | bytes, threads: int) -> Runner:
    """An ONNX Runtime CPU session of an ONNX model (a file, or its bytes)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    model = str(source) if isinstance(source, Path) else source
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(net_input: torch.Tensor) -> torch.Tensor:
        (out,) = session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(net_input.numpy(), dtype=np.float32)})
        return torch.from_numpy(out)

    return run


def _in_memory_runner(model: ColorNet, runtime: str, shape: tuple[int, int], threads: int, precision: str) -> Runner:
    """Export and compile without touching the disk (when the cache cannot be written)."""
    with torch.no_grad():
        if runtime == "openvino":
            return _openvino_runner(_convert_openvino(model, shape), threads, precision)
        buffer = io.BytesIO()
        _export_onnx(model, shape, buffer)
        return _onnx_runner(buffer.getvalue(), threads)


def torch_runner(model: ColorNet, device: torch.device, precision: str) -> Runner:
    """Run ``model`` (already on ``device``, eval mode) in PyTorch, channels_last on the CPU
    (oneDNN's native layout: about 1.4x the frames/s of NCHW for the default model), under
    autocast when ``precision`` is ``bf16`` (on CUDA without bf16: fp16)."""
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model.to(memory_format=memory_format)
    half = precision == "bf16"
    dtype = torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        dtype = torch.float16

    def run(net_input: torch.Tensor) -> torch.Tensor:
        autocast = torch.autocast(device.type, dtype=dtype) if half else contextlib.nullcontext()
        with autocast:
            return model(net_input.contiguous(memory_format=memory_format)).float()

    return run


def make_runner(
    model: ColorNet,
    runtime: str,
    device: torch.device,
    shape: tuple[int, int],
    precision: str = "f32",
    cache: ExportCache | None = None,
) -> Runner:
    """A function running ``model`` on ``(B, 1, h, w)`` input with ``runtime`` (resolved, not
    ``auto``), ``shape`` = (h, w) (the PyTorch runner takes any shape), in ``precision``
    (resolved: ``f32`` or ``bf16``; see :func:`resolve_precision`).

    When the export cannot be cached (a read-only home, a full disk), it is built in memory for
    this run only.

    Raises:
        VidcolorError: the export or the runtime's compilation failed.
    """
    if runtime == "torch":
        return torch_runner(model, device, precision)
    threads = torch.get_num_threads()
    model = model.float().eval()
    try:
        files = _exported(model, runtime, shape, cache)
        if runtime == "openvino":
            return _openvino_runner(files["model"], threads, precision)
        return _onnx_runner(files["model"], threads)
    except Exception:  # noqa: BLE001 - the cache or the runtime failed: try once more in memory
        pass
    try:
        return _in_memory_runner(model, runtime, shape, threads, precision)
    except Exception as error:  # noqa: BLE001 - the runtimes raise their own exception types
        raise VidcolorError(f"--runtime {runtime}: could not prepare the network ({error})") from error
