"""Config layers merge dict-valued keys (``lambdas``) instead of replacing them, in files and overrides."""

import os
from pathlib import Path

import pytest
import yaml

from gan_enhance.cli import main as cli_main
from gan_enhance.cli.train import main as train_main
from gan_enhance.errors import ConfigError
from gan_enhance.train.config import load_config, merge_config, parse_overrides

CONF = os.path.join(os.path.dirname(__file__), "..", "conf")
BASE_LAMBDAS = {"mel/loss": 15.0, "adv/gen": 1.0, "adv/feat": 10.0, "adv/disc": 1.0}


def write(folder, name, data):
    """``data`` as YAML in ``folder/name`` (a dict, or text written as is)."""
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def saved_config(tmp_path, config, *overrides):
    """The config ``gan-enhance train --args.load config overrides... --args.save`` writes."""
    out = tmp_path / "saved.yml"
    assert train_main(["--args.load", str(config), *overrides, "--args.save", str(out)]) == 0
    return yaml.safe_load(out.read_text())


@pytest.fixture
def base(tmp_path):
    return write(tmp_path, "base.yml", {"name": "run", "Trainer.max_steps": 100, "lambdas": BASE_LAMBDAS})


def test_overlay_file_that_sets_one_weight_keeps_the_base_weights(tmp_path, base):
    stage = write(tmp_path, "stage.yml", "$include: [base.yml]\nlambdas:\n  mel/loss: 20\n  l1/loss: 10\n")
    assert load_config(stage)["lambdas"] == {**BASE_LAMBDAS, "mel/loss": 20, "l1/loss": 10}


def test_three_level_include_chain_merges_every_layer(tmp_path, base):
    write(tmp_path, "middle.yml", "$include: [base.yml]\nlambdas: {adv/feat: 5}\nTrainer.max_steps: 50\n")
    write(tmp_path, "sibling.yml", "lambdas: {adv/disc: 2}\n")
    top = write(tmp_path, "top.yml", "$include: [middle.yml, sibling.yml]\nlambdas: {mel/loss: 20}\n")
    config = load_config(top)
    assert config["lambdas"] == {"mel/loss": 20, "adv/gen": 1.0, "adv/feat": 5, "adv/disc": 2}
    assert config["Trainer.max_steps"] == 50


def test_flat_entry_key_in_a_yaml_file_sets_one_weight(tmp_path, base):
    # The entry wins over the whole dict of the same file, whichever line comes first.
    stage = write(
        tmp_path, "stage.yml", "$include: [base.yml]\nlambdas.mel/loss: 20\nlambdas: {mel/loss: 1}\n"
    )
    assert load_config(stage)["lambdas"] == {**BASE_LAMBDAS, "mel/loss": 20}


def test_included_overlay_without_the_dict_sets_an_entry_of_an_earlier_include(tmp_path, base):
    # recipes/demo/conf/small.yml's pattern: an overlay included after the stage config.
    write(tmp_path, "small.yml", "lambdas.adv/gen: 0\nTrainer.max_steps: 3\n")
    stage = write(tmp_path, "stage.yml", "$include: [base.yml, small.yml]\n")
    config = load_config(stage)
    assert config["lambdas"] == {**BASE_LAMBDAS, "adv/gen": 0}
    assert "lambdas.adv/gen" not in config and config["Trainer.max_steps"] == 3


def test_replace_marker_replaces_a_dict_on_purpose(tmp_path, base):
    stage = write(tmp_path, "stage.yml", "$include: [base.yml]\nlambdas: {$replace: true, mel/loss: 20}\n")
    assert load_config(stage)["lambdas"] == {"mel/loss": 20}
    saved = saved_config(tmp_path, base, "--lambdas", "{$replace: true, adv/gen: 2}")
    assert saved["lambdas"] == {"adv/gen": 2}


def test_vars_substitute_inside_a_dict(tmp_path, base):
    stage = write(
        tmp_path, "stage.yml", "$include: [base.yml]\n$vars: {weight: 3}\nlambdas: {mel/loss: $weight}\n"
    )
    assert load_config(stage)["lambdas"] == {**BASE_LAMBDAS, "mel/loss": 3}


def test_command_line_partial_lambdas_keeps_the_other_weights(tmp_path, base):
    saved = saved_config(tmp_path, base, "--lambdas", "{mel/loss: 20}")
    assert saved["lambdas"] == {**BASE_LAMBDAS, "mel/loss": 20}


def test_command_line_single_entry_overrides(tmp_path, base):
    saved = saved_config(
        tmp_path, base, "--lambdas.mel/loss", "20", "--lambdas.adv/gen", "0", "--lambdas.wavlm/loss=0"
    )
    assert saved["lambdas"] == {**BASE_LAMBDAS, "mel/loss": 20, "adv/gen": 0, "wavlm/loss": 0}
    assert not any(key.startswith("lambdas.") for key in saved)


