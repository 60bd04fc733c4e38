"""RAM by estimate: which built-in candidates a ``--max-ram-kb`` search never builds.

Before a candidate is built or converted, its tensor arena is estimated from
its layer shapes and precisions (:mod:`codesign.space.ram`: TFLM's head
exactly as its planner would pack the converted graph, the tail roughly). A
candidate whose estimate exceeds the budget by more than :data:`MARGIN` cannot
meet it (the head estimate matched TFLM's within 5 % on 95 % of random
candidates, see ``codesign profile check tflm``), so the loop gives it up
unevaluated (PRUNED, ``skipped``) and the search says how many it skipped. A
candidate near the budget is measured: only measured figures decide the front.
A budget that even the space's smallest candidate cannot meet stops the
search before any work.
"""

from __future__ import annotations

from dataclasses import dataclass

from codesign.errors import CodesignError
from codesign.space.candidate import Candidate
from codesign.space.family import SpaceSpec
from codesign.space.ram import ACTIVATION, BYTES, RamEstimate, estimate_ram

MARGIN = 0.10  # skip only when the estimate is this far over the budget
SKIPPED = "skipped"  # the user attribute of a candidate given up on its estimate


@dataclass(frozen=True)
class RamScreen:
    """Says why a candidate cannot meet the RAM budget, or nothing.

    Attributes:
        space: The built-in search space.
        budget_kb: ``--max-ram-kb``.
        num_classes: Classifier outputs.
        channels: Input image channels.
    """

    space: SpaceSpec
    budget_kb: float
    num_classes: int
    channels: int

    def estimate(self, cand: Candidate) -> RamEstimate:
        """The candidate's arena, estimated before conversion."""
        return estimate_ram(self.space, cand, self.num_classes, self.channels)

    def __call__(self, cand: Candidate) -> str | None:
        """Why ``cand`` cannot meet the budget (None: it may, so it is measured)."""
        est = self.estimate(cand)
        if est.total_bytes * (1 - MARGIN) <= self.budget_kb * 1024:
            return None
        return (f"estimated tensor arena {est.total_bytes / 1024:.1f} KB (activations "
                f"{est.head_bytes / 1024:.1f} KB) is over --max-ram-kb {self.budget_kb:g} by "
                f"more than {MARGIN:.0%}")


def smallest(space: SpaceSpec, choices: dict[str, tuple[str, ...]]) -> Candidate:
    """The space's candidate with the least activation memory.

    Lowest resolution, fewest blocks, most pruned, and each layer at its
    narrowest offered precision.
    """
    narrowest = {name: min(options, key=lambda p: BYTES[ACTIVATION[p]])
                 for name, options in choices.items()}
    return Candidate.make(min(space.resolutions), tuple(st.min_depth for st in space.stages),
                          {g: max(space.prune_ratios) for g in space.group_sizes()}, narrowest,
                          space.kernel_genes(min(space.kernels)))


def check_budget(screen: RamScreen, choices: dict[str, tuple[str, ...]]) -> None:
    """Refuse a budget that even the smallest candidate cannot meet.

    Raises:
        CodesignError: One line, with the smallest candidate's estimate.
    """
    least = smallest(screen.space, choices)
    if screen(least) is None:
        return
    est = screen.estimate(least)
    depths = "-".join(map(str, least.depths))
    raise CodesignError(
        f"--max-ram-kb {screen.budget_kb:g} fits no candidate of space {screen.space.name}: "
        f"the smallest (resolution {least.resolution}, depths {depths}, pruned "
        f"{max(screen.space.prune_ratios):.0%}, narrowest precisions) needs about "
        f"{est.total_bytes / 1024:.1f} KB of tensor arena (estimated); raise --max-ram-kb"
    )
