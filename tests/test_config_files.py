"""Spaces and settings as files: --space FILE.toml, --config FILE.toml, RUN/config.toml."""

from __future__ import annotations

import argparse
import json
import subprocess
import tomllib
from pathlib import Path

import pytest

from codesign.errors import CodesignError
from codesign.run.runspace import keep_space, resume_space, saved_space
from codesign.settings_file import (
    BUILTIN_ONLY,
    apply_settings,
    load_settings,
    origin_note,
    settings_doc,
    write_settings,
)
from codesign.space import PRESETS, get_space
from codesign.space.files import PRESET_DIR, load_space_file, resolve_space, space_toml
from codesign.tomlfile import dumps
from tests.conftest import run_cli

# The presets as Python held them before they became files: old runs' saved settings hold
# these, so a resumed old run must find them equal.
FORMER_PRESETS = {
    "default": {
        "name": "default", "stem_channels": 16, "stem_stride": 1, "head_channels": 128,
        "kernel": 3, "resolutions": [24, 28, 32], "prune_ratios": [0.0, 0.25, 0.5, 0.75],
        "precisions": ["float32", "float16", "int8", "int16x8", "int4"],
        "stages": [
            {"channels": 16, "min_depth": 1, "max_depth": 2, "stride": 2, "expand": 1},
            {"channels": 24, "min_depth": 1, "max_depth": 3, "stride": 2, "expand": 4},
            {"channels": 40, "min_depth": 1, "max_depth": 3, "stride": 2, "expand": 4},
            {"channels": 64, "min_depth": 1, "max_depth": 3, "stride": 1, "expand": 4},
        ],
    },
    "tiny": {
        "name": "tiny", "stem_channels": 8, "stem_stride": 2, "head_channels": 32,
        "kernel": 3, "resolutions": [16, 24], "prune_ratios": [0.0, 0.5],
        "precisions": ["float32", "float16", "int8", "int16x8", "int4"],
        "stages": [
            {"channels": 8, "min_depth": 1, "max_depth": 1, "stride": 1, "expand": 1},
            {"channels": 16, "min_depth": 1, "max_depth": 2, "stride": 2, "expand": 2},
            {"channels": 24, "min_depth": 1, "max_depth": 2, "stride": 2, "expand": 2},
        ],
    },
}

SMALL = """\
name = "small"
stem_channels = 8
stem_stride = 2
head_channels = 32
kernel = 3
resolutions = [16, 20]
prune_ratios = [0.0, 0.5]
precisions = ["float32", "int8"]

[[stages]]
channels = 8
min_depth = 1
max_depth = 1
stride = 1
expand = 1

[[stages]]
channels = 16
min_depth = 1
max_depth = 2
stride = 2
expand = 2
"""


def _json(d: object) -> object:
    return json.loads(json.dumps(d))


def _one_line_error(exc: pytest.ExceptionInfo[CodesignError], *words: str) -> None:
    text = str(exc.value)
    assert "\n" not in text, text
    for w in words:
        assert w in text, text


# --- spaces ------------------------------------------------------------------------------

ELASTIC = {"default": [3, 5, 7]}  # the presets' kernels since issue 18 (tiny keeps one)


def _current(name: str) -> dict:
    """A former preset as it is now: the same but for its depthwise kernel choices."""
    if name not in ELASTIC:
        return FORMER_PRESETS[name]
    return {("kernels" if k == "kernel" else k): (ELASTIC[name] if k == "kernel" else v)
            for k, v in FORMER_PRESETS[name].items()}


def test_presets_are_shipped_files_equal_to_the_former_definitions() -> None:
    assert sorted(p.stem for p in PRESET_DIR.glob("*.toml")) == ["default", "tiny"]
    assert list(PRESETS)[0] == "default"
    for name in FORMER_PRESETS:
        assert _json(get_space(name).to_dict()) == _current(name)
        assert load_space_file(PRESET_DIR / f"{name}.toml") == get_space(name)


