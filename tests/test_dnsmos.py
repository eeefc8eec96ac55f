"""DNSMOS from speechmos's shipped models: the same numbers as speechmos's own ``run``, the reference
script's windows over long files, noise lowering the background score, sessions built once and never at
import, and the scores as a validation metric that picks the best checkpoint."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from test_metrics import SR, noise_at_snr, speech_like

from gan_enhance.errors import ConfigError
from gan_enhance.evaluate import dnsmos, metrics

COLUMNS = ["dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808"]
# Short enough for one window once repeated (4.6 s -> 9.2 s), so each scoring is one model call.
SECONDS = 4.6


@pytest.fixture(scope="module")
def clean_and_noisy():
    clean = speech_like(SECONDS, seed=3)
    noisy = (clean + noise_at_snr(clean, 5.0, seed=4)).astype(np.float32)
    return clean, noisy


@pytest.fixture(scope="module")
def scores(clean_and_noisy):
    """Our scores of the clean and the noisy signal, computed once for the tests that read them."""
    return [metrics.compute_metrics(signal, None, SR, COLUMNS) for signal in clean_and_noisy]


@pytest.mark.slow
def test_scores_equal_speechmos_run_on_a_short_signal(clean_and_noisy, scores, tmp_path):
    import soundfile
    from speechmos import dnsmos as reference

    keys = ["sig_mos", "bak_mos", "ovrl_mos", "p808_mos"]
    expected = reference.run(clean_and_noisy[1], SR)
    for column, key in zip(COLUMNS, keys):
        assert scores[1][column] == pytest.approx(float(expected[key]), abs=1e-4), column
    # A 24 kHz file: speechmos loads it at 16 kHz with librosa (soxr); ours resamples the same way.
    from gan_enhance.audio import resample

    at_24k = resample(torch.from_numpy(clean_and_noisy[1]), SR, 24000).numpy()
    soundfile.write(tmp_path / "noisy_24k.wav", at_24k, 24000, subtype="FLOAT")
    expected = reference.run(str(tmp_path / "noisy_24k.wav"), SR)
    ours = metrics.compute_metrics(at_24k, None, 24000, COLUMNS)
    for column, key in zip(COLUMNS, keys):
        assert ours[column] == pytest.approx(float(expected[key]), abs=1e-4), column


def test_noise_lowers_the_background_and_overall_scores(scores):
    clean, noisy = scores
    assert clean["dnsmos_bak"] > noisy["dnsmos_bak"] + 1.0
    assert clean["dnsmos_ovrl"] > noisy["dnsmos_ovrl"]
    assert all(1.0 <= value <= 5.0 for value in [*clean.values(), *noisy.values()])


def test_other_rates_are_resampled_to_16k_first(clean_and_noisy, scores):
    from gan_enhance.audio import resample

    at_48k = resample(torch.from_numpy(clean_and_noisy[0]), SR, 48000).numpy()
    resampled = metrics.compute_metrics(at_48k, None, 48000, ["dnsmos_bak"])["dnsmos_bak"]
    assert resampled == pytest.approx(scores[0]["dnsmos_bak"], abs=0.05)


def test_window_starts_follow_the_reference_script():
    for seconds in [9.01, 9.5, 10.0, 10.99, 11.0, 16.5, 20.0, 61.3]:
        length = int(seconds * SR)
        starts = list(dnsmos.window_starts(length))
        # The reference script's count: int(floor(seconds) - 9.01) + 1 windows, one every second.
        assert len(starts) == int(np.floor(length / SR) - 9.01) + 1
        assert starts == [i * SR for i in range(len(starts))]
        assert starts[-1] + dnsmos.WINDOW <= length
    assert list(dnsmos.window_starts(int(9.01 * SR))) == [0]
    assert len(dnsmos.window_starts(20 * SR)) == 11


class _FakeSession:
    """An ONNX session stand-in: records each call's batch and returns a function of it."""

    def __init__(self, output):
        self.output, self.batches = output, []

    def get_inputs(self):
        return [type("Input", (), {"name": "input_1"})]

    def run(self, _, feeds):
        batch = feeds["input_1"]
        self.batches.append(batch.shape)
        return [self.output(batch)]


