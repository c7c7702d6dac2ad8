"""allocgate.github against a fake GitHub API served on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from github_server import ACTIONS_BOT, USER, FakeGitHub

from allocgate.errors import GitHubError
from allocgate.github.client import RetryPolicy, make_session
from allocgate.github.comment import COMMENT_MODES, CommentResult, upsert_comment
from allocgate.github.context import GitHubContext
from allocgate.github.summary import append_step_summary, write_outputs

TOKEN = "ghs_s3cr3tTOKENvalue0123456789"
REPO = "octo/widgets"
PR = 7


def comment_marker(name: str = "default") -> str:
    """The marker as the renderer builds it (the caller's business, not github's)."""
    return f"<!-- allocgate-comment: {name} -->"


MARKER = comment_marker()
COMMENTS = rf"/repos/{REPO}/issues/{PR}/comments"
ONE_COMMENT = rf"/repos/{REPO}/issues/comments/\d+"
OTHER = {"login": "somebody-else", "id": 2, "type": "User"}


class Sleeps:
    """A sleeper that records the waits it was asked for instead of waiting."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def ctx(github: FakeGitHub) -> GitHubContext:
    return GitHubContext(api_url=github.url, repository=REPO, pr_number=PR, token=TOKEN)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with make_session(TOKEN, timeout=5) as s:
        yield s


@pytest.fixture
def retry(sleeps: Sleeps) -> RetryPolicy:
    return RetryPolicy(attempts=4, base_delay=0.5, max_delay=10.0, sleep=sleeps)


def body(text: str, marker: str = MARKER) -> str:
    return f"{marker}\n{text}"


def post(
    session: requests.Session,
    ctx: GitHubContext,
    text: str,
    retry: RetryPolicy,
    *,
    marker: str = MARKER,
    mode: str = "always",
    regressed: bool = True,
) -> CommentResult:
    return upsert_comment(
        session,
        ctx,
        body(text, marker),
        marker=marker,
        mode=mode,
        regressed=regressed,
        retry=retry,
    )


# The sticky comment.


