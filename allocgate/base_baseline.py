"""The base branch's baseline, for telling what a pull request changed in it.

Read from git (`git show <base sha>:<path>`) when the checkout has the commit,
else through the contents API: `actions/checkout` fetches one commit by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

from allocgate import git
from allocgate.baseline import Baseline
from allocgate.baseline_change import WorkloadChange, baseline_changes
from allocgate.baseline_file import parse_baseline
from allocgate.config import Config
from allocgate.errors import AllocgateError, BaselineError
from allocgate.github.context import DEFAULT_API_URL
from allocgate.settings import Settings

#: Fetches the baseline at a revision through the API; None when it has none.
Fetch = Callable[[str, str], bytes | None]


def read_base_baseline(cwd: Path, baseline: Path, rev: str, fetch: Fetch | None) -> Baseline:
    """The baseline file as it is at `rev`; an empty one when `rev` has none."""
    path = git.repository_path(cwd, baseline)
    source = Path(f"{rev[:12]}:{path}")
    if git.has_commit(cwd, rev):
        data = git.show(cwd, rev, path)
    elif fetch is not None:
        data = fetch(path, rev)
    else:
        raise BaselineError(
            f"commit {rev[:12]} is not in the checkout and there is no GitHub token to ask for "
            f"its {path}: fetch it (actions/checkout with fetch-depth: 0) or set GITHUB_TOKEN"
        )
    if data is None:
        return Baseline(source, {})
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BaselineError(f"{source}: not UTF-8: {exc}") from None
    return parse_baseline(text, source)


def pull_request_event(env: Mapping[str, str]) -> tuple[str, int] | None:
    """(base sha, number) of the pull request in GITHUB_EVENT_PATH, if the event has one."""
    path = env.get("GITHUB_EVENT_PATH")
    if not path:
        return None
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pull = doc.get("pull_request") if isinstance(doc, dict) else None
    if not isinstance(pull, dict):
        return None
    base = pull.get("base")
    sha = base.get("sha") if isinstance(base, dict) else None
    number = pull.get("number")
    if not isinstance(sha, str) or not sha or not isinstance(number, int) or number <= 0:
        return None
    return sha, number


def _api_fetch(env: Mapping[str, str], token_env: str, number: int) -> Fetch | None:
    """Reads a file at a revision through the contents API, when Actions gave a token."""
    from allocgate.github import bless_api
    from allocgate.github.client import DEFAULT_RETRY, ApiClient, make_session
    from allocgate.github.context import GitHubContext

    token = env.get(token_env)
    repository = env.get("GITHUB_REPOSITORY")
    if not token or not repository:
        return None
    ctx = GitHubContext(
        api_url=(env.get("GITHUB_API_URL") or DEFAULT_API_URL).rstrip("/"),
        repository=repository,
        pr_number=number,
        token=token,
    )
    client = ApiClient(make_session(token), ctx, DEFAULT_RETRY)

    def fetch(path: str, rev: str) -> bytes | None:
        remote = bless_api.get_file(client, repository, path, rev)
        return remote.content if remote else None

    return fetch


def changes_for(
    settings: Settings, config: Config, head: Baseline
) -> tuple[tuple[WorkloadChange, ...], tuple[str, ...]]:
    """The baseline's changes against `--base` or the pull request's base; and warnings.

    Outside a pull request (and without `--base`) there is nothing to compare.
    A base that cannot be read is a warning, unless reasons are required: then
    not knowing whether one is missing must not pass.
    """
    event = pull_request_event(settings.environ)
    rev = settings.base or (event[0] if event else None)
    if rev is None:
        return (), ()
    strict = settings.require_reason or config.require_reason
    cwd = config.path.parent
    if settings.base is None and not strict and git.git(cwd, "rev-parse", "--git-dir") is None:
        # A project outside any git checkout (a test's scratch copy under a PR's
        # workflow) has no base to compare with; saying so on every run is noise.
        return (), ()
    fetch = None
    if event is not None and settings.base is None:
        fetch = _api_fetch(settings.environ, settings.comment.token_env, event[1])
    try:
        base = read_base_baseline(cwd, config.baseline, rev, fetch)
    except AllocgateError as exc:
        if strict:
            raise
        return (), (f"cannot tell how the baseline changed since {rev[:12]}: {exc}",)
    gated = {name: w.gate.metrics for name, w in config.workloads.items()}
    return baseline_changes(base, head, gated), ()
