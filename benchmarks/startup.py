"""Start-up times of the command line and the Python API: every ``--help``, load a model, enhance 1 s.

Each case runs in a fresh subprocess, ``--repeats`` times; the table shows the minimum wall time (the
least disturbed run: other processes only ever add time) and the minimum CPU time (user + system, from
``os.wait4``), which a loaded machine inflates much less than wall time. Several source trees can be
compared in one run (``--trees before=/tmp/old after=.``): their runs are interleaved, so both see the
same load. A tree is put first on ``PYTHONPATH``, so it shadows the installed package.

Cases:

- ``<command> --help`` for every command (and ``gan-enhance --help``, which lists them all);
- ``import gan_enhance`` + ``load_generator(model)``;
- ``gan-enhance enhance model one.wav -o out``: a 1 s, 16 kHz mono file, end to end (start, load the
  model, read, enhance, write).

Usage::

    .venv/bin/python benchmarks/startup.py                              # this checkout
    .venv/bin/python benchmarks/startup.py --trees before=/tmp/old after=. --repeats 7

The model is a default-size backbone (``--backbone``, random weights) exported to a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

LOAD = "import gan_enhance, sys; gan_enhance.load_generator(sys.argv[1])"


def make_inputs(folder: str, backbone: str) -> tuple[str, str]:
    """A default-size exported model and a 1 s, 16 kHz mono speech-like file in ``folder``."""
    import numpy as np
    import soundfile

    from gan_enhance.bundle import save_bundle
    from gan_enhance.models.generators import build_generator

    model = save_bundle(build_generator(backbone), os.path.join(folder, "model"))
    t = np.arange(16000) / 16000
    wav = 0.2 * np.sin(2 * np.pi * 140 * t) * (1 + np.sin(2 * np.pi * 3 * t)) / 2
    audio = os.path.join(folder, "one.wav")
    soundfile.write(
        audio, (wav + 0.01 * np.random.default_rng(0).standard_normal(t.shape)).astype("float32"), 16000
    )
    return model, audio


def cases(model: str, audio: str, output: str) -> dict[str, list[str]]:
    from gan_enhance.cli import available_commands

    python = [sys.executable]
    table = {"gan-enhance --help": [*python, "-m", "gan_enhance", "--help"]}
    for name in available_commands():
        table[f"{name} --help"] = [*python, "-m", "gan_enhance", name, "--help"]
    table["import gan_enhance + load_generator"] = [*python, "-c", LOAD, model]
    table["enhance a 1 s file (end to end)"] = [
        *python, "-m", "gan_enhance", "enhance", model, audio, "--output", output, "--no-progress",
    ]  # fmt: skip
    return table


def run_once(command: list[str], tree: str, cwd: str, threads: int = 0) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of one run of ``command`` with ``tree`` first on the path.

    ``cwd`` must not hold a ``gan_enhance`` folder: ``python -m`` and ``-c`` put it before ``PYTHONPATH``.
    """
    path = os.pathsep.join(p for p in (os.path.abspath(tree), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    start = time.perf_counter()
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, os.waitstatus_to_exitcode(status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trees", nargs="+", default=["."], metavar="[NAME=]DIR", help="source trees to compare (default: .)"
    )
    parser.add_argument("--repeats", type=int, default=5, help="runs per case and tree (default: 5)")
    parser.add_argument("--backbone", default="unet1d", help="backbone of the test model (default: unet1d)")
    parser.add_argument(
        "--threads", type=int, default=0, help="OMP_NUM_THREADS for every run (default: 0, torch's default)"
    )
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    args = parser.parse_args()
    trees = dict(item.partition("=")[::2] if "=" in item else (item, item) for item in args.trees)
    with tempfile.TemporaryDirectory() as folder:
        model, audio = make_inputs(folder, args.backbone)
        table = {k: v for k, v in cases(model, audio, os.path.join(folder, "out")).items() if args.only in k}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.repeats):
            for case, command in table.items():
                for name, tree in trees.items():  # interleaved: every tree sees the same load
                    wall, cpu, code = run_once(command, tree, folder, args.threads)
                    if code != 0:
                        print(f"warning: {case} exited {code} with tree {name}", file=sys.stderr)
                    results.setdefault((case, name), []).append((wall, cpu))
    load = os.getloadavg()
    print(
        f"min over {args.repeats} runs, wall / CPU seconds; {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; model: {args.backbone} (default size); "
        f"threads: {args.threads or 'torch default'}\n"
    )
    print("| case | " + " | ".join(f"{name} wall | {name} CPU" for name in trees) + " |")
    print("|---|" + "---:|---:|" * len(trees))
    for case in table:
        cells = []
        for name in trees:
            runs = results[(case, name)]
            cells += [f"{min(w for w, _ in runs):.2f}", f"{min(c for _, c in runs):.2f}"]
        print(f"| {case} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
