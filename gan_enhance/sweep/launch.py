"""Trials under ``torchrun``: a worker launched with several processes trains each trial on all of them.

``torchrun --nproc_per_node 4 -m gan_enhance sweep --out DIR --worker`` starts four processes. Rank 0 is
the Optuna worker (it asks for trials, reports validations, keeps the heartbeat); before each trial it
hands the trial's run config to the other ranks, and every rank trains it together through
``run_training`` (DDP, as ``gan-enhance train`` under torchrun). Pruning needs nothing more: rank 0's
validation callback stops every rank through the trainer's own broadcast. When rank 0 has no more trials
it tells the others, and they exit.

The hand-over goes through torchrun's key-value store (no process group). Each trial's process group
meets on a fresh port that rank 0 picks: torch keeps the default group's keys under the same names from
one ``init_process_group`` to the next, so a second group on the same store could read the first one's
stale addresses.
"""

from __future__ import annotations

import os
import pickle
import socket
from datetime import timedelta
from typing import Any

# How long the other ranks wait for rank 0's next message (a trial can take days).
WAIT = timedelta(days=30)


def launched() -> bool:
    """Whether this process was started by torchrun with more than one process."""
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


class TrialChannel:
    """Rank 0's messages to the other ranks of one torchrun launch, in order."""

    def __init__(self):
        import torch.distributed as dist

        agent_store = os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True"
        self.store = dist.TCPStore(
            host_name=os.environ["MASTER_ADDR"],
            port=int(os.environ["MASTER_PORT"]),
            is_master=rank() == 0 and not agent_store,
            timeout=WAIT,
            multi_tenant=True,
        )
        self.sent = 0

    def share(self, message: Any) -> Any:
        """Rank 0: send ``message``; the others: receive rank 0's next message."""
        key = f"gan_enhance_sweep/{self.sent}"
        self.sent += 1
        if rank() == 0:
            self.store.set(key, pickle.dumps(message))
            return message
        return pickle.loads(self.store.get(key))

    def announce_trial(self, config: dict[str, Any], resume: bool) -> None:
        """Rank 0: every rank trains this run next, in a process group on a fresh port."""
        use_port(self.share({"config": config, "resume": resume, "port": _free_port()})["port"])

    def announce_end(self) -> None:
        """Rank 0: no more trials; the other ranks return from :func:`follow_trials`."""
        self.share(None)


def use_port(port: int) -> None:
    """The next process group meets on ``port`` (init_process_group reads its rendezvous from the
    environment); rank 0 hosts its store."""
    os.environ["MASTER_PORT"] = str(port)
    os.environ["TORCHELASTIC_USE_AGENT_STORE"] = "False"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


def follow_trials(channel: TrialChannel) -> int:
    """Ranks other than 0: train every trial rank 0 announces until it announces the end.

    Returns the process's exit code: 0, or 128 + the signal that stopped a trial.
    """
    from gan_enhance.train.run import run_training

    while True:
        job = channel.share(None)
        if job is None:
            return 0
        use_port(job["port"])
        result = run_training(job["config"], resume=job["resume"])
        if result.interrupted:
            return 128 + result.interrupted
