"""The generator registry (kept apart so backbone modules can register without import cycles)."""

from gan_enhance.registry import Registry

GENERATORS = Registry("generator")
