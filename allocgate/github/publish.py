"""Handing a report to GitHub Actions: the job summary, the step outputs and
(when asked) the sticky pull-request comment."""

from __future__ import annotations

import sys
from pathlib import Path

from allocgate.errors import AllocgateError
from allocgate.github.context import GitHubContext
from allocgate.github.summary import append_step_summary, write_outputs
from allocgate.messages import one_line
from allocgate.render.markdown import comment_marker
from allocgate.report import Report
from allocgate.settings import Settings


def publish(report: Report, body: str, settings: Settings) -> None:
    """Job summary, step outputs and (with ``comment.post``) the sticky PR comment."""
    env = settings.environ
    summary = env.get("GITHUB_STEP_SUMMARY")
    if summary:
        append_step_summary(Path(summary), body)
    outputs = env.get("GITHUB_OUTPUT")
    if outputs:
        write_outputs(
            Path(outputs),
            {
                "regressed": "true" if report.regressed else "false",
                "verdict": report.verdict,
                "report-json": str(settings.report_json.resolve()) if settings.report_json else "",
                "report-md": str(settings.report_md.resolve()) if settings.report_md else "",
            },
        )
    if settings.comment.post:
        post_comment(report, body, settings)


def github_context(settings: Settings) -> GitHubContext:
    """The pull request to comment on; fails on a missing token or PR number."""
    return GitHubContext.from_env(
        settings.environ, pr=settings.comment.pr, token_env=settings.comment.token_env
    )


def upsert_sticky_comment(report: Report, body: str, settings: Settings) -> bool:
    """Posts or updates the sticky comment and says what happened on stderr.

    Returns False when the token may not write (a fork's PR): a warning, not an
    error. Anything that prevents trying at all raises."""
    from allocgate.github.client import make_session
    from allocgate.github.comment import upsert_comment

    ctx = github_context(settings)
    result = upsert_comment(
        make_session(ctx.token, timeout=settings.comment.timeout),
        ctx,
        body,
        marker=comment_marker(settings.comment.id),
        mode=settings.comment.mode,
        regressed=report.regressed,
    )
    forbidden = result.action == "forbidden"
    print(
        f"allocgate: {'warning: ' if forbidden else ''}{one_line(result.message)}", file=sys.stderr
    )
    return not forbidden


def post_comment(report: Report, body: str, settings: Settings) -> bool:
    """For `check --comment`: failures are warnings, never the verdict."""
    try:
        return upsert_sticky_comment(report, body, settings)
    except AllocgateError as exc:
        print(
            "allocgate: warning: could not comment on the pull request: " + one_line(str(exc)),
            file=sys.stderr,
        )
        return False
