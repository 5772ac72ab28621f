"""Where the network runs: PyTorch itself, or the model exported to an inference runtime.

PyTorch's eager mode leaves much of a CPU unused. On the CPU, vidcolor exports the network
once per weights, input shape and runtime version, caches the export, and runs it with
OpenVINO (the default dependency: ``openvino.convert_model`` converts the PyTorch module
directly, no ONNX needed) or ONNX Runtime (the ``onnx`` extra). On CUDA the network runs in
PyTorch. Every runner takes the network's normalised input ``(B, 1, h, w)`` float32 and
returns its float32 output on the colorizer's device; the batch size B may vary, the shape
(h, w) is fixed per runner. The arithmetic is f32, bf16, or mixed: the network's first layers in
f32 and the rest in bf16, each half exported and compiled on its own (:func:`resolve_precision`).

Cache entries live under ``$VIDCOLOR_CACHE`` (default ``$XDG_CACHE_HOME/vidcolor`` or
``~/.cache/vidcolor``), in ``runtimes/``, named by a hash of everything the export depends on
(the network's class and every weight, the input shape, the runtime's and torch's versions).
Files are written under temporary names and renamed; a manifest holding every file's SHA-256 is
written last. An entry whose manifest is missing or whose files do not match it is rebuilt,
never used.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import io
import json
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from vidcolor.errors import VidcolorError
from vidcolor.models.base import ColorNet

RUNTIMES = ("auto", "torch", "openvino", "onnxruntime")
# The network's arithmetic. bf16 everywhere (OpenVINO on a CPU with AVX512-BF16 or AMX: about 2.5x
# f32) moves the colours by more than the 0.5 Lab units the runtimes keep to, mostly through the
# first layers' rounding; ``mixed`` keeps those in f32 (ColorNet.halves) at most of bf16's speed.
PRECISIONS = ("auto", "f32", "mixed", "bf16")
# What `auto` tries on the CPU, fastest first: OpenVINO gives the fastest films (bench_video.py;
# the network alone at batch 8 on 2 threads, bench_model.py: OpenVINO in f32 1.5-2.0x eager
# PyTorch, in mixed precision 3.6x where bf16 is native; ONNX Runtime 2.0-2.4x, f32 only, and
# its NCHW output is slower to decode).
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


@functools.cache
def cpu_has_bf16() -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU (AVX512-BF16 or AMX), not emulated."""
    if not installed("openvino"):
        return False
    import openvino

    return "BF16" in openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def resolve_precision(name: str, runtime: str, device: torch.device, halves: bool = False) -> str:
    """The precision (``f32``, ``mixed`` or ``bf16``) that ``--precision name`` means for ``runtime``
    (resolved) on ``device``, for a network that can (``halves``) or cannot be cut in two
    (:meth:`vidcolor.models.base.ColorNet.halves`).

    ``auto``: bf16 on CUDA (autocast; fp16 where bf16 is missing); on the CPU ``mixed`` where
    OpenVINO runs the network on a CPU with native bf16 and the network can be cut, else f32.
    ``mixed``: the network's first layers in f32, the rest in bf16 (colours 0.06-0.11 Lab units from
    f32 on average, ``benchmarks/RESULTS.md``). ``bf16`` on a CPU: OpenVINO's bf16 inference (the
    colours move by 0.23-0.86 Lab units on average) or PyTorch under bf16 autocast. OpenVINO
    computes f32 where the CPU has no native bf16.

    Raises:
        VidcolorError: an unknown precision, bf16 or mixed asked of ONNX Runtime (f32 only on the
        CPU), or mixed asked for a network that cannot be cut.
    """
    if name not in PRECISIONS:
        raise VidcolorError(f"--precision must be one of {', '.join(PRECISIONS)}, got {name!r}")
    if name == "auto":
        if device.type == "cuda":
            return "bf16"
        return "mixed" if runtime == "openvino" and halves and cpu_has_bf16() else "f32"
    if name != "f32" and runtime == "onnxruntime":
        raise VidcolorError(
            f"--precision {name}: ONNX Runtime computes f32 on the CPU; use --runtime openvino or torch"
        )
    if name == "mixed" and not halves:
        raise VidcolorError("--precision mixed: this model cannot be cut in two; use f32 or bf16")
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


def export_key(model: ColorNet, runtime: str, shape: tuple[int, int], part: str = "") -> str:
    """A hash of everything an export depends on: the network's class and weights, the input
    shape ``(h, w)``, the runtime's and torch's versions, and which ``part`` of the network
    (``""``: all of it; ``prefix`` or ``rest``: :meth:`ColorNet.halves`)."""
    height, width = shape
    digest = hashlib.sha256()
    name = f"{type(model).__module__}.{type(model).__qualname__}"
    digest.update(f"{name}|{height}x{width}|{runtime}{'|' + part if part else ''}".encode())
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


