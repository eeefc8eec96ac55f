"""Every tensor the training loop creates lives on the training device; collectives see device tensors.

No GPU is at hand in CI, so a CPU run cannot show a device mismatch by itself: the loop's CPU tensors and
its "device" tensors are the same thing there. Instead, each test records every tensor factory call
(``torch.zeros``, ``torch.tensor``, ...) made from the trainer's own modules without an explicit device:
on a GPU each of those would be a CPU tensor next to CUDA ones (a failed ``torch.stack``, or a collective
NCCL refuses). A faked two-rank process group routes every collective through a check as well.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gan_enhance.train import builders, run
from gan_enhance.train.config import load_config
from gan_enhance.train.distributed import DistInfo

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conf"))
TRAIN_PACKAGE = os.path.join("gan_enhance", "train") + os.sep
DATA_LOADER = os.path.join("torch", "utils", "data") + os.sep
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
    torch.hann_window,
}


class DevicelessFactories(TorchFunctionMode):
    """Records factory calls without a ``device`` whose caller is a module of ``gan_enhance/train``."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and kwargs.get("device") is None:
            caller = _caller()
            if TRAIN_PACKAGE in caller and not _inside_data_loader():
                self.calls.append(f"{func.__name__} at {caller}")
        return func(*args, **kwargs)


def _caller() -> str:
    """``file:line`` of the first frame outside torch and this file."""
    frame = sys._getframe(2)
    while frame is not None and (
        f"{os.sep}torch{os.sep}" in frame.f_code.co_filename or frame.f_code.co_filename == __file__
    ):
        frame = frame.f_back
    return "?" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _inside_data_loader() -> bool:
    """Batches are made on the CPU by design (the step moves them): the loader's own tensors are fine."""
    frame = sys._getframe(2)
    while frame is not None:
        if DATA_LOADER in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class FakeCollectives:
    """Stands in for a two-rank process group: records the device of every tensor a collective sees."""

    def __init__(self, device: torch.device):
        self.device = device
        self.seen: list[tuple[str, torch.device]] = []

    def install(self, monkeypatch) -> None:
        for name in ("all_reduce", "broadcast"):
            monkeypatch.setattr(torch.distributed, name, self._recorder(name))
        monkeypatch.setattr(torch.distributed, "barrier", lambda *args, **kwargs: None)

    def _recorder(self, name: str):
        def collective(tensor, *args, **kwargs):
            self.seen.append((name, tensor.device))

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


def test_the_loop_creates_no_tensor_without_a_device(corpus, tmp_path):
    recorder = DevicelessFactories()
    with recorder:
        result = run.run_training(busy_config(corpus, tmp_path))
    assert result.step >= 2
    assert recorder.calls == [], "tensors created without a device:\n" + "\n".join(recorder.calls)


def test_collectives_see_only_device_tensors_under_ddp(corpus, tmp_path, monkeypatch):
    """Two ranks faked in one process: every collective of the loop (logging, validation's stop flag,
    the spike guard, the signal flag, the non-finite check) gets a tensor made on the training device."""
    device = torch.device("cpu")
    collectives = FakeCollectives(device)
    collectives.install(monkeypatch)
    monkeypatch.setattr(run, "init_distributed", lambda name: DistInfo(rank=0, world_size=2, device=device))
    monkeypatch.setattr(builders, "wrap_model", lambda model, info, unused=False: model.to(info.device))
    recorder = DevicelessFactories()
    with recorder:
        run.run_training(busy_config(corpus, tmp_path))
    names = {name for name, _ in collectives.seen}
    assert {"all_reduce", "broadcast"} <= names
    assert all(seen == device for _, seen in collectives.seen)
    assert recorder.calls == [], "tensors created without a device:\n" + "\n".join(recorder.calls)
