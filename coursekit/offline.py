"""An offline data folder for grading without the internet (example run, tests, CI).

The notebooks download datasets and weights into ``COURSE_DATA_DIR`` (and
``TORCH_HOME``) when they are missing.  Offline, :func:`prepare` fills a folder
with small fixtures in the real formats instead, and an IPython start-up file
makes the kernels that nbgrader starts trust those files' checksums.  The
notebooks themselves are not changed in any way.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import download

FORMAT = "4"  # bump when the fixtures change, so that old folders are rebuilt

STARTUP = """\
# Written by coursekit.offline: make torchvision trust the offline fixture files.
from coursekit.kernel.fixtures import trust_checksums_for_session as _trust
_trust({root!r})
del _trust
"""


def environment(root: str | Path) -> dict[str, str]:
    """The environment variables that point the notebooks' kernels at ``root``."""
    root = Path(root).resolve()
    return {
        "COURSE_DATA_DIR": str(root),
        "TORCH_HOME": str(root / "torch"),
        "IPYTHONDIR": str(root / "ipython"),
    }


def prepare(root: str | Path) -> dict[str, str]:
    """Write the fixtures under ``root`` (once) and return :func:`environment`."""
    root = Path(root).resolve()
    stamp = root / ".fixtures"
    if not (stamp.exists() and stamp.read_text() == FORMAT):
        root.mkdir(parents=True, exist_ok=True)
        for resource in download.RESOURCES:  # every dataset and weights file has its stand-in
            resource.fixture(root)
        startup = root / "ipython" / "profile_default" / "startup"
        startup.mkdir(parents=True, exist_ok=True)
        (startup / "00-trust-fixtures.py").write_text(STARTUP.format(root=str(root)))
        stamp.write_text(FORMAT)
    return environment(root)


def apply(root: str | Path) -> dict[str, str]:
    """:func:`prepare` and set the variables in this process (inherited by nbgrader's kernels)."""
    env = prepare(root)
    os.environ.update(env)
    return env
