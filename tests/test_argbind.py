"""argbind at the training entry: bound sections, scopes, --help, --args.save/--args.debug, and our checks."""

from __future__ import annotations

import os
import subprocess
import sys

import argbind
import pytest
import yaml

from gan_enhance.cli import main as cli_main
from gan_enhance.cli.train import main as train_main
from gan_enhance.errors import ConfigError
from gan_enhance.train.binding import (
    FIXED_SECTIONS,
    REGISTRY_SECTIONS,
    SCOPES,
    bound_function,
    callable_spec,
    parameter_docs,
    registered_in_source,
    source_sections,
)
from gan_enhance.train.config import load_config, merge_config, parse_overrides

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conf"))
DEBUG = os.path.join(CONF, "debug.yml")


def help_text(capsys) -> str:
    assert train_main(["--help"]) == 0
    return capsys.readouterr().out


def test_help_lists_every_key_with_its_default_and_doc_line(capsys):
    out = help_text(capsys)
    # argbind's generated groups, one per section, each key with its first doc sentence and YAML default.
    assert "Generated arguments for function Trainer:" in out
    block = out.split("--Trainer.max_steps int", 1)[1].split("--Trainer.batch_size", 1)[0]
    assert "Generator updates to train for." in block and "(default: 250000)" in block
    assert "--Trainer.compile bool" in out and "--Data.pin_memory bool" in out
    pin = out.split("--Data.pin_memory bool", 1)[1].split("--Data.", 1)[0]
    assert "(default: true)" in pin  # argbind alone would make it a store_true flag defaulting to False
    assert "Additional scope patterns: generator, discriminator." in " ".join(out.split())
    for markup in ("``", ":class:", ":func:", ":meth:", ":mod:"):
        assert markup not in out
    assert "not documented" not in out  # every key has a line of doc
    for spec in source_sections():
        for name in spec.parameters:
            key = f"{spec.prefix}.{name}" if spec.prefix else name
            assert f"  --{key} " in out, key


