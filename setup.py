"""Packaging for gan_enhance.

torch is left unpinned above 2.8 so GPU users keep their own CUDA build; everything else is pinned
to a set measured to install together (see README, "Installing").
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "gan_enhance" / "version.py").read_text(), version)

setup(
    name="gan_enhance",
    version=version["__version__"],
    description="Train GAN audio-enhancement models (HiFi-GAN / DAC / FINALLY style) and run them on files.",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["gan_enhance", "gan_enhance.*"]),
    include_package_data=True,
    install_requires=[
        "torch>=2.8",
        "torchaudio==2.11.0",
        "descript-audiotools==0.7.2",
        "argbind==0.3.9",
        "einops==0.8.2",
        "transformers==5.23.0",
        "soundfile==0.14.0",
        "tensorboard==2.20.0",
        "protobuf==3.19.6",
        # tensorboard's command needs pkg_resources, which setuptools 81 dropped
        "setuptools==80.10.2",
        "numpy==2.4.6",
        "scipy==1.17.1",
        "matplotlib==3.11.2",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "pesq==0.0.4",
        "pystoi==0.4.1",
        "torchmetrics==1.9.0",
        "noisereduce==3.0.3",
        # loudness (LUFS) in evaluation; audiotools pulls it in too, but we import it directly
        "pyloudnorm==0.2.0",
        # streaming resampling in the chunked enhancer (also pulled in by librosa)
        "soxr==1.1.0",
        # DNSMOS's P.808 features follow the official script (audiotools pulls librosa in as well)
        "librosa==0.11.0",
        # DNSMOS (P.835 SIG/BAK/OVRL and P.808): Microsoft's ONNX models ship inside the wheel, no download
        "speechmos==0.0.1.1",
        "onnxruntime==1.24.4",
        # hyper-parameter sweeps (samplers, pruners, SQLite/PostgreSQL storage); plotly draws its HTML plots
        "optuna==5.0.0",
        "plotly==7.1.0",
    ],
    extras_require={
        # selenium drives Debian's chromium for the listening-page test (.ci/install_browser.sh);
        # 4.52 needs a certifi the registry lacks here
        "test": ["pytest>=8", "ruff>=0.6", "selenium==4.51.0", "psycopg[binary]==3.3.9"],
        # workers on several machines sharing one sweep study in PostgreSQL (gan-enhance sweep --storage)
        "postgres": ["psycopg[binary]==3.3.9"],
        # onnxruntime (a base requirement, for DNSMOS) checks ONNX exports; the `onnx` package itself
        # needs protobuf >= 3.20, which audiotools' pin forbids, and torch's exporter works without it
        # (see gan_enhance/export.py)
        "export": [],
    },
    entry_points={"console_scripts": ["gan-enhance=gan_enhance.cli:main"]},
)
