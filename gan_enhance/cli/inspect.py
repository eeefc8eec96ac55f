"""``gan-enhance inspect``: a generator's blocks, output shapes, parameters, cost and receptive field."""

from __future__ import annotations

import json

from gan_enhance.cli._args import parser
from gan_enhance.errors import ConfigError

HELP = "show a generator's blocks, shapes, parameters, MACs per second and receptive field"

DESCRIPTION = """\
Inspect a generator built from a backbone name (--generator unet1d --set channels=[32,64,128] ...), from a
training config (--config conf/stage1_16k.yml, the generator it selects with its settings), or from an
exported model folder or a training run (--model DIR). Prints per-block output shapes for --length input
samples, parameters per block and in total, MACs per second of audio, the measured receptive field and
the declared context.
"""


def parse_setting(text: str) -> tuple[str, object]:
    """``key=value`` -> (key, value); the value is read as JSON when it parses (numbers, lists, booleans)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. --set channels=[32,64,128]")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def generator_from_config(path: str, rates: dict) -> tuple[str, dict]:
    """The backbone name and settings a training config selects (keys ``<Class>.<setting>``)."""
    from gan_enhance.models.generators import GENERATORS
    from gan_enhance.train.config import load_config

    config = load_config(path)
    name = config.get("generator", "")
    if name not in GENERATORS:
        raise ConfigError(f"{path}: generator is {name!r}; choose one of {', '.join(GENERATORS.names())}")
    prefix = GENERATORS.get(name).__name__ + "."
    kwargs = {}
    for key, value in config.items():
        bare = key.removeprefix("generator/")
        if bare.startswith(prefix):
            kwargs[bare[len(prefix) :]] = value
    for key in ("in_sample_rate", "out_sample_rate"):
        if key in config:
            kwargs[key] = config[key]
    return name, {**kwargs, **rates}


def main(argv: list[str]) -> int:
    arguments = parser("inspect", DESCRIPTION)
    source = arguments.add_mutually_exclusive_group(required=True)
    source.add_argument("--generator", help="backbone name (unet1d, hifipp, dac, spectral)")
    source.add_argument("--config", help="training config YAML: inspect the generator it selects")
    source.add_argument(
        "--model",
        help="exported model folder, or a training run / checkpoint (its best checkpoint's generator)",
    )
    arguments.add_argument("--in-sr", type=int, default=0, help="input sample rate (0: the default/config's)")
    arguments.add_argument("--out-sr", type=int, default=0, help="output sample rate (0: same as input)")
    arguments.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="a constructor setting (repeatable)"
    )
    arguments.add_argument("--length", type=int, default=0, help="input samples of the probe (0: one second)")
    arguments.add_argument("--depth", type=int, default=2, help="how deep into the module tree to list")
    arguments.add_argument("--json", action="store_true", help="print the report as JSON")
    options = arguments.parse_args(argv)

    import torch

    from gan_enhance.models.inspect import inspect_model

    rates = {}
    if options.in_sr:
        rates = {"in_sample_rate": options.in_sr, "out_sample_rate": options.out_sr or options.in_sr}
    elif options.out_sr:
        raise ConfigError("--out-sr needs --in-sr")
    settings = dict(parse_setting(text) for text in options.set)
    if options.model:
        if settings or rates:
            raise ConfigError("--set, --in-sr and --out-sr apply to --generator/--config, not to --model")
        from gan_enhance.bundle import load_generator

        model = load_generator(options.model)
    else:
        from gan_enhance.models.generators import build_generator

        if options.config:
            name, kwargs = generator_from_config(options.config, rates)
        else:
            name, kwargs = options.generator, rates
        try:
            model = build_generator(name, **{**kwargs, **settings})
        except (KeyError, TypeError) as error:
            raise ConfigError(str(error).strip("'\"")) from None
    torch.set_grad_enabled(True)
    report = inspect_model(model, options.length, options.depth)
    print(json.dumps(report.to_dict(), indent=2) if options.json else report.format())
    return 0
