"""``codesign search --model``: from parsed arguments to a trained-model search."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from codesign.errors import CodesignError

if TYPE_CHECKING:
    from codesign.compress.settings import CompressConfig

MODEL_ONLY = ("val_data", "input_scale", "input_offset", "max_accuracy_drop", "prune_criterion",
              "search_resolution", "trial_finetune_images")
INCOMPATIBLE = (  # flag, attribute, value that means "not given"
    ("--hypermodel", "hypermodel", None),
    ("--space", "space", "default"),
    ("--accuracy", "accuracy", "measured"),
)


def model_arguments(s: argparse.ArgumentParser) -> None:
    """Add the flags of a ``--model`` search (your own trained model) to ``search``'s parser."""
    s.add_argument("--val-data", default=None, metavar="NPZ",
                   help="with --model: validation images the model has not seen (x_val, "
                        "y_val; default: the npz's own, else carved from training)")
    s.add_argument("--input-scale", type=float, default=None,
                   help="with --model: model input = raw * this + --input-offset (when the "
                        "model has no Rescaling/Normalization layer)")
    s.add_argument("--input-offset", type=float, default=None, help="see --input-scale")
    s.add_argument("--max-accuracy-drop", type=float, default=None,
                   help="with --model: most validation accuracy lost against the original's "
                        "float32 .tflite, a fraction (0.01 = one point)")
    s.add_argument("--search-resolution", action="store_true", default=None,
                   help="with --model: search the input resolution too, where the model is "
                        "fully convolutional up to global pooling (default: the model's own)")
    s.add_argument("--prune-criterion", default=None, choices=("l1", "bn"),
                   help="with --model: channels a pruned group keeps, by batch-norm scale "
                        "(default) or filter L1 norm")
    s.add_argument("--trial-finetune-images", type=int, default=None,
                   help="with --model: training images a pruned candidate is fine-tuned on "
                        "before it is scored (default 0: scored on its inherited weights)")


def check_model_flags(args: argparse.Namespace) -> None:
    """Refuse flags of a ``--model`` search given without ``--model``.

    Raises:
        CodesignError: Naming the flag.
    """
    if args.model is None:
        for attr in MODEL_ONLY:
            if getattr(args, attr) is not None:
                flag = "--" + attr.replace("_", "-")
                raise CodesignError(f"{flag} applies to --model searches (your own trained "
                                    "model); add --model PATH or drop it")


def compress_config(args: argparse.Namespace) -> CompressConfig:
    """The checked :class:`~codesign.compress.settings.CompressConfig` of ``codesign search``.

    Raises:
        CodesignError: On a flag a ``--model`` search does not take, a bad
            setting, bad data or a model that does not fit the data.
    """
    from codesign.compress.settings import (
        TRIAL_FINETUNE_IMAGES,
        CompressSettings,
        compress_config,
    )
    from codesign.hyper.cli import measured_search

    search = measured_search(args, "--model", INCOMPATIBLE, ("measured", "hybrid"))
    settings = CompressSettings(max_accuracy_drop=args.max_accuracy_drop,
                                input_scale=args.input_scale, input_offset=args.input_offset,
                                prune_criterion=args.prune_criterion or "bn",
                                search_resolution=bool(args.search_resolution),
                                trial_finetune_images=(TRIAL_FINETUNE_IMAGES
                                                       if args.trial_finetune_images is None
                                                       else args.trial_finetune_images))
    return compress_config(args.model, search, settings)


def search_model(args: argparse.Namespace) -> None:
    """Run ``codesign search --model`` (the caller writes the report)."""
    from codesign.compress.search import run_compress_search

    run_compress_search(compress_config(args))
