"""The kit's HTML reports, rendered from the Jinja2 templates in ``coursekit/templates/`` (autoescaped)."""

from __future__ import annotations

import functools
from pathlib import Path


@functools.lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True)


def render(template: str, **values) -> str:
    """The page ``template`` (e.g. ``"calibration.html.j2"``) with ``values``."""
    return _environment().get_template(template).render(**values)
