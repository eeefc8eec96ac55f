"""Audio file I/O (through soundfile) and resampling (through torchaudio).

Every reader returns float32 tensors shaped ``(C, T)`` in [-1, 1] whatever the file holds (integer or
float samples, any rate, any channel count). Problems a user can cause (a missing, empty, truncated or
non-audio file, or one holding NaN or infinite samples) raise :class:`~gan_enhance.errors.AudioFileError`
naming the file. Writes are atomic: the
audio goes to a temporary file next to the target, which is then renamed over it, so a crash never
leaves a half-written file under the real name.
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import soundfile
import torch

from gan_enhance.atomic import atomic_path
from gan_enhance.devices import cached_constant
from gan_enhance.errors import AudioFileError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff")

# soundfile picks the container from the extension for most names; these need it spelled out.
_FORMAT_BY_EXTENSION = {".opus": ("OGG", "OPUS"), ".aif": ("AIFF", None), ".aiff": ("AIFF", None)}
# An MP3 header's frame count is an estimate; a decode that falls short by less than this many
# frames (two MPEG frames) is normal, not a truncated file.
_MP3_FRAME_TOLERANCE = 2 * 1152
# Subtypes that store floating-point samples; everything else is clipped to [-1, 1] before writing so
# out-of-range values saturate instead of wrapping around.
_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS", "MPEG_LAYER_III")

RESAMPLE_QUALITY = {
    # name: (lowpass_filter_width, rolloff, method, kaiser beta); the kaiser settings follow
    # torchaudio's documented "kaiser_fast" / "kaiser_best" presets.
    "fast": (6, 0.99, "sinc_interp_hann", 0.0),
    "default": (16, 0.945, "sinc_interp_kaiser", 8.555),
    "best": (64, 0.9475, "sinc_interp_kaiser", 14.769656459379492),
}


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says: rate, length in frames and seconds, channels, container and subtype."""

    sample_rate: int
    frames: int
    channels: int
    duration: float
    format: str
    subtype: str


def _check_exists(path: str) -> None:
    if not os.path.exists(path):
        raise AudioFileError(f"audio file '{path}' does not exist; check the path")
    if os.path.isdir(path):
        raise AudioFileError(f"'{path}' is a folder, not an audio file")
    if os.path.getsize(path) == 0:
        raise AudioFileError(f"audio file '{path}' is empty (0 bytes); re-create or remove it")


def _wav_data_shortfall(path: str) -> int:
    """Bytes missing from a RIFF/WAVE file's data chunk (0 when complete or not a plain WAV).

    libsndfile silently reads what is there when a WAV is cut short, so truncation is found here by
    comparing the size the header promises with the bytes on disk.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk_id, chunk_size = struct.unpack("<4sI", handle.read(8))
            if chunk_id == b"data":
                # 0 and 0xFFFFFFFF mark a stream written without a final size: nothing to compare.
                if chunk_size in (0, 0xFFFFFFFF):
                    return 0
                return max(0, position + 8 + chunk_size - size)
            position += 8 + chunk_size + (chunk_size & 1)
    return 0


def truncation_error(path: str, promised: int, read: int) -> AudioFileError | None:
    """The error for a file of which ``read`` of the ``promised`` frames could be read (None if complete).

    A WAV cut short is caught by its data chunk's size even where libsndfile reports the shorter length.
    """
    missing_bytes = _wav_data_shortfall(path)
    if missing_bytes > 0:
        return AudioFileError(
            f"audio file '{path}' is truncated: its header promises {missing_bytes} more bytes of audio than "
            "the file holds; re-create it"
        )
    if read < promised:
        return AudioFileError(
            f"audio file '{path}' is truncated: its header promises {promised} frames but only {read} can "
            "be read; re-create it"
        )
    return None


def check_finite(path: str, data: np.ndarray, start: int = 0, sample_rate: int = 0) -> None:
    """Raise if ``data`` (frames first, as soundfile reads) holds NaN or infinite samples.

    Only float files can hold them, and no tool can do anything sensible with them: they would spread
    to every output sample a model or a filter touches, so they are an error naming the file.
    """
    if np.isfinite(data).all():
        return
    frame = start + int(np.argwhere(~np.isfinite(data))[0][0])
    where = f"{frame / sample_rate:.3f} s" if sample_rate else f"frame {frame}"
    raise AudioFileError(
        f"audio file '{path}' holds NaN or infinite samples (first at {where}); the file is corrupt, "
        "re-create it"
    )


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read a file's header.

    Raises
    ------
    AudioFileError
        If the file is missing, empty, not audio, or has no samples.
    """
    path = os.fspath(path)
    _check_exists(path)
    try:
        info = soundfile.info(path)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioFileError(f"'{path}' is not a readable audio file ({error}); is it audio?") from None
    if info.frames <= 0:
        raise AudioFileError(f"audio file '{path}' has no samples (empty or truncated); re-create it")
    return AudioInfo(
        sample_rate=int(info.samplerate),
        frames=int(info.frames),
        channels=int(info.channels),
        duration=info.frames / info.samplerate,
        format=info.format,
        subtype=info.subtype,
    )


