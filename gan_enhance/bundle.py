"""Save and load a generator bundle: the generator alone, as ``model.safetensors`` + ``config.json``.

A bundle is what users ship and what inference loads. Loading one needs neither argbind nor the training
code nor the discriminators, and never unpickles anything: the weights come from safetensors and the
architecture from JSON (the registry name and the constructor arguments the registry recorded when it
built the generator). Weight norm is folded into plain weights before saving, so a loaded generator runs
the inference graph directly.

Folder layout::

    OUT/
      model.safetensors   weights (weight norm removed)
      config.json         {"format", "format_version", "version", "generator": {"name", "kwargs"},
                           "in_sample_rate", "out_sample_rate", "context", "alignment", "source"}
      model.onnx          optional, written by ``gan-enhance export --onnx``
      model.ts            optional, written by ``gan-enhance export --torchscript``

Writes are atomic: files go to a hidden staging folder next to ``OUT`` which is renamed into place only
when complete, so an interrupted export never leaves a half-written bundle under the real name. The
files get the permissions of any file the user creates (``0644`` under umask ``022``).

:func:`load_generator` also takes a training run folder or checkpoint and exports it in memory (as
``gan-enhance export`` would, EMA weights included); only that path reads a pickle-based checkpoint
(``torch.load(weights_only=True)``) and imports the training code that checks it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import types
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from gan_enhance.atomic import give_default_permissions
from gan_enhance.devices import resolve_device
from gan_enhance.errors import CheckpointError, ConfigError
from gan_enhance.version import __version__

FORMAT = "gan_enhance.generator"
# Bumped when the folder layout changes in a way older loaders cannot read.
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
TORCHSCRIPT_FILE = "model.ts"
BUNDLE_FILES = (WEIGHTS_FILE, CONFIG_FILE, ONNX_FILE, TORCHSCRIPT_FILE)


def generator_registry():
    """The generator registry (imported on first use so this module loads without the backbones)."""
    from gan_enhance.models.generators import GENERATORS

    return GENERATORS


def bundle_config(generator: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``config.json`` content describing ``generator``.

    Parameters
    ----------
    generator : Generator
        Built through the generator registry (it carries ``build_config``).
    extra : dict, optional
        Where the weights came from (checkpoint, step, metrics, ...); stored under ``"source"``.
        Must be JSON-serialisable.
    """
    build_config = getattr(generator, "build_config", None)
    if not isinstance(build_config, dict) or "name" not in build_config or "kwargs" not in build_config:
        raise CheckpointError(
            f"cannot export a {type(generator).__name__} without a build_config: build it with "
            "gan_enhance.models.generators.build_generator(name, **kwargs) so it can be rebuilt from JSON"
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "generator": {"name": build_config["name"], "kwargs": build_config["kwargs"]},
        "in_sample_rate": int(generator.in_sample_rate),
        "out_sample_rate": int(generator.out_sample_rate),
        "context": int(generator.context),
        "alignment": int(getattr(generator, "alignment", 1)),
        "source": dict(extra or {}),
    }


def inference_copy(generator: nn.Module) -> nn.Module:
    """A fresh copy of ``generator`` in eval mode on CPU with weight norm folded in.

    The copy is rebuilt from ``build_config`` and loaded with the state dict rather than deep-copied:
    a deep copy of a weight-normed module shares its parametrization class with the original, and
    removing weight norm from the copy would then break the original.
    """
    config = bundle_config(generator)["generator"]
    copy = generator_registry().build(config["name"], **config["kwargs"])
    copy.load_state_dict({key: value.detach().cpu() for key, value in generator.state_dict().items()})
    return copy.eval().remove_weight_norm()


def write_bundle_files(generator: nn.Module, folder: str, extra: dict[str, Any] | None = None) -> nn.Module:
    """Write ``model.safetensors`` and ``config.json`` for ``generator`` into an existing ``folder``.

    Returns
    -------
    nn.Module
        The inference copy that was saved (weight norm removed, eval mode, CPU), for further exports.
    """
    from safetensors.torch import save_model

    config = bundle_config(generator, extra)
    try:
        text = json.dumps(config, indent=2, sort_keys=True)
    except TypeError as error:
        raise CheckpointError(
            f"export metadata is not JSON-serialisable ({error}); pass plain values"
        ) from None
    model = inference_copy(generator)
    # save_model (not save_file) copes with tied weights, which safetensors cannot store twice.
    save_model(model, os.path.join(folder, WEIGHTS_FILE), metadata={"format": "pt", "bundle": FORMAT})
    with open(os.path.join(folder, CONFIG_FILE), "w", encoding="utf-8") as handle:
        handle.write(text + "\n")
    return model


