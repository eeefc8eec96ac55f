"""Name -> class registries for generators, discriminators and other configurable parts.

A registry records, on every object it builds, the full resolved constructor arguments
(``obj.build_config``), so an exported model can be rebuilt from JSON without the config system.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any


class Registry:
    """A named collection of constructors.

    Parameters
    ----------
    kind : str
        What the registry holds ("generator", "discriminator", ...); used in error messages.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator adding a class (or factory) under ``name``."""

        def add(item: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = item
            item.registry_name = name
            return item

        return add

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def get(self, name: str) -> Callable[..., Any]:
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; known: {', '.join(self.names())}") from None

    def resolve_arguments(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        """All constructor arguments of ``name`` with defaults filled in; unknown keys are an error."""
        signature = inspect.signature(self.get(name))
        accepted = set(signature.parameters)
        unknown = sorted(set(kwargs) - accepted)
        if unknown:
            raise TypeError(
                f"{self.kind} {name!r} has no setting {', '.join(map(repr, unknown))}; "
                f"its settings are: {', '.join(sorted(accepted))}"
            )
        bound = signature.bind(**kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def build(self, name: str, **kwargs: Any) -> Any:
        """Construct ``name`` with ``kwargs`` and record ``build_config = {"name", "kwargs"}`` on it."""
        arguments = self.resolve_arguments(name, kwargs)
        obj = self.get(name)(**arguments)
        obj.build_config = {"name": name, "kwargs": arguments}
        return obj
