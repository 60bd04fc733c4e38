"""The search space: candidates, the built-in network family, and suggestion.

``suggest.suggest_candidate`` is the only code in codesign that calls
``trial.suggest_*``.
"""

from codesign.space.candidate import Candidate
from codesign.space.family import PRESETS, BlockPlan, SpaceSpec, StageSpec, SubnetSpec, get_space
from codesign.space.suggest import candidate_from_params, suggest_candidate

__all__ = [
    "PRESETS",
    "BlockPlan",
    "Candidate",
    "SpaceSpec",
    "StageSpec",
    "SubnetSpec",
    "candidate_from_params",
    "get_space",
    "suggest_candidate",
]
