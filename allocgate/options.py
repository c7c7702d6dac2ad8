"""Options declared once, for the CLI (``--config``) and pytest (``--allocgate-config``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Option:
    name: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")


SHARED_OPTIONS: tuple[Option, ...] = (
    Option(
        "config",
        "allocgate.yml to use (default: the nearest allocgate.yml, or [tool.allocgate] "
        "in pyproject.toml, searching upward)",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "report-json",
        "write the versioned JSON report to PATH",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "report-md",
        "write the markdown report (the PR comment's body) to PATH",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "keep-profiles",
        "keep the raw profile files in DIR (open them in DHAT's viewer or heaptrack_gui)",
        {"type": Path, "metavar": "DIR", "default": None},
    ),
)


def add_shared_options(
    add: Callable[..., Any], *, prefix: str = "", dest_prefix: str = "", names: tuple[str, ...] = ()
) -> None:
    """Declares the shared options through ``add`` (argparse's add_argument or
    pytest's addoption), spelled ``--{prefix}{name}``."""
    for option in SHARED_OPTIONS:
        if names and option.name not in names:
            continue
        add(
            f"--{prefix}{option.name}",
            dest=f"{dest_prefix}{option.dest}",
            help=option.help,
            **option.kwargs,
        )
