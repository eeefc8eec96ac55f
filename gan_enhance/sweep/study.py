"""A sweep's settings, its Optuna storage and study: created once, joined by any number of workers.

The settings (base config, search space, objective, pruner, sampler, trial count) are stored in the
study itself (a user attribute), so a worker needs only the storage URL and the study name. Storage is
SQLite in the sweep folder by default (``sqlite:///<sweep>/study.db``, nothing to start) or any RDB URL
Optuna takes (``postgresql://user:password@host/db``) for workers on several machines.

Every storage keeps a heartbeat: a trial whose worker died (killed, machine lost) stops beating, and the
next worker to start a trial after ``grace`` seconds marks it failed and queues a retry with the same
parameters (Optuna's ``RetryHeartbeatStaleTrialCallback``), which resumes the trial's run folder.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gan_enhance.errors import ConfigError

SETTINGS_ATTR = "gan_enhance_sweep"
STUDY_DB = "study.db"
PRUNERS = ("median", "hyperband", "none")
SAMPLERS = ("tpe", "random")
DIRECTIONS = ("minimize", "maximize")


@dataclass
class SweepSettings:
    """What a sweep searches and how; stored in the study so every worker runs the same sweep.

    Attributes
    ----------
    base : dict
        The flat base config (a ``train`` config with its overrides merged).
    space : dict
        The search space as written (see :mod:`gan_enhance.sweep.space`).
    metric : str
        The validation metric to optimise (a key of the trainer's validation metrics: ``mel/loss``,
        ``metric/sisdr``, ``metric/pesq``, ...).
    direction : str
        ``minimize`` or ``maximize``.
    trials : int
        Finished trials (complete or pruned) the study should reach.
    pruner : str
        ``median``, ``hyperband`` or ``none``.
    startup_trials : int
        Median pruner: trials that finish before any is pruned.
    warmup_steps : int
        Median pruner: steps before a trial can be pruned.
    sampler : str
        ``tpe`` or ``random``.
    seed : int
        The sampler's seed.
    """

    base: dict[str, Any]
    space: dict[str, Any]
    metric: str
    direction: str
    trials: int
    pruner: str = "median"
    startup_trials: int = 2
    warmup_steps: int = 0
    sampler: str = "tpe"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ConfigError(f"direction is {self.direction!r}; use minimize or maximize")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"pruner is {self.pruner!r}; use one of {', '.join(PRUNERS)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"sampler is {self.sampler!r}; use one of {', '.join(SAMPLERS)}")
        if self.trials < 1:
            raise ConfigError(f"trials must be at least 1, got {self.trials}")

    @property
    def max_steps(self) -> int:
        return int(self.base.get("Trainer.max_steps", 0))

    def as_attr(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def stable_enough() -> Iterator[None]:
    """Silence Optuna's ExperimentalWarning for the heartbeat and retry API, which this package relies on
    (and its tests cover) on purpose."""
    from optuna.exceptions import ExperimentalWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


def default_direction(metric: str) -> str:
    """``metric/<name>``: the direction ``gan-enhance evaluate`` declares for ``<name>`` (``maximize`` for
    ``sisdr``, ``pesq``, ``stoi``, DNSMOS; ``minimize`` for ``mel_distance``, ``lsd``); losses:
    ``minimize``."""
    if metric.startswith("metric/"):
        from gan_enhance.evaluate.metrics import LOWER, METRICS

        spec = METRICS.get(metric.removeprefix("metric/"))
        return "minimize" if spec is not None and spec.better == LOWER else "maximize"
    return "maximize" if "mos" in metric.lower() else "minimize"


def storage_url(sweep_dir: str | Path, url: str = "") -> str:
    """``url`` as given, or SQLite in the sweep folder."""
    if url:
        return url
    return f"sqlite:///{os.path.abspath(os.path.join(sweep_dir, STUDY_DB))}"


def open_storage(url: str, heartbeat: int = 60, grace: int = 0, max_retry: int = 3):
    """An Optuna ``RDBStorage`` with heartbeats and automatic retry of trials whose worker died.

    Parameters
    ----------
    url : str
        ``sqlite:///path`` or an RDB URL (``postgresql://...``; needs the psycopg driver).
    heartbeat : int
        Seconds between a running trial's heartbeats.
    grace : int
        Seconds without a heartbeat after which a trial counts as dead (0: twice ``heartbeat``).
    max_retry : int
        How often one trial may be retried.
    """
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        # Workers sharing one file wait for its lock instead of failing at once.
        engine = {"connect_args": {"timeout": 120}}
    else:
        engine = {"pool_pre_ping": True}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with stable_enough():
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat,
                grace_period=grace or 2 * heartbeat,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                    max_retry=max_retry, inherit_intermediate_values=True
                ),
            )
    except ImportError as error:
        raise ConfigError(
            f"storage {_safe(url)} needs a database driver that is not installed ({error}); for "
            "PostgreSQL: pip install 'psycopg[binary]'"
        ) from None
    except Exception as error:  # SQLAlchemy's connection errors: one line naming the storage
        if type(error).__module__.startswith("sqlalchemy"):
            first = str(error).splitlines()[0]
            raise ConfigError(f"cannot open storage {_safe(url)}: {first}") from None
        raise


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@", 1)[0]:
        user = tail.split("@", 1)[0].split(":", 1)[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def build_sampler(settings: SweepSettings, offset: int = 0):
    """The sampler, seeded with ``settings.seed + offset`` (workers joining a study pass their own
    offset, so two that start together do not draw the same values)."""
    import optuna

    seed = settings.seed + offset
    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def build_pruner(settings: SweepSettings):
    """The pruner; its steps are training steps (the trainer reports at each validation step)."""
    import optuna

    if settings.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=settings.startup_trials, n_warmup_steps=settings.warmup_steps
        )
    if settings.pruner == "hyperband":
        valid_every = int(settings.base.get("Trainer.valid_every", 1)) or 1
        return optuna.pruners.HyperbandPruner(
            min_resource=valid_every, max_resource=max(settings.max_steps, valid_every)
        )
    return optuna.pruners.NopPruner()


def create_study(settings: SweepSettings, storage, name: str):
    """Create the study (or load it when it exists with the same objective) and store the settings."""
    import optuna

    existing = _stored_settings(storage, name)
    if existing is not None:
        if (existing["metric"], existing["direction"]) != (settings.metric, settings.direction):
            raise ConfigError(
                f"study {name!r} already optimises {existing['metric']} ({existing['direction']}); "
                "use another --study name or sweep folder"
            )
        if existing["space"] != settings.space:
            raise ConfigError(
                f"study {name!r} already exists with another search space; use another --study name or "
                "sweep folder, or run it with --worker"
            )
    study = optuna.create_study(
        storage=storage,
        study_name=name,
        direction=settings.direction,
        sampler=build_sampler(settings),
        pruner=build_pruner(settings),
        load_if_exists=True,
    )
    study.set_user_attr(SETTINGS_ATTR, settings.as_attr())
    return study


def load_study(storage, name: str):
    """Join an existing study; returns it and its settings."""
    import optuna

    stored = _stored_settings(storage, name)
    if stored is None:
        raise ConfigError(
            f"no sweep {name!r} in the storage; start it first with gan-enhance sweep --args.load BASE.yml "
            "--space SPACE.yml (same --out/--storage/--study), then add workers"
        )
    settings = SweepSettings(**stored)
    study = optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=build_sampler(settings, offset=os.getpid()),
        pruner=build_pruner(settings),
    )
    return study, settings


def _stored_settings(storage, name: str) -> dict[str, Any] | None:
    for study in storage.get_all_studies():
        if study.study_name == name:
            return study.user_attrs.get(SETTINGS_ATTR)
    return None
