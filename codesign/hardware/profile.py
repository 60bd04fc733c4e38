"""Hardware profiles: versioned data files that say how and where latency is measured.

A profile is a TOML file in ``hw_profiles/`` (or any path). Loading checks every
field and names the file, the field and the allowed values on error.
"""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from codesign.errors import CodesignError
from codesign.hardware.litert import RESOLVERS
from codesign.hardware.runner import RunnerSpec, parse_runner

SCHEMA_VERSION = 1


def _profile_dir() -> Path:
    """The shipped profiles: package data in a wheel, else the source tree's ``hw_profiles/``."""
    here = Path(__file__).resolve()
    packaged = here.parents[1] / "hw_profiles"  # codesign/hw_profiles, where a wheel puts them
    return packaged if packaged.is_dir() else here.parents[2] / "hw_profiles"


PROFILE_DIR = _profile_dir()
EXAMPLE_DIR = PROFILE_DIR / "examples"  # remote devices: templates to copy and edit
DEFAULT_PROFILE = "xnnpack-1t"
RUNTIMES = ("ai-edge-litert", "tflite-runtime", "tflite-micro")
MICRO = "tflite-micro"  # TensorFlow Lite Micro's Python interpreter, run on this host
ALL_PRECISIONS = ("float32", "float16", "int8", "int16x8", "int4")


