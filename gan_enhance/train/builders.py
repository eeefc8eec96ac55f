"""From a flat config dict to a checked :class:`Experiment`, and from that to a ``State`` and data.

:func:`read_experiment` reads every section through its argbind-bound function
(:class:`~gan_enhance.train.config.ConfigReader`, :mod:`gan_enhance.train.binding`) and fails, naming every
key nothing reads, before a single model is built; the sample rates are the two top-level keys
``in_sample_rate`` / ``out_sample_rate``, handed to every part that needs them.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from gan_enhance.errors import ConfigError
from gan_enhance.train.balancer import GradientBalancer
from gan_enhance.train.config import DEBUG_KEY, ConfigReader, RunSettings, parameters_of
from gan_enhance.train.data import DataSettings, DataSpec, absolute_paths, check_sources
from gan_enhance.train.distributed import DistInfo, unwrap, wrap_model
from gan_enhance.train.ema import EMASettings, GeneratorEMA
from gan_enhance.train.finetune import FineTuneSettings
from gan_enhance.train.guard import spike_guard
from gan_enhance.train.optim import OptimizerSettings, build_optimizers
from gan_enhance.train.precision import Precision
from gan_enhance.train.schedulers import SchedulerSettings, build_schedulers
from gan_enhance.train.state import LossSet, State, TrainerSettings

log = logging.getLogger("gan_enhance.train")

RATE_KEYS = ("in_sample_rate", "out_sample_rate", "sample_rate")  # = gan_enhance.train.binding.RATE_KEYS
DEGRADATION_RESERVED = ("noise_dirs", "rir_dirs")  # set from Data.noise_dirs / Data.rir_dirs
GENERATOR_LOSS_KEYS = ("adv/gen", "adv/feat")
DISCRIMINATOR_LOSS_KEY = "adv/disc"
SIDES = ("generator", "discriminator")  # the scopes of Optimizer.* and Scheduler.*


def reconstruction_losses() -> dict[str, type]:
    """Log key -> loss class of every reconstruction loss a run can weight in ``lambdas``."""
    from gan_enhance.losses import (
        MultiResolutionSTFTLoss,
        MultiScaleMelLoss,
        SISDRLoss,
        WaveformL1Loss,
        WavLMFeatureLoss,
    )

    return {
        "mel/loss": MultiScaleMelLoss,
        "stft/loss": MultiResolutionSTFTLoss,
        "l1/loss": WaveformL1Loss,
        "sisdr/loss": SISDRLoss,
        "wavlm/loss": WavLMFeatureLoss,
    }


@dataclass
class Experiment:
    """A checked run configuration: every setting resolved, nothing built yet."""

    name: str
    runs_dir: str
    in_sample_rate: int
    out_sample_rate: int
    generator: str
    generator_kwargs: dict[str, Any]
    discriminators: list[str]
    discriminator_settings: dict[str, dict[str, Any]]
    discriminator_kwargs: dict[str, Any]
    lambdas: dict[str, float]
    loss_kwargs: dict[str, dict[str, Any]]
    adversarial_kwargs: dict[str, Any]
    feature_matching_kwargs: dict[str, Any]
    trainer: TrainerSettings
    optimizer_g: OptimizerSettings
    optimizer_d: OptimizerSettings
    scheduler_g: SchedulerSettings
    scheduler_d: SchedulerSettings
    ema: EMASettings
    finetune: FineTuneSettings
    data: DataSpec
    config: dict[str, Any] = field(default_factory=dict)


def read_experiment(config: dict[str, Any]) -> Experiment:
    """Check and resolve ``config`` (a flat dict); unknown keys and bad values raise ``ConfigError``."""
    from gan_enhance.data import DEGRADATIONS, PRESETS  # through the package: it registers every degradation
    from gan_enhance.losses import AdversarialLoss, FeatureMatchingLoss
    from gan_enhance.models.discriminators import DISCRIMINATORS, build_discriminator
    from gan_enhance.models.generators import GENERATORS

    reader = ConfigReader(config, report_at_end=True)
    run = reader.settings(RunSettings, "")
    in_rate, out_rate = run.in_sample_rate, run.out_sample_rate
    generator, names = run.generator, run.discriminators
    if generator not in GENERATORS:
        raise ConfigError(f"generator is {generator!r}; choose one of {', '.join(GENERATORS.names())}")
    generator_kwargs = _class_section(reader, GENERATORS, generator)
    settings = {name: _class_section(reader, DISCRIMINATORS, name) for name in _known(names, DISCRIMINATORS)}
    _ignore_unselected(reader, GENERATORS, [generator])
    _ignore_unselected(reader, DISCRIMINATORS, names)
    combined = reader.section(
        "CombinedDiscriminator", build_discriminator, reserved=("names", "settings", "sample_rate")
    )
    losses = reconstruction_losses()
    loss_kwargs = {
        key: reader.section(losses[key].__name__, losses[key], reserved=RATE_KEYS) for key in losses
    }
    if run.task not in PRESETS:
        raise ConfigError(f"task is {run.task!r}; choose one of {', '.join(PRESETS)}")
    steps = [class_name for class_name, _ in PRESETS[run.task]["steps"]]
    _ignore_unselected(reader, DEGRADATIONS, steps)
    degradations = {}
    for class_name in steps:
        values = reader.section(class_name, DEGRADATIONS.get(class_name), reserved=DEGRADATION_RESERVED)
        if values:
            degradations[class_name] = values
    from gan_enhance.data import CleanSource

    trainer = reader.settings(TrainerSettings, "Trainer")
    data_settings = reader.settings(DataSettings, "Data")
    optimizers = [reader.settings(OptimizerSettings, "Optimizer", scope=side) for side in SIDES]
    schedulers = [reader.settings(SchedulerSettings, "Scheduler", scope=side) for side in SIDES]
    adversarial_kwargs = reader.section("AdversarialLoss", AdversarialLoss)
    feature_matching_kwargs = reader.section("FeatureMatchingLoss", FeatureMatchingLoss)
    ema, finetune = reader.settings(EMASettings, "EMA"), reader.settings(FineTuneSettings, "FineTune")
    source_settings = reader.section("CleanSource", CleanSource, reserved=("sources",))
    reader.check_all_used()  # every unknown key at once, before any value is judged
    lambdas = _lambdas(run.lambdas, bool(names))
    check_sources(data_settings)
    experiment = Experiment(
        name=_run_name(run.name),
        runs_dir=run.runs_dir,
        in_sample_rate=in_rate,
        out_sample_rate=out_rate,
        generator=generator,
        generator_kwargs=generator_kwargs,
        discriminators=names,
        discriminator_settings=settings,
        discriminator_kwargs=combined,
        lambdas=lambdas,
        loss_kwargs=loss_kwargs,
        adversarial_kwargs=adversarial_kwargs,
        feature_matching_kwargs=feature_matching_kwargs,
        trainer=trainer,
        optimizer_g=optimizers[0],
        optimizer_d=optimizers[1],
        scheduler_g=schedulers[0],
        scheduler_d=schedulers[1],
        ema=ema,
        finetune=finetune,
        data=DataSpec(
            settings=data_settings,
            task=run.task,
            degradation_settings=degradations,
            source_settings=source_settings,
            in_sample_rate=in_rate,
            out_sample_rate=out_rate,
            seed=trainer.seed,
        ),
        config={key: value for key, value in config.items() if key != DEBUG_KEY},
    )
    _check_cadence(trainer)
    return experiment


def _class_section(reader: ConfigReader, registry: Any, name: str) -> dict[str, Any]:
    cls = registry.get(name)
    return reader.section(cls.__name__, cls, reserved=RATE_KEYS)


def _known(names: list[str], registry: Any) -> list[str]:
    unknown = [name for name in names if name not in registry]
    if unknown:
        raise ConfigError(f"discriminators {unknown} are unknown; choose from {', '.join(registry.names())}")
    if len(set(names)) != len(names):
        raise ConfigError(f"discriminators repeat a family: {names}")
    return names


def _ignore_unselected(reader: ConfigReader, registry: Any, selected: list[str]) -> None:
    """Settings of a registered but unselected part are accepted with a note, once per process (overlays
    such as the small recipe sizes switch the part; the check, the run and its summary read the config)."""
    for name in registry.names():
        if name in selected:
            continue
        prefix = registry.get(name).__name__
        keys = [key for key in reader.config if key.split("/")[-1].startswith(f"{prefix}.")]
        if keys:
            message = f"ignoring {', '.join(keys)}: {registry.kind} {name!r} is not selected in this run"
            if log.isEnabledFor(logging.INFO):
                _note_once(message)
            reader.mark_used(prefix)


@functools.cache
def _note_once(message: str) -> None:
    log.info(message)


def _lambdas(values: dict[str, Any], adversarial: bool) -> dict[str, float]:
    if not isinstance(values, dict):
        raise ConfigError(f"lambdas must map loss keys to weights, got {values!r}")
    known = set(reconstruction_losses()) | set(GENERATOR_LOSS_KEYS) | {DISCRIMINATOR_LOSS_KEY}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"lambdas has unknown key(s) {unknown}; the loss keys are {', '.join(sorted(known))}"
        )
    lambdas = {}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"lambdas[{key!r}] must be a non-negative number, got {value!r}")
        lambdas[key] = float(value)
    if not any(lambdas.get(key, 0.0) > 0 for key in reconstruction_losses()) and not adversarial:
        raise ConfigError(
            "lambdas gives no reconstruction loss a positive weight and no discriminator is set"
        )
    return lambdas


def _run_name(name: str) -> str:
    """A run name is one folder under ``runs_dir``: no separators, no ``..``, so nothing lands elsewhere."""
    if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
        raise ConfigError(
            f"name {name!r} must be a plain folder name (no '/', not '.' or '..'); "
            "choose where runs go with runs_dir"
        )
    return name


def _check_cadence(trainer: TrainerSettings) -> None:
    for name in ("max_steps", "batch_size", "log_every", "checkpoint_every", "disc_updates", "grad_accum"):
        if getattr(trainer, name) <= 0:
            raise ConfigError(f"Trainer.{name} must be positive, got {getattr(trainer, name)}")
    spike_guard(trainer)  # raises on bad guard settings
    if trainer.balancer and trainer.precision == "fp16":
        raise ConfigError(
            "Trainer.balancer measures each loss's gradient unscaled, which underflows in fp16; "
            "use Trainer.precision bf16 or fp32 with the balancer"
        )
    if trainer.balancer and not (trainer.balancer_total_norm > 0 and 0 <= trainer.balancer_decay < 1):
        raise ConfigError(
            f"Trainer.balancer_total_norm must be > 0 (got {trainer.balancer_total_norm}) and "
            f"Trainer.balancer_decay in [0, 1) (got {trainer.balancer_decay})"
        )
    if trainer.batch_size % trainer.grad_accum:
        raise ConfigError(
            f"Trainer.batch_size ({trainer.batch_size}) must be a multiple of Trainer.grad_accum ({trainer.grad_accum})"
        )


# -- building -------------------------------------------------------------------------------------------------------
def build_state(experiment: Experiment, dist: DistInfo) -> State:
    """Models, losses, optimizers, schedules, EMA and precision of a checked experiment, on ``dist.device``."""
    from gan_enhance.losses import AdversarialLoss, FeatureMatchingLoss
    from gan_enhance.models.discriminators import build_discriminator
    from gan_enhance.models.generators import build_generator

    trainer = experiment.trainer
    rates = {"in_sample_rate": experiment.in_sample_rate, "out_sample_rate": experiment.out_sample_rate}
    generator = build_generator(experiment.generator, **experiment.generator_kwargs, **rates)
    discriminator = None
    if experiment.discriminators:
        discriminator = build_discriminator(
            experiment.discriminators,
            experiment.discriminator_settings,
            sample_rate=experiment.out_sample_rate,
            **experiment.discriminator_kwargs,
        )
    ema = GeneratorEMA(generator.to(dist.device), experiment.ema) if experiment.ema.decay > 0 else None
    losses = LossSet(
        reconstruction=build_losses(experiment),
        adversarial=AdversarialLoss(**experiment.adversarial_kwargs) if discriminator is not None else None,
        feature_matching=FeatureMatchingLoss(**experiment.feature_matching_kwargs) if discriminator else None,
    ).to(dist.device)
    unused = trainer.find_unused_parameters
    generator = wrap_model(generator, dist, unused)
    discriminator = wrap_model(discriminator, dist, unused) if discriminator is not None else None
    if trainer.compile:
        from gan_enhance._compat import allow_retained_compiled_graphs

        allow_retained_compiled_graphs()  # the loss gradients at y_hat keep the discriminator's graph
        generator.compile()
        if discriminator is not None:
            # The module inside DDP: the generator step calls it bare (see generator_losses), and a
            # compiled wrapper would leave that pass, the costliest of an adversarial step, eager.
            unwrap(discriminator).compile()
    optimizers_g = build_optimizers(generator, experiment.optimizer_g)
    optimizers_d = (
        build_optimizers(discriminator, experiment.optimizer_d) if discriminator is not None else []
    )
    return State(
        generator=generator,
        discriminator=discriminator,
        optimizers_g=optimizers_g,
        optimizers_d=optimizers_d,
        schedulers_g=build_schedulers(optimizers_g, experiment.scheduler_g, trainer.max_steps),
        schedulers_d=build_schedulers(optimizers_d, experiment.scheduler_d, trainer.max_steps),
        losses=losses,
        lambdas=experiment.lambdas,
        precision=Precision(trainer.precision, dist.device),
        settings=trainer,
        dist=dist,
        ema=ema,
        balancer=balancer(experiment, dist.device),
    )


def balancer(experiment: Experiment, device) -> GradientBalancer | None:
    """The gradient balancer ``Trainer.balancer`` asks for, weighing the generator's losses by ``lambdas``."""
    trainer = experiment.trainer
    if not trainer.balancer:
        return None
    weights = {key: value for key, value in experiment.lambdas.items() if key != DISCRIMINATOR_LOSS_KEY}
    return GradientBalancer(weights, trainer.balancer_total_norm, trainer.balancer_decay, device)