def read_audio(
    path: str | os.PathLike,
    sample_rate: int | None = None,
    mono: bool = False,
    offset: float = 0.0,
    duration: float | None = None,
) -> tuple[torch.Tensor, int]:
    """Read (part of) an audio file as float32.

    Parameters
    ----------
    path : str or PathLike
        Any format soundfile decodes (wav, flac, ogg/vorbis/opus, mp3, aiff, ...).
    sample_rate : int, optional
        Resample to this rate; ``None`` keeps the file's rate.
    mono : bool
        Average the channels into one.
    offset, duration : float
        Start and length of the excerpt in seconds; ``duration=None`` reads to the end. An excerpt
        reaching past the end is returned shorter.

    Returns
    -------
    wav : Tensor (C, T)
        float32 samples in [-1, 1] (C = 1 when ``mono``).
    sample_rate : int
        The rate of ``wav``.
    """
    path = os.fspath(path)
    info = audio_info(path)
    start = int(round(offset * info.sample_rate))
    if start < 0 or start >= info.frames:
        raise AudioFileError(
            f"offset {offset:.3f} s is outside '{path}' ({info.duration:.3f} s long); use a smaller offset"
        )
    wanted = info.frames - start if duration is None else int(round(duration * info.sample_rate))
    wanted = min(wanted, info.frames - start)
    try:
        data, _ = soundfile.read(path, frames=wanted, start=start, dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioFileError(f"audio file '{path}' is corrupt or truncated ({error}); re-create it") from None
    tolerance = _MP3_FRAME_TOLERANCE if info.format == "MP3" else 0
    error = truncation_error(path, max(1, wanted - tolerance), data.shape[0])
    if error is not None:
        raise error
    check_finite(path, data, start, info.sample_rate)
    wav = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono and wav.shape[0] > 1:
        wav = wav.mean(dim=0, keepdim=True)
    if sample_rate is not None and sample_rate != info.sample_rate:
        wav = resample(wav, info.sample_rate, sample_rate)
        return wav, int(sample_rate)
    return wav, info.sample_rate


def _format_for(path: str) -> tuple[str | None, str | None]:
    extension = os.path.splitext(path)[1].lower()
    if extension not in AUDIO_EXTENSIONS:
        raise AudioFileError(
            f"cannot write '{path}': unknown audio extension '{extension}'; use one of "
            f"{', '.join(AUDIO_EXTENSIONS)}"
        )
    return _FORMAT_BY_EXTENSION.get(extension, (None, None))


def write_audio(
    path: str | os.PathLike,
    wav: torch.Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
) -> None:
    """Write audio atomically (temporary file in the same folder, then rename).

    Parameters
    ----------
    path : str or PathLike
        Target; the extension picks the format (``.wav``, ``.flac``, ``.ogg``, ``.opus``, ``.mp3``, ...).
        Missing parent folders are created.
    wav : Tensor or ndarray, (C, T) or (T,)
        Samples in [-1, 1]; integer subtypes clip values outside that range.
    sample_rate : int
        Rate of ``wav``.
    subtype : str, optional
        A soundfile subtype (``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...); default is the format's.
    """
    path = os.fspath(path)
    container, default_subtype = _format_for(path)
    subtype = subtype or default_subtype
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().to("cpu", torch.float32).numpy()
    data = np.asarray(wav, dtype=np.float32)
    if data.ndim == 1:
        data = data[None]
    if data.ndim != 2:
        raise ValueError(f"write_audio expects (C, T) or (T,) audio, got shape {tuple(data.shape)}")
    if subtype is None or subtype.upper() not in _FLOAT_SUBTYPES:
        data = np.clip(data, -1.0, 1.0)
    try:
        with atomic_path(path) as temporary:
            soundfile.write(temporary, data.T, int(sample_rate), subtype=subtype, format=container)
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError) as error:
        raise AudioFileError(f"cannot write '{path}' ({error})") from None


