"""Where a callsite is, for a pull request: workflow-command annotations and blob links.

GitHub puts ``::error file=PATH,line=N::…`` on that line of the diff when PATH
is relative to the repository's root, and a link to the line at the PR's head
commit lets a reader jump from the comment to the code. Only
``ActionsContext.from_env`` reads the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allocgate.compare import IMPROVED, Comparison
from allocgate.escape import workflow_command
from allocgate.process import command_output

DEFAULT_SERVER_URL = "https://github.com"


@dataclass(frozen=True)
class Location:
    """A callsite's source line: the path relative to the repository, and the line."""

    path: str
    line: int | None


def split_location(location: str | None) -> tuple[str, int | None] | None:
    """``src/main.rs:166`` → (``src/main.rs``, 166); ``main.rs`` → (``main.rs``, None)."""
    if not location:
        return None
    path, sep, line = location.rpartition(":")
    if sep and line.isdigit() and path:
        return path, int(line)
    return location, None


def git_toplevel(cwd: Path) -> Path | None:
    out = (command_output(["git", "rev-parse", "--show-toplevel"], cwd=cwd) or "").strip()
    return Path(out) if out else None


def repository_root(directory: Path, env: Mapping[str, str]) -> Path | None:
    """The checkout ``directory`` is in: ``GITHUB_WORKSPACE`` when it holds it, else
    the git top level. Locations are kept relative to it, so a baseline blessed on
    a laptop and one blessed in CI name the same files."""
    workspace = env.get("GITHUB_WORKSPACE")
    if workspace:
        root = Path(workspace).resolve()
        if directory.resolve().is_relative_to(root):
            return root
    return git_toplevel(directory)


def head_sha(env: Mapping[str, str]) -> str | None:
    """The commit whose lines the PR shows: the event's ``pull_request.head.sha``.

    On a pull request ``GITHUB_SHA`` is the merge commit, whose line numbers
    are not the ones in the PR's diff; it is used only outside pull requests.
    """
    path = env.get("GITHUB_EVENT_PATH")
    if path:
        try:
            event: Any = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            event = None
        pr = event.get("pull_request") if isinstance(event, dict) else None
        head = pr.get("head") if isinstance(pr, dict) else None
        sha = head.get("sha") if isinstance(head, dict) else None
        if isinstance(sha, str) and sha:
            return sha
    return env.get("GITHUB_SHA") or None


@dataclass(frozen=True)
class ActionsContext:
    """What the environment says about the repository and the run."""

    in_actions: bool
    """``GITHUB_ACTIONS=true``: workflow commands are understood only there."""
    root: Path | None
    """``GITHUB_WORKSPACE``, else the git top-level directory: paths are relative to it."""
    server_url: str = DEFAULT_SERVER_URL
    repository: str | None = None
    sha: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], cwd: Path) -> ActionsContext:
        root = repository_root(cwd, env)
        return cls(
            in_actions=env.get("GITHUB_ACTIONS") == "true",
            root=root.resolve() if root is not None else None,
            server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
            repository=env.get("GITHUB_REPOSITORY") or None,
            sha=head_sha(env),
        )

    def locate(self, location: str | None, bases: Sequence[Path] = ()) -> Location | None:
        """The callsite's file relative to the repository root, when it is in it.

        A relative path from the profile is tried against each of ``bases`` (the
        directories cargo compiled from: the workspace roots of the workloads),
        then against the root; files outside the repository (std, dependencies)
        have no location here.
        """
        split = split_location(location)
        if split is None or self.root is None:
            return None
        path, line = split
        candidates = (
            [Path(path)] if os.path.isabs(path) else [b / path for b in (*bases, self.root)]
        )
        for candidate in candidates:
            try:
                resolved = candidate.resolve()
                relative = resolved.relative_to(self.root)
            except (OSError, ValueError):
                continue
            if resolved.is_file():
                return Location(relative.as_posix(), line)
        return None

    def blob_url(self, where: Location) -> str | None:
        """``{server}/{owner/repo}/blob/{sha}/{path}#L{line}``, or None outside GitHub."""
        if self.repository is None or self.sha is None:
            return None
        from urllib.parse import quote

        anchor = f"#L{where.line}" if where.line else ""
        return f"{self.server_url}/{self.repository}/blob/{self.sha}/{quote(where.path)}{anchor}"


@dataclass(frozen=True)
class Annotation:
    """One finding to put on a line of the pull request."""

    level: str
    """``error`` (a regression) or ``notice`` (an improvement)."""
    where: Location | None
    """None when the site is outside the repository: the annotation goes on the run."""
    title: str
    message: str

    def command(self) -> str:
        return workflow_command(
            self.level,
            self.message,
            file=self.where.path if self.where else None,
            line=self.where.line if self.where else None,
            title=self.title,
        )


def comparison_annotations(
    c: Comparison, ctx: ActionsContext, bases: Sequence[Path] = (), bless: str = ""
) -> list[Annotation]:
    """An error per regressed callsite and a notice per improved one, at its current line."""
    from allocgate.metrics import METRICS, format_delta, format_value

    found = []
    for site in c.sites:
        if site.is_regression:
            level, verb, metrics = "error", "grew", site.regressed_metrics
        elif site.status == IMPROVED:
            level, verb, metrics = "notice", "shrank", c.settings.metrics
        else:
            continue
        changes = []
        for metric in metrics:
            base, cur = site.value(metric, "baseline"), site.value(metric, "current")
            if base is None or cur is None:
                shown = format_value(metric, cur or base or 0, c.units)
                changes.append(f"{METRICS[metric].title} {shown} (new)")
                continue
            pct = f", {(cur - base) / base * 100:+.1f}%" if base else ""
            changes.append(
                f"{METRICS[metric].title} {format_value(metric, base, c.units)} → "
                f"{format_value(metric, cur, c.units)} "
                f"({format_delta(metric, cur - base, c.units)}{pct})"
            )
        message = f"{c.workload}: {site.key} {verb}: " + "; ".join(changes)
        if level == "error" and bless:
            message += f". If intended: {bless}"
        found.append(
            Annotation(
                level=level,
                where=ctx.locate(site.location, bases),
                title=f"allocgate: {site.key} {verb}",
                message=message,
            )
        )
    return found


def workflow_commands(ctx: ActionsContext, annotations: Iterable[Annotation]) -> list[str]:
    """The lines to print: none at all outside GitHub Actions."""
    if not ctx.in_actions:
        return []
    return [a.command() for a in annotations]
