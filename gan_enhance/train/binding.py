"""argbind at the edge (DAC style): every config section is an argbind-bound function.

Each section of a run config (the top-level keys, ``Trainer``, ``Data``, ``Optimizer``, a generator class
such as ``HiFiPlusPlus``, a loss, a degradation) becomes one function bound with :func:`argbind.bind`
under the section's prefix, with the constructor's parameters, defaults and first docstring lines.
``Optimizer`` and ``Scheduler`` are bound with the scopes ``generator`` and ``discriminator``: inside
``argbind.scope(config, "generator")`` the key ``generator/Optimizer.lr`` wins over ``Optimizer.lr``.

The trainer's :class:`~gan_enhance.train.config.ConfigReader` takes every value it hands to a constructor
from these bound functions (:func:`bound_values`), so ``--args.debug`` makes argbind print each section
with the values it receives; ``gan-enhance train --help`` is argbind's generated parser
(:func:`gan_enhance.cli._args.help_parser`). The models, losses and data classes never see argbind: the bound functions are
stand-ins made here. What argbind 0.3.9 lacks stays in :mod:`gan_enhance.train.config`, on top of it:
recursive ``$include``, dict-valued keys that merge, values read as YAML and checked against the
annotations, and every unknown key reported at once with "did you mean" (argbind drops them silently).

This module sits with the command line and imports nothing heavy: ``--help`` reads the sections from the
source files with :mod:`ast` (:func:`source_sections`), and a test checks that they equal the imported
objects' signatures (:func:`callable_spec`).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import argbind
import yaml

GROUP = "gan-enhance-train"
DEBUG_KEY = "args.debug"  # argbind's key (gan_enhance.train.config.DEBUG_KEY too)
SCOPES = ("generator", "discriminator")
RATE_KEYS = ("in_sample_rate", "out_sample_rate", "sample_rate")
TOP_LEVEL = "RunSettings"  # argbind's name for the function of the top-level keys (bound without prefix)
PACKAGE = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Parameter:
    """One setting of a section: its annotation as written, its default and one line of doc."""

    annotation: str
    default: Any
    doc: str


@dataclass(frozen=True)
class SectionSpec:
    """A config section as argbind binds it: ``prefix`` ("" for the top-level keys) and its settings."""

    prefix: str
    summary: str
    parameters: dict[str, Parameter]
    scopes: tuple[str, ...] = ()


class Required:
    """Default of a setting with no default (shown as ``required`` in the help)."""

    def __repr__(self) -> str:
        return "required"


REQUIRED = Required()


class ConfigValue:
    """The type argbind's generated parser gets for every setting: a YAML value, shown with its annotation.

    argbind turns a ``bool`` hint into a flag that takes no value and cannot call ``X | Y`` hints; values
    are read as YAML by :func:`gan_enhance.train.config.parse_overrides` and checked against the real
    annotation, so the parser only needs a callable that reads YAML.
    """

    def __init__(self, annotation: str):
        self.metavar = annotation or "VALUE"

    def __call__(self, text: str) -> Any:
        return yaml.safe_load(text)

    def __repr__(self) -> str:
        return self.metavar


# -- sections from the imported objects (the run) -------------------------------------------------------------
def callable_spec(
    prefix: str, target: Any, reserved: tuple[str, ...] = (), scopes: tuple[str, ...] = ()
) -> SectionSpec:
    """The :class:`SectionSpec` of a class, dataclass or function, from its signature and docstring."""
    doc = target.__dict__.get("__doc__") if inspect.isclass(target) else target.__doc__
    doc = inspect.cleandoc(doc or "")
    if dataclasses.is_dataclass(target):
        values = {f.name: (f.type, _field_default(f)) for f in dataclasses.fields(target)}
    else:
        values = {
            name: (p.annotation, REQUIRED if p.default is p.empty else p.default)
            for name, p in inspect.signature(target).parameters.items()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
    return _spec(prefix, doc, {k: (_annotation_text(a), d) for k, (a, d) in values.items()}, reserved, scopes)


def _field_default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return REQUIRED


def _annotation_text(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return ""
    if isinstance(annotation, str):
        return annotation
    if isinstance(annotation, type) and not getattr(annotation, "__args__", None):
        return annotation.__name__
    return repr(annotation).replace("typing.", "")


def _spec(prefix, doc, values, reserved, scopes) -> SectionSpec:
    docs = parameter_docs(doc)
    parameters = {
        name: Parameter(
            annotation, list(default) if isinstance(default, tuple) else default, docs.get(name, "")
        )
        for name, (annotation, default) in values.items()
        if name not in reserved
    }
    summary = _plain(doc.split("\n\n")[0].replace("\n", " "))
    return SectionSpec(prefix, summary, parameters, tuple(scopes))


def parameter_docs(doc: str) -> dict[str, str]:
    """``{name: first sentence}`` from a numpydoc ``Parameters`` section (``a, b : int`` documents both)."""
    lines = doc.splitlines()
    docs: dict[str, list[str]] = {}
    names: list[str] = []
    inside = False
    for index, line in enumerate(lines):
        underline = index + 1 < len(lines) and set(lines[index + 1].strip()) == {"-"}
        if underline:
            inside = line.strip() == "Parameters"
            names = []
        elif inside and line and not line[0].isspace() and not set(line.strip()) <= {"-"}:
            names = [name.strip().lstrip("*") for name in line.split(" : ")[0].split(",")]
            for name in names:
                docs[name] = []
        elif inside and line.strip():
            for name in names:
                docs[name].append(line.strip())
    return {name: _first_sentence(" ".join(words)) for name, words in docs.items()}


def _plain(text: str) -> str:
    """Docstring text without RST markup: ``:class:`X``` -> ``X``, double backticks dropped."""
    return re.sub(r":\w+:`~?([^`]+)`", r"\1", text.replace("``", ""))


def _first_sentence(text: str) -> str:
    """Up to the first sentence end (or ``;``; "e.g." is no end) outside parentheses, without RST
    literals: the help's line."""
    text = _plain(text)
    depth = 0
    for match in re.finditer(r"[()]|(?<=[.!?])(?<!\.\w\.)\s+(?=[A-Z(\"'])|(?<=;)\s+", text):
        token = match.group()
        if token in "()":
            depth = max(0, depth + (1 if token == "(" else -1))
        elif depth == 0:
            sentence = text[: match.start()]
            return sentence[:-1] + "." if sentence.endswith(";") else sentence
    return text


