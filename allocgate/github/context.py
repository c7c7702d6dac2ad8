"""Where allocgate talks to GitHub, about which pull request, with which token:
read once from the variables GitHub Actions sets."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allocgate.errors import GitHubError
from allocgate.github.redact import register_secret

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_SERVER_URL = "https://github.com"

_REPOSITORY_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]+")


def run_url(server_url: str, repository: str, run_id: str) -> str:
    """The web page of a workflow run."""
    return f"{server_url.rstrip('/')}/{repository}/actions/runs/{run_id}"


def run_url_from_env(env: Mapping[str, str]) -> str | None:
    """The link to this workflow run, when running in GitHub Actions."""
    repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        return None
    return run_url(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL, repo, run_id)


@dataclass(frozen=True)
class GitHubContext:
    """Where to talk to GitHub, about which pull request, with which token."""

    api_url: str
    """REST API root without a trailing slash (`GITHUB_API_URL`; differs on GHES)."""
    repository: str
    """`owner/name`."""
    pr_number: int
    """The pull request (an issue number) that carries the comment."""
    token: str = field(repr=False)
    """Never printed: excluded from repr and redacted from every error message."""
    server_url: str = DEFAULT_SERVER_URL
    run_id: str | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        pr: int | None = None,
        token_env: str = "GITHUB_TOKEN",
    ) -> GitHubContext:
        """Build the context from the variables GitHub Actions sets.

        `pr` wins over the event payload; a `workflow_run` event carries no
        pull request of its own, so there the caller must pass it.
        """
        raw = env.get(token_env, "")
        register_secret(raw)
        # A token read from a file usually ends in a newline; a header cannot hold one.
        token = raw.strip()
        if not token:
            raise GitHubError(
                f"environment variable {token_env} is not set or empty: "
                "allocgate needs a token to talk to the GitHub API"
            )
        if not token.isprintable() or any(c.isspace() for c in token):
            raise GitHubError(
                f"environment variable {token_env} holds whitespace or control characters "
                "inside the token (not shown): check how it was written"
            )
        repository = env.get("GITHUB_REPOSITORY", "")
        if not repository:
            raise GitHubError(
                "environment variable GITHUB_REPOSITORY is not set: expected owner/name"
            )
        if not _REPOSITORY_RE.fullmatch(repository):
            raise GitHubError(
                f"environment variable GITHUB_REPOSITORY is {repository!r}: expected owner/name"
            )
        if pr is None:
            pr = _pr_number_from_event(env)
        elif pr <= 0:
            raise GitHubError(f"pull request number must be positive, got {pr}")
        return cls(
            api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
            repository=repository,
            pr_number=pr,
            token=token,
            server_url=(env.get("GITHUB_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/"),
            run_id=env.get("GITHUB_RUN_ID") or None,
        )

    @property
    def run_url(self) -> str | None:
        """The web page of this workflow run, or None outside of Actions."""
        if self.run_id is None:
            return None
        return run_url(self.server_url, self.repository, self.run_id)


def _pr_number_from_event(env: Mapping[str, str]) -> int:
    event_name = env.get("GITHUB_EVENT_NAME") or "unknown"
    path = env.get("GITHUB_EVENT_PATH", "")
    if not path:
        raise GitHubError(
            "environment variable GITHUB_EVENT_PATH is not set, so the pull request is unknown: "
            "pass its number explicitly (--pr)"
        )
    number = _pr_number_in_event(_read_event(path))
    if number is None:
        raise GitHubError(
            f"the {event_name} event in GITHUB_EVENT_PATH ({path}) names no pull request: "
            "pass its number explicitly (--pr)"
        )
    return number


def _read_event(path: str) -> Mapping[str, Any]:
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise GitHubError(
            f"cannot read the event file GITHUB_EVENT_PATH={path}: {exc.strerror}"
        ) from exc
    except ValueError as exc:
        raise GitHubError(f"the event file GITHUB_EVENT_PATH={path} is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise GitHubError(f"the event file GITHUB_EVENT_PATH={path} is not a JSON object")
    return event


def _pr_number_in_event(event: Mapping[str, Any]) -> int | None:
    # Keyed on the payload rather than GITHUB_EVENT_NAME: pull_request,
    # pull_request_target and the review events all carry `pull_request`.
    pull_request = event.get("pull_request")
    if isinstance(pull_request, dict):
        return _positive_int(pull_request.get("number"))
    issue = event.get("issue")
    # issue_comment fires for issues too; only an issue with `pull_request` is a PR.
    if isinstance(issue, dict) and issue.get("pull_request"):
        return _positive_int(issue.get("number"))
    return None


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None
