"""Training progress on the console: a tqdm bar on a terminal, otherwise one log line per logging step."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Iterator

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
