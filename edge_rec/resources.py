"""Where the shipped data lives: inside the installed package (a wheel carries assets/ and examples/ as
`edge_rec/assets` and `edge_rec/examples`), or beside the package in a source checkout / editable install."""
from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def shipped(name: str) -> Path:
    """The shipped folder `name` ("assets" or "examples"): the package's copy if installed, else the checkout's."""
    inside = PACKAGE / name
    return inside if inside.is_dir() else PACKAGE.parent / name