def test_section_keys_stay_ordinary_keys_next_to_entries(tmp_path, base):
    saved = saved_config(
        tmp_path,
        base,
        "--Trainer.max_steps",
        "7",
        "--generator/Optimizer.lr",
        "1e-4",
        "--lambdas.adv/feat",
        "2",
    )
    assert saved["Trainer.max_steps"] == 7 and saved["generator/Optimizer.lr"] == 1e-4
    assert saved["lambdas"] == {**BASE_LAMBDAS, "adv/feat": 2}
    assert "Trainer" not in saved and "generator/Optimizer" not in saved


def test_dict_value_split_by_the_shell_is_one_line_saying_how_to_write_it(tmp_path, base, capsys):
    with pytest.raises(ConfigError) as error:
        parse_overrides(["--lambdas", "{mel/loss:", "20}"])
    message = str(error.value)
    assert "\n" not in message
    assert "--lambdas '{mel/loss: 20}'" in message and "--lambdas.mel/loss 20" in message
    assert cli_main(["train", "--args.load", str(base), "--lambdas", "{mel/loss:", "20}", "--check"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and "Traceback" not in stderr and "--lambdas.mel/loss 20" in stderr


def test_value_that_is_not_yaml_is_an_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"--lambdas .*not a valid YAML value"):
        parse_overrides(["--lambdas", "{mel/loss: [}"])


def test_entry_of_a_key_that_is_not_a_dict_is_an_error_naming_it(tmp_path, base):
    with pytest.raises(ConfigError, match=r"'name\.x'.*'name'.*not a dict"):
        saved_config(tmp_path, base, "--name.x", "1")
    stage = write(tmp_path, "stage.yml", "$include: [base.yml]\nTrainer.max_steps.x: 1\nname.x: 1\n")
    with pytest.raises(ConfigError, match=r"'name\.x'"):
        load_config(stage)


def test_merge_config_changes_neither_input():
    base = {"lambdas": {"mel/loss": 15.0}, "name": "run"}
    overlay = {"lambdas": {"adv/gen": 1.0}, "lambdas.l1/loss": 2.0}
    merged = merge_config(base, overlay)
    assert merged == {"lambdas": {"mel/loss": 15.0, "adv/gen": 1.0, "l1/loss": 2.0}, "name": "run"}
    assert base == {"lambdas": {"mel/loss": 15.0}, "name": "run"}
    assert overlay == {"lambdas": {"adv/gen": 1.0}, "lambdas.l1/loss": 2.0}


def test_debug_config_with_one_weight_changed_saves_merged_and_checks(tmp_path, capsys):
    saved = saved_config(tmp_path, os.path.join(CONF, "debug.yml"), "--lambdas.mel/loss", "20")
    assert saved["lambdas"]["adv/gen"] == 1.0 and saved["lambdas"]["mel/loss"] == 20
    assert saved["lambdas"]["adv/feat"] == 10.0 and saved["lambdas"]["adv/disc"] == 1.0
    assert train_main(["--args.load", str(tmp_path / "saved.yml"), "--check"]) == 0
    assert "config OK" in capsys.readouterr().out


def test_an_include_of_a_project_config_resolves_from_any_working_directory(tmp_path, monkeypatch):
    # A user's config next to their data includes the project's stage config by its repository path
    # (as the recipes' configs do) and is loaded from where the user is, not from the repository root.
    root = Path(__file__).resolve().parent.parent
    mine = write(tmp_path, "mine.yml", "$include: [recipes/demo/conf/stage1.yml]\nTrainer.max_steps: 7\n")
    monkeypatch.chdir(tmp_path)
    config = load_config(mine)
    assert config["Trainer.max_steps"] == 7
    small = load_config(root / "recipes/common/conf/small.yml")
    assert config["ConvNeXtUNet.channels"] == small["ConvNeXtUNet.channels"]


@pytest.mark.parametrize(
    "small, stage",
    [
        ("recipes/demo/conf/stage1.yml", "conf/stage1_16k.yml"),
        ("recipes/demo/conf/stage2.yml", "conf/stage2_48k.yml"),
        ("recipes/folders/conf/small_stage1.yml", "conf/stage1_16k.yml"),
        ("recipes/folders/conf/small_stage2.yml", "conf/stage2_48k.yml"),
    ],
)
def test_a_small_stage_config_trains_the_discriminator_families_of_the_stage_it_shrinks(small, stage):
    # The CPU sizes shrink each family; which families a stage trains with stays the stage's choice, so
    # the demo's adversarial steps are the real stages' steps at a small size.
    root = Path(__file__).resolve().parent.parent
    assert load_config(root / small)["discriminators"] == load_config(root / stage)["discriminators"]