def _is_replaceable(path: str) -> bool:
    """True when ``path`` is absent, an empty folder, or a folder holding only bundle files."""
    if not os.path.exists(path):
        return True
    if not os.path.isdir(path):
        return False
    return all(name in BUNDLE_FILES for name in os.listdir(path))


@contextlib.contextmanager
def staged_folder(out_dir: str | os.PathLike) -> Iterator[str]:
    """Yield a hidden staging folder next to ``out_dir``; on success it replaces ``out_dir`` atomically.

    An existing ``out_dir`` is replaced only when it is empty or holds nothing but bundle files, so a
    mistyped path never deletes unrelated data. On an exception the staging folder is removed and
    ``out_dir`` is left as it was.
    """
    out_dir = os.path.abspath(os.fspath(out_dir))
    if not _is_replaceable(out_dir):
        raise CheckpointError(
            f"'{out_dir}' exists and is not an exported model folder; choose a new or empty output folder"
        )
    parent = os.path.dirname(out_dir)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.staging.", dir=parent)
    try:
        yield staging
        # mkdtemp makes the folder private and safetensors writes private files; give both the
        # permissions a plain mkdir / open would.
        for name in os.listdir(staging):
            path = os.path.join(staging, name)
            if os.path.isfile(path) and not os.path.islink(path):
                give_default_permissions(path)
        give_default_permissions(staging, folder=True)
        if os.path.exists(out_dir):
            # A folder cannot be renamed over a non-empty one: move the old bundle aside first.
            retired = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old.", dir=parent)
            os.replace(out_dir, os.path.join(retired, "bundle"))
            os.replace(staging, out_dir)
            shutil.rmtree(retired, ignore_errors=True)
        else:
            os.replace(staging, out_dir)
    finally:
        if os.path.exists(staging):
            shutil.rmtree(staging, ignore_errors=True)


def save_bundle(generator: nn.Module, out_dir: str | os.PathLike, extra: dict[str, Any] | None = None) -> str:
    """Export ``generator`` as ``out_dir/{model.safetensors, config.json}``, atomically.

    Parameters
    ----------
    generator : Generator
        Any backbone built through the registry; it is copied, so weight norm stays on the original.
    out_dir : str or PathLike
        Created (with parents) or replaced when it already holds a bundle.
    extra : dict, optional
        JSON-serialisable provenance stored as ``config.json["source"]``.

    Returns
    -------
    str
        The absolute path of the bundle folder.
    """
    with staged_folder(out_dir) as staging:
        write_bundle_files(generator, staging, extra)
    return os.path.abspath(os.fspath(out_dir))


def read_bundle_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``config.json`` of a bundle.

    Raises
    ------
    CheckpointError
        If the folder or file is missing, not JSON, not a generator bundle, or from a newer format.
    """
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise CheckpointError(
            f"model folder '{model_dir}' does not exist; pass a folder made by gan-enhance export"
        )
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise CheckpointError(
            f"'{path}' is missing; '{model_dir}' is not an exported model (gan-enhance export)"
        )
    try:
        with open(path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CheckpointError(f"'{path}' is not valid JSON ({error}); re-export the model") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"'{path}' does not describe a gan_enhance generator (format != '{FORMAT}')")
    if int(config.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"'{path}' has bundle format {config['format_version']}, newer than this gan_enhance "
            f"({__version__}) reads ({FORMAT_VERSION}); upgrade gan_enhance"
        )
    generator = config.get("generator")
    if (
        not isinstance(generator, dict)
        or not isinstance(generator.get("kwargs"), dict)
        or "name" not in generator
    ):
        raise CheckpointError(f"'{path}' lacks generator.name / generator.kwargs; re-export the model")
    return config


def _build(config: dict[str, Any], path: str) -> nn.Module:
    registry = generator_registry()
    name, kwargs = config["generator"]["name"], config["generator"]["kwargs"]
    if name not in registry:
        raise CheckpointError(
            f"'{path}' needs generator {name!r}, which this gan_enhance ({__version__}) does not have; "
            f"known: {', '.join(registry.names())}"
        )
    try:
        return registry.build(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise CheckpointError(
            f"'{path}': cannot build generator {name!r} from its settings ({error})"
        ) from None


def _enhance(self: nn.Module, waveform, sample_rate: int, **options):
    """Enhance a waveform with this generator: ``(enhanced, rate)``.

    ``waveform`` is a tensor ``(T,)`` or ``(C, T)``, or a numpy array ``(T,)`` or ``(T, C)`` as
    ``soundfile.read`` returns it, at any ``sample_rate``; ``enhanced`` comes back float32 in the same
    type and layout (see :func:`gan_enhance.enhance.channels_first`, which raises a one-line
    :class:`~gan_enhance.errors.ConfigError` for other shapes). ``options`` go to
    :class:`~gan_enhance.enhance.Enhancer` (``chunk_seconds``, ``keep_sample_rate``, ``device``, ...);
    ``rate`` is the model's output rate, or ``sample_rate`` with ``keep_sample_rate``.
    """
    # enhance sits one layer above this module (it loads bundles), so it is imported on use.
    from gan_enhance.enhance import Enhancer, channels_first

    signal, restore = channels_first(waveform)
    device = next(self.parameters(), torch.empty(0)).device
    options.setdefault("device", str(device))
    enhanced, rate = Enhancer(self, **options).enhance_waveform(signal, sample_rate)
    return restore(enhanced), rate


def _from_bundle(model_dir: str) -> tuple[nn.Module, dict[str, Any]]:
    """An exported bundle's generator (weight norm removed, CPU) and its config's ``source``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    config = read_bundle_config(model_dir)
    config_path = os.path.join(model_dir, CONFIG_FILE)
    weights_path = os.path.join(model_dir, WEIGHTS_FILE)
    if not os.path.isfile(weights_path):
        raise CheckpointError(f"'{weights_path}' is missing; re-export the model into '{model_dir}'")
    generator = _build(config, config_path)
    generator.remove_weight_norm()
    try:
        missing, unexpected = load_model(generator, weights_path, strict=False, device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"'{weights_path}' is corrupt or does not fit its config ({error})") from None
    if missing or unexpected:
        raise CheckpointError(
            f"'{weights_path}' does not match the architecture in '{config_path}': "
            f"missing {missing or 'none'}, unexpected {unexpected or 'none'}; re-export the model"
        )
    for key in ("in_sample_rate", "out_sample_rate"):
        if key in config and int(config[key]) != int(getattr(generator, key)):
            raise CheckpointError(
                f"'{config_path}': {key} {config[key]} disagrees with the generator's settings"
            )
    return generator, dict(config.get("source") or {})


