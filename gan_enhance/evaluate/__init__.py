"""Evaluation: metrics, score reports, systems and baselines, paired comparisons, listening tests.

Modules (import what you use; this package imports nothing heavy on its own):

- :mod:`~gan_enhance.evaluate.metrics` -- every metric and its direction (``METRICS``): intrusive ones
  and the no-reference DNSMOS columns
- :mod:`~gan_enhance.evaluate.dnsmos` -- DNSMOS P.835 / P.808 from the models shipped in ``speechmos``
- :mod:`~gan_enhance.evaluate.spectral` -- LSD, cutoff estimation, mel and STFT distances
- :mod:`~gan_enhance.evaluate.quality` -- no-reference plug-ins reading a local model (UTMOS, your own)
- :mod:`~gan_enhance.evaluate.systems` -- baselines and exported models as systems
- :mod:`~gan_enhance.evaluate.items` -- the files to score: folders or single files, with or without
  clean references
- :mod:`~gan_enhance.evaluate.runner` -- score them, write CSV / markdown / spectrograms
- :mod:`~gan_enhance.evaluate.report` -- score tables and summaries
- :mod:`~gan_enhance.evaluate.compare` -- paired statistics between systems
- :mod:`~gan_enhance.evaluate.listening` -- MUSHRA / A-B listening-test pages and their results
"""
