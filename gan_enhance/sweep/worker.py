"""A worker: run the study's trials one after another until the study has enough of them.

Any number of workers (processes, GPUs, machines) share one study through its storage; Optuna hands each
new trial to one worker only. A worker stops when the study has ``trials`` finished trials (complete,
pruned, or diverged) counting those other workers are running, after ``trials_here`` trials of its own, or
when a signal stops its current trial (that trial is queued again and resumes from its checkpoint).
"""

from __future__ import annotations

import logging
from pathlib import Path

from gan_enhance.sweep.objective import DIVERGED, TrialInterrupted, TrialRunner
from gan_enhance.sweep.study import SweepSettings, stable_enough

log = logging.getLogger("gan_enhance.sweep")


def counts(study) -> dict[str, int]:
    """Trials by what they mean for the target: finished, running, waiting (queued retries)."""
    from optuna.trial import TrialState

    result = {"finished": 0, "running": 0, "waiting": 0}
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            result["finished"] += 1
        elif trial.state == TrialState.FAIL and "failure" in trial.user_attrs:
            result["finished"] += 1  # diverged: an answer, not retried
        elif trial.state == TrialState.RUNNING:
            result["running"] += 1
        elif trial.state == TrialState.WAITING:
            result["waiting"] += 1
    return result


def run_worker(
    study, settings: SweepSettings, sweep_dir: str | Path, trials_here: int = 0, channel=None
) -> int:
    """Run trials until the study's target is met (or ``trials_here`` trials ran here); returns how many
    ran here. Under torchrun, ``channel`` hands each trial to the other ranks (see ``launch``).

    Raises
    ------
    TrialInterrupted
        A signal stopped the running trial; it was queued again (same values, same run folder).
    """
    from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials

    runner = TrialRunner(study, settings, sweep_dir, channel)
    ran = 0
    while not trials_here or ran < trials_here:
        with stable_enough():
            fail_stale_trials(study)  # trials of dead workers: failed and queued again before counting
        count = counts(study)
        if not count["waiting"] and count["finished"] + count["running"] >= settings.trials:
            break
        try:
            study.optimize(runner, n_trials=1, catch=DIVERGED)
        except TrialInterrupted:
            # The other torchrun ranks (if any) were stopped by the same signal: no end to announce.
            frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == runner.last_number)
            with stable_enough():
                RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True)(study, frozen)
            log.warning(
                "trial %d stopped by a signal; queued again, it resumes from its checkpoint", frozen.number
            )
            raise
        ran += 1
    if channel is not None:
        channel.announce_end()
    return ran