@dataclass(frozen=True)
class Profile:
    """A target device and the runtime settings used to measure on it.

    Attributes:
        name: Short name (``--profile`` value).
        description: One line for humans.
        runtime: Runtime package name.
        runtime_version: Runtime version the profile was written for.
        resolver: Op resolver: ``auto`` (XNNPACK), ``builtin`` or ``reference``.
        threads: CPU threads of the interpreter.
        precisions: Precisions the search offers (the runtime runs them).
        warmup_runs: Untimed runs before timing.
        runs: Timed runs.
        path: The file it was loaded from.
        runner: How the device is reached (``local`` unless the profile says).
        reference_precisions: Precisions the runtime runs that the search does
            not offer: only the reference networks use them (float32 on TFLM).
    """

    name: str
    description: str
    runtime: str
    runtime_version: str
    resolver: str
    threads: int
    precisions: tuple[str, ...]
    warmup_runs: int
    runs: int
    path: str
    runner: RunnerSpec = RunnerSpec()
    reference_precisions: tuple[str, ...] = ()

    @property
    def micro(self) -> bool:
        """Whether the runtime is TensorFlow Lite Micro (RAM is its measured arena)."""
        return self.runtime == MICRO

    @property
    def runnable(self) -> tuple[str, ...]:
        """Every precision the profile's runtime is asked to run (search and references)."""
        return (*self.precisions, *self.reference_precisions)

    @property
    def remote(self) -> bool:
        """Whether the device is reached through commands (not this machine)."""
        return self.runner.kind != "local"

    @property
    def device(self) -> str:
        """The device's name (its lock)."""
        return self.runner.device

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-serializable dict."""
        d = asdict(self)
        d["precisions"] = list(self.precisions)
        d["reference_precisions"] = list(self.reference_precisions)
        d["runner"] = self.runner.to_dict()
        return d

    def identity(self) -> dict[str, Any]:
        """Return the fields that change what is measured (not the file's location)."""
        d = self.to_dict()
        d.pop("path")
        d.pop("description")
        if not self.reference_precisions:  # as runs of codesign before it had the field
            d.pop("reference_precisions")
        d["runner"] = {"kind": self.runner.kind, "device": self.runner.device,
                       "python": self.runner.python}
        return d


def list_profiles(folder: Path = PROFILE_DIR) -> list[Profile]:
    """Return every profile of a folder (default: the shipped ones), sorted by file name."""
    return [load_profile(p) for p in sorted(folder.glob("*.toml"))]


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """Return the file of a shipped profile name, or the given path.

    Raises:
        CodesignError: If neither a shipped name nor an existing file.
    """
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix == ".toml" or "/" in text:
        if not candidate.is_file():
            raise CodesignError(f"profile file {text} does not exist")
        return candidate
    shipped = PROFILE_DIR / f"{text}.toml"
    if shipped.is_file():
        return shipped
    names = ", ".join(p.stem for p in sorted(PROFILE_DIR.glob("*.toml")))
    raise CodesignError(f"unknown profile {text!r}; use one of: {names} (or a .toml path)")


def load_profile(name_or_path: str | Path) -> Profile:
    """Load and validate a profile.

    Args:
        name_or_path: A shipped profile name (see ``codesign profiles``) or a
            path to a ``.toml`` file.

    Raises:
        CodesignError: If the file is missing, unreadable or malformed.
    """
    path = resolve_profile_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CodesignError(f"profile {path}: cannot read the file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise CodesignError(f"profile {path}: not valid TOML ({exc})") from None
    return _parse(raw, path)


def _parse(raw: dict[str, Any], path: Path) -> Profile:
    def fail(field: str, why: str) -> CodesignError:
        return CodesignError(f"profile {path}: field {field!r} {why}")

    def get(table: dict[str, Any], key: str, prefix: str = "") -> Any:
        if key not in table:
            raise fail(prefix + key, "is missing")
        return table[key]

    version = get(raw, "schema_version")
    if version != SCHEMA_VERSION:
        raise fail("schema_version", f"is {version!r}; this codesign reads {SCHEMA_VERSION}")
    name = get(raw, "name")
    plain = name.replace("-", "").replace("_", "") if isinstance(name, str) else ""
    if not plain.isalnum():
        raise fail("name", "must be a non-empty string of letters, digits, '-' and '_'")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be a string")
    runtime = get(raw, "runtime")
    if not isinstance(runtime, dict):
        raise fail("runtime", "must be a table")
    rt_name = get(runtime, "name", "runtime.")
    if rt_name not in RUNTIMES:
        raise fail("runtime.name", f"is {rt_name!r}; allowed: {', '.join(RUNTIMES)}")
    rt_version = get(runtime, "version", "runtime.")
    if not isinstance(rt_version, str):
        raise fail("runtime.version", "must be a string such as \"2.3.0\"")
    resolver = get(runtime, "resolver", "runtime.")
    resolvers = ("reference",) if rt_name == MICRO else RESOLVERS
    if resolver not in resolvers:
        raise fail("runtime.resolver", f"is {resolver!r}; allowed: {', '.join(resolvers)}")
    threads = get(runtime, "threads", "runtime.")
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
        raise fail("runtime.threads", f"is {threads!r}; allowed: an integer from 1 to 256")
    precisions = get(runtime, "precisions", "runtime.")
    if (
        not isinstance(precisions, list)
        or not precisions
        or any(p not in ALL_PRECISIONS for p in precisions)
    ):
        raise fail(
            "runtime.precisions",
            f"is {precisions!r}; allowed: a non-empty list of {', '.join(ALL_PRECISIONS)}",
        )
    extra = runtime.get("reference_precisions", [])
    if not isinstance(extra, list) or any(p not in ALL_PRECISIONS or p in precisions
                                          for p in extra):
        raise fail("runtime.reference_precisions",
                   f"is {extra!r}; allowed: a list of {', '.join(ALL_PRECISIONS)} not in "
                   "runtime.precisions")
    measure = raw.get("measure", {})
    if not isinstance(measure, dict):
        raise fail("measure", "must be a table")
    warmup = measure.get("warmup_runs", 20)
    runs = measure.get("runs", 100)
    for key, value, low in (("warmup_runs", warmup, 0), ("runs", runs, 3)):
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= 100000:
            raise fail(f"measure.{key}", f"is {value!r}; allowed: an integer from {low} to 100000")
    runner = parse_runner(raw.get("runner"), fail)
    if rt_name not in ("ai-edge-litert", MICRO) and runner.kind == "local":
        raise fail("runtime.name", f"is {rt_name!r}, which codesign runs only on a device "
                   "(a [runner] with kind = \"command\"); here it uses ai-edge-litert or "
                   f"{MICRO}")
    return Profile(
        runner=runner,
        name=name,
        description=description,
        runtime=rt_name,
        runtime_version=rt_version,
        resolver=resolver,
        threads=threads,
        precisions=tuple(precisions),
        reference_precisions=tuple(extra),
        warmup_runs=warmup,
        runs=runs,
        path=str(path),
    )