def test_a_former_single_kernel_space_reads_back_in_its_former_form(tmp_path: Path) -> None:
    path = tmp_path / "old.toml"
    path.write_text(SMALL)
    space = load_space_file(path)
    assert space.kernels == (3,) and not space.elastic_kernel
    assert _json(space.to_dict())["kernel"] == 3 and "kernels" not in space.to_dict()
    path.write_text(space_toml(space))
    assert "kernels = [3]" in path.read_text() and load_space_file(path) == space
    assert space.max_candidate().kernel is None  # one kernel: no gene, as in older runs


@pytest.mark.parametrize("name", ["default", "tiny"])
def test_space_file_round_trip(tmp_path: Path, name: str) -> None:
    path = tmp_path / "copy.toml"
    path.write_text(space_toml(get_space(name)))
    assert load_space_file(path) == get_space(name)
    assert resolve_space(str(path)) == get_space(name)


def test_space_file_name_defaults_to_the_stem(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(SMALL.replace('name = "small"\n', ""))
    space = load_space_file(path)
    assert space.name == "mine" and space.resolutions == (16, 20)
    assert space.max_candidate().depths == (1, 2)
    assert len(space.layer_names()) == len(set(space.layer_names()))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("kernel = 3", "kernal = 3"), ["unknown key kernal", "kernel", "resolutions"]),
        (("kernel = 3", "kernel = 4"), ["kernel must be one of 3, 5, 7", "got 4"]),
        (("kernel = 3", 'kernel = "3"'), ["kernel must be one of 3, 5, 7", "got '3'"]),
        (("stem_channels = 8", "stem_channels = 10"), ["stem_channels", "multiple of 4"]),
        (("stem_stride = 2", "stem_stride = 3"), ["stem_stride must be one of 1, 2"]),
        (("resolutions = [16, 20]", "resolutions = [16, 4]"), ["resolutions", "from 8 to 512"]),
        (("resolutions = [16, 20]", "resolutions = []"), ["resolutions", "non-empty"]),
        (("prune_ratios = [0.0, 0.5]", "prune_ratios = [0.25, 0.5]"),
         ["prune_ratios", "holding 0.0"]),
        (("prune_ratios = [0.0, 0.5]", "prune_ratios = [0.0, 1.0]"),
         ["prune_ratios", "below 1.0"]),
        (('precisions = ["float32", "int8"]', 'precisions = ["float32", "int3"]'),
         ["precisions", "int16x8", "got ['float32', 'int3']"]),
        (('precisions = ["float32", "int8"]', 'precisions = ["int8"]'),
         ["precisions", "holding float32"]),
        (("max_depth = 2", "max_depth = 0"), ["stages[2].max_depth", "from 1 to 8"]),
        (("expand = 2", "expand = 9"), ["stages[2].expand", "from 1 to 8"]),
        (("expand = 2", "expand = 2\nwidth = 3"), ["unknown key stages[2].width", "channels"]),
        (("head_channels = 32\n", ""), ["head_channels is missing"]),
        (("kernel = 3", "kernel = = 3"), ["TOML syntax error", "line 5"]),
        (("kernel = 3", "kernels = [3, 4]"), ["kernels must be", "of 3, 5, 7", "got [3, 4]"]),
        (("kernel = 3", "kernels = []"), ["kernels must be a non-empty list"]),
        (("kernel = 3", "kernels = 5"), ["kernels must be a non-empty list", "got 5"]),
        (("kernel = 3", "kernels = [5, 5]"), ["kernels must be", "distinct"]),
        (("kernel = 3", "kernel = 3\nkernels = [3, 5]"), ["kernels (a list)", "not both"]),
        (('name = "small"', 'name = "a b"'), ["name must be", "got 'a b'"]),
    ],
)
def test_malformed_space_file_is_one_line_naming_the_field(
        tmp_path: Path, edit: tuple[str, str], words: list[str]) -> None:
    path = tmp_path / "bad.toml"
    assert edit[0] in SMALL
    path.write_text(SMALL.replace(edit[0], edit[1], 1))
    with pytest.raises(CodesignError) as exc:
        load_space_file(path)
    _one_line_error(exc, f"space file {path}", *words)


