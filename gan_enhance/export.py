"""Training checkpoint -> generator bundle (+ optional ONNX and TorchScript).

The bundle holds the generator alone (EMA weights when the run kept them), with weight norm folded in;
see :mod:`gan_enhance.bundle` for the layout. ONNX and TorchScript files are traced from the same inference
copy with a dynamic batch and time axis, then checked against PyTorch at several lengths (including ones
that are not multiples of the generator's alignment, so the internal padding is exercised); an export that
disagrees by more than ``tolerance`` is refused rather than written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gan_enhance.bundle import (
    ONNX_FILE,
    TORCHSCRIPT_FILE,
    staged_folder,
    write_bundle_files,
)
from gan_enhance.checkpoint_io import find_checkpoint, generator_from_checkpoint
from gan_enhance.errors import CheckpointError

# Largest |ONNX - PyTorch| or |TorchScript - PyTorch| accepted, on signals in [-1, 1].
TOLERANCE = 1e-4
ONNX_OPSET = 17


def check_lengths(model: nn.Module) -> list[int]:
    """Input lengths to check a traced export at: aligned, unaligned, and longer than the context."""
    alignment = max(1, int(getattr(model, "alignment", 1)))
    base = max(4 * alignment, 2 * int(model.context) + alignment)
    return [base + 1, base + alignment, 2 * base + alignment // 2 + 3]


def _max_difference(run, model: nn.Module, lengths: list[int]) -> tuple[float, int]:
    """Largest ``|run(x) - model(x)|`` over random batches at ``lengths``; returns (difference, length)."""
    generator = torch.Generator().manual_seed(0)
    worst = (0.0, 0)
    for batch, length in zip((1, 2, 1), lengths):
        x = 0.5 * torch.randn(batch, 1, length, generator=generator)
        with torch.inference_mode():
            expected = model(x)
        actual = run(x)
        if tuple(actual.shape) != tuple(expected.shape):
            return float("inf"), length
        worst = max(worst, ((actual - expected).abs().max().item(), length))
    return worst


class AlignedInput(nn.Module):
    """``generator`` behind right zero-padding to its alignment, written so a traced graph stays dynamic.

    Traced shape arithmetic becomes graph operators, and the TorchScript-based ONNX exporter turns Python's
    floor division of negative integers into truncation: ``-(-T // a) * a`` then rounds *down* and crops
    the signal. Padding here with non-negative arithmetic hands the generator an aligned length, where
    every rounding is exact. The output equals ``generator(x)`` for generators that pad with zeros on the
    right (the base-class contract); the export's numeric check confirms it for each backbone.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator
        self.alignment = max(1, int(getattr(generator, "alignment", 1)))
        self.ratio = int(generator.ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, T)`` -> ``(B, 1, T * ratio)``."""
        length = x.shape[-1]
        aligned = (length + self.alignment - 1) // self.alignment * self.alignment
        y = self.generator(F.pad(x, (0, aligned - length)))
        return y[..., : length * self.ratio]


@contextlib.contextmanager
def _serialise_without_onnx_package() -> Iterator[None]:
    """Let torch's TorchScript-based ONNX exporter write its file when the ``onnx`` package is absent.

    The exporter builds the model proto in C++ and only imports ``onnx`` to splice in onnxscript custom
    functions, which we never use. Every ``onnx`` release for Python 3.11 needs protobuf >= 3.20, which
    descript-audiotools' pin (< 3.20) excludes; onnxruntime needs no ``onnx`` package to load the file.
    Acts only while the package is missing, and only inside this block.
    """
    if importlib.util.find_spec("onnx") is not None:
        yield
        return
    from torch.onnx._internal.torchscript_exporter import onnx_proto_utils

    original = onnx_proto_utils._add_onnxscript_fn
    onnx_proto_utils._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        onnx_proto_utils._add_onnxscript_fn = original


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """Silence file descriptors 1 and 2: on failure the exporter's C++ side dumps its whole IR graph."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    try:
        with open(os.devnull, "w") as devnull:
            for fd in saved:
                os.dup2(devnull.fileno(), fd)
            yield
    finally:
        for fd, copy in saved.items():
            os.dup2(copy, fd)
            os.close(copy)


def export_onnx(model: nn.Module, path: str, tolerance: float = TOLERANCE) -> float:
    """Write ``model`` as ONNX (input ``audio`` (B, 1, T) -> output ``enhanced`` (B, 1, T * ratio)).

    Returns
    -------
    float
        The largest difference from PyTorch found by the check.
    """
    try:
        import onnxruntime
    except ImportError:
        raise CheckpointError("--onnx needs onnxruntime: pip install onnxruntime==1.24.4") from None
    lengths = check_lengths(model)
    example = torch.zeros(1, 1, lengths[0])
    try:
        with warnings.catch_warnings(), _serialise_without_onnx_package(), _native_output_silenced():
            # Tracer warnings about Python ints are expected; the numeric check below is the judge.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                AlignedInput(model),
                (example,),
                path,
                dynamo=False,
                input_names=["audio"],
                output_names=["enhanced"],
                dynamic_axes={"audio": {0: "batch", 2: "time"}, "enhanced": {0: "batch", 2: "time_out"}},
                opset_version=ONNX_OPSET,
            )
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as error:  # the exporter and runtime raise many types for unsupported operators
        raise CheckpointError(
            f"ONNX export of generator '{type(model).__name__}' failed ({_first_line(error)}); "
            "export without --onnx"
        ) from None

    def run(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {"audio": x.numpy()})[0])

    return _checked(run, model, "ONNX", tolerance)


