"""What ``--time-budget-min`` covers, and why running out of time never throws work away.

The budget counts wall time from the start of the command: set-up (supernet,
quality report, references, noise floor, accuracy predictor) and trials. Once
it is spent, no new trial starts, unless the front is still too thin to be of
use: then the search goes on (seeded candidates come first, since they are
queued first) until the front holds :data:`MIN_FRONT` points or
:data:`MIN_TRIALS` trials are complete, and says by how much it went over.
When the front will be fine-tuned, it aims at :data:`SPARE` more points:
fine-tuning can make one front point dominate another (on digits most
networks fine-tune to the same validation accuracy), and a trial takes
seconds where fine-tuning a model takes tens of seconds.
Fine-tuning the front and writing it come after the budget; the search says
beforehand what they are expected to take. A search never fails only because
time ran out.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

MIN_FRONT = 3  # front points a budget-stopped search still reaches
MIN_TRIALS = 10  # ... or complete trials, whichever comes first
SPARE = 2  # front points wanted beyond MIN_FRONT when the front is fine-tuned afterwards


@dataclass
class TimeBudget:
    """A wall-clock budget of one command.

    Attributes:
        minutes: The budget (None: no budget).
        started: ``time.monotonic()`` when the command started.
        expired_at: When the trial loop first saw the budget spent (monotonic).
        extended: Whether trials started after it, for a front of :data:`MIN_FRONT`.
        spare: Front points wanted beyond :data:`MIN_FRONT` (:data:`SPARE`
            when the front is fine-tuned afterwards, which can reorder it).
    """

    minutes: float | None
    started: float = field(default_factory=time.monotonic)
    spare: int = 0
    expired_at: float | None = None
    extended: bool = False

    @property
    def deadline(self) -> float | None:
        """The monotonic time the budget ends (None: no budget)."""
        return None if self.minutes is None else self.started + 60.0 * self.minutes

    def left_s(self) -> float | None:
        """Seconds of the budget left (negative once over; None: no budget)."""
        return None if self.deadline is None else self.deadline - time.monotonic()

    def spent(self) -> bool:
        """Whether the budget is used up."""
        left = self.left_s()
        return left is not None and left <= 0

    def may_start(self, front_points: int, complete: int) -> bool:
        """Whether a new trial may start.

        Args:
            front_points: Points on the search's current front.
            complete: COMPLETE trials of the study.
        """
        if not self.spent():
            return True
        if self.expired_at is None:
            self.expired_at = time.monotonic()
        more = front_points < MIN_FRONT + self.spare and complete < MIN_TRIALS
        self.extended = self.extended or more
        return more

    def over_s(self) -> float:
        """Seconds past the budget now (0 when within it or without one)."""
        left = self.left_s()
        return 0.0 if left is None else max(0.0, -left)

    def summary(self, front_points: int, complete: int) -> str | None:
        """One line on how the budget was used (None when it was not reached)."""
        if self.expired_at is None or self.minutes is None:
            return None
        if not self.extended:
            return (f"time budget of {self.minutes:g} min reached after {complete} trials "
                    f"({front_points} front points)")
        return (f"time budget of {self.minutes:g} min exceeded by {_duration(self.over_s())} "
                f"to reach {complete} trials and a front of {front_points} points (a budget-"
                f"stopped search goes on to {MIN_FRONT + self.spare} front points or "
                f"{MIN_TRIALS} trials)")


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"