def test_missing_space_file_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(CodesignError) as exc:
        resolve_space(str(tmp_path / "none.toml"))
    _one_line_error(exc, "none.toml does not exist")
    with pytest.raises(CodesignError) as exc:
        resolve_space("huge")
    _one_line_error(exc, "unknown space 'huge'", "default, tiny", "FILE.toml")


# --- a run's space -----------------------------------------------------------------------

def _old_run(root: Path, space: dict) -> None:
    root.mkdir()
    (root / "config.json").write_text(json.dumps({"identity": {"space": space}, "trials": 3}))


def test_new_run_takes_the_asked_space_or_default(tmp_path: Path) -> None:
    assert resume_space(tmp_path / "new", None) == ("default", get_space("default"))
    assert resume_space(tmp_path / "new", "tiny") == ("tiny", get_space("tiny"))


def test_resumed_run_keeps_its_space_even_if_the_preset_changed(tmp_path: Path) -> None:
    former = {**_current("default"), "resolutions": [20, 24]}  # as if the preset moved on
    _old_run(tmp_path / "run", former)
    name, space = resume_space(tmp_path / "run", None)
    assert name == str(tmp_path / "run" / "space.toml") and _json(space.to_dict()) == former
    assert saved_space(tmp_path / "run") == space  # the older run got its file
    with pytest.raises(CodesignError) as exc:
        resume_space(tmp_path / "run", "default")
    _one_line_error(exc, "different space", "resolutions", "drop --space", "another --out")
    keep_space(tmp_path / "run", get_space("tiny"))  # written once, never replaced
    assert saved_space(tmp_path / "run") == space
    assert resume_space(tmp_path / "run", str(tmp_path / "run" / "space.toml"))[1] == space


def test_a_run_of_an_unchanged_preset_names_it(tmp_path: Path) -> None:
    _old_run(tmp_path / "run", _current("tiny"))
    assert resume_space(tmp_path / "run", None) == ("tiny", get_space("tiny"))
    assert resume_space(tmp_path / "run", "tiny") == ("tiny", get_space("tiny"))


def test_a_run_of_the_former_single_kernel_preset_resumes_with_it(tmp_path: Path) -> None:
    _old_run(tmp_path / "run", FORMER_PRESETS["default"])
    name, space = resume_space(tmp_path / "run", None)
    assert name == str(tmp_path / "run" / "space.toml") and space.kernels == (3,)
    assert _json(space.to_dict()) == FORMER_PRESETS["default"]  # the identity it was made with
    with pytest.raises(CodesignError) as exc:
        resume_space(tmp_path / "run", "default")
    _one_line_error(exc, "different space", "drop --space")


def test_a_saved_space_this_version_cannot_use_is_refused_in_one_line(tmp_path: Path) -> None:
    _old_run(tmp_path / "run", {**FORMER_PRESETS["tiny"], "kernel": [3, 5]})
    with pytest.raises(CodesignError) as exc:
        resume_space(tmp_path / "run", None)
    _one_line_error(exc, "config.json holds a space this codesign cannot use", "kernel")


def test_runs_of_own_models_have_no_space(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"identity": {"hypermodel": {}}}))
    assert saved_space(tmp_path) is None


# --- settings files ----------------------------------------------------------------------

