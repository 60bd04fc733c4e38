"""Settings of a hypermodel search: frozen, validated before anything heavy is imported."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from codesign.config import FINETUNE_EPOCHS, SearchConfig
from codesign.data import data_fingerprint
from codesign.errors import CodesignError
from codesign.hyper.load import HyperSpec

DEFAULT_PRUNE_RATIOS = (0.0, 0.25, 0.5, 0.75)


@dataclass(frozen=True)
class HyperSettings:
    """How each candidate is trained and pruned.

    Attributes:
        epochs: Most training epochs of a built model (early stopping may end sooner).
        patience: Epochs without a better validation loss before stopping.
        finetune_epochs: Training epochs after pruning (0: none).
        batch_size: Images per step.
        prune_ratios: Fractions of a channel group the search may remove.
    """

    epochs: int = 10
    patience: int = 3
    finetune_epochs: int = FINETUNE_EPOCHS
    batch_size: int = 64
    prune_ratios: tuple[float, ...] = DEFAULT_PRUNE_RATIOS

    def validate(self) -> HyperSettings:
        """Return ``self`` if every setting is in range.

        Raises:
            CodesignError: Naming the first bad setting.
        """
        for flag, value, low, high in (("--candidate-epochs", self.epochs, 1, 1000),
                                       ("patience", self.patience, 1, 1000),
                                       ("--finetune-epochs", self.finetune_epochs, 0, 1000),
                                       ("batch size", self.batch_size, 1, 65536)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise CodesignError(f"{flag} must be an integer from {low} to {high}, "
                                    f"got {value!r}")
        check_prune_ratios(self.prune_ratios)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the evaluation child's training settings)."""
        d = asdict(self)
        d["prune_ratios"] = list(self.prune_ratios)
        return d


def check_prune_ratios(ratios: tuple[float, ...]) -> None:
    """Refuse prune ratios that are not fractions from 0 to below 1.

    Raises:
        CodesignError: Naming the ratios.
    """
    if not ratios or any(not 0.0 <= r < 1.0 for r in ratios):
        raise CodesignError(f"prune ratios must be fractions from 0 to below 1, got {ratios}")


@dataclass(frozen=True)
class HyperConfig:
    """A hypermodel search: the user's HyperModel, the usual search settings and training.

    Attributes:
        hypermodel: Where the HyperModel lives.
        search: The validated settings shared with the built-in search (data,
            profile, sampler, objectives, budgets, trials, seed, run directory,
            time-out per call).
        settings: Training and pruning of each candidate.
    """

    hypermodel: HyperSpec
    search: SearchConfig
    settings: HyperSettings = field(default_factory=HyperSettings)

    def identity(self) -> dict[str, Any]:
        """Settings a resumed run must match (the HyperModel's file included)."""
        cfg = self.search
        return {
            "hypermodel": {"spec": self.hypermodel.text, "file": self.hypermodel.file,
                           "sha256": self.hypermodel.digest()},
            "data": data_fingerprint(cfg.data),
            "seed": cfg.seed,
            "profile": cfg.profile_spec.identity(),
            "sampler": cfg.sampler,
            "objectives": list(cfg.objectives),
            "budgets": cfg.budgets(),
            "training": self.settings.to_dict(),
        }
