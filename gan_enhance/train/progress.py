"""Training progress: on the console a tqdm bar on a terminal, otherwise one log line per logging step; the
running means those lines and the writers report; a profiler window over a few steps."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

log = logging.getLogger("gan_enhance.train")
PROGRESS_LINE = "progress_line"  # LogRecord attribute marking the per-step lines


class Progress:
    """A tqdm bar (step, losses, it/s) when stderr is a terminal, else a log line per logging step.

    The line reads ``step 200 of 1000: adv/gen=... mel/loss=... | 3.1 steps/s``. It is logged in
    both modes, so ``train.log`` always has it; while the bar shows, :meth:`console` keeps it off the
    console and prints other log records above the bar.

    Parameters
    ----------
    total, start : int
        Last step and the step the run starts (or resumes) at.
    enabled : bool
        False on ranks other than 0 (nothing shown or logged).
    bar : bool or None
        Show the bar: None decides by ``sys.stderr.isatty()``; False for plain lines (``Trainer.quiet``).
    """

    SHOWN = ("total/loss", "mel/loss", "adv/gen", "adv/disc")

    def __init__(self, total: int, start: int, enabled: bool, bar: bool | None = None):
        self.total, self.enabled = total, enabled
        self.bar = None
        if enabled and (sys.stderr.isatty() if bar is None else bar):
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, dynamic_ncols=True, unit="step")
        self.position = start
        self._last_step, self._last_time = start, time.perf_counter()

    def show(self, step: int, losses: dict[str, float]) -> None:
        """Report the losses at ``step`` (a logging step): the bar's postfix and the log line."""
        if not self.enabled:
            return
        if self.bar is not None:
            shown = {
                key.split("/")[0] if key != "total/loss" else "total": losses[key]
                for key in self.SHOWN
                if key in losses
            }
            self.bar.set_postfix({key: f"{value:.3g}" for key, value in shown.items()}, refresh=False)
        now = time.perf_counter()
        speed = (step - self._last_step) / max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        log.info("%s", progress_line(step, self.total, losses, speed), extra={PROGRESS_LINE: True})

    def update(self, step: int) -> None:
        if self.bar is not None:
            self.bar.update(step - self.position)
        self.position = step

    @contextlib.contextmanager
    def console(self) -> Iterator[None]:
        """While the bar shows: console log handlers print above it and leave out the per-step lines
        (files such as ``train.log`` keep them). Without a bar, nothing changes."""
        if self.bar is None:
            yield
            return
        from tqdm.contrib.logging import logging_redirect_tqdm

        root = logging.getLogger()
        before = list(root.handlers)
        with logging_redirect_tqdm(tqdm_class=type(self.bar)):
            for handler in root.handlers:
                if handler not in before:  # tqdm's stand-ins for the console handlers
                    handler.addFilter(_not_progress_line)
            yield

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def progress_line(step: int, total: int, losses: dict[str, float], steps_per_second: float) -> str:
    """``step 200 of 1000: mel/loss=1.234 total/loss=5.678 | 3.1 steps/s``: the losses only (``*/loss``
    and ``adv/*``), not gradient norms or counters. "step <N> " is what scripts watching the log match."""
    shown = {
        key: value
        for key, value in losses.items()
        if key.count("/") == 1 and (key.endswith("/loss") or key.startswith("adv/"))
    }
    values = " ".join(f"{key}={value:.4g}" for key, value in sorted(shown.items()))
    return f"step {step} of {total}: {values} | {steps_per_second:.3g} steps/s"


def _not_progress_line(record: logging.LogRecord) -> bool:
    return not getattr(record, PROGRESS_LINE, False)


class RunningMeans:
    """Sums of step metrics kept on the device between logs (no sync per step)."""

    def __init__(self):
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}
        self.data_seconds = self.step_seconds = 0.0
        self.steps = 0

    def add(self, metrics: dict[str, Tensor], data_seconds: float, step_seconds: float) -> None:
        for key, value in metrics.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
            self.counts[key] = self.counts.get(key, 0) + 1
        self.data_seconds += data_seconds
        self.step_seconds += step_seconds
        self.steps += 1

    def pop(self) -> dict[str, Tensor | float]:
        """Means since the last call (losses as tensors, times as seconds per step); then reset."""
        means: dict[str, Tensor | float] = {key: total / self.counts[key] for key, total in self.sums.items()}
        means["time/data"] = self.data_seconds / max(self.steps, 1)
        means["time/step"] = self.step_seconds / max(self.steps, 1)
        self.__init__()
        return means


class ProfilerWindow:
    """A ``torch.profiler`` trace of ``steps`` steps after step ``start`` and one warm-up step, written for
    TensorBoard's profile tab (``logs/profile``)."""

    def __init__(self, start: int, steps: int, run_dir: Path, enabled: bool):
        self.start, self.steps = start, steps
        self.folder = Path(run_dir) / "logs" / "profile"
        self.enabled = enabled and steps > 0
        self.profiler = None

    def step(self, step: int) -> None:
        """Call after each training step with the new step count."""
        if not self.enabled:
            return
        if self.profiler is None and step == self.start:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if torch.cuda.is_available():
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            self.profiler = torch.profiler.profile(
                activities=activities,
                # One warm-up step first: the first profiled step pays the profiler's own start-up.
                schedule=torch.profiler.schedule(wait=0, warmup=1, active=self.steps, repeat=1),
                on_trace_ready=torch.profiler.tensorboard_trace_handler(str(self.folder)),
                record_shapes=True,
            )
            self.profiler.start()
        elif self.profiler is not None:
            self.profiler.step()
            if step >= self.start + 1 + self.steps:
                self.close()

    def close(self) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            self.profiler = None
            self.enabled = False
