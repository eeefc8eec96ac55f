"""``gan-enhance degrade``: write a fixed, seeded degraded copy of a clean folder (a test set).

File ``i`` (in sorted order of relative paths) is degraded exactly as item ``i`` of a dataset with the
same task and seed. The output holds ``degraded/`` at the task's input rate and ``clean/`` at its output
rate, with the input's relative paths, ready for ``gan-enhance enhance`` and ``gan-enhance evaluate``.
"""

from __future__ import annotations

from gan_enhance.cli._args import parser

HELP = "write a seeded degraded/clean copy of a clean folder with a task preset (a fixed test set)"

DESCRIPTION = """\
Write a fixed, seeded degraded copy of a clean folder (a test set). File i (in sorted order of relative
paths) is degraded exactly as item i of a training dataset with the same task and seed. The output holds
degraded/ at the task's input rate and clean/ at its output rate, with the input's relative paths, ready
for gan-enhance enhance and gan-enhance evaluate.
"""


def main(argv: list[str]) -> int:
    from gan_enhance.data.presets import TASK_NAMES

    arguments = parser("degrade", DESCRIPTION)
    arguments.add_argument("clean", help="folder of clean audio (searched recursively)")
    arguments.add_argument("output", help="folder to write degraded/ and clean/ into")
    arguments.add_argument("--task", required=True, choices=TASK_NAMES, help="degradation preset")
    arguments.add_argument("--seed", type=int, default=0, help="the same seed gives the same degradations")
    arguments.add_argument("--noise", nargs="*", default=[], help="noise folders (synthetic noise when none)")
    arguments.add_argument(
        "--rir", nargs="*", default=[], help="impulse-response folders (synthetic when none)"
    )
    arguments.add_argument("--in-sample-rate", type=int, default=0, help="degraded rate (0: the task's)")
    arguments.add_argument("--out-sample-rate", type=int, default=0, help="clean rate (0: the task's)")
    arguments.add_argument(
        "--overwrite",
        action="store_true",
        help="delete the output's degraded/ and clean/ folders (an earlier test set) before writing",
    )
    arguments.add_argument(
        "--set",
        dest="settings",
        action="append",
        default=[],
        metavar="CLASS.KEY=VALUE",
        help="change one setting of the task's degradations, as a training config would (value in YAML), "
        "e.g. --set AddNoise.snr_db=[0,10] --set Reverb.prob=0; repeat for several",
    )
    options = arguments.parse_args(argv)

    import os
    import shutil
    import sys

    from gan_enhance.audio import read_audio, resample, write_audio
    from gan_enhance.data.files import find_audio_files, relative_key
    from gan_enhance.data.presets import PRESETS
    from gan_enhance.errors import DataError, GanEnhanceError
    from gan_enhance.evaluate.tasks import task_degrader

    settings = degradation_settings(options.settings)
    if (
        options.rir
        and options.task in PRESETS
        and not any(step == "Reverb" for step, _ in PRESETS[options.task]["steps"])
    ):
        raise DataError(
            f"task {options.task!r} has no Reverb step, so --rir would be ignored; use a task with one"
        )
    source = os.path.realpath(options.clean)
    folders = [os.path.realpath(os.path.join(options.output, name)) for name in ("degraded", "clean")]
    for folder in folders:
        if os.path.commonpath([source, folder]) in (source, folder):
            raise DataError(
                f"the output folder '{folder}' and the clean folder '{options.clean}' hold one another; "
                "write the test set to a folder outside the clean audio"
            )
    files = find_audio_files([options.clean])
    if not files:
        raise DataError(f"no audio files under {options.clean}; give a folder of clean recordings")
    degrade = task_degrader(
        options.task,
        options.seed,
        options.noise,
        options.rir,
        options.in_sample_rate,
        options.out_sample_rate,
        settings,
    )
    out_rate = options.out_sample_rate or PRESETS[options.task]["rates"][1]
    earlier = [path for folder in folders for _, _, names in os.walk(folder) for path in names]
    if earlier and not options.overwrite:
        raise DataError(
            f"'{options.output}' already holds {len(earlier)} files in degraded/ and clean/ (an earlier test "
            "set: evaluate would score its pairs too); give a new folder, or --overwrite to replace them"
        )
    for folder in folders:
        if os.path.isdir(folder):
            shutil.rmtree(folder)
    written, in_rate = 0, options.in_sample_rate or PRESETS[options.task]["rates"][0]
    for index, path in enumerate(files):  # a file that fails keeps the others' seeded draws (by index)
        name = relative_key(path, options.clean) + ".wav"
        try:
            wav, sample_rate = read_audio(path)
            degraded, in_rate = degrade(wav, sample_rate, index)
            clean = resample(wav, sample_rate, out_rate)
        except GanEnhanceError as error:
            print(f"gan-enhance degrade: error: {error}", file=sys.stderr, flush=True)
            continue
        write_audio(os.path.join(options.output, "clean", name), clean, out_rate)
        write_audio(os.path.join(options.output, "degraded", name), degraded.clamp(-1, 1), in_rate)
        written += 1
    print(
        f"wrote {written} pairs to {options.output}: degraded/ at {in_rate} Hz, "
        f"clean/ at {out_rate} Hz (task {options.task}, seed {options.seed})"
    )
    if written < len(files):
        print(f"gan-enhance degrade: {len(files) - written} of {len(files)} files failed", file=sys.stderr)
        return 1
    return 0


def degradation_settings(items: list[str]) -> dict[str, dict]:
    """``["AddNoise.snr_db=[0, 10]", ...]`` -> ``{"AddNoise": {"snr_db": [0, 10]}}`` (values read as YAML)."""
    import yaml

    from gan_enhance.errors import ConfigError

    settings: dict[str, dict] = {}
    for item in items:
        key, equals, text = item.partition("=")
        class_name, dot, name = key.partition(".")
        if not (equals and dot and class_name and name):
            raise ConfigError(f"--set {item!r}: write CLASS.KEY=VALUE, e.g. --set AddNoise.snr_db=[0,10]")
        try:
            settings.setdefault(class_name, {})[name] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise ConfigError(
                f"--set {item!r}: {text!r} is not a YAML value; quote lists: '[0, 10]'"
            ) from None
    return settings
