"""What a run needs, checked before anything is built: data paths, and (for ``train --check``) every file
and external model the run will load. Also the data summary logged before the first step.

``train --check`` must not say "config OK" for a run that will die later: it proves every external model
(the WavLM loss's model, a WavLM-conditioned generator's WavLM) and ``FineTune.checkpoint`` loadable,
cheaply (headers and configs, not gigabytes of weights; no download is waited for). The run itself
repeats the cheap half (where each model will come from) before building anything.
"""

from __future__ import annotations

import inspect
import logging
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from gan_enhance.atomic import write_text
from gan_enhance.errors import CheckpointError, ConfigError
from gan_enhance.train.builders import Experiment
from gan_enhance.train.data import build_datasets, check_data_paths
from gan_enhance.train.distributed import DistInfo, choose_device

log = logging.getLogger("gan_enhance.train")

WAVLM_LOSS_KEY = "wavlm/loss"
GENERATOR_WAVLM_HINT = (
    "set it to '' to train without WavLM conditioning, or to a local folder (save_pretrained)"
)
# Files per split whose band limit the data summary estimates, and how much of each it reads (seconds,
# from the middle): enough to see a corpus's character, cheap enough to run before every start.
SUMMARY_FILES = 16
# Files whose header is read for the rate when a manifest gave durations (the rest stay unread).
RATE_FILES = 64
SUMMARY_SECONDS = 20.0
# A target whose band ends below this share of the output's Nyquist frequency counts as band-limited.
FULL_BAND_SHARE = 0.9
SUMMARY_FILE = "data_summary.txt"


def check_run(experiment: Experiment, load_models: bool = True) -> None:
    """Raise a one-line :class:`~gan_enhance.errors.ConfigError` for anything the run could not open.

    Parameters
    ----------
    experiment : Experiment
        The checked config.
    load_models : bool
        Also prove that every external model and ``FineTune.checkpoint`` load, that the device exists and
        that the data sources hold audio, logging the data summary (``train --check``). The run itself
        passes False: it only checks where each model comes from (a folder with config and weights, the
        local cache, or a reachable hub), then loads them when it builds the state.

    Raises
    ------
    ConfigError, CheckpointError
        Naming the config key and what to do.
    """
    check_data_paths(experiment.data.settings)
    check_validation_metrics(experiment.trainer)
    from gan_enhance.nn.wavlm import locate_wavlm, verify_wavlm

    for key, name, hint in external_models(experiment):
        source = locate_wavlm(name, key, hint)
        if load_models:
            verify_wavlm(source, key)
        log.info("%s: %r loads from the %s", key, name, source.describe())
    if load_models and experiment.finetune.checkpoint:
        log.info("FineTune.checkpoint: %s", check_finetune_source(experiment.finetune))
    if load_models:
        log.info("device: %s", choose_device(experiment.trainer.device))
        train, val = build_datasets(experiment.data, DistInfo())  # indexes the sources: empty ones fail
        _log_summary(*data_summary(experiment, train, val))


def check_validation_metrics(trainer) -> None:
    """``Trainer.quality_metrics`` are known metrics, and a ``Trainer.best_metric`` of the form
    ``metric/<name>`` is one that validation computes (before the first validation finds out)."""
    from gan_enhance.evaluate.metrics import METRICS, check_metric_names

    try:
        check_metric_names(list(trainer.quality_metrics))
    except ConfigError as error:
        raise ConfigError(f"Trainer.quality_metrics: {error}") from None
    if not trainer.best_metric.startswith("metric/"):
        return
    name = trainer.best_metric.removeprefix("metric/")
    computed = {"sisdr", *(("pesq", "stoi") if trainer.speech_metrics else ()), *trainer.quality_metrics}
    if name not in computed:
        needs = f"Trainer.quality_metrics: [{name}]" if name in METRICS else "a metric validation computes"
        raise ConfigError(
            f"Trainer.best_metric {trainer.best_metric!r} needs {needs} "
            f"(validation computes metric/{', metric/'.join(sorted(computed))})"
        )
    spec = METRICS.get(name)
    if spec is not None and {"higher": "max", "lower": "min"}.get(spec.better) not in (
        None,
        trainer.best_mode,
    ):
        raise ConfigError(
            f"Trainer.best_mode {trainer.best_mode!r} contradicts {trainer.best_metric!r}, where "
            f"{spec.better} is better; set Trainer.best_mode {'max' if spec.better == 'higher' else 'min'}"
        )