def test_help_imports_neither_torch_nor_the_models():
    code = (
        "import sys; from gan_enhance.cli import main; assert main(['train', '--help']) == 0; "
        "heavy = [m for m in sys.modules if m == 'torch' or m.startswith(('gan_enhance.models', 'gan_enhance.train.'))]; "
        "assert heavy == ['gan_enhance.train.binding'], heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert "--HiFiPlusPlus.upsample_rates" in result.stdout


def test_help_sections_read_from_source_equal_the_imported_signatures():
    from gan_enhance.data import DEGRADATIONS
    from gan_enhance.models.discriminators import DISCRIMINATORS
    from gan_enhance.models.generators import GENERATORS

    from_source = {spec.prefix: spec for spec in source_sections()}
    registries = {"GENERATORS": GENERATORS, "DISCRIMINATORS": DISCRIMINATORS, "DEGRADATIONS": DEGRADATIONS}
    imported = []
    for name, registry in registries.items():
        folder, reserved = REGISTRY_SECTIONS[name]
        found = {key: cls for key, (_, cls) in registered_in_source(name, folder).items()}
        assert found == {key: registry.get(key).__name__ for key in registry.names()}
        imported += [
            callable_spec(cls.__name__, cls, reserved) for cls in map(registry.get, registry.names())
        ]
    for source in FIXED_SECTIONS:
        module = __import__("gan_enhance." + source.path[:-3].replace("/", "."), fromlist=[source.name])
        target = getattr(module, source.name)
        imported.append(callable_spec(source.prefix, target, source.reserved, source.scopes))
    assert len(imported) == len(from_source)
    for spec in imported:
        assert spec == from_source[spec.prefix], spec.prefix


def test_args_save_writes_the_merged_config(tmp_path):
    (tmp_path / "base.yml").write_text(f"$include: [{DEBUG}]\nlambdas: {{l1/loss: 3}}\n")
    (tmp_path / "stage.yml").write_text("$include: [base.yml]\nTrainer.max_steps: 4\n")
    overrides = ["--lambdas.mel/loss", "20", "--generator/Optimizer.lr", "3e-4", "--Data.val_items", "1"]
    out = tmp_path / "deep" / "saved.yml"
    assert train_main(["--args.load", str(tmp_path / "stage.yml"), *overrides, "--args.save", str(out)]) == 0
    expected = merge_config(load_config(tmp_path / "stage.yml"), parse_overrides(overrides))
    assert yaml.safe_load(out.read_text()) == expected
    assert expected["lambdas"]["mel/loss"] == 20 and expected["lambdas"]["l1/loss"] == 3
    assert expected["lambdas"]["adv/feat"] == 10.0 and expected["Trainer.max_steps"] == 4


def test_args_debug_prints_each_section_through_argbind(capsys):
    code = train_main(["--args.load", DEBUG, "--check", "--args.debug", "--generator/Optimizer.lr", "0.003"])
    assert code == 0
    out = capsys.readouterr().out
    assert "Trainer(\n  max_steps : int = 20\n" in out
    generator, discriminator = out.split("Optimizer(\n")[1:3]
    assert generator.startswith("  # scope = generator\n") and "  lr : float = 0.003\n" in generator
    assert (
        discriminator.startswith("  # scope = discriminator\n") and "  lr : float = 0.0001\n" in discriminator
    )
    assert "config OK" in out
    assert train_main(["--args.load", DEBUG, "--check"]) == 0
    assert "Trainer(" not in capsys.readouterr().out  # no --args.debug, no printout


def test_scoped_keys_reach_each_side_through_the_bound_functions():
    from gan_enhance.train.builders import read_experiment

    config = {
        **load_config(DEBUG),
        "Optimizer.lr": 0.01,
        "generator/Optimizer.lr": 0.002,
        "discriminator/Scheduler.gamma": 0.5,
        "Trainer.max_steps": 7,
    }
    experiment = read_experiment(config)
    assert (experiment.optimizer_g.lr, experiment.optimizer_d.lr) == (0.002, 1.0e-4)  # debug.yml's side
    assert (experiment.scheduler_g.gamma, experiment.scheduler_d.gamma) == (0.999996, 0.5)
    assert experiment.trainer.max_steps == 7
    # argbind's own record of what its bound functions were handed (scoped keys under their scope).
    used = argbind.get_used_args()
    assert used["generator/Optimizer.lr"] == 0.002 and used["discriminator/Scheduler.gamma"] == 0.5
    assert used["Trainer.max_steps"] == 7


def test_a_bound_function_takes_its_values_from_argbind_scope():
    from gan_enhance.train.optim import OptimizerSettings

    function = bound_function(callable_spec("Optimizer", OptimizerSettings, scopes=SCOPES))
    values = {"Optimizer.lr": 1.0, "discriminator/Optimizer.lr": 2.0, "Optimizer.bogus": 3}
    with argbind.scope(values, "discriminator"):
        assert function() == {"lr": 2.0}  # the unknown key is dropped: argbind never reports it
    with argbind.scope(values, "generator"):
        assert function() == {"lr": 1.0}
    assert function(lr=5.0) == {"lr": 5.0}  # outside a scope it is a plain function


def test_every_unknown_key_is_reported_at_once_with_did_you_mean(capsys):
    bad = ["--Trainer.max_stepz", "3", "--Trainr.seed", "1", "--nmae", "x", "--generator/Optimizer.lrr", "1"]
    assert cli_main(["train", "--args.load", DEBUG, "--check", "--Stray.key", "1", *bad]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    for hint in (
        "Trainer.max_stepz (Did you mean Trainer.max_steps?)",
        "Trainr.seed (Did you mean Trainer.seed?)",
        "nmae (Did you mean name?)",
        "generator/Optimizer.lrr (Did you mean generator/Optimizer.lr?)",
        "Stray.key",
    ):
        assert hint in err, hint


def test_values_are_typed_by_annotation_not_by_argbinds_parser():
    from gan_enhance.train.builders import read_experiment

    overrides = parse_overrides(["--Trainer.speech_metrics", "true", "--Data.pin_memory", "false"])
    experiment = read_experiment(merge_config(load_config(DEBUG), overrides))
    assert experiment.trainer.speech_metrics is True and experiment.data.settings.pin_memory is False
    with pytest.raises(ConfigError, match=r"'Trainer.max_steps' must be an integer, got 'ten'"):
        read_experiment(merge_config(load_config(DEBUG), parse_overrides(["--Trainer.max_steps", "ten"])))


def test_the_help_binds_each_section_as_the_trainer_reads_it(monkeypatch):
    from gan_enhance.train.builders import read_experiment
    from gan_enhance.train.config import ConfigReader

    calls = {}
    section = ConfigReader.section

    def record(self, prefix, target, scope="", reserved=()):
        calls[prefix] = (tuple(reserved), SCOPES if scope else ())
        return section(self, prefix, target, scope, reserved)

    monkeypatch.setattr(ConfigReader, "section", record)
    read_experiment({**load_config(DEBUG), "task": "restoration", "discriminators": ["mpd"]})
    expected = {source.prefix: (source.reserved, source.scopes) for source in FIXED_SECTIONS}
    for registry, (folder, reserved) in REGISTRY_SECTIONS.items():
        for _, name in registered_in_source(registry, folder).values():
            expected[name] = (reserved, ())
    assert set(expected) >= set(calls) >= {"", "Trainer", "Optimizer", "ConvNeXtUNet", "Reverb", "Codec"}
    assert {prefix: expected[prefix] for prefix in calls} == calls


def test_each_key_gets_the_first_sentence_of_its_numpydoc_entry():
    doc = (
        "Summary.\n\nParameters\n----------\na, b : int\n    Both (e.g. Foo) halves; then more.\n    Other."
        "\nc : str\n    Only ``one``. Two.\n\nReturns\n-------\nx : int\n    Not a parameter.\n"
    )
    first = "Both (e.g. Foo) halves."
    assert parameter_docs(doc) == {"a": first, "b": first, "c": "Only one."}
    # a sentence end or ';' inside parentheses does not end the line (it used to cut "(torch's; like").
    doc = "S.\n\nParameters\n----------\nt : int\n    Threads (``torch.x``; like ``-j``). Next; more.\n"
    assert parameter_docs(doc) == {"t": "Threads (torch.x; like -j)."}


def test_settings_of_an_unselected_part_are_reported_once_per_process(caplog):
    caplog.set_level("INFO", logger="gan_enhance.train")
    # The demo's overlay switches the stage's HiFi++ to a small U-Net and keeps its HiFi++ keys; the check,
    # the run and the summary read the config again, and the warning is said once, not at every read.
    from gan_enhance.train import builders
    from gan_enhance.train.builders import read_experiment

    builders._note_once.cache_clear()  # as in a fresh process

    config = {**load_config(DEBUG), "HiFiPlusPlus.upsample_channels": 64}
    for _ in range(3):
        experiment = read_experiment(config)
    assert experiment.generator == "unet1d"
    said = [r for r in caplog.records if "ignoring HiFiPlusPlus.upsample_channels" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == "INFO"
