"""Opening any profile file: the format is recognised from its content, not its name."""

from __future__ import annotations

from pathlib import Path

from allocgate.callsites import FoldOptions
from allocgate.errors import ProfileError
from allocgate.profile import Profile
from allocgate.profilers.dhat_json import load_dhat, looks_like_dhat
from allocgate.profilers.heaptrack import load_heaptrack
from allocgate.profilers.heaptrack_trace import looks_like_heaptrack
from allocgate.schema import MAX_COUNT


def sniff(path: Path) -> str:
    """``dhat``, ``heaptrack`` or ``baseline``, from the first bytes of the file."""
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except FileNotFoundError:
        raise ProfileError(f"{path}: no such file") from None
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    if not head.strip():
        raise ProfileError(f"{path}: the file is empty")
    if looks_like_dhat(head):
        return "dhat"
    if looks_like_heaptrack(head):
        return "heaptrack"
    if head.lstrip().startswith((b"#", b"version:", b"workloads:", b"---")):
        return "baseline"
    raise ProfileError(
        f"{path}: not a DHAT JSON profile, a heaptrack trace or an allocgate baseline"
    )


def load_profile(path: Path, options: FoldOptions | None = None) -> Profile:
    """Reads and folds a DHAT (dhat-rs or Valgrind) profile or a heaptrack trace."""
    options = options or FoldOptions()
    kind = sniff(path)
    if kind == "dhat":
        profile = load_dhat(path, options)
    elif kind == "heaptrack":
        profile = load_heaptrack(path, options)
    else:
        raise ProfileError(f"{path}: this is a baseline file, not a profile")
    check_counts(path, profile)
    return profile


def check_counts(path: Path, profile: Profile) -> None:
    """Counts beyond what a 64-bit program can allocate are corruption; they would
    also break JSON output and the baseline."""
    for metric, total in profile.totals.items():
        if not 0 <= total <= MAX_COUNT:
            raise ProfileError(
                f"{path}: the {metric} of all program points add up to more than "
                f"{MAX_COUNT}: not a real profile"
            )