def build_losses(experiment: Experiment) -> dict:
    """The reconstruction losses named in ``lambdas`` (weight 0: logged only, if the trainer asks, and never
    for a loss that loads an external model, such as WavLM)."""
    losses = {}
    for key, cls in reconstruction_losses().items():
        if key not in experiment.lambdas:
            continue
        logged_only = not experiment.trainer.log_zero_weight_losses or getattr(cls, "loads_model", False)
        if experiment.lambdas[key] == 0 and logged_only:
            continue
        kwargs = dict(experiment.loss_kwargs[key])
        if "sample_rate" in inspect.signature(cls).parameters:
            kwargs["sample_rate"] = experiment.out_sample_rate
        losses[key] = cls(**kwargs)
    return losses


def resolved_config(experiment: Experiment, state: State) -> dict[str, Any]:
    """The run's full config as flat keys, every default written out (dumped to ``config.yml``).

    Loading it back gives the same run: it is what ``--resume`` and fine-tuning stages should read.
    """
    from gan_enhance.train.distributed import unwrap

    config: dict[str, Any] = {
        "name": experiment.name,
        "runs_dir": os.path.abspath(experiment.runs_dir),
        "in_sample_rate": experiment.in_sample_rate,
        "out_sample_rate": experiment.out_sample_rate,
        "generator": experiment.generator,
        "discriminators": list(experiment.discriminators),
        "task": experiment.data.task,
        "lambdas": dict(experiment.lambdas),
    }
    generator = unwrap(state.generator)
    _put(config, type(generator).__name__, _without_rates(generator.build_config["kwargs"]))
    if state.discriminator is not None:
        from gan_enhance.models.discriminators import DISCRIMINATORS

        built = unwrap(state.discriminator).build_config
        for family in experiment.discriminators:
            _put(config, DISCRIMINATORS.get(family).__name__, _without_rates(built["settings"][family]))
        _put(
            config,
            "CombinedDiscriminator",
            {k: built[k] for k in ("normalize_input", "input_peak") if k in built},
        )
    losses = reconstruction_losses()
    for key, cls in losses.items():
        defaults = _defaults(cls)
        _put(config, cls.__name__, _without_rates({**defaults, **experiment.loss_kwargs[key]}))
    sections = {
        "Trainer": asdict(experiment.trainer),
        "generator/Optimizer": asdict(experiment.optimizer_g),
        "discriminator/Optimizer": asdict(experiment.optimizer_d),
        "generator/Scheduler": asdict(experiment.scheduler_g),
        "discriminator/Scheduler": asdict(experiment.scheduler_d),
        "EMA": asdict(experiment.ema),
        "FineTune": asdict(experiment.finetune),
        "Data": asdict(absolute_paths(experiment.data.settings)),
        "AdversarialLoss": experiment.adversarial_kwargs,
        "FeatureMatchingLoss": experiment.feature_matching_kwargs,
        "CleanSource": experiment.data.source_settings,
    }
    for prefix, values in sections.items():
        _put(config, prefix, values)
    for class_name, values in experiment.data.degradation_settings.items():
        _put(config, class_name, values)
    return config


def _defaults(cls: type) -> dict[str, Any]:
    signature = inspect.signature(cls)
    return {
        name: parameter.default
        for name, parameter in signature.parameters.items()
        if parameter.default is not inspect.Parameter.empty and name in parameters_of(cls)
    }


def _without_rates(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if key not in RATE_KEYS}


def _put(config: dict[str, Any], prefix: str, values: dict[str, Any]) -> None:
    for key, value in values.items():
        config[f"{prefix}.{key}"] = list(value) if isinstance(value, tuple) else value