def _convert_openvino(module: torch.nn.Module, example: torch.Tensor) -> object:
    """``module`` as an OpenVINO model with a dynamic batch of inputs shaped like ``example[0]``."""
    import openvino

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.trace's deprecation notices
        return openvino.convert_model(
            module, example_input=example, input=[openvino.PartialShape([-1, *example.shape[1:]])]
        )


def _write_openvino(module: torch.nn.Module, example: torch.Tensor, folder: Path) -> dict[str, Path]:
    import openvino

    xml = folder / "model.xml"
    openvino.save_model(_convert_openvino(module, example), str(xml), compress_to_fp16=False)
    return {"model": xml, "weights": xml.with_suffix(".bin")}


def _export_onnx(module: torch.nn.Module, example: torch.Tensor, destination: str | io.BytesIO) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module,
            (example,),
            destination,
            dynamo=False,
            opset_version=ONNX_OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
        )


def _write_onnx(module: torch.nn.Module, example: torch.Tensor, folder: Path) -> dict[str, Path]:
    path = folder / "model.onnx"
    _export_onnx(module, example, str(path))
    return {"model": path}


def _parts(model: ColorNet, precision: str, shape: tuple[int, int]) -> list[tuple[str, torch.nn.Module, torch.Tensor]]:
    """What to export, in order: ``(part, module, example input)``; the whole network, or its
    prefix and rest for mixed precision."""
    example = torch.zeros(1, 1, *shape)
    if precision != "mixed":
        return [("", model, example)]
    prefix, rest = model.halves()
    with torch.no_grad():
        return [("prefix", prefix, example), ("rest", rest, prefix(example))]


def _exported(
    model: ColorNet, runtime: str, shape: tuple[int, int], part: str, module: torch.nn.Module, example: torch.Tensor,
    cache: ExportCache | None,
) -> dict[str, Path]:  # fmt: skip
    """The cached export of ``module`` (``part`` of ``model``) for ``runtime`` (built when missing
    or damaged)."""
    write = {"openvino": _write_openvino, "onnxruntime": _write_onnx}[runtime]
    cache = cache or ExportCache()
    key = export_key(model, runtime, shape, part)
    files = cache.lookup(key)
    if files is not None:
        return files
    with torch.no_grad():
        return cache.store(key, lambda folder: write(module, example, folder))


class OutputArrays:
    """Arrays that OpenVINO writes a network's output into, handed on as tensors without a copy
    (a copy of 8 frames' logits, 35 MB, took about a tenth of the network's time). An array is
    written again only once nothing but this pool refers to it; at most ``limit`` are kept."""

    def __init__(self, limit: int = 4) -> None:
        self.limit = limit
        self._slots: list[tuple[np.ndarray, object]] = []  # an array and the OpenVINO tensor over it
        # The reference count of a pooled array that no one else holds (its slot, the OpenVINO
        # tensor over it, the call's argument where the interpreter counts it), measured on a probe
        # through the same code path rather than assumed.
        self._slots.append(self._slot((1,)))
        self._free_count = self._references(0)
        self._slots.clear()

    def take(self, shape: tuple[int, ...]) -> tuple[np.ndarray, object]:
        """A float32 array of ``shape`` that no one else holds, and an ``openvino.Tensor`` over it."""
        free = [i for i in range(len(self._slots)) if self._references(i) == self._free_count]
        for i in free:
            if self._slots[i][0].shape == shape:
                return self._slots[i]
        slot = self._slot(shape)
        if free:
            self._slots[free[0]] = slot
        elif len(self._slots) < self.limit:
            self._slots.append(slot)
        return slot

    def _references(self, index: int) -> int:
        return sys.getrefcount(self._slots[index][0])

    @staticmethod
    def _slot(shape: tuple[int, ...]) -> tuple[np.ndarray, object]:
        import openvino

        array = np.empty(shape, np.float32)
        return array, openvino.Tensor(array, shared_memory=True)


def _compile_openvino(source: Path | object, threads: int, precision: str, nhwc: bool) -> object:
    """An infer request of an OpenVINO model (an IR file, or a converted model in memory) compiled
    for the CPU, its arithmetic in ``precision`` (``f32`` or ``bf16``), its output in NHWC if asked."""
    import openvino
    from openvino.preprocess import PrePostProcessor

    core = openvino.Core()
    model = core.read_model(str(source)) if isinstance(source, Path) else source
    if nhwc:
        steps = PrePostProcessor(model)
        steps.output().model().set_layout(openvino.Layout("NCHW"))
        steps.output().tensor().set_layout(openvino.Layout("NHWC"))
        model = steps.build()
    compiled = core.compile_model(
        model,
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision},
    )
    return compiled.create_infer_request()


