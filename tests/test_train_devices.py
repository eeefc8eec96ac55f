"""Every tensor the training loop creates lives on the training device; collectives see device tensors.

No GPU is at hand in CI, so a CPU run cannot show a device mismatch by itself: the loop's CPU tensors and
its "device" tensors are the same thing there. Instead, each test records every tensor factory call
(``torch.zeros``, ``torch.tensor``, ...) without an explicit device made by the trainer's modules, and,
while ``fit`` runs (the models are built by then; their buffers follow ``.to(device)``), by any project
module outside the data pipeline: the loop, the step, validation, the guards, the losses, the models. On a
GPU each of those would be a CPU tensor next to CUDA ones (a failed ``torch.stack``, or a collective NCCL
refuses). A faked two-rank process group routes every collective through a check as well, which also
refuses a tensor the project moved to the CPU (``.cpu()``, ``.to("cpu")``) on its way there.
"""

from __future__ import annotations

import os
import sys
import weakref

import pytest
import torch
from tiny_settings import TINY_HIFIPP
from torch.overrides import TorchFunctionMode

from gan_enhance.train import builders, run
from gan_enhance.train.config import load_config
from gan_enhance.train.distributed import DistInfo

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conf"))
PACKAGE = os.sep + "gan_enhance" + os.sep
TRAIN_PACKAGE = os.path.join("gan_enhance", "train") + os.sep
# Batches are made on the CPU by design (the step moves them): the loader's and the datasets' tensors are
# fine, and so is the evaluation code validation calls on CPU copies (PESQ, STOI).
CPU_BY_DESIGN = (
    os.path.join("torch", "utils", "data") + os.sep,
    os.path.join("gan_enhance", "data") + os.sep,
    os.path.join("gan_enhance", "evaluate") + os.sep,
)
FACTORIES = {
    torch.tensor,
    torch.scalar_tensor,
    torch.zeros,
    torch.ones,
    torch.full,
    torch.empty,
    torch.arange,
    torch.linspace,
    torch.eye,
    torch.rand,
    torch.randn,
    torch.randint,
    torch.as_tensor,
    torch.logspace,
    torch.hann_window,
    torch.hamming_window,
    torch.kaiser_window,
}


class DevicelessFactories(TorchFunctionMode):
    """Records factory calls without a ``device`` (``calls``) made by the trainer's modules, and while
    ``fit`` runs by any project module; and the tensors project code moves to the CPU (``moved``)."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []
        self.moved: dict[int, tuple] = {}  # id of a tensor moved to the CPU -> (weak reference, where)
        self.fitting = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in FACTORIES and kwargs.get("device") is None:
            caller = _caller()
            scope = PACKAGE if self.fitting else TRAIN_PACKAGE
            if scope in caller and not _cpu_by_design():
                self.calls.append(f"{func.__name__} at {caller}")
        elif _to_cpu(func, args, kwargs) and isinstance(out, torch.Tensor):
            caller = sys._getframe(1)  # the code that called .cpu() / .to() itself, not torch inside
            where = f"{caller.f_code.co_filename}:{caller.f_lineno}"
            if PACKAGE in where and not _cpu_by_design():
                self._mark(out, f"{func.__name__} at {where}")
        else:  # what is computed from a moved tensor is on the CPU too (torch.stack of it, ...)
            origins = [self.moved_to_cpu(tensor) for tensor in _tensors(args)]
            origin = next((where for where in origins if where), None)
            if origin:
                for tensor in _tensors(out):
                    self._mark(tensor, origin)
        return out

    def _mark(self, tensor: torch.Tensor, where: str) -> None:
        self.moved[id(tensor)] = (weakref.ref(tensor), where)

    def moved_to_cpu(self, tensor: torch.Tensor) -> str | None:
        """Where project code moved ``tensor`` to the CPU (None: it did not)."""
        ref, where = self.moved.get(id(tensor), (None, None))
        return where if ref is not None and ref() is tensor else None

    def fit(self, fit):
        """``fit`` with every project module in scope as it runs (the models are built before it: their
        buffers are made on the CPU and follow ``.to(device)``)."""

        def fitting(*args, **kwargs):
            self.fitting = True
            try:
                return fit(*args, **kwargs)
            finally:
                self.fitting = False

        return fitting


def _tensors(value) -> list[torch.Tensor]:
    """The tensors in ``value`` and in the lists, tuples and dicts it holds."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    return []


def _to_cpu(func, args, kwargs) -> bool:
    if func is torch.Tensor.cpu:
        return True
    if func is torch.Tensor.to:  # .to("cpu"); .to(device) with the training device cannot be told apart here
        target = kwargs.get("device", args[1] if len(args) > 1 else None)
        return isinstance(target, str) and torch.device(target).type == "cpu"
    return False


