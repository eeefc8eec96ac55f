"""Hyper-parameter sweeps on Optuna: a base config, a search space, trials that are ordinary runs.

Modules, in the order a sweep uses them:

- :mod:`~gan_enhance.sweep.space`: the search-space file (``Optimizer.lr: {log_uniform: [1e-4, 1e-2]}``),
  checked against the base config, sampled per trial;
- :mod:`~gan_enhance.sweep.study`: the sweep's settings, its storage (SQLite or PostgreSQL, heartbeats and
  retries of dead workers' trials), sampler, pruner and study;
- :mod:`~gan_enhance.sweep.objective`: one trial = one run folder under the sweep, scored and pruned on the
  validation metrics the trainer logs;
- :mod:`~gan_enhance.sweep.worker`: run trials until the study has enough;
- :mod:`~gan_enhance.sweep.report` and :mod:`~gan_enhance.sweep.compare`: the trials table, Optuna's
  plots, the best config, and the paired comparison of the top trials.

``gan-enhance sweep`` (``gan_enhance/cli/sweep.py``) binds them; see docs/sweeps.md.
"""