def test_long_audio_is_scored_in_bounded_runs_and_averaged_over_every_window(monkeypatch):
    # Each second of a 30.5 s signal holds a constant level; the stand-in model's raw P.835 score of a
    # window is its mean value, so the expected score is the mean over 21 windows of the polynomial.
    levels = np.linspace(0.1, 0.6, 31)
    wav = np.repeat(levels, SR)[: int(30.5 * SR)].astype(np.float32)
    p835 = _FakeSession(lambda batch: np.repeat(batch.mean(axis=1, keepdims=True), 3, axis=1))
    p808 = _FakeSession(lambda batch: np.full((batch.shape[0], 1), 3.0, np.float32))
    monkeypatch.setattr(dnsmos, "_sessions", lambda: (p835, p808))
    scores = dnsmos.dnsmos(wav)
    windows = [wav[s : s + dnsmos.WINDOW].mean() for s in range(0, 21 * SR, SR)]
    for name in ("sig", "bak", "ovrl"):
        expected = np.mean(np.poly1d(dnsmos.P835_POLYNOMIALS[name])(np.array(windows)))
        assert scores[name] == pytest.approx(expected, rel=1e-5), name
    assert scores["p808"] == pytest.approx(3.0)
    assert sum(shape[0] for shape in p835.batches) == 21
    assert max(shape[0] for shape in p835.batches) == dnsmos.WINDOWS_PER_RUN
    assert {shape[1] for shape in p835.batches} == {dnsmos.WINDOW}
    assert {shape[1:] for shape in p808.batches} == {(900, 120)}  # the P.808 model's fixed input


def test_out_of_range_and_empty_input(monkeypatch):
    p835 = _FakeSession(lambda batch: np.repeat(batch.max(axis=1, keepdims=True), 3, axis=1))
    p808 = _FakeSession(lambda batch: np.full((batch.shape[0], 1), 3.0, np.float32))
    monkeypatch.setattr(dnsmos, "_sessions", lambda: (p835, p808))
    loud = dnsmos.dnsmos(np.full(SR, 4.0, np.float32))  # clipped to 1.0, as a 16-bit file would be
    assert loud["sig"] == pytest.approx(np.poly1d(dnsmos.P835_POLYNOMIALS["sig"])(1.0))
    assert all(math.isnan(value) for value in dnsmos.dnsmos(np.zeros(0, np.float32)).values())


def test_sessions_are_cached_with_torch_threads_and_not_built_at_import():
    first = dnsmos._sessions()
    assert dnsmos._sessions()[0] is first[0] and dnsmos._sessions()[1] is first[1]
    assert first[0].get_session_options().intra_op_num_threads == torch.get_num_threads()
    code = (
        "import sys, gan_enhance, gan_enhance.evaluate.dnsmos, gan_enhance.cli.evaluate; "
        "print(sorted(m for m in ('onnxruntime', 'librosa', 'speechmos', 'torch') if m in sys.modules))"
    )
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert result.stdout.strip() == "[]"


def test_missing_runtime_is_a_one_line_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(ConfigError, match="pip install onnxruntime"):
        dnsmos._session.__wrapped__("p835", 1)


def test_dnsmos_ovrl_picks_the_best_checkpoint_as_a_validation_metric(clean_and_noisy, scores):
    """What validation does with ``Trainer.best_metric: metric/dnsmos_ovrl`` (mode max): score each
    validation batch ``(B, 1, T)`` with mean_scores and keep the best; the cleaner outputs must win."""
    from gan_enhance.train.checkpoint import BestTracker

    clean, noisy = (torch.from_numpy(signal) for signal in clean_and_noisy)
    tracker = BestTracker("metric/dnsmos_ovrl", "max", patience=0)
    # Validation 1 outputs the noisy signal, validation 2 one noisy and one clean output.
    batches = {100: torch.stack([noisy])[:, None], 200: torch.stack([noisy, clean])[:, None]}
    for step, y_hat in batches.items():
        references = torch.stack([clean] * len(y_hat))[:, None]
        means = metrics.mean_scores(y_hat, references, SR, ["dnsmos_ovrl"])
        tracker.update({f"metric/{name}": value for name, value in means.items()}, step)
        if step == 200:  # the batch mean is the mean of the items
            expected = (scores[0]["dnsmos_ovrl"] + scores[1]["dnsmos_ovrl"]) / 2
            assert means["dnsmos_ovrl"] == pytest.approx(expected, abs=1e-5)
    assert tracker.best_step == 200
    assert metrics.METRICS["dnsmos_ovrl"].better == metrics.HIGHER