@functools.lru_cache(maxsize=1)
def _torchaudio_functional():
    from gan_enhance._compat import patch

    patch()
    import torchaudio.functional

    return torchaudio.functional


@cached_constant(64)
def _resampler(
    orig_sr: int, new_sr: int, quality: str, device: torch.device, dtype: torch.dtype
) -> torch.nn.Module:
    """A torchaudio ``Resample`` module per rate pair, device and dtype: it computes its sinc kernel once,
    which for rate pairs with a small common divisor (22.05 -> 16 kHz) costs ten times the resampling."""
    _torchaudio_functional()  # the compatibility patch must run before torchaudio.transforms loads
    import torchaudio.transforms

    width, rolloff, method, beta = RESAMPLE_QUALITY[quality]
    module = torchaudio.transforms.Resample(
        int(orig_sr),
        int(new_sr),
        lowpass_filter_width=width,
        rolloff=rolloff,
        resampling_method=method,
        beta=beta if method == "sinc_interp_kaiser" else None,
    )
    return module.to(device=device, dtype=dtype)


def resample(wav: torch.Tensor, orig_sr: int, new_sr: int, quality: str = "default") -> torch.Tensor:
    """Band-limited sinc resampling with torchaudio.

    Parameters
    ----------
    wav : Tensor (..., T)
    orig_sr, new_sr : int
    quality : str
        ``"fast"`` (Hann window, width 6), ``"default"`` (Kaiser, width 16) or ``"best"`` (Kaiser,
        width 64); see ``RESAMPLE_QUALITY``.

    Returns
    -------
    Tensor (..., ceil(T * new_sr / orig_sr))
    """
    if orig_sr == new_sr:
        return wav
    if quality not in RESAMPLE_QUALITY:
        raise ValueError(f"unknown resample quality {quality!r}; use one of {', '.join(RESAMPLE_QUALITY)}")
    dtype = wav.dtype if wav.is_floating_point() else torch.float32
    return _resampler(int(orig_sr), int(new_sr), quality, wav.device, dtype)(wav.to(dtype))


class AudioReader:
    """Random access and block-wise reading of one file without loading it whole.

    Use as a context manager; ``read(start, frames)`` returns ``(C, frames)`` float32 (shorter at the
    end of the file). A block holding NaN or infinite samples raises
    :class:`~gan_enhance.errors.AudioFileError`; a WAV cut short reads what is there (see
    :func:`truncation_error` to check it).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.info = audio_info(self.path)
        try:
            self._file = soundfile.SoundFile(self.path)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioFileError(f"'{self.path}' is not a readable audio file ({error})") from None

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    @property
    def frames(self) -> int:
        return self.info.frames

    @property
    def channels(self) -> int:
        return self.info.channels

    def read(self, start: int, frames: int) -> torch.Tensor:
        """Samples ``[start, start + frames)`` as ``(C, n)`` float32, ``n <= frames``."""
        try:
            self._file.seek(start)
            data = self._file.read(frames, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioFileError(f"audio file '{self.path}' is corrupt or truncated ({error})") from None
        check_finite(self.path, data, start, self.sample_rate)
        return torch.from_numpy(np.ascontiguousarray(data.T))

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def iter_blocks(
    path: str | os.PathLike, block_frames: int, hop_frames: int = 0
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(start, block (C, n))`` over a file, ``block_frames`` long every ``hop_frames`` frames.

    ``hop_frames=0`` means back-to-back blocks (hop = block). The last block may be shorter.
    """
    if block_frames <= 0:
        raise ValueError("block_frames must be positive")
    hop = hop_frames or block_frames
    with AudioReader(path) as reader:
        for start in range(0, reader.frames, hop):
            block = reader.read(start, block_frames)
            if block.shape[-1] == 0:
                return
            yield start, block
            if start + block_frames >= reader.frames:
                return