# -- argbind ----------------------------------------------------------------------------------------------------
_BOUND: dict[str, Any] = {}  # prefix -> bound function


def bound_function(spec: SectionSpec):
    """The argbind-bound function of ``spec.prefix`` (bound once per process: argbind keys it by name).

    Called inside :func:`argbind.scope`, it returns the keyword arguments argbind hands it: the settings
    the scoped config sets for this section.
    """
    if spec.prefix in _BOUND:
        return _BOUND[spec.prefix]

    def collect(**values: Any) -> dict[str, Any]:
        return values

    collect.__name__ = collect.__qualname__ = spec.prefix or TOP_LEVEL
    collect.__doc__ = _numpydoc(spec)
    collect.__signature__ = inspect.Signature(
        [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=p.default, annotation=ConfigValue(p.annotation)
            )
            for name, p in spec.parameters.items()
        ]
    )
    bound = argbind.bind(collect, *spec.scopes, without_prefix=not spec.prefix, group=GROUP)
    _BOUND[spec.prefix] = bound
    return bound


def _numpydoc(spec: SectionSpec) -> str:
    lines = [spec.summary.replace("%", "%%"), "", "Parameters", "----------"]
    for name, parameter in spec.parameters.items():
        lines.append(f"{name} : {parameter.annotation or 'value'}")
        lines.append(f"    {parameter.doc.replace('%', '%%') or '(not documented in its docstring)'}")
    return "\n".join(lines)


