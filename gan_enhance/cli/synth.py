"""``gan-enhance synth``: write a corpus of synthetic speech-like files (no downloads needed)."""

from __future__ import annotations

from gan_enhance.cli._args import parser

HELP = "write synthetic speech-like audio files (for demos and smoke tests; no data download)"


def main(argv: list[str]) -> int:
    arguments = parser("synth", "Write a corpus of synthetic speech-like files (no downloads needed).")
    arguments.add_argument("output", help="folder to write <output>/speaker_<k>/utterance_<n>.flac into")
    arguments.add_argument("--files", type=int, default=16, help="number of files")
    arguments.add_argument("--seconds", type=float, default=4.0, help="duration of each file")
    arguments.add_argument("--sample-rate", type=int, default=48000, help="sample rate of the files")
    arguments.add_argument("--speakers", type=int, default=4, help="number of speaker folders")
    arguments.add_argument("--seed", type=int, default=0, help="the same seed writes the same corpus")
    options = arguments.parse_args(argv)
    for name in ("files", "seconds", "sample_rate", "speakers"):
        if getattr(options, name) <= 0:
            arguments.error(f"--{name.replace('_', '-')} must be positive")

    from gan_enhance.data.synthetic import write_synthetic_corpus

    paths = write_synthetic_corpus(
        options.output, options.files, options.seconds, options.sample_rate, options.seed, options.speakers
    )
    print(f"wrote {len(paths)} files ({options.files * options.seconds:.0f} s) under {options.output}")
    return 0