def export_torchscript(model: nn.Module, path: str, tolerance: float = TOLERANCE) -> float:
    """Trace ``model`` to TorchScript, check it against PyTorch, and save it to ``path``."""
    lengths = check_lengths(model)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(AlignedInput(model), torch.zeros(1, 1, lengths[0]), check_trace=False)
    except Exception as error:  # tracing raises many types for unsupported Python constructs
        raise CheckpointError(
            f"TorchScript tracing of '{type(model).__name__}' failed ({_first_line(error)}); export without --torchscript"
        ) from None
    difference = _checked(traced, model, "TorchScript", tolerance)
    with warnings.catch_warnings():
        # torch 2.13 marks TorchScript deprecated in favour of torch.export; it still saves and loads,
        # and C++/mobile runtimes still consume it, which is why users ask for it.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(traced, path)
    return difference


def _first_line(error: Exception) -> str:
    """The gist of an exporter error (they run to pages of IR)."""
    return str(error).strip().splitlines()[0].split("[Caused by")[0].strip()


def _checked(run, model: nn.Module, kind: str, tolerance: float) -> float:
    difference, length = _max_difference(run, model, check_lengths(model))
    if not difference <= tolerance:
        raise CheckpointError(
            f"{kind} export of '{type(model).__name__}' differs from PyTorch by {difference:.3g} "
            f"(> {tolerance:g}) at input length {length}; export without this format"
        )
    return difference


def export_generator(
    generator: nn.Module,
    out_dir: str | os.PathLike,
    source: dict[str, Any] | None = None,
    onnx: bool = False,
    torchscript: bool = False,
) -> dict[str, Any]:
    """Write a bundle (and optional ONNX / TorchScript files) for ``generator`` atomically.

    Returns
    -------
    dict
        ``{"out_dir", "files", "onnx_difference", "torchscript_difference"}`` (differences or None).
    """
    report: dict[str, Any] = {"onnx_difference": None, "torchscript_difference": None}
    with staged_folder(out_dir) as staging:
        model = write_bundle_files(generator, staging, source)
        if onnx:
            report["onnx_difference"] = export_onnx(model, os.path.join(staging, ONNX_FILE))
        if torchscript:
            report["torchscript_difference"] = export_torchscript(
                model, os.path.join(staging, TORCHSCRIPT_FILE)
            )
        files = sorted(os.listdir(staging))
    report["out_dir"] = os.path.abspath(os.fspath(out_dir))
    report["files"] = files
    return report


def export_checkpoint(
    run_or_checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    tag: str = "best",
    onnx: bool = False,
    torchscript: bool = False,
) -> dict[str, Any]:
    """``gan-enhance export``: a run folder + tag (or a checkpoint) -> bundle in ``out_dir``.

    Returns
    -------
    dict
        What :func:`export_generator` reports, plus ``"source"`` (checkpoint, step, weights used).
    """
    path = find_checkpoint(run_or_checkpoint, tag)
    generator, source = generator_from_checkpoint(path)
    report = export_generator(generator, out_dir, source, onnx=onnx, torchscript=torchscript)
    report["source"] = source
    report["generator"] = generator.build_config["name"]
    return report