def _from_checkpoint(path: str, tag: str) -> tuple[nn.Module, dict[str, Any]]:
    """A training run's (or checkpoint's) generator, exported in memory like ``gan-enhance export``."""
    from gan_enhance.checkpoint_io import find_checkpoint, generator_from_checkpoint

    if os.path.isdir(path) and not any(
        os.path.exists(os.path.join(path, name)) for name in ("checkpoint.pt", "checkpoints")
    ):
        raise CheckpointError(
            f"'{path}' is neither an exported model (no {CONFIG_FILE}) nor a training run (no checkpoints/ "
            "or checkpoint.pt); pass a folder made by gan-enhance export, runs/<name> or a checkpoint.pt"
        )
    generator, source = generator_from_checkpoint(find_checkpoint(path, tag))
    return generator.remove_weight_norm(), source


def load_generator(model: str | os.PathLike, device: str = "cpu", tag: str | None = None) -> nn.Module:
    """Load a generator for inference (eval mode, weight norm removed).

    Parameters
    ----------
    model : str or PathLike
        A folder written by :func:`save_bundle` / ``gan-enhance export`` (only ``config.json`` and
        ``model.safetensors`` are read; nothing is unpickled), or a training run folder (``runs/<name>``),
        a checkpoint folder or a ``checkpoint.pt``: exported in memory, with the EMA weights when the
        checkpoint holds EMA weights that saw an update (its trained weights otherwise).
    device : str
        Where to put the weights (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...).
    tag : str, optional
        The checkpoint of a run folder: ``best`` (default), ``latest``, ``<N>k``. Only for runs.

    Returns
    -------
    Generator
        The backbone, with an extra bound method ``enhance(waveform, sample_rate, **options)`` (see
        :func:`_enhance`) and ``provenance``: the export's ``source`` (checkpoint, step, weights used).

    Raises
    ------
    CheckpointError
        If the folder, config, weights or checkpoint are missing, corrupt, or do not fit the architecture.
    ConfigError
        If ``device`` is not available, or ``tag`` is given for an exported model.
    """
    path = os.fspath(model)
    resolved = resolve_device(device)
    if os.path.isfile(os.path.join(path, CONFIG_FILE)):
        if tag is not None:
            raise ConfigError(
                f"'{path}' is an exported model; a tag (--tag {tag}) only picks a run's checkpoint"
            )
        generator, source = _from_bundle(path)
    elif os.path.exists(path):
        generator, source = _from_checkpoint(path, tag or "best")
    else:
        raise CheckpointError(
            f"model '{path}' does not exist; pass a folder made by gan-enhance export, a training run "
            "(runs/<name>) or a checkpoint.pt"
        )
    generator = generator.to(resolved).eval()
    generator.provenance = source
    generator.enhance = types.MethodType(_enhance, generator)
    return generator
