"""What a training run holds between steps: the ``State`` dataclass and the trainer's settings."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from gan_enhance.errors import GanEnhanceError
from gan_enhance.train.balancer import GradientBalancer
from gan_enhance.train.distributed import DistInfo, unwrap
from gan_enhance.train.ema import GeneratorEMA
from gan_enhance.train.optim import MatrixMuon
from gan_enhance.train.precision import Precision


class NonFiniteLossError(GanEnhanceError, RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient: the run has diverged."""


@dataclass
class TrainerSettings:
    """How the loop runs (config prefix ``Trainer.``).

    Parameters
    ----------
    max_steps : int
        Generator updates to train for.
    batch_size : int
        Examples per step and per process (under DDP each GPU takes this many).
    num_workers : int
        Data-loading worker processes per training process.
    grad_accum : int
        Micro-batches per step: the batch is split in this many parts whose gradients add up.
    adversarial_start : int
        First step with discriminator updates and adversarial/feature-matching terms; before it the
        generator trains on the reconstruction losses alone (FINALLY's regression stage as a switch).
    disc_updates : int
        Discriminator updates per generator update.
    grad_clip_gen, grad_clip_disc : float
        Gradient-norm clipping thresholds (DAC: 1000 and 10); 0 logs the norm without clipping.
    max_nonfinite : int
        Stop after this many consecutive steps with a non-finite loss or gradient (each is skipped).
    precision : str
        ``"fp32"``, ``"bf16"`` (autocast, CPU or GPU) or ``"fp16"`` (autocast + grad scaler, GPU).
    compile : bool
        ``torch.compile`` the generator and discriminator.
    tf32, cudnn_benchmark : bool
        Fast CUDA matmuls and cudnn autotuning (ignored in deterministic mode).
    deterministic : bool
        Deterministic algorithms: the same seed gives bitwise the same run (on CUDA, up to the few
        kernels that have none; torch warns about each).
    seed : int
        Seed of model initialisation and of the data order.
    device : str
        ``"auto"``, ``"cpu"`` or ``"cuda"``.
    threads : int
        CPU threads of each training process's torch ops (``torch.set_num_threads``; like
        ``enhance --threads``); 0 keeps torch's default (all cores). Data workers always run one thread.
    dist_timeout_minutes : float
        Under ``torchrun``, how long a rank waits in a collective before the run is aborted. Rank 0 alone
        validates, writes samples and checkpoints while the others wait: NCCL's default of 10 minutes
        would abort a run whose validation (PESQ, DNSMOS on a large set) or checkpoint write takes longer.
    find_unused_parameters : bool
        DDP option for models with parameters a forward pass may leave unused (slower; off by default).
    log_every : int
        Steps between training-scalar logs (the only place training losses leave the device).
    valid_every : int
        Steps between validations (and ``best`` checkpoint checks); the last step validates too. 0: never.
    valid_batches : int
        Validation batches per validation (0: the whole validation set).
    speech_metrics : bool
        Add wide-band PESQ and STOI to validation (CPU-bound, about 0.1 s per example).
    quality_metrics : list[str]
        More ``gan-enhance evaluate`` metrics to validate with, logged as ``metric/<name>``, e.g.
        ``[dnsmos_ovrl]`` for ``best_metric: metric/dnsmos_ovrl`` (DNSMOS: about 0.3-1.5 s per example on a
        CPU, clips under 9.01 s repeated up to it; ``valid_batches`` bounds the cost).
    sample_every : int
        Steps between audio and spectrogram logs of a fixed validation batch.
    num_samples : int
        Examples in those logs.
    checkpoint_every : int
        Steps between ``latest`` checkpoints.
    keep_every : int
        Steps between kept ``<N>k`` checkpoints (0: none).
    best_metric : str
        Validation metric that picks ``best`` (a log key such as ``mel/loss`` or ``metric/pesq``).
    best_mode : str
        ``"min"`` or ``"max"``: which direction of ``best_metric`` is better.
    early_stop_patience : int
        Stop after this many validations without a new best (0: never).
    log_zero_weight_losses : bool
        Compute (without gradient) and log losses whose weight in ``lambdas`` is 0.
    profile_start, profile_steps : int
        Record a ``torch.profiler`` trace (``logs/profile``, TensorBoard's profile tab) of ``profile_steps``
        steps after step ``profile_start`` (>= 1); ``profile_steps`` 0 turns it off.
    quiet : bool
        No progress bar: one log line per ``log_every`` steps instead (for log files).
    spike_factor : float
        Loss-spike guard (``gan_enhance.train.guard``): a step whose generator loss exceeds this multiple
        of the recent median is a spike; 0 turns the guard off.
    spike_window : int
        Recent steps whose median generator loss a step is compared with.
    spike_patience : int
        Spikes in a row before the guard acts.
    spike_action : str
        ``"lower_lr"`` (multiply every learning rate by ``spike_lr_factor``) or ``"restore"`` (reload the
        newest good checkpoint's weights, optimizers and schedules).
    spike_lr_factor : float
        Learning-rate multiplier of ``lower_lr``.
    spike_max_actions : int
        Corrections allowed in a run; one more stops it (it keeps diverging).
    balancer : bool
        EnCodec's gradient balancer (``gan_enhance.train.balancer``): ``lambdas`` become each generator
        loss's share of the gradient at the generator output instead of multipliers of the losses.
    balancer_total_norm : float
        Per-example norm of the balanced gradient at the generator output.
    balancer_decay : float
        EMA decay of each loss's gradient norm (EnCodec: 0.999).
    """

    max_steps: int = 250000
    batch_size: int = 16
    num_workers: int = 4
    grad_accum: int = 1
    adversarial_start: int = 0
    disc_updates: int = 1
    grad_clip_gen: float = 1000.0
    grad_clip_disc: float = 10.0
    max_nonfinite: int = 20
    precision: str = "fp32"
    compile: bool = False
    tf32: bool = True
    cudnn_benchmark: bool = True
    deterministic: bool = False
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    dist_timeout_minutes: float = 60.0
    find_unused_parameters: bool = False
    log_every: int = 50
    valid_every: int = 5000
    valid_batches: int = 0
    speech_metrics: bool = True
    quality_metrics: list[str] = field(default_factory=list)
    sample_every: int = 5000
    num_samples: int = 3
    checkpoint_every: int = 1000
    keep_every: int = 50000
    best_metric: str = "mel/loss"
    best_mode: str = "min"
    early_stop_patience: int = 0
    log_zero_weight_losses: bool = True
    profile_start: int = 0
    profile_steps: int = 0
    quiet: bool = False
    spike_factor: float = 0.0
    spike_window: int = 200
    spike_patience: int = 3
    spike_action: str = "lower_lr"
    spike_lr_factor: float = 0.5
    spike_max_actions: int = 10
    balancer: bool = False
    balancer_total_norm: float = 1.0
    balancer_decay: float = 0.999

    def logs_at(self, step: int) -> bool:
        """Whether the training scalars are logged at ``step`` (every ``log_every`` steps and the last)."""
        return step % self.log_every == 0 or step == self.max_steps


