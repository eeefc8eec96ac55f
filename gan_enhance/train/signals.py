"""SIGTERM and SIGINT as a stop request the training loop honours between steps, agreed on by every rank."""

from __future__ import annotations

import signal
import threading
from typing import Any

import torch

from gan_enhance.train.distributed import max_over_ranks
from gan_enhance.train.state import State


class StopSignals:
    """SIGTERM and SIGINT (preemption, Ctrl-C) become a request that the loop honours between steps: it
    writes ``latest`` and returns. A second signal acts at once (the previous handlers are back), which is
    safe because every checkpoint write is atomic.

    Handlers are installed only in the main thread (Python allows no other), for the ``with`` block.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.signum = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc_info) -> None:
        self._restore()

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    def agree(self, state: State, failed: bool) -> tuple[int, bool]:
        """``(signal, failed)``: the signal any rank received (0: none) and whether any rank says ``failed``;
        every rank gets the same answer (one all-reduce)."""
        if not state.dist.distributed:
            return self.signum, failed
        flags = torch.tensor([float(self.signum), float(failed)], device=state.device)
        signum, anyone_failed = max_over_ranks(flags, state.dist).tolist()
        return int(signum), bool(anyone_failed)