def _caller() -> str:
    """``file:line`` of the first frame outside torch and this file."""
    frame = sys._getframe(2)
    while frame is not None and (
        f"{os.sep}torch{os.sep}" in frame.f_code.co_filename or frame.f_code.co_filename == __file__
    ):
        frame = frame.f_back
    return "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _cpu_by_design() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in CPU_BY_DESIGN):
            return True
        frame = frame.f_back
    return False


class FakeCollectives:
    """Stands in for a two-rank process group: records the device of every tensor a collective sees, and
    where it was moved to the CPU if ``recorder`` saw that."""

    def __init__(self, device: torch.device, recorder: DevicelessFactories):
        self.device = device
        self.recorder = recorder
        self.seen: list[tuple[str, torch.device]] = []
        self.moved: list[str] = []

    def install(self, monkeypatch) -> None:
        for name in ("all_reduce", "broadcast"):
            monkeypatch.setattr(torch.distributed, name, self._recorder(name))
        monkeypatch.setattr(torch.distributed, "barrier", lambda *args, **kwargs: None)

    def _recorder(self, name: str):
        def collective(tensor, *args, **kwargs):
            self.seen.append((name, tensor.device))
            where = self.recorder.moved_to_cpu(tensor)
            if where:
                self.moved.append(f"{name} of a tensor from {where}")

        return collective


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from gan_enhance.data import write_synthetic_corpus

    folder = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(str(folder), num_files=2, seconds=1.5, sample_rate=16000)
    return str(folder)


def busy_config(corpus: str, runs_dir, **overrides) -> dict:
    """conf/debug.yml with every periodic job (log, validation, samples, spike guard) due at every step."""
    return {
        **load_config(os.path.join(CONF, "debug.yml")),
        "name": "devices",
        "runs_dir": str(runs_dir),
        "Trainer.max_steps": 3,
        "Trainer.adversarial_start": 1,
        "Trainer.log_every": 1,
        "Trainer.valid_every": 1,
        "Trainer.sample_every": 1,
        "Trainer.checkpoint_every": 1,
        "Trainer.spike_factor": 5.0,
        "Trainer.spike_window": 4,
        "Trainer.early_stop_patience": 1,
        "Trainer.quiet": True,
        "Data.segment_samples": 4096,
        "Data.epoch_items": 8,
        "Data.val_items": 2,
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        **overrides,
    }


# debug.yml's U-Net, MPD and multi-band discriminator; then the other generators and discriminators.
PARTS = {
    "debug": {},
    "hifipp, msstft": {"generator": "hifipp", **TINY_HIFIPP, "discriminators": ["msstft"]},
    "spectral, msd, cqt": {
        "generator": "spectral",
        "SpectralMaskGenerator.channels": 16,
        "SpectralMaskGenerator.blocks": 1,
        "discriminators": ["msd", "cqt"],
    },
}


@pytest.mark.parametrize("parts", list(PARTS))
def test_the_loop_creates_no_tensor_without_a_device(corpus, tmp_path, monkeypatch, parts):
    recorder = DevicelessFactories()
    monkeypatch.setattr(run, "fit", recorder.fit(run.fit))
    with recorder:
        result = run.run_training(busy_config(corpus, tmp_path, **PARTS[parts]))
    assert result.step >= 2
    assert recorder.calls == [], "tensors created without a device:\n" + "\n".join(recorder.calls)


def test_collectives_see_only_device_tensors_under_ddp(corpus, tmp_path, monkeypatch):
    """Two ranks faked in one process: every collective of the loop (logging, validation's stop flag,
    the spike guard, the signal flag, the non-finite check) gets a tensor made on the training device."""
    device = torch.device("cpu")
    recorder = DevicelessFactories()
    collectives = FakeCollectives(device, recorder)
    collectives.install(monkeypatch)
    monkeypatch.setattr(run, "init_distributed", lambda *args: DistInfo(rank=0, world_size=2, device=device))
    monkeypatch.setattr(builders, "wrap_model", lambda model, info, unused=False: model.to(info.device))
    monkeypatch.setattr(run, "fit", recorder.fit(run.fit))
    with recorder:
        run.run_training(busy_config(corpus, tmp_path))
    names = {name for name, _ in collectives.seen}
    assert {"all_reduce", "broadcast"} <= names
    assert all(seen == device for _, seen in collectives.seen)
    assert collectives.moved == [], "collectives of CPU tensors:\n" + "\n".join(collectives.moved)
    assert recorder.calls == [], "tensors created without a device:\n" + "\n".join(recorder.calls)
