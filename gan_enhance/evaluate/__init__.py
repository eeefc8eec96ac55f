"""Evaluation: metrics, score reports, systems and baselines, paired comparisons, listening tests.

Modules (import what you use; this package imports nothing heavy on its own):

- :mod:`~gan_enhance.evaluate.metrics` -- intrusive metrics and their directions (``METRICS``)
- :mod:`~gan_enhance.evaluate.spectral` -- LSD, cutoff estimation, mel and STFT distances
- :mod:`~gan_enhance.evaluate.quality` -- no-reference plug-ins (DNSMOS, UTMOS, your own)
- :mod:`~gan_enhance.evaluate.systems` -- baselines and exported models as systems
- :mod:`~gan_enhance.evaluate.runner` -- score folders, write CSV / markdown / spectrograms
- :mod:`~gan_enhance.evaluate.report` -- score tables and summaries
- :mod:`~gan_enhance.evaluate.compare` -- paired statistics between systems
- :mod:`~gan_enhance.evaluate.listening` -- MUSHRA / A-B listening-test pages and their results
"""