def _openvino_runner(sources: list[Path | object], threads: int, precision: str = "f32") -> Runner:
    """Run OpenVINO models (IR files, or converted models in memory) on the CPU: the whole network
    in ``precision`` (``f32`` or ``bf16``), or for ``mixed`` its prefix in f32 then the rest in
    bf16, the prefix's output passed on in place.

    The output ``(B, Q, h, w)`` is written into an :class:`OutputArrays` array, not copied. In f32
    it is asked for in NHWC, closer to the blocked layout OpenVINO computes it in (its final
    reorder of 8 frames' logits took 22 ms on one thread against 33 for NCHW), and handed on as a
    view with channels_last strides, the layout the decoding reads fastest: network and decoding
    together ran at 1.01-1.04x NCHW's rate. From bf16 (mixed, bf16) NCHW is faster: the network
    alone 1.11-1.21x, network and decoding together 1.01-1.03x (``benchmarks/RESULTS.md``,
    session 11).
    """
    import openvino

    nhwc = precision == "f32"
    precisions = ["f32", "bf16"] if precision == "mixed" else [precision]
    requests = [
        _compile_openvino(source, threads, p, nhwc=nhwc and i == len(sources) - 1)
        for i, (source, p) in enumerate(zip(sources, precisions, strict=True))
    ]
    outputs = OutputArrays()
    out_shape = [d.get_length() for d in requests[-1].get_compiled_model().output(0).get_partial_shape()[1:]]

    def run(net_input: torch.Tensor) -> torch.Tensor:
        tensor = openvino.Tensor(np.ascontiguousarray(net_input.numpy(), dtype=np.float32), shared_memory=True)
        for request in requests[:-1]:
            request.set_input_tensor(0, tensor)
            request.infer()
            tensor = request.get_output_tensor(0)
        last = requests[-1]
        last.set_input_tensor(0, tensor)
        out, out_tensor = outputs.take((net_input.shape[0], *out_shape))
        last.set_output_tensor(0, out_tensor)
        last.infer()
        return torch.from_numpy(out).permute(0, 3, 1, 2) if nhwc else torch.from_numpy(out)

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
    parts = _parts(model, precision, shape)
    with torch.no_grad():
        if runtime == "openvino":
            return _openvino_runner([_convert_openvino(m, x) for _, m, x in parts], threads, precision)
        buffer = io.BytesIO()
        _export_onnx(model, parts[0][2], buffer)
        return _onnx_runner(buffer.getvalue(), threads)


def torch_runner(model: ColorNet, device: torch.device, precision: str) -> Runner:
    """Run ``model`` (already on ``device``, eval mode) in PyTorch, channels_last on the CPU
    (oneDNN's native layout: about 1.4x the frames/s of NCHW for the default model), under
    autocast when ``precision`` is ``bf16`` (on CUDA without bf16: fp16); for ``mixed``, the
    network's prefix outside autocast and the rest under it."""
    memory_format = torch.channels_last if device.type == "cpu" else torch.contiguous_format
    model.to(memory_format=memory_format)
    dtype = torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        dtype = torch.float16
    prefix, rest = model.halves() if precision == "mixed" else (torch.nn.Identity(), model)

    def run(net_input: torch.Tensor) -> torch.Tensor:
        x = prefix(net_input.contiguous(memory_format=memory_format))
        autocast = torch.autocast(device.type, dtype=dtype) if precision != "f32" else contextlib.nullcontext()
        with autocast:
            return rest(x).float()

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
    (resolved: ``f32``, ``mixed`` or ``bf16``; see :func:`resolve_precision`).

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
        files = [_exported(model, runtime, shape, *part, cache) for part in _parts(model, precision, shape)]
        if runtime == "openvino":
            return _openvino_runner([f["model"] for f in files], threads, precision)
        return _onnx_runner(files[0]["model"], threads)
    except Exception:  # noqa: BLE001 - the cache or the runtime failed: try once more in memory
        pass
    try:
        return _in_memory_runner(model, runtime, shape, threads, precision)
    except Exception as error:  # noqa: BLE001 - the runtimes raise their own exception types
        raise VidcolorError(f"--runtime {runtime}: could not prepare the network ({error})") from error
