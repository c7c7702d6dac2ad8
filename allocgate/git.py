"""The few git questions allocgate asks, asked with an argument list and never through a shell."""

from __future__ import annotations

import subprocess
from pathlib import Path

from allocgate.errors import AllocgateError

_TIMEOUT = 60


def _run(cwd: Path, args: tuple[str, ...]) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise AllocgateError("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise AllocgateError(f"git {args[0]} did not finish in {_TIMEOUT} s") from None


def git(cwd: Path, *args: str) -> str | None:
    """git's output, stripped, or None when git says no."""
    done = _run(cwd, args)
    text = done.stdout.decode("utf-8", errors="replace").strip()
    return text if done.returncode == 0 else None


def head(cwd: Path) -> str:
    sha = git(cwd, "rev-parse", "--verify", "HEAD")
    if sha is None:
        raise AllocgateError(
            f"{cwd} is not a git checkout with a commit: cannot tell which one runs"
        )
    return sha


def repository_path(cwd: Path, path: Path) -> str:
    """`path` relative to the top of the git checkout, with forward slashes."""
    top = git(cwd, "rev-parse", "--show-toplevel")
    if top is None:
        raise AllocgateError(f"{cwd} is not a git checkout")
    try:
        return path.resolve().relative_to(Path(top).resolve()).as_posix()
    except ValueError:
        raise AllocgateError(f"{path} is outside the git checkout {top}") from None


def has_commit(cwd: Path, sha: str) -> bool:
    return git(cwd, "cat-file", "-e", f"{sha}^{{commit}}") is not None


def show(cwd: Path, rev: str, path: str) -> bytes | None:
    """The file at `rev:path`, or None when the commit has no such file."""
    done = _run(cwd, ("show", f"{rev}:{path}"))
    return done.stdout if done.returncode == 0 else None


def blob(cwd: Path, rev: str, path: str) -> str | None:
    """The blob sha of `rev:path` (the contents API's `sha`), or None when it has none."""
    return git(cwd, "rev-parse", "--verify", "--quiet", f"{rev}:{path}")
