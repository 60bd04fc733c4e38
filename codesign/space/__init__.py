"""The search space: the ``Space`` seam, candidates, the built-in network family, suggestion.

``base.Space`` turns a trial into a candidate; ``suggest.FamilySpace`` is the
built-in family's (``suggest.suggest_candidate`` holds its ``trial.suggest_*``
calls), ``codesign.hyper.space.HyperModelSpace`` a HyperModel's.
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
