"""The ``codesign`` command: parses arguments, builds a config, calls the library.

Settings, data names and profiles are validated before TensorFlow is imported
(it is only ever imported in the evaluation child), so a user error returns
in about a second as one line with exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from codesign.errors import CodesignError

EXIT_USER_ERROR = 2
INTRO = """\
codesign finds the image classifiers that fit a device. Given your data and a hardware
profile, it searches jointly the architecture, a structured pruning ratio per channel
group and a precision per layer, and returns the Pareto front of accuracy against
latency measured on the device's own runtime, with a deployable .tflite and a manifest
for every point."""
EXAMPLES = """\
typical commands:
  codesign search --data digits --trials 30 --out runs/first    rerun the same to resume
  codesign search --data photos.npz --profile reference-1t --max-latency-ms 2 --out runs/p
  codesign report runs/first                                    runs/first/report/index.html
  codesign export runs/first --max-latency-ms 0.05 --out model.tflite
  codesign profiles                                             hardware profiles here

Each command has --help. Documentation: README.md of the project."""
EXIT_INTERRUPTED = 130
UNSET = object()  # a setting no flag gave (see build_parser)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line."""

    def error(self, message: str) -> NoReturn:
        """Print one line and exit with code 2."""
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def build_parser(unset: bool = False) -> argparse.ArgumentParser:
    """Return the parser of all subcommands.

    Args:
        unset: Give ``search``'s settings the default :data:`UNSET`, to tell
            the flags given from those left out (``--config`` fills those).
    """
    from codesign import __version__
    from codesign.compress.cli import model_arguments
    from codesign.config import SCREEN_SAMPLES

    p = _Parser(prog="codesign", description=INTRO, epilog=EXAMPLES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"codesign {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser,
                           metavar="COMMAND")

    s = sub.add_parser("search", help="search architecture and precision; write the front")
    s.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                   help="settings from a file: keys are these flags without -- (flags given "
                        "override it); a run keeps its own as RUN/config.toml")
    s.add_argument("--data", default="digits", help="data set (default: digits)")
    s.add_argument("--out", type=Path, default=None,
                   help="run directory (rerun to resume; required, here or in --config)")
    s.add_argument("--trials", type=int, default=20, help="COMPLETE trials wanted (default 20)")
    s.add_argument("--seed", type=int, default=0, help="seed of split, training, sampler")
    s.add_argument("--profile", default="xnnpack-1t", help="profile name or .toml path")
    s.add_argument("--space", default="default",
                   help="search space: a preset (default, tiny) or a FILE.toml (a resumed run "
                        "keeps its own)")
    s.add_argument("--sampler", default=None,
                   help="Optuna sampler: nsga2, tpe or random (default nsga2; see README)")
    s.add_argument("--objectives", default="accuracy,latency",
                   help="accuracy,latency (default), accuracy,latency,size, accuracy,ram, "
                        "accuracy,latency,ram or accuracy,ram,flash (ram: the tensor arena; "
                        "flash: the .tflite's bytes)")
    s.add_argument("--max-latency-ms", type=float, default=None, help="latency budget")
    s.add_argument("--max-size-kb", type=float, default=None, help="model file size budget")
    s.add_argument("--max-ram-kb", type=float, default=None,
                   help="RAM budget: the tensor arena TFLM needs (measured on --profile tflm, "
                        "estimated from the file elsewhere), KB")
    s.add_argument("--max-flash-kb", type=float, default=None,
                   help="flash budget: the .tflite bytes a firmware embeds, KB")
    s.add_argument("--max-memory-mb", type=float, default=None, help=argparse.SUPPRESS)
    s.add_argument("--min-accuracy", type=float, default=None,
                   help="validation accuracy floor, a fraction (0.95)")
    s.add_argument("--epochs", type=int, default=None,
                   help="supernet training epochs (default: sized to the data, about 6 min "
                        "of training on 2 cores, 10 to 40)")
    s.add_argument("--timeout", type=float, default=600.0,
                   help="seconds one candidate may take (default 600)")
    s.add_argument("--quality-samples", type=int, default=None,
                   help="sub-networks in the supernet quality report (0 skips it; default: "
                        "sized to a fifth of the supernet's training time, 5 to 20, none "
                        "under 10 trials)")
    s.add_argument("--finetune-epochs", type=int, default=None,
                   help="epochs of fine-tuning for each front model (0 skips it; default 3, "
                        "up to 30 for a --model search)")
    s.add_argument("--latency", default=None, choices=("measured", "predicted", "hybrid"),
                   help="time every candidate, predict with the profile's latency model, or "
                        "predict and time those that could enter the front (default: hybrid "
                        "once `codesign profile build` made a model, else measured)")
    s.add_argument("--accuracy", default="measured", choices=("measured", "predicted", "hybrid"),
                   help="let the sampler propose every trial (measured), or an inner study on "
                        "the accuracy predictor and latency model, once (predicted) or in rounds "
                        "that retrain the predictor (hybrid); every trial is still evaluated")
    s.add_argument("--predictor-float-samples", type=int, default=1000,
                   help="float sub-networks that train the accuracy predictor (default 1000)")
    s.add_argument("--predictor-quant-samples", type=int, default=100,
                   help="converted quantized candidates that transfer it (default 100)")
    s.add_argument("--predictor-screen-samples", type=int, default=SCREEN_SAMPLES, help=(
        f"quantized candidates screened unconverted, weights rounded, first (default "
        f"{SCREEN_SAMPLES}; 0: none)"))
    s.add_argument("--time-budget-min", type=float, default=None,
                   help="stop starting trials after this many minutes (then the front is "
                        "finished as usual; with a large --trials, the clock decides)")
    s.add_argument("--inner-trials", type=int, default=3000,
                   help="trials of each predictor-driven inner study (default 3000)")
    s.add_argument("--workers", type=int, default=1,
                   help="local worker processes sharing the study (default 1)")
    s.add_argument("--storage", default=None,
                   help="database server of the study, e.g. postgresql://user:pw@host/db, so "
                        "`codesign worker` on other machines can join (default: the run dir)")
    s.add_argument("--study", default="codesign", help="study name on --storage")
    s.add_argument("--hypermodel", default=None, metavar="FILE.py:NAME",
                   help="search your own keras-tuner HyperModel (or build(hp) function, "
                        "FILE.py:NAME or module:NAME) instead of the built-in space")
    s.add_argument("--model", default=None, metavar="PATH",
                   help="compress your own trained model (.keras, .h5 or SavedModel dir): "
                        "prune ratio per channel group and precision per layer")
    model_arguments(s)
    s.add_argument("--candidate-epochs", type=int, default=10,
                   help="with --hypermodel: most training epochs per candidate, early "
                        "stopping on validation (default 10)")
    s.add_argument("--no-report", action="store_true",
                   help="do not write RUN/report/ at the end (see codesign report)")
    s.add_argument("--no-references", action="store_true",
                   help="do not measure the maximal network (float32 and int8, fine-tuned "
                        "like the front) as the run's references, nor the noise floor on it")
    if unset:
        from codesign.settings_file import DESTS

        s.set_defaults(**dict.fromkeys(DESTS, UNSET))

    w = sub.add_parser("worker", help="join a search's study and run its trials")
    w.add_argument("--out", type=Path, required=True,
                   help="the search's run directory (shared with it)")
    w.add_argument("--storage", default=None,
                   help="database server of the study (default: $CODESIGN_STORAGE, or the "
                        "run's own journal)")
    w.add_argument("--study", default="codesign", help="study name on --storage")

    rp = sub.add_parser("report", help="HTML page, PNG figures and Markdown summary of runs")
    rp.add_argument("runs", type=Path, nargs="+", metavar="RUN",
                    help="run directories; several are compared (fronts of their profiles)")
    rp.add_argument("--out", type=Path, default=None,
                    help="report directory (default: RUN/report of the first run)")
    rp.add_argument("--label", action="append", default=None,
                    help="name of a run in the report, once per run in order (default: the "
                         "directory's name)")

    sub.add_parser("profiles", help="list the shipped hardware profiles")

    pr = sub.add_parser("profile", help="a profile's latency model: build or check it")
    prs = pr.add_subparsers(dest="action", required=True, parser_class=_Parser)
    pb = prs.add_parser("build", help="measure sampled networks and fit the latency model")
    pb.add_argument("profile", help="profile name or .toml path")
    pb.add_argument("--blocks", type=int, default=300, help="block networks (default 300)")
    pb.add_argument("--whole", type=int, default=100,
                    help="whole candidates of the space (default 100)")
    pb.add_argument("--budget-min", type=float, default=30.0,
                    help="stop measuring after this many minutes; rerun goes on (default 30)")
    pb.add_argument("--seed", type=int, default=0)
    pb.add_argument("--candidates", type=int, default=150,
                    help="with --model or --hypermodel: its random candidates to measure "
                         "(default 150)")
    pc = prs.add_parser("check", help="compare the model with measured random candidates")
    pc.add_argument("profile", help="profile name or .toml path")
    pc.add_argument("--n", type=int, default=100, help="candidates to measure (default 100)")
    for action in (pb, pc):
        action.add_argument("--model", type=Path, default=None,
                            help="your own trained model (.keras, .h5, SavedModel): a latency "
                                 "model of its candidates on this profile")
        action.add_argument("--hypermodel", default=None, metavar="FILE.py:NAME",
                            help="your keras-tuner HyperModel: a latency model of its "
                                 "candidates on this profile")
        action.add_argument("--data", default=None,
                            help="the data searched on: alone, a model of the default space "
                                 "fitted to its images (over 32 px: a model of its own)")
        action.add_argument("--space", default=None, metavar="PRESET|FILE.toml",
                            help="a model of this space (inputs over 32 px: a model of its own)")

    e = sub.add_parser("export", help="write one trial's (or reference's) .tflite and manifest")
    e.add_argument("run", type=Path, help="run directory")
    pick = e.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=int, help="trial number (see pareto.json)")
    pick.add_argument("--max-latency-ms", type=float,
                      help="the most accurate front point at or under this latency")
    pick.add_argument("--min-accuracy", type=float,
                      help="the fastest front point at or above this validation accuracy")
    pick.add_argument("--reference", metavar="NAME",
                      help="a measured reference (max-int8, original-float32...; see "
                           "pareto.json: offered ones no trial dominates)")
    e.add_argument("--max-ram-kb", type=float,
                   help="only front points whose tensor arena fits in this many KB (alone: "
                        "the most accurate of them)")
    e.add_argument("--max-flash-kb", type=float,
                   help="only front points whose .tflite fits in this many KB")
    e.add_argument("--out", type=Path, required=True, help="destination FILE.tflite")
    e.add_argument("--io-type", default="float32", choices=("float32", "int8", "uint8"),
                   help="input and output type (int8/uint8 need int8 first and last layers)")

    b = sub.add_parser("benchmark", help="measure a .tflite's latency on a profile")
    b.add_argument("model", type=Path, help="a .tflite file")
    b.add_argument("--profile", default="xnnpack-1t", help="profile name or .toml path")

    v = sub.add_parser("evaluate", help="accuracy of a .tflite on a data set split")
    v.add_argument("model", type=Path, help="a .tflite file")
    v.add_argument("--data", default="digits", help="data set (default: digits)")
    v.add_argument("--split", default="test", choices=("train", "val", "test"))
    v.add_argument("--seed", type=int, default=None,
                   help="split seed (default: the manifest's, else 0)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        if args.command == "search":
            _settings(args, argv)
        return _dispatch(args)
    except CodesignError as exc:
        from codesign.run.urls import mask_url
        from codesign.settings_file import origin_note

        print(f"codesign: error: {origin_note(mask_url(str(exc)), args)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("codesign: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`codesign profiles | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _settings(args: argparse.Namespace, argv: list[str]) -> None:
    """Merge ``--config``'s settings into ``args`` under the flags given; ``--out`` is then due."""
    from codesign.settings_file import DESTS, apply_settings

    bare = build_parser(unset=True).parse_args(argv)
    args.given = {d for d in DESTS if getattr(bare, d, UNSET) is not UNSET}
    args.from_config = set()
    if args.config is not None:
        apply_settings(args, args.given)
    if args.out is None:
        raise CodesignError("--out is required: the run directory (a flag, or out in --config)")


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "search":
        return _search(args)
    if args.command == "worker":
        return _worker(args)
    if args.command in ("profiles", "profile"):
        from codesign.cli_profile import profile_command, profiles

        return profiles() if args.command == "profiles" else profile_command(args)
    if args.command == "export":
        return _export(args)
    if args.command == "benchmark":
        return _benchmark(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "report":
        return _report(args)
    raise CodesignError(f"unknown command {args.command!r}")


RETIRED_MEMORY = ("--max-memory-mb is retired: it budgeted the measuring process's resident "
                  "memory growth, which rounds to zero; use --max-ram-kb (the tensor arena)")


def _search(args: argparse.Namespace) -> int:
    from codesign.compress.cli import check_model_flags, search_model

    if args.max_memory_mb is not None:
        raise CodesignError(RETIRED_MEMORY)
    from codesign.settings_file import kept_in_run

    check_model_flags(args)
    if args.model is not None:
        with kept_in_run(args):
            search_model(args)
        if not args.no_report:
            _report_after_search(args.out)
        return 0
    if args.hypermodel is not None:
        from codesign.hyper.cli import search_hypermodel

        with kept_in_run(args):
            search_hypermodel(args)
        if not args.no_report:
            _report_after_search(args.out)
        return 0
    from codesign.config import DEFAULT_SAMPLER, SearchConfig
    from codesign.preflight import data_fit, preflight
    from codesign.run.runspace import resume_space
    from codesign.space.files import is_space_file

    given = getattr(args, "given", None)  # None: not from main(); --space counts as given
    asked = args.space if given is None or "space" in given | args.from_config else None
    if asked is not None and is_space_file(asked):
        asked = str(Path(asked).resolve())  # as the data's path: the run names it wherever
    settings = dict(
        out=args.out,
        data=args.data,
        trials=args.trials,
        seed=args.seed,
        profile=args.profile,
        sampler=args.sampler or DEFAULT_SAMPLER,
        epochs=args.epochs,
        timeout_s=args.timeout,
        quality_samples=args.quality_samples,
        finetune_epochs=args.finetune_epochs,
        objectives=tuple(o.strip() for o in args.objectives.split(",")),
        max_latency_ms=args.max_latency_ms,
        max_size_kb=args.max_size_kb,
        max_ram_kb=args.max_ram_kb,
        max_flash_kb=args.max_flash_kb,
        min_accuracy=args.min_accuracy,
        latency=args.latency,
        accuracy=args.accuracy,
        predictor_float_samples=args.predictor_float_samples,
        predictor_quant_samples=args.predictor_quant_samples,
        predictor_screen_samples=args.predictor_screen_samples,
        inner_trials=args.inner_trials,
        time_budget_min=args.time_budget_min,
        workers=args.workers,
        storage=args.storage,
        study=args.study,
        references=not args.no_references,
    )
    SearchConfig(**settings, space=asked or "default").validate()  # flags before the data
    space_name, space = resume_space(args.out, asked, data_fit(args.data, args.seed))
    cfg = preflight(SearchConfig(**settings, space=space_name, _space=space), builtin=True)
    from codesign.engine.job import run_search

    resolved = {"data": cfg.data, "epochs": cfg.epochs, "latency": cfg.latency,
                "sampler": cfg.sampler, "space": "space.toml",
                "finetune_epochs": cfg.finetune_epochs}
    with kept_in_run(args, resolved, cfg.space_spec):
        run_search(cfg)
    if not args.no_report:
        _report_after_search(args.out)
    return 0


def _report(args: argparse.Namespace) -> int:
    from codesign.report.build import write_report

    rep = write_report(args.runs, args.out, args.label)
    points = ", ".join(str(n) for n in rep.front_points)
    print(f"report: {rep.index} ({points} Pareto points; {len(rep.pngs)} PNG figures and "
          f"{rep.summary.name} beside it) in {rep.seconds:.1f} s")
    return 0


def _report_after_search(run: Path) -> None:
    """Write the run's report; a failure here never fails the finished search."""
    try:
        from codesign.report.build import write_report

        rep = write_report([run])
    except Exception as exc:  # the front is written already: say so and go on
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"codesign: report not written ({first}); run codesign report {run}",
              file=sys.stderr)
        return
    print(f"report: {rep.index} in {rep.seconds:.1f} s")


def _worker(args: argparse.Namespace) -> int:
    import signal

    from codesign.run.storage import check_study_name

    check_study_name(args.study)
    if not (args.out / "config.json").is_file():
        raise CodesignError(f"{args.out} is not a started run; start it with codesign search")

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # the running trial is failed and queued again

    signal.signal(signal.SIGTERM, stop)
    from codesign.engine.job import run_worker

    run_worker(args.out, args.storage, args.study)
    return 0


def _export(args: argparse.Namespace) -> int:
    from codesign.export import export_reference, export_trial, pick_trial

    trial = args.trial
    one = "--trial" if trial is not None else "--reference" if args.reference else None
    if one and (args.max_ram_kb, args.max_flash_kb) != (None, None):
        raise CodesignError(f"{one} picks one model: drop --max-ram-kb and --max-flash-kb")
    if args.reference:
        manifest = export_reference(args.run, args.reference, args.out, args.io_type)
    else:
        if trial is None:
            trial = pick_trial(args.run, args.max_latency_ms, args.min_accuracy,
                               args.max_ram_kb, args.max_flash_kb)
            print(f"picked trial {trial}")
        manifest = export_trial(args.run, trial, args.out, args.io_type)
    print(
        f"wrote {args.out} and {args.out.with_suffix('.json')} "
        f"(test accuracy {manifest['test_accuracy']:.3f}, "
        f"latency {manifest['latency_ms']['median']:.3f} ms on {manifest['profile']['name']}"
        + (" (a host stand-in)" if manifest["latency_ms"].get("stand_in") else "")
        + (f", tensor arena {manifest['tensor_arena_bytes']} bytes"
           if manifest.get("tensor_arena_bytes") else "") + ")"
    )
    return 0


def _check_model(path: Path) -> None:
    if not path.is_file():
        raise CodesignError(f"model {path} does not exist")
    if path.suffix != ".tflite":
        raise CodesignError(f"model {path} is not a .tflite file")


def _benchmark(args: argparse.Namespace) -> int:
    from codesign.child import EvalChild
    from codesign.config import check_runtime_version
    from codesign.errors import TrialFailure
    from codesign.hardware.profile import load_profile

    _check_model(args.model)
    profile = load_profile(args.profile)
    check_runtime_version(profile)
    with EvalChild() as w:
        try:
            res = w.call("benchmark_file", path=str(args.model), profile=profile.path)
        except TrialFailure as exc:
            raise CodesignError(f"{args.model}: {exc}") from None
    lat = res["latency_ms"]
    print(f"{args.model}: median {lat['median']:.4f} ms, p90 {lat['p90']:.4f} ms, "
          f"std {lat['std']:.4f} ms over {lat['runs']} runs on {res['profile']}"
          + (f" ({lat['stand_in']})" if lat.get("stand_in") else ""))
    ram = res.get("ram")
    if ram and ram.get("bytes") is not None:
        how = "measured by TFLM" if ram["source"] == "tflm" else "estimated from the file"
        print(f"tensor arena {ram['bytes']} bytes ({how}: head {ram['head_bytes']} "
              f"activations, tail {ram['tail_bytes']} persistent); flash {res['size_bytes']} "
              "bytes")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from codesign.child import EvalChild
    from codesign.data import validate_data_name
    from codesign.errors import TrialFailure

    _check_model(args.model)
    validate_data_name(args.data)
    seed = args.seed
    manifest_path = args.model.with_suffix(".json")
    if seed is None and manifest_path.is_file():
        try:
            seed = int(json.loads(manifest_path.read_text())["data"]["split_seed"])
        except (ValueError, KeyError, TypeError):
            seed = None
    seed = 0 if seed is None else seed
    with EvalChild() as w:
        try:
            res = w.call(
                "accuracy_file", path=str(args.model), data=args.data, seed=seed, split=args.split
            )
        except TrialFailure as exc:
            raise CodesignError(f"{args.model}: {exc}") from None
    print(f"{args.model}: {args.split} accuracy {res['accuracy']:.4f} on {res['images']} "
          f"images of {args.data} (split seed {seed}, resolution {res['resolution']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
