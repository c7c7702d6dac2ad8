"""The job summary (`$GITHUB_STEP_SUMMARY`) and step outputs (`$GITHUB_OUTPUT`)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from pathlib import Path

from allocgate.errors import GitHubError
from allocgate.github.limits import MAX_STEP_SUMMARY_BYTES
from allocgate.github.redact import redact

_OUTPUT_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def append_step_summary(path: Path, markdown: str) -> None:
    """Append `markdown` to the job summary file (`$GITHUB_STEP_SUMMARY`)."""
    markdown = redact(markdown)
    if not markdown.endswith("\n"):
        markdown += "\n"
    try:
        used = path.stat().st_size
    except FileNotFoundError:
        used = 0
    data = markdown.encode("utf-8")
    room = MAX_STEP_SUMMARY_BYTES - used
    if len(data) > room:
        note = "\n\n*allocgate: the rest of this report exceeds GitHub's 1 MiB summary limit.*\n"
        keep = max(room - len(note.encode("utf-8")), 0)
        # Cut on a character boundary so the file stays valid UTF-8.
        data = data[:keep].decode("utf-8", errors="ignore").encode("utf-8")
        data += note.encode("utf-8") if keep else b""
    with path.open("ab") as handle:
        handle.write(data)


def write_outputs(path: Path, outputs: Mapping[str, str]) -> None:
    """Append step outputs to `path` (`$GITHUB_OUTPUT`), multi-line values as heredocs."""
    lines: list[str] = []
    for name, value in outputs.items():
        value = redact(value)
        if not _OUTPUT_NAME_RE.fullmatch(name):
            raise GitHubError(f"output name {name!r} is not allowed")
        if "\n" in value or "\r" in value:
            delimiter = f"ghadelimiter_{uuid.uuid4()}"
            while delimiter in value:
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
            lines.append(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")
        else:
            lines.append(f"{name}={value}\n")
    with path.open("a", encoding="utf-8", newline="") as handle:
        handle.write("".join(lines))