def bound_values(
    spec: SectionSpec, config: dict[str, Any], scope: str = "", debug: bool = False
) -> dict[str, Any]:
    """The values ``config`` sets for ``spec``'s section, as argbind's bound function receives them.

    ``config`` is a flat dict of keys (``Trainer.max_steps``, ``generator/Optimizer.lr``); ``scope``
    selects the scoped keys that win (``generator``); ``debug`` makes argbind print the call.
    """
    function = bound_function(spec)
    with argbind.scope({**config, DEBUG_KEY: debug}, scope):
        return function()


# -- sections from the source files (the help, without importing torch) -----------------------------------------
@dataclass(frozen=True)
class Source:
    """Where a fixed section is defined: ``path`` (under ``gan_enhance/``) and the object's ``name``."""

    prefix: str
    path: str
    name: str
    reserved: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()


FIXED_SECTIONS = (
    Source("", "train/config.py", "RunSettings"),
    Source("Trainer", "train/state.py", "TrainerSettings"),
    Source("Data", "train/data.py", "DataSettings"),
    Source("Optimizer", "train/optim.py", "OptimizerSettings", scopes=SCOPES),
    Source("Scheduler", "train/schedulers.py", "SchedulerSettings", scopes=SCOPES),
    Source("EMA", "train/ema.py", "EMASettings"),
    Source("FineTune", "train/finetune.py", "FineTuneSettings"),
    Source("CleanSource", "data/sources.py", "CleanSource", reserved=("sources",)),
    Source(
        "CombinedDiscriminator",
        "models/discriminators/combined.py",
        "build_discriminator",
        reserved=("names", "settings", "sample_rate"),
    ),
    Source("AdversarialLoss", "losses/adversarial.py", "AdversarialLoss"),
    Source("FeatureMatchingLoss", "losses/adversarial.py", "FeatureMatchingLoss"),
    Source("MultiScaleMelLoss", "losses/spectral.py", "MultiScaleMelLoss", reserved=RATE_KEYS),
    Source("MultiResolutionSTFTLoss", "losses/spectral.py", "MultiResolutionSTFTLoss", reserved=RATE_KEYS),
    Source("WaveformL1Loss", "losses/waveform.py", "WaveformL1Loss", reserved=RATE_KEYS),
    Source("SISDRLoss", "losses/waveform.py", "SISDRLoss", reserved=RATE_KEYS),
    Source("WavLMFeatureLoss", "losses/wavlm.py", "WavLMFeatureLoss", reserved=RATE_KEYS),
)
# Registry name -> (folder of the modules that register into it, keys the trainer sets itself).
REGISTRY_SECTIONS = {
    "GENERATORS": ("models/generators", RATE_KEYS),
    "DISCRIMINATORS": ("models/discriminators", RATE_KEYS),
    "DEGRADATIONS": ("data", ("noise_dirs", "rir_dirs")),
}


def source_sections() -> list[SectionSpec]:
    """Every section a run config can set, read from the source files (no import of torch)."""
    sources = list(FIXED_SECTIONS)
    for registry, (folder, reserved) in REGISTRY_SECTIONS.items():
        for path, name in sorted(registered_in_source(registry, folder).values()):
            sources.append(Source(name, path, name, reserved=reserved))
    return [_source_spec(source) for source in sources]


def registered_in_source(registry: str, folder: str) -> dict[str, tuple[str, str]]:
    """``{registry name: (path, class name)}`` of the ``@REGISTRY.register("name")`` classes in ``folder``."""
    found = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        relative = str(path.relative_to(PACKAGE))
        for node in _tree(relative).body:
            for decorator in getattr(node, "decorator_list", []):
                call = decorator if isinstance(decorator, ast.Call) else None
                target = call.func if call else None
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "register"
                    and isinstance(target.value, ast.Name)
                    and target.value.id == registry
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    found[call.args[0].value] = (relative, node.name)
    return found


@cache
def _tree(relative: str) -> ast.Module:
    return ast.parse((PACKAGE / relative).read_text(), filename=str(PACKAGE / relative))