@dataclass
class LossSet:
    """The loss modules of a run, keyed by their log keys.

    Parameters
    ----------
    reconstruction : dict[str, nn.Module]
        ``(y_hat, y) -> scalar`` losses, e.g. ``{"mel/loss": MultiScaleMelLoss(...), "l1/loss": ...}``.
    adversarial : nn.Module or None
        ``AdversarialLoss`` (owns the ``adv/disc`` and ``adv/gen`` formulas).
    feature_matching : nn.Module or None
        ``FeatureMatchingLoss`` (``adv/feat``).
    """

    reconstruction: dict[str, nn.Module] = field(default_factory=dict)
    adversarial: nn.Module | None = None
    feature_matching: nn.Module | None = None

    def to(self, device: torch.device) -> LossSet:
        for module in self.modules():
            module.to(device)
        return self

    def modules(self) -> list[nn.Module]:
        extra = [m for m in (self.adversarial, self.feature_matching) if m is not None]
        return list(self.reconstruction.values()) + extra


class PhaseTimer:
    """Seconds spent in each named part of the step (for benchmarks; syncs the GPU around each part).

    Parameters
    ----------
    device : torch.device
        CUDA work is asynchronous: each part waits for the device before and after, so its time is its own.
    """

    def __init__(self, device: torch.device):
        self.synchronize = device.type == "cuda"
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        if self.synchronize:
            torch.cuda.synchronize()
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.synchronize:
                torch.cuda.synchronize()
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    def reset(self) -> dict[str, float]:
        """The times so far; then start again from zero."""
        seconds, self.seconds = self.seconds, {}
        return seconds


@dataclass
class State:
    """Everything a step reads and changes. Models may be DDP/compile-wrapped; ``unwrap`` gives the bare one.

    The discriminator side is ``None`` for a regression-only run (no discriminators configured).
    """

    generator: nn.Module
    discriminator: nn.Module | None
    optimizers_g: list[torch.optim.Optimizer]
    optimizers_d: list[torch.optim.Optimizer]
    schedulers_g: list[torch.optim.lr_scheduler.LRScheduler]
    schedulers_d: list[torch.optim.lr_scheduler.LRScheduler]
    losses: LossSet
    lambdas: dict[str, float]
    precision: Precision
    settings: TrainerSettings
    dist: DistInfo = field(default_factory=DistInfo)
    ema: GeneratorEMA | None = None
    step: int = 0
    nonfinite_in_a_row: int = 0
    nonfinite_total: int = 0
    phase_timer: PhaseTimer | None = None
    balancer: GradientBalancer | None = None

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def adversarial(self) -> bool:
        """Whether this step trains against the discriminator (after the regression warm-up)."""
        return self.discriminator is not None and self.step >= self.settings.adversarial_start

    def eval_generator(self) -> nn.Module:
        """The generator to validate and sample: the EMA weights once the average holds an update
        (before ``EMA.start_step`` it holds only the initial weights), the trained weights otherwise."""
        if self.ema is not None and self.ema.updated:
            return self.ema.module
        return unwrap(self.generator)

    def learning_rates(self) -> dict[str, float]:
        """Current learning rate of each optimizer (``lr/gen``, ``lr/gen_muon``, ``lr/disc``, ...)."""
        rates = {}
        for side, optimizers in (("gen", self.optimizers_g), ("disc", self.optimizers_d)):
            for optimizer in optimizers:
                suffix = "_muon" if isinstance(optimizer, MatrixMuon) else ""
                rates[f"lr/{side}{suffix}"] = optimizer.param_groups[0]["lr"]
        return rates