def external_models(experiment: Experiment) -> list[tuple[str, str, str]]:
    """``(config key, hub id or folder, hint)`` of every pretrained model the run will load.

    A loss with weight 0 is never built, so its model is not listed (it is never loaded).
    """
    from gan_enhance.losses.wavlm import MODEL_HINT, MODEL_KEY, WavLMFeatureLoss
    from gan_enhance.models.generators import GENERATORS

    models = []
    if experiment.lambdas.get(WAVLM_LOSS_KEY, 0.0) > 0:
        default = inspect.signature(WavLMFeatureLoss).parameters["model"].default
        name = experiment.loss_kwargs.get(WAVLM_LOSS_KEY, {}).get("model", default)
        models.append((MODEL_KEY, name, MODEL_HINT))
    kwargs = experiment.generator_kwargs
    # A generator with a saved WavLM architecture (wavlm_config) rebuilds it without the pretrained model.
    if kwargs.get("wavlm") and not kwargs.get("wavlm_config"):
        class_name = GENERATORS.get(experiment.generator).__name__
        models.append((f"{class_name}.wavlm", kwargs["wavlm"], GENERATOR_WAVLM_HINT))
    return models


def check_finetune_source(settings) -> str:
    """Load the generator weights ``FineTune.checkpoint`` points at; a few words on what was found.

    Raises
    ------
    CheckpointError
        ``FineTune.checkpoint: ...`` when the path holds no checkpoint or it does not read.
    """
    from gan_enhance.train.checkpoint import eval_weights_key, load_checkpoint
    from gan_enhance.train.finetune import EXPORT_WEIGHTS, resolve_source

    try:
        source = resolve_source(Path(settings.checkpoint))
        if source.name == EXPORT_WEIGHTS:
            from safetensors import safe_open

            try:
                with safe_open(str(source), framework="pt") as handle:
                    count = len(list(handle.keys()))
            except Exception as error:  # safetensors raises several types for a bad header
                reason = str(error).strip() or type(error).__name__
                raise CheckpointError(f"{source} does not read: {reason}") from None
            return f"exported generator {source} ({count} tensors)"
        payload = load_checkpoint(source)
    except CheckpointError as error:
        message = str(error)
        if message.startswith("FineTune.checkpoint"):
            raise
        raise CheckpointError(f"FineTune.checkpoint: {message}") from None
    weights = eval_weights_key(payload, settings.use_ema)
    return f"{source} (step {payload['step']}, generator weights '{weights}')"


# -- data summary ----------------------------------------------------------------------------------------------
@dataclass
class SplitSummary:
    """What one split's targets are: files, hours, sample rates and estimated band limits.

    ``bandwidths`` holds the band limit (Hz) of each sampled target as the run sees it (at most the
    output rate's Nyquist frequency); ``kind`` says where items come from.
    """

    name: str
    kind: str
    items: int
    files: int = 0
    seconds: float = 0.0
    rates: Counter = field(default_factory=Counter)
    unknown_rates: int = 0
    bandwidths: list[float] = field(default_factory=list)

    def narrow(self, out_rate: int) -> list[float]:
        """The sampled band limits below ``FULL_BAND_SHARE`` of ``out_rate``'s Nyquist frequency."""
        return [b for b in self.bandwidths if b < FULL_BAND_SHARE * out_rate / 2]

    def line(self, out_rate: int) -> str:
        parts = [f"{self.name}: {self.items} items from {self.kind}"]
        if self.files:
            parts.append(f"{self.files} files, {self.seconds / 3600:.2f} h")
        if self.rates:
            rates = ", ".join(f"{rate} Hz x{count}" for rate, count in sorted(self.rates.items()))
            unknown = f" (and {self.unknown_rates} files not read)" if self.unknown_rates else ""
            parts.append(f"rates {rates}{unknown}")
        if self.bandwidths:
            low, median = min(self.bandwidths), statistics.median(self.bandwidths)
            parts.append(
                f"target bandwidth {low / 1000:.1f}-{max(self.bandwidths) / 1000:.1f} kHz (median "
                f"{median / 1000:.1f} kHz, {len(self.bandwidths)} sampled; "
                f"{len(self.narrow(out_rate))} below {FULL_BAND_SHARE * out_rate / 2000:.1f} kHz)"
            )
        return "; ".join(parts)


def summarize_split(name: str, dataset, out_rate: int, sample: int = SUMMARY_FILES) -> SplitSummary:
    """Summarise the dataset a loader reads (wrappers such as ``ReplaceBadItems`` are looked through).

    Durations and rates come from the index the dataset already holds (file headers); band limits are
    estimated on up to ``sample`` evenly spaced files, ``SUMMARY_SECONDS`` of each.
    """
    base = _unwrap(dataset)
    if hasattr(base, "source") and hasattr(base.source, "entries"):  # clean audio degraded on the fly
        files = [(e.path, e.duration, e.sample_rate) for group in base.source.entries for e in group]
        summary = SplitSummary(name, "clean audio degraded on the fly", len(dataset))
    elif hasattr(base, "pairs"):  # degraded/clean folders: the clean files are the targets
        files = [(clean, info[1].duration, info[1].sample_rate) for _, clean, info in base.pairs]
        summary = SplitSummary(name, "degraded/clean pairs", len(dataset))
    else:  # shards (precomputed pairs) or anything else: the items' targets at the output rate
        summary = SplitSummary(name, "precomputed pairs", len(dataset))
        for index in _spread(len(base), sample):
            summary.bandwidths.append(_bandwidth(base[index]["y"].reshape(-1).numpy(), out_rate, out_rate))
        return summary
    files.sort()
    summary.files = len(files)
    summary.seconds = sum(duration for _, duration, _ in files)
    summary.rates = Counter(rate for _, _, rate in files if rate)
    unread = [path for path, _, rate in files if not rate]  # a manifest gave the duration: header unread
    sampled = [unread[index] for index in _spread(len(unread), RATE_FILES)]
    summary.rates.update(rate for rate in map(_file_rate, sampled) if rate)
    summary.unknown_rates = len(unread) - len(sampled)
    for index in _spread(len(files), sample):
        bandwidth = _file_bandwidth(files[index][0], out_rate)
        if bandwidth is not None:
            summary.bandwidths.append(bandwidth)
    return summary


