"""Chunked, streaming inference: enhance waveforms and files of any length, rate and channel count.

Seamless chunks (overlap-save). The signal at the model's input rate is cut into cores of
``chunk_seconds``; each core is run with ``context`` extra input samples on each side (the generator's
declared context, rounded up to its ``alignment``) and only the core's part of the output is kept. Because
the kept samples see everything the whole-signal forward pass would have seen, the result equals
whole-signal enhancement (to float rounding): no clicks, no cross-fade smearing. Window starts are
multiples of the generator's ``alignment`` so framed models (STFT hops, U-Net strides) see the same frame
grid as on the whole signal, and the last window ends where the signal ends, so the generator's own end
padding matches too. (A generator with ``exact_context = False``, e.g. one conditioned on global WavLM
layers, declares a practical context instead of a bound; its chunks then only approximate the whole.)

Streaming. Files are read and written block by block (soundfile), resampled with a streaming sinc
resampler (soxr), and only about one batch of windows is held in memory, so memory does not grow with the
file's length. Channels are enhanced independently (each is a batch row). Output length is exact: the input
duration times the output rate.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import numpy as np
import soundfile
import torch
from einops import rearrange
from torch import nn

from gan_enhance.atomic import atomic_path
from gan_enhance.audio import AudioReader, truncation_error
from gan_enhance.devices import resolve_device
from gan_enhance.errors import AudioFileError, CheckpointError, ConfigError

# Streaming resampler quality (soxr's "very high quality" preset: passband to 95% of Nyquist, 175 dB).
RESAMPLE_QUALITY = "VHQ"
# Subtypes that hold floats; others are clipped to [-1, 1] so out-of-range samples saturate, not wrap.
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III")
# Default sequences per forward pass (see Enhancer's batch_size).
CPU_BATCH = 1
GPU_BATCH = 8
# An MP3 header's frame count is an estimate; a shortfall of up to two MPEG frames is not truncation.
_MP3_FRAME_TOLERANCE = 2 * 1152


def channels_first(waveform) -> tuple[torch.Tensor, Callable[[torch.Tensor], object]]:
    """Read ``waveform`` in its type's usual layout; returns ``(C, T)`` float32 on CPU and a function that
    gives a ``(C, T')`` result back in the input's type and layout.

    Tensors (and lists) are ``(T,)`` or ``(C, T)``; numpy arrays are ``(T,)`` or ``(T, C)``, the layout
    ``soundfile.read`` returns. Integer PCM is scaled to [-1, 1]. A 2-D input with more channels than
    frames is refused: it is almost surely the other layout.

    Raises
    ------
    ConfigError
        One line naming the shape it got and the layout it expected.
    """
    is_numpy = isinstance(waveform, np.ndarray)
    kind = "numpy array" if is_numpy else "tensor" if isinstance(waveform, torch.Tensor) else "waveform"
    wav = torch.from_numpy(np.ascontiguousarray(waveform)) if is_numpy else torch.as_tensor(waveform)
    shape = tuple(wav.shape)
    layout = "(T, C), as soundfile.read returns" if is_numpy else "(C, T)"
    if wav.ndim not in (1, 2) or wav.numel() == 0:
        raise ConfigError(
            f"expected a non-empty waveform shaped (T,) or {layout}, got a {kind} shaped {shape}"
        )
    if not (wav.is_floating_point() or wav.dtype in (torch.int16, torch.int32, torch.uint8, torch.int8)):
        raise ConfigError(f"expected float or integer PCM samples, got a {kind} of {wav.dtype}")
    if not wav.is_floating_point():
        # PCM as soundfile reads it (dtype="int16"/"int32"); 8-bit WAV is unsigned around 128.
        offset, full_scale = (128, 128) if wav.dtype == torch.uint8 else (0, -torch.iinfo(wav.dtype).min)
        wav = (wav.double() - offset) / full_scale
    if wav.ndim == 2:
        wav = wav.T if is_numpy else wav
        channels, frames = wav.shape
        if channels > frames:
            other = "a torch tensor (C, T)" if is_numpy else "a numpy array (T, C)"
            raise ConfigError(
                f"got a {kind} shaped {shape}, read as {layout}: {channels} channels of {frames} frames; "
                f"pass waveform.T (or {other})"
            )
    signal = wav.detach().to("cpu", torch.float32)
    mono = signal.ndim == 1

    def restore(out: torch.Tensor):
        out = out[0] if mono else out
        return np.ascontiguousarray(out.numpy().T) if is_numpy else out

    return (signal[None] if mono else signal), restore


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def resampled_length(frames: int, orig_sr: int, new_sr: int) -> int:
    """Frames after resampling ``frames`` from ``orig_sr`` to ``new_sr``: ``ceil(frames * new / orig)``."""
    return -(-frames * new_sr // orig_sr)


class StreamResampler:
    """Resample a stream of ``(C, n)`` blocks to exactly ``total`` output frames.

    Blocks in, blocks out; output beyond ``total`` is dropped and a short tail is zero-padded at
    :meth:`finish`. Equal rates pass samples through untouched.
    """

    def __init__(self, orig_sr: int, new_sr: int, channels: int, total: int):
        self.total, self.emitted, self.channels = total, 0, channels
        self._stream = None
        if orig_sr != new_sr:
            import soxr

            self._stream = soxr.ResampleStream(
                orig_sr, new_sr, channels, dtype="float32", quality=RESAMPLE_QUALITY
            )

    def _emit(self, block: torch.Tensor) -> torch.Tensor:
        block = block[:, : max(0, self.total - self.emitted)]
        self.emitted += block.shape[-1]
        return block

    def push(self, block: torch.Tensor, last: bool = False) -> torch.Tensor:
        """Resample the next ``(C, n)`` block; returns ``(C, m)`` (``m`` may be 0)."""
        if self._stream is not None:
            frames = np.ascontiguousarray(block.numpy().T, dtype=np.float32)
            block = torch.from_numpy(np.ascontiguousarray(self._stream.resample_chunk(frames, last=last).T))
        return self._emit(block)

    def finish(self) -> torch.Tensor:
        """Flush the resampler and pad to ``total`` frames."""
        tail = self.push(torch.zeros(self.channels, 0), last=True)
        missing = self.total - self.emitted
        if missing > 0:
            tail = torch.cat([tail, torch.zeros(self.channels, missing)], dim=-1)
            self.emitted = self.total
        return tail


class Enhancer:
    """Run a generator over signals of any length with seamless chunking.

    Parameters
    ----------
    generator : Generator
        Any backbone (``in_sample_rate``, ``out_sample_rate``, ``ratio``, ``context``, ``alignment``).
        It is put in eval mode and moved to ``device``.
    chunk_seconds : float
        Length of each chunk's core at the model's input rate. Longer chunks waste less compute on
        context; memory grows with ``chunk_seconds * batch_size``.
    batch_size : int
        Sequences (chunk x channel) per forward pass; 0 picks ``CPU_BATCH`` on CPU (convolutions are
        already parallel over a long chunk there, so batching only adds memory) and ``GPU_BATCH`` on GPU.
    device : str
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    keep_sample_rate : bool
        Resample the output back to the input's rate (default: the model's output rate).
    progress : bool
        Show a progress bar per file (tqdm, on stderr).
    """

    def __init__(
        self,
        generator: nn.Module,
        chunk_seconds: float = 10.0,
        batch_size: int = 0,
        device: str = "cpu",
        keep_sample_rate: bool = False,
        progress: bool = False,
    ):
        if chunk_seconds <= 0 or batch_size < 0:
            raise ValueError(
                f"chunk_seconds must be > 0 and batch_size >= 0, got {chunk_seconds}, {batch_size}"
            )
        self.device = resolve_device(device)
        batch_size = batch_size or (CPU_BATCH if self.device.type == "cpu" else GPU_BATCH)
        self.generator = generator.to(self.device).eval()
        self.in_sample_rate = int(generator.in_sample_rate)
        self.out_sample_rate = int(generator.out_sample_rate)
        self.ratio = int(generator.ratio)
        self.alignment = max(1, int(getattr(generator, "alignment", 1)))
        self.context = _round_up(int(generator.context), self.alignment)
        self.chunk = max(
            self.alignment, _round_up(int(round(chunk_seconds * self.in_sample_rate)), self.alignment)
        )
        self.batch_size = batch_size
        self.keep_sample_rate = keep_sample_rate
        self.progress = progress

    def output_rate(self, sample_rate: int) -> int:
        """The rate of the output for an input at ``sample_rate``."""
        return int(sample_rate) if self.keep_sample_rate else self.out_sample_rate

    # ------------------------------------------------------------------------------------------ core
    @torch.inference_mode()
    def _forward(self, windows: list[torch.Tensor]) -> list[torch.Tensor]:
        """Run equal-length windows ``(C, L)`` through the generator; returns ``(C, L * ratio)`` each."""
        channels = windows[0].shape[0]
        rows = rearrange(torch.stack(windows), "n c t -> (n c) 1 t")
        outputs = [
            self.generator(rows[start : start + self.batch_size].to(self.device)).float().cpu()
            for start in range(0, rows.shape[0], self.batch_size)
        ]
        return list(rearrange(torch.cat(outputs), "(n c) 1 t -> n c t", c=channels))

    def _run_stream(
        self, blocks: Iterator[torch.Tensor], total: int, channels: int
    ) -> Iterator[torch.Tensor]:
        """Enhance a model-rate input stream of exactly ``total`` frames, given as ``(C, n)`` blocks.

        Yields the output as ``(C, m)`` blocks in order (``total * ratio`` frames in all). At most
        ``batch_size`` windows (and one window's worth of look-ahead) are held at once.
        """
        buffer, buffer_start, core = torch.zeros(channels, 0), 0, 0
        pending: list[tuple[torch.Tensor, int, int]] = []  # (window, core offset in window, core length)
        windows_per_pass = max(1, self.batch_size // channels)

        def flush() -> Iterator[torch.Tensor]:
            outputs = self._forward([window for window, _, _ in pending])
            for output, (_, offset, length) in zip(outputs, pending):
                yield output[:, offset * self.ratio : (offset + length) * self.ratio]
            pending.clear()

        def ready() -> bool:
            return core < total and buffer_start + buffer.shape[-1] >= min(
                total, core + self.chunk + self.context
            )

        for block in self._exactly(blocks, total, channels):
            buffer = torch.cat([buffer, block], dim=-1)
            while ready():
                start, end = max(0, core - self.context), min(total, core + self.chunk + self.context)
                window = buffer[:, start - buffer_start : end - buffer_start].clone()
                # Only equal-length windows share a forward pass (the first and last are shorter).
                if pending and pending[0][0].shape[-1] != window.shape[-1]:
                    yield from flush()
                pending.append((window, core - start, min(self.chunk, total - core)))
                if len(pending) >= windows_per_pass:
                    yield from flush()
                core += self.chunk
                keep_from = max(0, core - self.context)
                buffer, buffer_start = buffer[:, keep_from - buffer_start :], keep_from
        if pending:
            yield from flush()

    @staticmethod
    def _exactly(blocks: Iterator[torch.Tensor], total: int, channels: int) -> Iterator[torch.Tensor]:
        """The stream cropped or zero-padded to exactly ``total`` frames."""
        seen = 0
        for block in blocks:
            block = block[:, : total - seen]
            seen += block.shape[-1]
            if block.shape[-1]:
                yield block
        if seen < total:
            yield torch.zeros(channels, total - seen)

    def _pipeline(
        self, blocks: Iterator[torch.Tensor], frames: int, sample_rate: int, channels: int
    ) -> Iterator[torch.Tensor]:
        """Input blocks at ``sample_rate`` -> output blocks at :meth:`output_rate`, exact lengths."""
        model_frames = resampled_length(frames, sample_rate, self.in_sample_rate)
        out_rate = self.output_rate(sample_rate)
        out_frames = resampled_length(frames, sample_rate, out_rate)
        to_model = StreamResampler(sample_rate, self.in_sample_rate, channels, model_frames)
        model_out_frames = resampled_length(frames, sample_rate, self.out_sample_rate)
        from_model = StreamResampler(self.out_sample_rate, out_rate, channels, out_frames)

        def model_input() -> Iterator[torch.Tensor]:
            for block in blocks:
                yield to_model.push(block.float())
            yield to_model.finish()

        produced = 0
        for block in self._run_stream(model_input(), model_frames, channels):
            # ceil(T_in * r_in / r_file) * ratio can exceed ceil(T_in * r_out / r_file) by < ratio frames.
            block = block[:, : max(0, model_out_frames - produced)]
            produced += block.shape[-1]
            out = from_model.push(block)
            if out.shape[-1]:
                yield out
        yield from_model.finish()

    # ----------------------------------------------------------------------------------------- API
    def enhance_waveform(self, waveform, sample_rate: int) -> tuple[torch.Tensor, int]:
        """Enhance an in-memory signal.

        Parameters
        ----------
        waveform : Tensor or ndarray, (C, T) or (T,)
            Samples in [-1, 1] at ``sample_rate``; each channel is enhanced on its own.
        sample_rate : int

        Returns
        -------
        enhanced : Tensor, same layout as the input, ``ceil(T * rate / sample_rate)`` frames, float32 CPU
        rate : int
            The output's rate (the model's output rate, or ``sample_rate`` with ``keep_sample_rate``).
        """
        wav = torch.as_tensor(waveform).detach().to("cpu", torch.float32)
        if wav.ndim not in (1, 2) or wav.shape[-1] == 0:
            raise ValueError(f"expected a non-empty waveform shaped (C, T) or (T,), got {tuple(wav.shape)}")
        signal = wav if wav.ndim == 2 else wav[None]
        step = max(1, resampled_length(self.chunk, self.in_sample_rate, int(sample_rate)))
        blocks = (signal[:, start : start + step] for start in range(0, signal.shape[-1], step))
        out = torch.cat(list(self._pipeline(blocks, signal.shape[-1], int(sample_rate), signal.shape[0])), -1)
        return (out if wav.ndim == 2 else out[0]), self.output_rate(sample_rate)

    def enhance_file(self, in_path: str | os.PathLike, out_path: str | os.PathLike) -> str:
        """Enhance one file block by block and write the result atomically.

        The output keeps the input's channel count; its format follows ``out_path``'s extension, and its
        sample subtype follows the input's where that format can store it.

        Raises
        ------
        AudioFileError
            If the input is missing, not audio, truncated, holds NaN or infinite samples, or the output
            cannot be written. Nothing is left under ``out_path`` then.
        CheckpointError
            If the model turns the input into NaN or infinite samples (nothing is written either).
        """
        in_path, out_path = os.fspath(in_path), os.fspath(out_path)
        with AudioReader(in_path) as reader:
            rate, frames, channels = reader.sample_rate, reader.frames, reader.channels
            step = max(1, resampled_length(self.chunk, self.in_sample_rate, rate))
            read_total = [0]

            def blocks() -> Iterator[torch.Tensor]:
                for start in range(0, frames, step):
                    block = reader.read(start, step)
                    read_total[0] += block.shape[-1]
                    if block.shape[-1] == 0:
                        return
                    yield block

            def check_complete() -> None:
                tolerance = _MP3_FRAME_TOLERANCE if reader.info.format == "MP3" else 0
                error = truncation_error(in_path, frames - tolerance, read_total[0])
                if error is not None:
                    raise error

            out_rate = self.output_rate(rate)
            subtype = _output_subtype(out_path, reader.info.subtype)
            with _atomic_writer(out_path, out_rate, channels, subtype) as write:
                # A cut-short WAV shows in its header: refuse it before enhancing anything.
                error = truncation_error(in_path, frames, frames)
                if error is not None:
                    raise error
                bar = _progress_bar(self.progress, frames, os.path.basename(in_path))
                done = 0
                for block in self._pipeline(blocks(), frames, rate, channels):
                    # The input is checked finite as it is read, so this is the model's doing.
                    if not torch.isfinite(block).all():
                        raise CheckpointError(
                            f"the model produced NaN or infinite samples from '{in_path}'; the exported "
                            "model is broken or unstable on this input"
                        )
                    write(block)
                    new_done = min(frames, int(read_total[0]))
                    bar.update(new_done - done)
                    done = new_done
                bar.close()
                check_complete()
        return out_path


def _progress_bar(enabled: bool, total: int, name: str):
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", unit_scale=True, desc=name, leave=False, disable=not enabled)


def _output_subtype(path: str, input_subtype: str) -> str | None:
    """The input's subtype when the output format can store it, else the format's default."""
    container = _container(path)
    try:
        if soundfile.check_format(container, input_subtype):
            return input_subtype
    except (TypeError, ValueError):
        pass
    return None


def _container(path: str) -> str:
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    formats = {"aif": "AIFF", "opus": "OGG", "mp3": "MP3", "oga": "OGG"}
    container = formats.get(extension, extension.upper())
    if container not in soundfile.available_formats():
        raise AudioFileError(f"cannot write '{path}': unknown audio extension '.{extension}'")
    return container


@contextlib.contextmanager
def _atomic_writer(path: str, sample_rate: int, channels: int, subtype: str | None):
    """Yield ``write(block (C, n))`` into a temporary file that is renamed to ``path`` on success only."""
    container = _container(path)
    if subtype is None and path.lower().endswith(".opus"):
        subtype = "OPUS"
    clip = subtype is None or subtype not in _FLOAT_SUBTYPES
    with atomic_path(path) as temporary:
        try:
            file = soundfile.SoundFile(temporary, "w", sample_rate, channels, subtype, format=container)
        except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
            raise AudioFileError(f"cannot write '{path}' ({error})") from None

        def write(block: torch.Tensor) -> None:
            data = block.numpy().T
            try:
                file.write(np.ascontiguousarray(np.clip(data, -1.0, 1.0) if clip else data))
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise AudioFileError(f"cannot write '{path}' ({error})") from None

        with file:
            yield write
