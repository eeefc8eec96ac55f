"""The device a user names, checked against what this torch and machine have; constant tensors cached
per device."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

import torch

from gan_enhance.errors import ConfigError

Built = TypeVar("Built")


def resolve_device(device: str | torch.device) -> torch.device:
    """``device`` as a :class:`torch.device` this torch can use.

    Raises
    ------
    ConfigError
        One line, when ``device`` is not a device name or not available here (e.g. ``cuda`` on a CPU-only
        torch, or ``cuda:3`` on a machine with two GPUs).
    """
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"device {str(device)!r} is not a device name; use cpu, cuda or cuda:<index>"
        ) from None
    if resolved.type == "cuda":
        if torch.version.cuda is None and torch.version.hip is None:
            raise ConfigError(
                f"device {str(device)!r}: this torch ({torch.__version__}) is built without CUDA; use cpu, "
                "or install a CUDA build of torch"
            )
        count = torch.cuda.device_count()
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ConfigError(f"device {str(device)!r}: {count} CUDA GPU(s) visible to this process; use cpu")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {str(device)!r} is not available on this machine; use cpu")
    return resolved


def cached_constant(maxsize: int) -> Callable[[Callable[..., Built]], Callable[..., Built]]:
    """``functools.lru_cache`` for a function that builds constant tensors (a window, a filterbank, a
    kernel, a module holding one) once per argument set, typically per device and dtype.

    The build runs outside inference mode: a tensor first made under ``torch.inference_mode()``
    (enhancing, evaluating, exporting) can never be saved for backward, and the cache would hand that one
    to every later caller in the process, training included.

    Parameters
    ----------
    maxsize : int
        Argument sets kept (least recently used first out).

    Returns
    -------
    Callable
        A decorator; the decorated function keeps ``lru_cache``'s ``cache_clear`` and ``cache_info``.
    """

    def decorate(function: Callable[..., Built]) -> Callable[..., Built]:
        @functools.lru_cache(maxsize=maxsize)
        @functools.wraps(function)
        def build(*args, **kwargs) -> Built:
            with torch.inference_mode(False):
                return function(*args, **kwargs)

        return build

    return decorate