def test_settings_file_values_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "run.toml"
    path.write_text('out = "runs/a"\ndata = "photos.npz"\nspace = "mine.toml"\ntrials = 7\n'
                    'max_latency_ms = 2\nobjectives = ["accuracy", "ram"]\nno-report = true\n'
                    'profile = "xnnpack-1t"\nsampler = "tpe"\n')
    got = load_settings(path)
    conf = tmp_path / "conf"
    assert got == {"out": conf / "runs/a", "data": str(conf / "photos.npz"),
                   "space": str(conf / "mine.toml"), "trials": 7, "max_latency_ms": 2.0,
                   "objectives": "accuracy,ram", "no_report": True, "profile": "xnnpack-1t",
                   "sampler": "tpe"}
    assert isinstance(got["max_latency_ms"], float)
    path.write_text('data = "digits"\nspace = "tiny"\n')
    assert load_settings(path) == {"data": "digits", "space": "tiny"}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("trails = 3", ["unknown setting 'trails'", "did you mean trials?", "max-latency-ms"]),
        ('trials = "3"', ["trials must be an integer, got '3'"]),
        ("trials = 2.5", ["trials must be an integer"]),
        ("timeout = true", ["timeout must be a number"]),
        ('sampler = "cma"', ["sampler must be one of nsga2, tpe, random, got 'cma'"]),
        ("no-report = 1", ["no-report must be true or false"]),
        ("objectives = 3", ["objectives must be", "accuracy,latency"]),
        ("[data]\nx = 1", ["data must be a string, got a table"]),
        ("trials = ", ["TOML syntax error", "line 1"]),
        ("config = 'x.toml'", ["unknown setting 'config'"]),
    ],
)
def test_malformed_settings_file_is_one_line_naming_the_key(
        tmp_path: Path, text: str, words: list[str]) -> None:
    path = tmp_path / "run.toml"
    path.write_text(text + "\n")
    with pytest.raises(CodesignError) as exc:
        load_settings(path)
    _one_line_error(exc, f"config file {path}", *words)


def test_missing_settings_file(tmp_path: Path) -> None:
    with pytest.raises(CodesignError) as exc:
        load_settings(tmp_path / "none.toml")
    _one_line_error(exc, "config file", "none.toml does not exist")


def test_flags_given_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "run.toml"
    path.write_text("trials = 7\nseed = 3\nno-report = false\n")
    args = argparse.Namespace(config=path, trials=20, seed=5, no_report=False)
    apply_settings(args, given={"seed"})
    assert (args.trials, args.seed, args.no_report) == (7, 5, False)
    assert args.from_config == {"trials"}
    note = origin_note("--trials must be an integer from 1 to 100000, got 0", args)
    assert note.endswith(f"(set by trials in {path})")
    assert origin_note("--seed must be ...", args) == "--seed must be ..."


def test_written_settings_read_back_equal(tmp_path: Path) -> None:
    args = argparse.Namespace(data="digits", out=tmp_path, trials=5, seed=1,
                              profile="xnnpack-1t", space="tiny", objectives="accuracy,latency",
                              max_latency_ms=None, timeout=600.0, no_report=False,
                              storage="postgresql://u:secret@host/db", hypermodel=None)
    doc = settings_doc(args, {"epochs": 12, "space": "space.toml"})
    assert "secret" not in json.dumps(doc) and "max-latency-ms" not in doc
    path = write_settings(tmp_path, doc)
    back = load_settings(path)
    assert back["out"] == tmp_path and back["space"] == str(tmp_path / "space.toml")
    assert (back["trials"], back["epochs"], back["seed"]) == (5, 12, 1)
    assert tomllib.loads(path.read_text())["storage"] == "postgresql://u@host/db"
    hyper = argparse.Namespace(**{**vars(args), "hypermodel": "models/h.py:build"})
    doc = settings_doc(hyper, skip=BUILTIN_ONLY)  # a HyperModel search's file
    assert "space" not in doc and "epochs" not in doc
    assert doc["hypermodel"] == f"{Path.cwd() / 'models/h.py'}:build"