def _unwrap(dataset):
    """The dataset inside wrappers such as ``ReplaceBadItems`` and ``RankShard``."""
    while hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    return dataset


def _spread(count: int, sample: int) -> list[int]:
    """Up to ``sample`` indices spread evenly over ``range(count)``."""
    if count <= sample:
        return list(range(count))
    return sorted({round(i * (count - 1) / (sample - 1)) for i in range(sample)})


def _file_rate(path: str) -> int:
    import soundfile

    try:
        return int(soundfile.info(path).samplerate)
    except (OSError, RuntimeError, ValueError):
        return 0


def _file_bandwidth(path: str, out_rate: int) -> float | None:
    """The band limit of up to ``SUMMARY_SECONDS`` from the middle of ``path`` (None if it does not read:
    the loaders report broken files themselves)."""
    import soundfile

    try:
        info = soundfile.info(path)
        length = min(int(info.frames), int(SUMMARY_SECONDS * info.samplerate))
        start = (int(info.frames) - length) // 2
        wav, rate = soundfile.read(path, start=start, frames=length, dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError):
        return None
    return _bandwidth(wav.mean(axis=1), rate, out_rate)


def _bandwidth(wav, rate: int, out_rate: int) -> float:
    """Band limit (Hz) of a target at ``rate`` once resampled to ``out_rate``: the estimate ``evaluate``
    uses for inputs, capped by both Nyquist frequencies."""
    from gan_enhance.evaluate.spectral import estimate_cutoff

    cutoff = estimate_cutoff(wav, rate) if len(wav) else 0.0
    return float(min(cutoff, rate / 2, out_rate / 2))


def data_summary(experiment: Experiment, train_dataset, val_dataset) -> tuple[list[str], list[str]]:
    """``(lines, warnings)`` describing the run's data; see :func:`log_data_summary`."""
    from gan_enhance.data.transforms import iter_steps

    out_rate = experiment.out_sample_rate
    splits = [
        summarize_split("train", train_dataset, out_rate),
        summarize_split("validation", val_dataset, out_rate),
    ]
    lines = [
        f"rates: {experiment.in_sample_rate} Hz input -> {out_rate} Hz output (task {experiment.data.task})"
    ]
    lines += [split.line(out_rate) for split in splits]
    degradation = getattr(_unwrap(train_dataset), "degradation", None)  # none for pairs and shards
    if degradation is not None:
        lines += [line for line in (step.describe() for step in iter_steps(degradation)) if line]
    warnings = []
    for split in splits:
        narrow = split.narrow(out_rate)
        if not narrow:
            continue
        median = statistics.median(split.bandwidths)
        warnings.append(
            f"{len(narrow)} of {len(split.bandwidths)} sampled {split.name} targets are band-limited below the "
            f"{out_rate / 2000:g} kHz Nyquist frequency of the {out_rate} Hz output (median "
            f"{median / 1000:.1f} kHz): the model learns to leave the band above them empty. Use full-band "
            f"clean audio (recorded at >= {out_rate} Hz) for this output rate, or train at a lower rate"
        )
    return lines, warnings


def log_data_summary(experiment: Experiment, train_dataset, val_dataset) -> None:
    """Log what the run trains and validates on, before the first step (rank 0), and keep it in the run
    folder (``data_summary.txt``): files, hours, sample rates and the targets' estimated band limits, with
    a warning when targets are band-limited below the output rate's Nyquist frequency."""
    lines, warnings = data_summary(experiment, train_dataset, val_dataset)
    _log_summary(lines, warnings)
    run_dir = Path(experiment.runs_dir) / experiment.name
    if run_dir.is_dir():
        text = "\n".join(lines + [f"warning: {w}" for w in warnings]) + "\n"
        write_text(run_dir / SUMMARY_FILE, text)


def _log_summary(lines: list[str], warnings: list[str]) -> None:
    for line in lines:
        log.info("data: %s", line)
    for warning in warnings:
        log.warning("data: %s", warning)