def _source_spec(source: Source) -> SectionSpec:
    node = next(
        item
        for item in _tree(source.path).body
        if isinstance(item, ast.ClassDef | ast.FunctionDef) and item.name == source.name
    )
    doc = ast.get_docstring(node) or ""
    values: dict[str, tuple[str, Any]] = {}
    if isinstance(node, ast.ClassDef) and any(_is_dataclass(d) for d in node.decorator_list):
        for item in node.body:
            if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                values[item.target.id] = (
                    ast.unparse(item.annotation),
                    _source_default(item.value, source.path),
                )
    else:
        function = node
        if isinstance(node, ast.ClassDef):
            function = next(
                (i for i in node.body if isinstance(i, ast.FunctionDef) and i.name == "__init__"), None
            )
        if function is not None:
            arguments = function.args
            positional = arguments.posonlyargs + arguments.args
            defaults = [None] * (len(positional) - len(arguments.defaults)) + list(arguments.defaults)
            pairs = list(zip(positional, defaults)) + list(zip(arguments.kwonlyargs, arguments.kw_defaults))
            for argument, default in pairs[len(arguments.posonlyargs) :]:
                if argument.arg in ("self", "cls"):
                    continue
                annotation = ast.unparse(argument.annotation) if argument.annotation else ""
                values[argument.arg] = (annotation, _source_default(default, source.path))
    return _spec(source.prefix, doc, values, source.reserved, source.scopes)


def _is_dataclass(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    return isinstance(target, ast.Name | ast.Attribute) and ast.unparse(target).endswith("dataclass")


def _source_default(node: ast.expr | None, path: str) -> Any:
    """A default written in the source: a constant expression, or ``field(default=/default_factory=)``."""
    if node is None:
        return REQUIRED
    if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("field"):
        keywords = {keyword.arg: keyword.value for keyword in node.keywords}
        if "default" in keywords:
            return _source_default(keywords["default"], path)
        factory = keywords.get("default_factory")
        if isinstance(factory, ast.Lambda):
            return _source_default(factory.body, path)
        if isinstance(factory, ast.Name) and factory.id in ("list", "dict", "tuple"):
            return {"list": [], "dict": {}, "tuple": ()}[factory.id]
        return REQUIRED
    return _constant(node, path)


BUILTINS = {"list": list, "tuple": tuple, "sorted": sorted, "dict": dict}


def _constant(node: ast.expr, path: str) -> Any:
    """The value of a constant expression in module ``path``: literals, ``-x``, ``(*NAME, "x")``,
    ``list(NAME)``, and module-level names (followed through ``from gan_enhance... import NAME``)."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_constant(node.operand, path)
    if isinstance(node, ast.Tuple | ast.List):
        items = []
        for item in node.elts:
            if isinstance(item, ast.Starred):
                items.extend(_constant(item.value, path))
            else:
                items.append(_constant(item, path))
        return tuple(items) if isinstance(node, ast.Tuple) else items
    if isinstance(node, ast.Dict) and None not in node.keys:
        return {_constant(k, path): _constant(v, path) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in BUILTINS:
        if len(node.args) == 1 and not node.keywords:
            return BUILTINS[node.func.id](_constant(node.args[0], path))
    if isinstance(node, ast.Name):
        found = _module_name(node.id, path)
        if found is not None:
            return _constant(*found)
    raise ValueError(f"{path}: cannot read the default {ast.unparse(node)} without importing the module")


def _module_name(name: str, path: str) -> tuple[ast.expr, str] | None:
    """Where module ``path`` defines ``name``: ``(value expression, path of its module)``."""
    for node in _tree(path).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [name]:
            return node.value, path
        if isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == name and node.value is not None:
            return node.value, path
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gan_enhance."):
            if any((alias.asname or alias.name) == name for alias in node.names):
                module = node.module.removeprefix("gan_enhance.").replace(".", "/")
                target = f"{module}.py" if (PACKAGE / f"{module}.py").is_file() else f"{module}/__init__.py"
                original = next(a.name for a in node.names if (a.asname or a.name) == name)
                return _module_name(original, target)
    return None
