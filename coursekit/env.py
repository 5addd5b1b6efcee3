"""The pinned environment: ``requirements.txt`` (pip) and ``environment.yml`` (conda) must agree,
and a clear message names any package that is missing or has another version."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

from .course import ROOT

CONDA_NAMES = {"pytorch": "torch"}  # conda-forge name -> pip name


def pip_pins(root: str | Path = ROOT) -> dict[str, str]:
    pins = {}
    for line in (Path(root) / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def conda_pins(root: str | Path = ROOT) -> dict[str, str]:
    pins = {}
    for line in (Path(root) / "environment.yml").read_text().splitlines():
        match = re.match(r"^\s*-\s*([A-Za-z0-9_.-]+)==?([^=\s]+)\s*$", line.split("#", 1)[0])  # conda name=v, pip name==v
        if match and match.group(1) != "python":
            pins[CONDA_NAMES.get(match.group(1), match.group(1)).lower()] = match.group(2)
    return pins


def problems(root: str | Path = ROOT) -> list[str]:
    """One line per pinned package that is missing or installed in another version."""
    found = []
    for name, wanted in pip_pins(root).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            found.append(f"{name}: not installed (need {wanted})")
            continue
        if installed.split("+")[0] != wanted:
            found.append(f"{name}: {installed} installed, {wanted} pinned")
    return found
