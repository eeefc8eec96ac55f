"""``gan-enhance enhance MODEL INPUT... --output DIR``: enhance files and folders with a model.

MODEL is an exported model folder, or a training run (``runs/<name>``, with ``--tag``), a checkpoint folder
or a ``checkpoint.pt``, exported in memory (EMA weights when the checkpoint holds updated ones).
"""

from __future__ import annotations

import os
import sys

from gan_enhance.cli._args import number, parser
from gan_enhance.errors import AudioFileError, ConfigError, GanEnhanceError

HELP = "enhance audio files or folders with an exported model or a training run (chunked, any rate)"

DESCRIPTION = """\
Enhance audio files, or every audio file in folders, with an exported model (gan-enhance export) or
straight from a training run: runs/<name> with --tag, a checkpoint folder or a checkpoint.pt, exported in
memory with the EMA weights when the checkpoint holds updated ones. Long files are enhanced in seamless
chunks and streamed, at any sample rate and channel count.
"""


def _arguments():
    p = parser("enhance", DESCRIPTION)
    p.add_argument(
        "model",
        metavar="MODEL",
        help="exported model folder, or a training run (runs/<name>), checkpoint folder or checkpoint.pt",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="audio files, or folders searched recursively")
    p.add_argument(
        "--output", "-o", required=True, help="folder for the enhanced files (tree mirrors inputs)"
    )
    p.add_argument("--tag", default="best", help="checkpoint of a training run MODEL: best, latest, <N>k")
    p.add_argument(
        "--chunk-seconds",
        type=number(float, 0, strict=True),
        default=10.0,
        help="chunk core length at the model's rate",
    )
    p.add_argument(
        "--batch-size",
        type=number(int, 0),
        default=0,
        help="chunks x channels per forward pass; 0: 1 on CPU, 8 on GPU",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument(
        "--keep-sample-rate",
        action="store_true",
        help="write at the input's rate instead of the model's output rate",
    )
    p.add_argument("--extension", default="", help="output format, e.g. wav or flac; '' keeps the input's")
    p.add_argument(
        "--threads", type=number(int, 0), default=0, help="CPU threads for torch; 0 keeps torch's default"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def collect_jobs(inputs: list[str], output: str, extension: str = "") -> list[tuple[str, str]]:
    """``(input, output)`` pairs: a file maps to ``output/<name>``, a folder's files to ``output/<path in it>``.

    A folder's tree is mirrored directly under ``output``, so enhanced files pair with clean and degraded
    ones by relative path (how ``gan-enhance evaluate`` matches folders). Every output lies inside
    ``output``, whatever the input names (``..``, links, odd characters). An ``output`` inside an input
    folder is not searched: it holds outputs, not inputs.

    Raises
    ------
    AudioFileError
        If a folder holds no audio.
    ConfigError
        If ``extension`` is not a plain extension such as ``flac``.
    """
    from gan_enhance.audio import AUDIO_EXTENSIONS
    from gan_enhance.data.files import find_audio_files

    jobs = []
    root = os.path.abspath(output)
    for item in inputs:
        if os.path.isdir(item):
            found = find_audio_files([item])
            if root != os.path.abspath(item):  # (the same folder is refused per file: it would overwrite)
                found = [path for path in found if not _inside(os.path.abspath(path), root)]
            if not found:
                raise AudioFileError(f"folder '{item}' holds no audio files ({', '.join(AUDIO_EXTENSIONS)})")
            jobs += [(path, os.path.join(output, os.path.relpath(path, item))) for path in found]
        else:
            # A missing or unreadable file is reported with the others, not here.
            jobs.append((item, os.path.join(output, os.path.basename(item))))
    if extension:
        suffix = "." + extension.lstrip(".")
        if not suffix[1:].isalnum():
            raise ConfigError(f"--extension '{extension}' is not a file extension; use e.g. wav or flac")
        jobs = [(source, os.path.splitext(target)[0] + suffix) for source, target in jobs]
    return jobs


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([root, path]) == root


def _check_inside(source: str, target: str, output: str) -> None:
    """Refuse an output that is not a file inside ``output`` (e.g. from an input named ``x.wav/``).

    Targets are built from names found inside the inputs, so this holds for any real file; it is checked
    per file because a write outside --output would be a serious bug.
    """
    root, path = os.path.abspath(output), os.path.abspath(target)
    if path == root or not _inside(path, root):
        raise AudioFileError(f"'{source}': its output '{target}' is not a file inside '{output}'")


def main(argv: list[str]) -> int:
    args = _arguments().parse_args(argv)
    import torch

    from gan_enhance.audio import audio_info
    from gan_enhance.bundle import CONFIG_FILE, load_generator
    from gan_enhance.enhance import Enhancer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    exported = os.path.isfile(os.path.join(args.model, CONFIG_FILE))
    # An exported model has no tags: refuse a --tag that would be ignored (the default is harmless).
    tag = None if exported and args.tag == "best" else args.tag
    generator = load_generator(args.model, device=args.device, tag=tag)
    if not exported:
        source = generator.provenance
        print(
            f"gan-enhance enhance: {source['checkpoint']}, step {source['step']}, "
            f"{source['weights']} weights",
            file=sys.stderr,
            flush=True,
        )
    enhancer = Enhancer(
        generator,
        chunk_seconds=args.chunk_seconds,
        batch_size=args.batch_size,
        device=args.device,
        keep_sample_rate=args.keep_sample_rate,
        progress=not args.no_progress and sys.stderr.isatty(),
    )
    failed, written, told = 0, set(), args.keep_sample_rate
    jobs = collect_jobs(args.inputs, args.output, args.extension)
    for source, target in jobs:
        try:
            _check_inside(source, target, args.output)
            if os.path.abspath(target) in written:
                raise AudioFileError(
                    f"'{source}': its output '{target}' was already written from another input"
                )
            if os.path.exists(target) and os.path.samefile(source, target):
                raise AudioFileError(f"'{source}': output would overwrite the input; choose another --output")
            rate = 0 if told else audio_info(source).sample_rate
            if rate > enhancer.out_sample_rate:
                told = True  # once per run: a folder of 48 kHz files would repeat it for each
                print(
                    f"gan-enhance enhance: note: '{source}' is at {rate} Hz; outputs are written at the "
                    f"model's {enhancer.out_sample_rate} Hz (--keep-sample-rate writes them at the input's "
                    f"rate, with nothing above {enhancer.out_sample_rate // 2} Hz)",
                    file=sys.stderr,
                    flush=True,
                )
            enhancer.enhance_file(source, target)
            written.add(os.path.abspath(target))
            print(target, flush=True)
        except (GanEnhanceError, OSError) as error:
            failed += 1
            print(f"gan-enhance enhance: error: {error}", file=sys.stderr, flush=True)
    if failed:
        print(f"gan-enhance enhance: {failed} of {len(jobs)} files failed", file=sys.stderr)
    return 1 if failed else 0
