"""The trained model's genes in the search process: a prune ratio per group, a precision per layer.

The graph is the child's description of the user's model
(:meth:`codesign.hyper.graph.ChannelGraph.describe`), fixed for the run; the
trial is asked through :func:`codesign.hyper.suggest.suggest_genes`, as for a
HyperModel, so parameters are named ``prune/<group>`` and ``precision/<layer>``.
Its candidates are :class:`~codesign.space.candidate.Candidate` with ``model`` set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from codesign.hyper.suggest import suggest_genes
from codesign.space.base import Space
from codesign.space.candidate import Candidate


class TrainedSpace(Space):
    """The genes of one fixed model graph.

    Args:
        graph: The child's description of the model's groups and layers.
        resolution: The model's input height.
        choices: Precisions offered per layer kind.
        prune_ratios: Fractions of a group that may be removed.
        model: The model's file name.
        resolutions: Input sides the model runs at (its own first); with
            more than one, the trial is asked for ``resolution`` too.
    """

    def __init__(self, graph: Mapping[str, Any], resolution: int,
                 choices: Mapping[str, tuple[str, ...]], prune_ratios: Sequence[float],
                 model: str, resolutions: Sequence[int] = ()) -> None:
        self.graph = graph
        self.resolution = resolution
        self.resolutions = list(resolutions) or [resolution]
        self.choices = choices
        self.prune_ratios = prune_ratios
        self.model = model

    def suggest(self, trial: Any) -> Candidate:
        """Ask ``trial`` for every group's prune ratio and every layer's precision."""
        resolution = self.resolution
        if len(self.resolutions) > 1:
            resolution = int(trial.suggest_categorical("resolution", self.resolutions))
        prune, precision = suggest_genes(trial, self.graph, self.choices, self.prune_ratios)
        return Candidate.of_graph(resolution, prune, precision, model=self.model)

    def uniform(self, precision: str) -> Candidate:
        """The unpruned model with every layer at ``precision`` (a reference)."""
        return Candidate.of_graph(self.resolution, {},
                                  {layer["name"]: precision for layer in self.graph["layers"]},
                                  model=self.model)
