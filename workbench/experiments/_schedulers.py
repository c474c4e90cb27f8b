"""Fixes to Ray Tune's trial schedulers that a search on a small cluster runs into."""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import HyperBandScheduler

__all__ = ["HyperBand"]


class HyperBand(HyperBandScheduler):
    """Ray's synchronous HyperBand that does not hang when a trial leaves a bracket.

    Ray 2.60 re-examines a bracket when one of its trials ends (finishes,
    errors or is stopped) only until the bracket's first halving: the
    ``is_being_processed`` flag it sets then is never cleared. A trial that
    ends after that (it raised, or it ran past the rung and finished) leaves
    the bracket's PAUSED trials waiting for it forever, and ``Tuner.fit`` never
    returns. Here every removal re-examines the bracket (guarded against the
    re-entry that stopping other trials causes); a bracket that the removal
    completes stops its paused trials, as reaching the last rung would.
    """

    _removing = False

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        bracket, _ = self._trial_info[trial]
        bracket.cleanup_trial(trial)
        if self._removing:
            return
        self._removing = True
        try:
            if bracket.finished():
                bracket.cleanup_full(tune_controller)
                return
            live = set(bracket.current_trials())
            self._process_bracket(tune_controller, bracket)
            # _process_bracket drops a bad RUNNING trial from the bracket and expects its caller
            # to return STOP for it; nobody returns anything for a removal, so stop it here.
            for t in live - set(bracket.current_trials()):
                if t.status == Trial.RUNNING:
                    tune_controller.stop_trial(t)
        finally:
            self._removing = False
