"""``gan-enhance export RUN_OR_CHECKPOINT OUT_DIR``: ship the generator of a training run."""

from __future__ import annotations

from gan_enhance.cli._args import parser

HELP = "export a run's generator (EMA weights when kept) as safetensors + config, optionally ONNX/TorchScript"


def _arguments():
    p = parser("export", HELP)
    p.add_argument(
        "run", metavar="RUN_OR_CHECKPOINT", help="runs/<name>, a checkpoint folder, or a checkpoint.pt"
    )
    p.add_argument(
        "out_dir", metavar="OUT_DIR", help="bundle folder to write (replaced if it holds a bundle)"
    )
    p.add_argument("--tag", default="best", help="checkpoint tag inside a run folder: best, latest, <N>k")
    p.add_argument("--onnx", action="store_true", help="also write model.onnx (checked with onnxruntime)")
    p.add_argument("--torchscript", action="store_true", help="also write model.ts (traced, checked)")
    return p


def main(argv: list[str]) -> int:
    args = _arguments().parse_args(argv)
    from gan_enhance.export import export_checkpoint

    report = export_checkpoint(
        args.run, args.out_dir, tag=args.tag, onnx=args.onnx, torchscript=args.torchscript
    )
    source = report["source"]
    print(
        f"exported {report['generator']} ({source['weights']}, step {source['step']}) -> {report['out_dir']}"
    )
    print(f"  files: {', '.join(report['files'])}")
    for kind in ("onnx", "torchscript"):
        if report[f"{kind}_difference"] is not None:
            print(f"  {kind} max |difference| from PyTorch: {report[f'{kind}_difference']:.2e}")
    return 0
