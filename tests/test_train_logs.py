"""What a run leaves to look at: train.log, the console progress, readable spectrogram figures, the config text."""

from __future__ import annotations

import io
import logging
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

from gan_enhance.train.config import load_config
from gan_enhance.train.figures import comparison_figure, figure_rgb, level_dbfs
from gan_enhance.train.progress import Progress
from gan_enhance.train.run import LOG_FILE, run_training

CONF = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "conf"))
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (INFO|WARNING|ERROR) gan_enhance")
LOSSES = {"mel/loss": 1.5, "total/loss": 3.0, "adv/gen": 0.25, "grad_norm/gen": 7.0, "grad/mel/loss": 0.5}


def chirp(seconds: float, sample_rate: int) -> torch.Tensor:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return (0.5 * torch.sin(2 * math.pi * (200 + 2000 * t) * t)).unsqueeze(0)


# --- figures -------------------------------------------------------------------------------------------


def test_level_reads_a_full_scale_sine_at_0_db_in_its_bin():
    t = torch.arange(16000) / 16000
    decibels, hop_seconds = level_dbfs(torch.sin(2 * math.pi * 1000 * t), 16000)
    assert decibels.shape[0] == 512 // 2 + 1  # 32 ms window at 16 kHz
    assert hop_seconds == pytest.approx(0.008)
    middle = decibels[:, decibels.shape[1] // 2]
    assert np.argmax(middle) == 32  # 1000 Hz / 31.25 Hz per bin
    assert middle.max() == pytest.approx(0.0, abs=0.1)


def test_figure_shows_input_output_target_on_one_frequency_axis_in_hz_and_seconds():
    y = chirp(2.0, 48000)
    figure = comparison_figure(y[:, ::3], y, y, 16000, 48000, title="sample 0 at step 10")
    panels, colorbars = figure.axes[:4], figure.axes[4:]
    for ax in panels:
        assert ax.get_ylim() == (0, 24000) and ax.get_ylabel() == "frequency (Hz)"
        assert ax.get_xlim() == (0, pytest.approx(2.0))
    assert panels[3].get_xlabel() == "time (s)"
    input_extent = panels[0].images[0].get_extent()
    assert input_extent[3] == 8000 and panels[1].images[0].get_extent()[3] == 24000
    assert any("8000 Hz" in text.get_text() for text in panels[0].texts)  # the hatched band is named
    names = [ax.texts[-1].get_text() for ax in panels]
    assert names[:3] == ["input (16000 Hz)", "output (48000 Hz)", "target (48000 Hz)"]
    assert [ax.get_ylabel() for ax in colorbars] == ["level (dB FS)", "difference (dB)"]
    low, high = panels[0].images[0].get_clim()
    assert (low, high) == panels[2].images[0].get_clim() and high - low == 80
    assert figure._suptitle.get_text() == "sample 0 at step 10: 2.00 s clip"
    rgb = figure_rgb(figure)
    assert rgb.dtype == np.uint8 and rgb.shape == (648, 720, 3)


def test_a_clip_under_two_seconds_says_so_and_names_the_setting():
    y = chirp(0.5, 16000)
    figure = comparison_figure(y, y, y, 16000, 16000)
    assert "0.50 s clip - shorter than 2 s: raise Data.val_segment_samples" in figure._suptitle.get_text()
    assert not figure.axes[0].texts[:-1]  # same rates: no band above the input's Nyquist frequency


def test_difference_is_zero_where_output_equals_target_even_in_digital_silence():
    torch.manual_seed(0)
    y = torch.cat([torch.zeros(1, 8000), 0.1 * torch.randn(1, 8000)], dim=1)  # silence, then noise
    difference = np.asarray(comparison_figure(y, y, y, 16000, 16000).axes[3].images[0].get_array())
    assert np.abs(difference).max() == 0
    louder = np.asarray(comparison_figure(y, y * 2, y, 16000, 16000).axes[3].images[0].get_array())
    assert np.abs(louder[:, :55]).max() == 0  # silence in both (frames end 0.44 s before the noise)
    assert np.median(louder[:, 70:]) == pytest.approx(20 * math.log10(2), abs=0.01)  # +6 dB in the noise


@pytest.mark.slow
def test_training_and_inference_modules_import_matplotlib_only_when_a_figure_is_drawn():
    code = "import sys, gan_enhance.train, gan_enhance.enhance; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


# --- console progress ----------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_redirected_output_gets_one_line_per_logging_step_with_losses_and_speed(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="gan_enhance")
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    clock = iter([100.0, 102.5])
    monkeypatch.setattr("gan_enhance.train.progress.time.perf_counter", lambda: next(clock))
    progress = Progress(10, 0, enabled=True)
    assert progress.bar is None
    progress.show(5, LOSSES)
    assert caplog.messages == ["step 5 of 10: adv/gen=0.25 mel/loss=1.5 total/loss=3 | 2 steps/s"]
    assert re.search(r" step (\d+) ", f" {caplog.messages[0]}")  # what scripts watching the log look for


def test_quiet_and_other_ranks_get_no_bar_even_on_a_terminal(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="gan_enhance")
    monkeypatch.setattr(sys, "stderr", FakeTerminal())
    assert Progress(10, 0, enabled=True, bar=False).bar is None
    other_rank = Progress(10, 0, enabled=False)
    other_rank.show(5, LOSSES)
    assert other_rank.bar is None and not caplog.messages


def test_a_terminal_gets_a_bar_and_the_log_file_still_gets_every_line(monkeypatch, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gan_enhance")
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    root = logging.getLogger()
    console, log_file = logging.StreamHandler(sys.stderr), logging.FileHandler(tmp_path / "train.log")
    root.addHandler(console)
    root.addHandler(log_file)
    try:
        progress = Progress(10, 0, enabled=True)
        assert progress.bar is not None
        with progress.console():
            progress.update(5)
            progress.show(5, LOSSES)
            logging.getLogger("gan_enhance.train").info("step 5 validation: mel/loss=1")
        assert console in root.handlers  # the console handler is back after the block
        progress.close()
    finally:
        root.removeHandler(console)
        root.removeHandler(log_file)
        log_file.close()
    written = (tmp_path / "train.log").read_text()
    assert "step 5 of 10: adv/gen=0.25" in written and "step 5 validation" in written
    shown = terminal.getvalue()
    assert "step 5 validation" in shown and "step 5 of 10" not in shown
    assert "5/10" in shown and "mel=1.5" in shown  # the bar with its postfix


# --- a run's files -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> str:
    from gan_enhance.data import write_synthetic_corpus

    folder = tmp_path_factory.mktemp("corpus")
    write_synthetic_corpus(str(folder), num_files=2, seconds=1.5, sample_rate=48000)
    return str(folder)


def tiny_config(corpus: str, runs_dir, name: str, **overrides) -> dict:
    """conf/debug.yml cut to a few CPU seconds (no adversarial steps): validation, samples and a log line
    every step."""
    return {
        **load_config(os.path.join(CONF, "debug.yml")),
        "name": name,
        "runs_dir": str(runs_dir),
        "Trainer.max_steps": 2,
        "Trainer.adversarial_start": 100,
        "Trainer.log_every": 1,
        "Trainer.valid_every": 2,
        "Trainer.sample_every": 2,
        "Trainer.num_samples": 2,
        "Trainer.checkpoint_every": 1,
        "Data.segment_samples": 6144,
        "Data.epoch_items": 4,
        "Data.train_sources": [corpus],
        "Data.val_sources": [corpus],
        **overrides,
    }


@pytest.fixture(scope="module")
def logged_run(corpus, tmp_path_factory):
    """A 2-step run resumed to step 3, with INFO records on; returns its folder and the root handlers
    before and after."""
    runs = tmp_path_factory.mktemp("runs")
    logger = logging.getLogger("gan_enhance")
    level = logger.level
    logger.setLevel(logging.INFO)
    handlers = list(logging.getLogger().handlers)
    try:
        run_training(tiny_config(corpus, runs, "logged"))
        first = (runs / "logged" / LOG_FILE).read_text()
        run_training(tiny_config(corpus, runs, "logged", **{"Trainer.max_steps": 3}), resume=True)
    finally:
        logger.setLevel(level)
    return runs / "logged", first, handlers, list(logging.getLogger().handlers)


@pytest.mark.slow
def test_train_log_holds_the_run_records_and_resume_appends(logged_run):
    run_dir, first, before, after = logged_run
    assert after == before  # the file handler is gone: a second run in this process writes elsewhere
    text = (run_dir / LOG_FILE).read_text()
    assert text.startswith(first)  # appended, not truncated
    lines = text.splitlines()
    assert all(TIMESTAMP.match(line) for line in lines), lines
    expected = [
        "run folder",
        "step 1 of 2: ",
        "step 2 of 2: ",
        "step 2 validation: ",
        "training ended at step 2 (finished)",
        "resumed ",
        "step 3 of 3: ",
        "training ended at step 3 (finished)",
    ]
    positions = [next(i for i, line in enumerate(lines) if part in line) for part in expected]
    assert positions == sorted(positions)
    assert re.search(r" step 1 of 2: .*mel/loss=[\d.]+ .*\| [\d.]+ steps/s$", lines[positions[1]])


@pytest.mark.slow
def test_tensorboard_gets_one_readable_figure_per_sample_and_the_config_text(logged_run):
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = logged_run[0]
    val = EventAccumulator(str(run_dir / "logs" / "val"), size_guidance={"images": 0}).Reload()
    assert set(val.Tags()["images"]) == {"sample_0/spectrogram", "sample_1/spectrogram"}
    (event,) = val.Images("sample_0/spectrogram")
    assert (event.step, event.width, event.height) == (2, 720, 648)
    pixels = np.asarray(Image.open(io.BytesIO(event.encoded_image_string)))
    assert pixels.shape[:2] == (648, 720) and pixels.std() > 20
    assert (run_dir / "samples" / "step_2" / "1_spectrogram.png").is_file()
    train = EventAccumulator(str(run_dir / "logs" / "train"), size_guidance={"tensors": 0}).Reload()
    texts = train.Tensors("config/text_summary")
    assert [t.step for t in texts] == [0, 2]  # once per start: the run and its resume
    markdown = texts[0].tensor_proto.string_val[0].decode()
    assert markdown.startswith("```yaml\n") and markdown.endswith("```\n")
    logged = yaml.safe_load(markdown.removeprefix("```yaml\n").removesuffix("```\n"))
    assert logged["name"] == "logged" and logged["Trainer.max_steps"] == 2


@pytest.mark.slow
def test_an_error_that_ends_the_run_goes_to_train_log_with_its_traceback(corpus, tmp_path):
    def fail(step, metrics):
        raise RuntimeError("the callback broke")

    handlers = list(logging.getLogger().handlers)
    with pytest.raises(RuntimeError, match="the callback broke"):
        run_training(
            tiny_config(corpus, tmp_path, "broken", **{"Trainer.sample_every": 0}), on_validation=fail
        )
    assert logging.getLogger().handlers == handlers
    text = (tmp_path / "broken" / LOG_FILE).read_text()
    assert "ERROR gan_enhance.train: training stopped by RuntimeError: the callback broke" in text
    assert "Traceback (most recent call last)" in text and "in fail" in text


def test_a_resume_of_nothing_leaves_no_folder_behind(corpus, tmp_path):
    from gan_enhance.errors import CheckpointError

    with pytest.raises(CheckpointError):
        run_training(tiny_config(corpus, tmp_path, "missing"), resume=True)
    assert not (tmp_path / "missing").exists()