def test_settings_and_space_are_kept_when_the_run_accepts_them_not_when_it_ends(
        tmp_path: Path) -> None:
    from codesign.run.directory import RunDir
    from codesign.settings_file import kept_in_run

    run = tmp_path / "run"
    args = argparse.Namespace(data="digits", out=run, trials=5, seed=1, profile="xnnpack-1t",
                              space="tiny", objectives="accuracy,latency", timeout=600.0,
                              no_report=False, hypermodel=None)
    with pytest.raises(KeyboardInterrupt), kept_in_run(args, {"space": "space.toml"},
                                                       get_space("tiny")):
        RunDir(run).check_settings({"seed": 1}, 5)
        assert tomllib.loads((run / "config.toml").read_text())["trials"] == 5  # at once
        assert saved_space(run) == get_space("tiny")
        raise KeyboardInterrupt  # killed mid-run: the files stay
    assert (run / "config.toml").is_file()
    args.trials = 9  # a resume refused for other settings leaves them as they were
    with pytest.raises(CodesignError), kept_in_run(args, {"space": "space.toml"},
                                                   get_space("tiny")):
        RunDir(run).check_settings({"seed": 2}, 9)
    assert tomllib.loads((run / "config.toml").read_text())["trials"] == 5
    RunDir(run).check_settings({"seed": 1}, 9)  # outside kept_in_run: nothing written
    assert tomllib.loads((run / "config.toml").read_text())["trials"] == 5


def test_toml_writer_round_trips_awkward_values() -> None:
    doc = {"s": 'quote " back \\ tab \t nl \n del \x7f é', "f": [0.0, 1e-05, 2.5], "b": True,
           "i": -3, "weird key": 1, "t": {"x": 1}, "a": [{"y": "z"}, {"y": "w"}], "n": None}
    back = tomllib.loads(dumps(doc, "header\nsecond line"))
    assert back == {k: v for k, v in doc.items() if v is not None}


# --- the command line --------------------------------------------------------------------

def _user_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_cli_refuses_bad_files_in_one_line_before_any_work(tmp_path: Path) -> None:
    out = tmp_path / "run"
    conf = tmp_path / "run.toml"
    conf.write_text(f'out = "{out}"\ntrials = 0\n')
    _user_error(run_cli("search", "--config", str(conf), timeout=60),
                "--trials must be an integer from 1", f"set by trials in {conf}")
    conf.write_text('seeds = 3\nout = "x"\n')
    _user_error(run_cli("search", "--config", str(conf), timeout=60),
                "unknown setting 'seeds'", "did you mean seed?")
    space = tmp_path / "s.toml"
    space.write_text(SMALL.replace("\nstride = 2", "\nstride = 4"))
    _user_error(run_cli("search", "--out", str(out), "--space", str(space), timeout=60),
                "stages[2].stride must be one of 1, 2, got 4")
    _user_error(run_cli("search", "--data", "digits", timeout=60), "--out is required")
    assert not out.exists() and not (tmp_path / "x").exists()


@pytest.mark.e2e
def test_run_keeps_its_settings_and_space_and_config_round_trips(tmp_path: Path) -> None:
    (tmp_path / "small.toml").write_text(SMALL)
    conf = tmp_path / "search.toml"
    conf.write_text('out = "runs/a"\nspace = "small.toml"\nepochs = 3\ntrials = 2\n'
                    "quality-samples = 0\nfinetune-epochs = 0\nno-report = true\n"
                    "no-references = true\n")
    first = run_cli("search", "--config", str(conf))
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "runs" / "a"
    kept = tomllib.loads((run / "config.toml").read_text())
    assert kept["out"] == "." and kept["space"] == "space.toml" and kept["trials"] == 2
    assert load_space_file(run / "space.toml") == load_space_file(tmp_path / "small.toml")
    pareto = json.loads((run / "pareto.json").read_text())
    assert {p["candidate"]["resolution"] for p in pareto["points"]} <= {16, 20}

    (tmp_path / "small.toml").unlink()  # the run's own copy is what it resumes with
    resumed = run_cli("search", "--out", str(run), "--epochs", "3", "--trials", "3",
                      "--quality-samples", "0", "--finetune-epochs", "0", "--no-report",
                      "--no-references")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert tomllib.loads((run / "config.toml").read_text())["trials"] == 3
    # the kept settings are a --config file (here refused only for the other space it asks)
    refused = run_cli("search", "--config", str(run / "config.toml"), "--space", "tiny")
    _user_error(refused, "different space", "drop --space")