def test_three_runs_leave_one_comment(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    results = [post(session, ctx, f"run {n}", retry) for n in (1, 2, 3)]

    assert [r.action for r in results] == ["created", "updated", "updated"]
    comments = github.comments_on(REPO, PR)
    assert len(comments) == 1
    assert comments[0]["body"] == body("run 3")
    assert {r.comment_id for r in results} == {comments[0]["id"]}
    assert results[0].url == comments[0]["html_url"]
    assert len(github.requests_to("POST")) == 1
    assert len(github.requests_to("PATCH")) == 2


def test_session_sends_github_headers(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    post(session, ctx, "hello", retry)

    for request in github.requests:
        assert request.headers["Authorization"] == f"Bearer {TOKEN}"
        assert request.headers["Accept"] == "application/vnd.github+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
        assert request.headers["User-Agent"].startswith("allocgate/")


def test_earlier_comment_on_page_two_of_three_is_updated(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    for n in range(120):
        github.add_comment(REPO, PR, f"chatter {n}", OTHER)
    ours = github.add_comment(REPO, PR, body("old report"))
    for n in range(129):
        github.add_comment(REPO, PR, f"more chatter {n}", OTHER)

    result = post(session, ctx, "new report", retry)

    assert result.action == "updated"
    assert result.comment_id == ours["id"]
    assert github.comments[ours["id"]]["body"] == body("new report")
    assert len(github.comments_on(REPO, PR)) == 250
    pages = [r.query.get("page", ["1"])[0] for r in github.requests_to("GET", COMMENTS)]
    assert pages == ["1", "2"]  # found on page 2: page 3 is not needed
    assert all(r.query["per_page"] == ["100"] for r in github.requests_to("GET", COMMENTS))


def test_pages_through_every_page_before_creating(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    for n in range(250):
        github.add_comment(REPO, PR, f"chatter {n}", OTHER)

    result = post(session, ctx, "report", retry)

    assert result.action == "created"
    pages = [r.query.get("page", ["1"])[0] for r in github.requests_to("GET", COMMENTS)]
    assert pages == ["1", "2", "3"]


def test_comments_by_others_with_the_marker_are_left_alone(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    quoted = github.add_comment(REPO, PR, f"> {body('their quote')}", OTHER)
    bot = github.add_comment(REPO, PR, body("another bot's"), ACTIONS_BOT)

    result = post(session, ctx, "report", retry)

    assert result.action == "created"
    assert github.comments[quoted["id"]]["body"] == f"> {body('their quote')}"
    assert github.comments[bot["id"]]["body"] == body("another bot's")
    assert len(github.comments_on(REPO, PR)) == 3
    assert github.requests_to("PATCH") == []


def test_actions_token_falls_back_to_bot_comments(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    github.user = None  # GET /user answers 403, as for an installation token
    human = github.add_comment(REPO, PR, body("a human pasted this"), USER)
    ours = github.add_comment(REPO, PR, body("old"), ACTIONS_BOT)

    result = post(session, ctx, "new", retry)

    assert result.action == "updated"
    assert result.comment_id == ours["id"]
    assert github.comments[human["id"]]["body"] == body("a human pasted this")
    assert len(github.requests_to("GET", "/user")) == 1


def test_two_markers_keep_two_comments(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    linux, macos = comment_marker("linux"), comment_marker("macos")
    for run in (1, 2):
        post(session, ctx, f"linux {run}", retry, marker=linux)
        post(session, ctx, f"macos {run}", retry, marker=macos)

    bodies = sorted(c["body"] for c in github.comments_on(REPO, PR))
    assert bodies == [body("linux 2", linux), body("macos 2", macos)]


def test_on_change_skips_an_identical_body(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    first = post(session, ctx, "same", retry, mode="on-change")
    second = post(session, ctx, "same", retry, mode="on-change")
    third = post(session, ctx, "different", retry, mode="on-change")

    assert [first.action, second.action, third.action] == ["created", "unchanged", "updated"]
    assert second.comment_id == first.comment_id
    assert len(github.requests_to("PATCH")) == 1
    assert github.comments_on(REPO, PR)[0]["body"] == body("different")


def test_always_updates_even_an_identical_body(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    post(session, ctx, "same", retry)
    assert post(session, ctx, "same", retry).action == "updated"


def test_on_regression_posts_nothing_without_regression_or_comment(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    result = post(session, ctx, "all good", retry, mode="on-regression", regressed=False)

    assert result.action == "skipped"
    assert result.comment_id is None
    assert github.comments_on(REPO, PR) == []
    assert github.requests_to("POST") == []


def test_on_regression_posts_a_regression(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    result = post(session, ctx, "worse", retry, mode="on-regression", regressed=True)
    assert result.action == "created"


def test_on_regression_updates_an_earlier_comment_when_fixed(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    ours = github.add_comment(REPO, PR, body("regressed!"))

    result = post(session, ctx, "regression gone", retry, mode="on-regression", regressed=False)

    assert result.action == "updated"
    assert github.comments[ours["id"]]["body"] == body("regression gone")


@pytest.mark.parametrize("mode", ["sometimes", ""])
def test_unknown_mode_is_refused(
    ctx: GitHubContext, session: requests.Session, retry: RetryPolicy, mode: str
) -> None:
    with pytest.raises(GitHubError, match="comment mode must be one of always"):
        post(session, ctx, "x", retry, mode=mode)


def test_modes_are_the_documented_three() -> None:
    assert COMMENT_MODES == ("always", "on-change", "on-regression")


def test_body_without_its_marker_is_refused(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    with pytest.raises(GitHubError, match="marker"):
        upsert_comment(session, ctx, "no marker", marker=MARKER, regressed=True, retry=retry)
    assert github.requests == []


# Forks and failures.


@pytest.mark.parametrize("status", [403, 404])
def test_read_only_token_gives_forbidden_not_an_error(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    status: int,
) -> None:
    github.fail(
        "POST", COMMENTS, status, body={"message": "Resource not accessible by integration"}
    )

    result = post(session, ctx, "report", retry)

    assert result.action == "forbidden"
    assert result.message.startswith("warning: the token cannot write comments")
    assert "forks" in result.message
    assert "examples/github/fork-safe-" in result.message
    assert f"HTTP {status}" in result.message
    assert github.comments_on(REPO, PR) == []


def test_forbidden_patch_keeps_the_existing_comment(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    ours = github.add_comment(REPO, PR, body("old"))
    github.fail("PATCH", ONE_COMMENT, 403)

    result = post(session, ctx, "new", retry)

    assert result.action == "forbidden"
    assert result.comment_id == ours["id"]
    assert github.comments[ours["id"]]["body"] == body("old")


def test_other_failures_raise_with_method_path_and_status(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, retry: RetryPolicy
) -> None:
    github.fail("POST", COMMENTS, 422, body={"message": "Validation Failed"})

    with pytest.raises(GitHubError) as info:
        post(session, ctx, "report", retry)

    message = str(info.value)
    assert f"POST /repos/{REPO}/issues/{PR}/comments" in message
    assert "HTTP 422" in message
    assert "Validation Failed" in message
    assert len(github.requests_to("POST")) == 1  # a 422 is not retried


def test_bad_token_raises(
    github: FakeGitHub, ctx: GitHubContext, retry: RetryPolicy, sleeps: Sleeps
) -> None:
    with (
        make_session("wrong") as session,
        pytest.raises(GitHubError, match=r"GET /repos/.*/comments\?per_page=100 failed: HTTP 401"),
    ):
        post(session, ctx, "x", retry)
    assert sleeps.calls == []


def test_502_then_success_is_retried(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
) -> None:
    github.fail("GET", COMMENTS, 502, times=2)
    github.fail("POST", COMMENTS, 503)

    result = post(session, ctx, "report", retry)

    assert result.action == "created"
    assert len(github.comments_on(REPO, PR)) == 1
    assert sleeps.calls == [0.5, 1.0, 0.5]  # exponential per request, reset after success


def test_persistent_5xx_gives_up_after_the_attempts(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
) -> None:
    github.fail("GET", COMMENTS, 500, times=100)

    with pytest.raises(GitHubError, match=r"failed after 4 attempts: HTTP 500"):
        post(session, ctx, "report", retry)

    assert len(github.requests_to("GET", COMMENTS)) == 4
    assert sleeps.calls == [0.5, 1.0, 2.0]


def test_backoff_is_capped(
    github: FakeGitHub, ctx: GitHubContext, session: requests.Session, sleeps: Sleeps
) -> None:
    github.fail("GET", COMMENTS, 502, times=5)
    policy = RetryPolicy(attempts=6, base_delay=1.0, max_delay=3.0, sleep=sleeps)

    assert upsert_comment(session, ctx, body("x"), marker=MARKER, regressed=True, retry=policy)
    assert sleeps.calls == [1.0, 2.0, 3.0, 3.0, 3.0]


@pytest.mark.parametrize(
    ("status", "headers", "message"),
    [
        (403, {"Retry-After": "1"}, "You have exceeded a secondary rate limit"),
        (429, {"Retry-After": "1"}, "Too Many Requests"),
    ],
)
def test_retry_after_is_honoured(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
    status: int,
    headers: dict[str, str],
    message: str,
) -> None:
    github.fail("POST", COMMENTS, status, headers=headers, body={"message": message})

    result = post(session, ctx, "report", retry)

    # The 403 is retried, not taken for a read-only token.
    assert result.action == "created"
    assert sleeps.calls == [1.0]


def test_long_retry_after_is_capped(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
) -> None:
    github.fail("GET", COMMENTS, 429, headers={"Retry-After": "3600"})

    post(session, ctx, "report", retry)

    assert sleeps.calls == [10.0]


def test_secondary_rate_limit_without_retry_after_backs_off(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
) -> None:
    github.fail(
        "POST",
        COMMENTS,
        403,
        body={"message": "You have exceeded a secondary rate limit. Please wait a few minutes."},
    )

    assert post(session, ctx, "report", retry).action == "created"
    assert sleeps.calls == [0.5]


def test_exhausted_rate_limit_waits_for_a_near_reset(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
) -> None:
    reset = int(time.time()) + 2
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}
    github.fail("GET", "/user", 403, headers=headers, body={"message": "API rate limit exceeded"})

    assert post(session, ctx, "report", retry).action == "created"
    assert len(sleeps.calls) == 1
    assert 1.0 <= sleeps.calls[0] <= 3.5


def test_exhausted_rate_limit_with_a_far_reset_fails_at_once(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    sleeps: Sleeps,
) -> None:
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 1800)}
    github.fail("GET", COMMENTS, 403, headers=headers, body={"message": "API rate limit exceeded"})

    with pytest.raises(GitHubError, match="rate limit is exhausted until"):
        post(session, ctx, "report", retry)
    assert sleeps.calls == []


@pytest.mark.github
def test_unreachable_server_is_retried_then_reported(
    retry: RetryPolicy, sleeps: Sleeps, session: requests.Session
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now, so every connection is refused.
    ctx = GitHubContext(
        api_url=f"http://127.0.0.1:{port}", repository=REPO, pr_number=PR, token=TOKEN
    )

    with pytest.raises(GitHubError, match=r"after 4 attempts: could not reach 127\.0\.0\.1"):
        post(session, ctx, "report", retry)
    assert sleeps.calls == [0.5, 1.0, 2.0]


def test_session_timeout_applies_to_every_request(
    github: FakeGitHub, ctx: GitHubContext, sleeps: Sleeps
) -> None:
    github.fail("GET", "/user", 500, delay=1.0, times=2)
    policy = RetryPolicy(attempts=2, base_delay=0.1, sleep=sleeps)
    started = time.monotonic()

    with make_session(TOKEN, timeout=0.2) as session, pytest.raises(GitHubError, match="in time"):
        post(session, ctx, "report", policy)

    assert time.monotonic() - started < 0.9
    assert sleeps.calls == [0.1]  # a GET that timed out is safe to send again


def test_post_that_timed_out_is_not_sent_twice(
    github: FakeGitHub, ctx: GitHubContext, sleeps: Sleeps
) -> None:
    github.fail("POST", COMMENTS, 201, delay=1.0)
    policy = RetryPolicy(attempts=3, sleep=sleeps)

    with make_session(TOKEN, timeout=0.2) as session, pytest.raises(GitHubError, match="in time"):
        post(session, ctx, "report", policy)

    assert len(github.requests_to("POST")) == 1
    assert sleeps.calls == []


class _HostileLinks(http.server.BaseHTTPRequestHandler):
    """Answers every comment page with a `next` link to another host."""

    def do_GET(self) -> None:
        status = 403 if self.path == "/user" else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.send_header("Link", '<http://attacker.invalid/steal?page=2>; rel="next"')
        self.end_headers()
        self.wfile.write(b"[]")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.github
def test_next_page_on_another_host_is_not_followed() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HostileLinks)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    try:
        host, port = server.server_address[:2]
        ctx = GitHubContext(
            api_url=f"http://{host!s}:{port}", repository=REPO, pr_number=PR, token=TOKEN
        )
        with make_session(TOKEN) as session, pytest.raises(GitHubError, match="another host"):
            upsert_comment(
                session,
                ctx,
                body("x"),
                marker=MARKER,
                regressed=True,
                retry=RetryPolicy(sleep=Sleeps()),
            )
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# The token never leaks.


def test_token_appears_in_no_message_repr_or_log(
    github: FakeGitHub,
    ctx: GitHubContext,
    session: requests.Session,
    retry: RetryPolicy,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = [repr(ctx), str(ctx)]
    # A server that echoes the token back must not get it into our messages either.
    github.fail("GET", COMMENTS, 502, times=10, body={"message": f"echo {TOKEN}"})
    github.fail("GET", "/user", 403, body={"message": f"token {TOKEN} is not a user"})
    failures: list[BaseException] = []
    for attempt in range(3):
        try:
            post(session, ctx, f"attempt {attempt}", retry)
        except GitHubError as exc:
            failures.append(exc)
    github.fail("POST", COMMENTS, 403, body={"message": TOKEN})
    forbidden = post(session, ctx, "forbidden", retry)
    texts.append(forbidden.message)
    texts.append(repr(forbidden))

    with pytest.raises(GitHubError) as missing:
        GitHubContext.from_env({"GITHUB_REPOSITORY": REPO}, token_env="MY_TOKEN")
    failures.append(missing.value)
    with pytest.raises(GitHubError) as no_event:
        GitHubContext.from_env({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO})
    failures.append(no_event.value)

    assert len(failures) >= 3
    texts += ["".join(traceback.format_exception(exc)) for exc in failures]
    texts.append(caplog.text)
    assert any("HTTP 502 (echo ***)" in text for text in texts)  # redacted, not dropped
    assert "retrying" in caplog.text
    for text in texts:
        assert TOKEN not in text
    assert "token=" not in repr(ctx)


# The context from the environment.


def write_event(tmp_path: Path, payload: object) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path)


def actions_env(tmp_path: Path, event_name: str, payload: object) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_API_URL": "http://127.0.0.1:9/api/v3/",
        "GITHUB_SERVER_URL": "https://ghes.example",
        "GITHUB_RUN_ID": "123456",
        "GITHUB_EVENT_NAME": event_name,
        "GITHUB_EVENT_PATH": write_event(tmp_path, payload),
    }


@pytest.mark.parametrize("event_name", ["pull_request", "pull_request_target"])
def test_from_env_reads_a_pull_request_event(tmp_path: Path, event_name: str) -> None:
    env = actions_env(tmp_path, event_name, {"action": "opened", "pull_request": {"number": 42}})

    ctx = GitHubContext.from_env(env)

    assert ctx == GitHubContext(
        api_url="http://127.0.0.1:9/api/v3",
        repository=REPO,
        pr_number=42,
        token=TOKEN,
        server_url="https://ghes.example",
        run_id="123456",
    )
    assert ctx.run_url == f"https://ghes.example/{REPO}/actions/runs/123456"


def test_from_env_reads_an_issue_comment_on_a_pull_request(tmp_path: Path) -> None:
    payload = {"issue": {"number": 9, "pull_request": {"url": "https://x"}}, "comment": {}}
    assert GitHubContext.from_env(actions_env(tmp_path, "issue_comment", payload)).pr_number == 9


def test_from_env_refuses_an_issue_comment_on_a_plain_issue(tmp_path: Path) -> None:
    env = actions_env(tmp_path, "issue_comment", {"issue": {"number": 9}, "comment": {}})
    with pytest.raises(GitHubError, match=r"issue_comment event .* names no pull request: pass"):
        GitHubContext.from_env(env)


def test_from_env_explicit_pr_wins_and_workflow_run_needs_it(tmp_path: Path) -> None:
    payload = {"workflow_run": {"id": 1, "pull_requests": []}}
    env = actions_env(tmp_path, "workflow_run", payload)

    with pytest.raises(GitHubError, match=r"workflow_run event .* names no pull request"):
        GitHubContext.from_env(env)
    assert GitHubContext.from_env(env, pr=5).pr_number == 5

    pr_env = actions_env(tmp_path, "pull_request", {"pull_request": {"number": 42}})
    assert GitHubContext.from_env(pr_env, pr=5).pr_number == 5


def test_from_env_defaults(tmp_path: Path) -> None:
    env = {
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_EVENT_PATH": write_event(tmp_path, {"pull_request": {"number": 1}}),
    }

    ctx = GitHubContext.from_env(env)

    assert ctx.api_url == "https://api.github.com"
    assert ctx.server_url == "https://github.com"
    assert ctx.run_id is None
    assert ctx.run_url is None


def test_from_env_reads_the_named_token_variable(tmp_path: Path) -> None:
    env = {"ALLOCGATE_TOKEN": "other", "GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": REPO}
    assert GitHubContext.from_env(env, pr=3, token_env="ALLOCGATE_TOKEN").token == "other"


@pytest.mark.parametrize(
    ("drop", "message"),
    [
        ("GITHUB_TOKEN", r"^environment variable GITHUB_TOKEN is not set"),
        ("GITHUB_REPOSITORY", r"^environment variable GITHUB_REPOSITORY is not set"),
        ("GITHUB_EVENT_PATH", r"^environment variable GITHUB_EVENT_PATH is not set.*--pr"),
    ],
)
def test_from_env_names_the_missing_variable(tmp_path: Path, drop: str, message: str) -> None:
    env = actions_env(tmp_path, "pull_request", {"pull_request": {"number": 1}})
    del env[drop]

    with pytest.raises(GitHubError, match=message) as info:
        GitHubContext.from_env(env)
    assert "\n" not in str(info.value)


def test_from_env_treats_an_empty_token_as_missing(tmp_path: Path) -> None:
    env = actions_env(tmp_path, "pull_request", {"pull_request": {"number": 1}})
    env["GITHUB_TOKEN"] = ""
    with pytest.raises(GitHubError, match="GITHUB_TOKEN is not set or empty"):
        GitHubContext.from_env(env)


@pytest.mark.parametrize("content", ["not json", "[1, 2]"])
def test_from_env_reports_a_bad_event_file(tmp_path: Path, content: str) -> None:
    env = actions_env(tmp_path, "pull_request", {})
    Path(env["GITHUB_EVENT_PATH"]).write_text(content, encoding="utf-8")
    with pytest.raises(GitHubError, match=r"GITHUB_EVENT_PATH=.*event\.json"):
        GitHubContext.from_env(env)


def test_from_env_reports_a_missing_event_file(tmp_path: Path) -> None:
    env = actions_env(tmp_path, "pull_request", {})
    env["GITHUB_EVENT_PATH"] = str(tmp_path / "gone.json")
    with pytest.raises(GitHubError, match="cannot read the event file"):
        GitHubContext.from_env(env)


def test_from_env_refuses_a_malformed_repository(tmp_path: Path) -> None:
    with pytest.raises(GitHubError, match="expected owner/name"):
        GitHubContext.from_env({"GITHUB_TOKEN": TOKEN, "GITHUB_REPOSITORY": "widgets"}, pr=1)


def test_context_from_env_drives_the_fake(
    github: FakeGitHub, tmp_path: Path, session: requests.Session, retry: RetryPolicy
) -> None:
    env = actions_env(tmp_path, "pull_request", {"pull_request": {"number": PR}})
    env["GITHUB_API_URL"] = github.url

    post(session, GitHubContext.from_env(env), "via env", retry)

    assert [c["body"] for c in github.comments_on(REPO, PR)] == [body("via env")]


# Step summary and outputs.


def test_step_summary_appends(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# earlier step\n", encoding="utf-8")

    append_step_summary(summary, "## allocgate\n| a | b |")
    append_step_summary(summary, "second ✓\n")

    assert summary.read_text(encoding="utf-8") == (
        "# earlier step\n## allocgate\n| a | b |\nsecond ✓\n"
    )


def test_step_summary_stays_under_githubs_limit(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    append_step_summary(summary, "é" * 600_000)

    data = summary.read_bytes()
    assert len(data) <= 1024 * 1024
    assert data.decode("utf-8").endswith("summary limit.*\n")


def parse_github_output(text: str) -> dict[str, str]:
    """Parse $GITHUB_OUTPUT the way the Actions runner does."""
    values: dict[str, str] = {}
    lines = iter(text.split("\n"))
    for line in lines:
        if not line:
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            collected: list[str] = []
            for inner in lines:
                if inner == delimiter:
                    break
                collected.append(inner)
            else:
                raise AssertionError(f"unterminated heredoc for {name}")
            values[name] = "\n".join(collected)
        else:
            name, value = line.split("=", 1)
            values[name] = value
    return values


def test_outputs_round_trip_through_the_runner_format(tmp_path: Path) -> None:
    out = tmp_path / "output"
    out.write_text("earlier=kept\n", encoding="utf-8")
    multi = "line one\nghadelimiter_fake\nline=three <<EOF"

    write_outputs(out, {"regressed": "true", "report-md": multi, "empty": ""})
    write_outputs(out, {"report-json": "/tmp/r.json"})

    text = out.read_text(encoding="utf-8")
    assert parse_github_output(text) == {
        "earlier": "kept",
        "regressed": "true",
        "report-md": multi,
        "empty": "",
        "report-json": "/tmp/r.json",
    }
    assert "report-md<<ghadelimiter_" in text


def test_output_delimiters_are_random(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    write_outputs(first, {"x": "a\nb"})
    write_outputs(second, {"x": "a\nb"})
    assert first.read_text(encoding="utf-8") != second.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["", "has space", "new\nline", "a=b"])
def test_bad_output_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(GitHubError, match="output name"):
        write_outputs(tmp_path / "out", {name: "x"})
