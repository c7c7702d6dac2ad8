"""The base branch's baseline, for telling what a pull request changed in it.

Read from git (`git show <base sha>:<path>`) when the checkout has the commit,
else through the contents API: `actions/checkout` fetches one commit by default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from allocgate import git
from allocgate.baseline import Baseline, _validate, parse_yaml
from allocgate.errors import BaselineError

#: Fetches the baseline at a revision through the API; None when it has none.
Fetch = Callable[[str, str], bytes | None]


def base_sha_from_event(event_path: Path) -> str | None:
    """`pull_request.base.sha` of a pull_request(_target) event; None for other events."""
    try:
        doc = json.loads(event_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pull = doc.get("pull_request") if isinstance(doc, dict) else None
    base = pull.get("base") if isinstance(pull, dict) else None
    sha = base.get("sha") if isinstance(base, dict) else None
    return sha if isinstance(sha, str) and sha else None


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
    return _validate(source, parse_yaml(source, text, BaselineError))
