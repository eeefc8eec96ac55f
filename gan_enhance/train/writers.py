"""TensorBoard logging: ``logs/train`` and ``logs/val`` writers with the same tags, so curves overlay.

Only rank 0 writes; on other ranks every method is a no-op.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from torch import Tensor

SPLITS = ("train", "val")


class RunWriters:
    """The two ``SummaryWriter``s of a run folder.

    Parameters
    ----------
    run_dir : str or Path
        The run folder; writers go to ``run_dir/logs/train`` and ``run_dir/logs/val``.
    enabled : bool
        False on ranks other than 0.
    purge_step : int
        On resume, the first step trained again (the checkpoint's step + 1): TensorBoard hides what an
        interrupted run logged at this step and after, so curves do not fold back, and keeps the
        checkpoint's own step (logged before it was saved). 0: nothing hidden.
    """

    def __init__(self, run_dir: str | Path, enabled: bool = True, purge_step: int = 0):
        self.writers = {}
        if enabled:
            from torch.utils.tensorboard import SummaryWriter

            self.writers = {
                split: SummaryWriter(str(Path(run_dir) / "logs" / split), purge_step=purge_step or None)
                for split in SPLITS
            }

    def scalars(self, split: str, values: dict[str, float], step: int) -> None:
        writer = self.writers.get(split)
        if writer is None:
            return
        for tag, value in sorted(values.items()):
            writer.add_scalar(tag, value, step)

    def audio(self, split: str, tag: str, wav: Tensor, sample_rate: int, step: int) -> None:
        """One clip ``(1, T)`` or ``(T,)``, clipped to [-1, 1] as TensorBoard expects."""
        writer = self.writers.get(split)
        if writer is not None:
            writer.add_audio(tag, wav.detach().float().reshape(-1).clamp(-1, 1).cpu(), step, sample_rate)

    def image(self, split: str, tag: str, rgb: np.ndarray, step: int) -> None:
        """An ``(H, W, 3)`` image: uint8, or floats in [0, 1]."""
        writer = self.writers.get(split)
        if writer is not None:
            writer.add_image(tag, rgb, step, dataformats="HWC")

    def text(self, split: str, tag: str, markdown: str, step: int) -> None:
        """Markdown text (TensorBoard's Text tab renders tables and fenced code blocks)."""
        writer = self.writers.get(split)
        if writer is not None:
            writer.add_text(tag, markdown, step)

    def config(self, config: dict, step: int) -> None:
        """The resolved run config as a YAML code block under ``config`` in ``logs/train``'s Text tab."""
        self.text("train", "config", config_markdown(config), step)

    def flush(self) -> None:
        for writer in self.writers.values():
            writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def config_markdown(config: dict) -> str:
    """A config dict as a fenced YAML block (keys sorted, as in the run folder's ``config.yml``)."""
    import yaml

    return "```yaml\n" + yaml.safe_dump(config, sort_keys=True) + "```\n"
