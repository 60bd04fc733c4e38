"""Facts about a run that ``pareto.json`` records for a reader to reproduce it."""

from __future__ import annotations

from importlib import metadata
from typing import Any

from codesign.hardware.profile import Profile


def package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    """Installed version of each package (None where it is not installed)."""
    versions: dict[str, str | None] = {}
    for pkg in packages:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def profile_summary(profile: Profile) -> dict[str, Any]:
    """The profile's name and the runtime settings its latencies were measured with."""
    return {"name": profile.name, "runtime": profile.runtime,
            "runtime_version": profile.runtime_version, "resolver": profile.resolver,
            "threads": profile.threads}
