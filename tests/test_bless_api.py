"""The REST calls of a bless from a comment, against the loopback GitHub stand-in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from github_bless_server import FakeGitHubRepo, blob_sha

from allocgate.errors import GitHubError
from allocgate.github import bless_api
from allocgate.github.client import ApiClient, RetryPolicy, make_session
from allocgate.github.context import GitHubContext

pytestmark = pytest.mark.github

TOKEN = "ghs_bless_api_token_abcdef"
REPO = "octo/widgets"
PATH = "sub dir/allocgate-baseline.yml"


@pytest.fixture
def github() -> Iterator[FakeGitHubRepo]:
    server = FakeGitHubRepo(TOKEN, REPO).start()
    server.add_branch("feature", "1" * 40, {PATH: b"version: 1\n"})
    yield server
    server.stop()


@pytest.fixture
def client(github: FakeGitHubRepo) -> Iterator[ApiClient]:
    ctx = GitHubContext(api_url=github.url, repository=REPO, pr_number=7, token=TOKEN)
    sleeps: list[float] = []
    with make_session(TOKEN, timeout=5) as session:
        yield ApiClient(session, ctx, RetryPolicy(attempts=3, sleep=sleeps.append))


def test_permission_of_a_collaborator_and_of_a_stranger(
    github: FakeGitHubRepo, client: ApiClient
) -> None:
    github.grant("mia", "write", "maintain")
    assert bless_api.collaborator_permission(client, REPO, "mia")["role_name"] == "maintain"
    assert bless_api.collaborator_permission(client, REPO, "nobody") == {
        "permission": "none",
        "role_name": "none",
    }


def test_pull_request(github: FakeGitHubRepo, client: ApiClient) -> None:
    github.open_pull(7, head_ref="feature", head_sha="a" * 40, base_sha="b" * 40)
    pull = bless_api.get_pull(client, REPO, 7)
    assert (pull.head_ref, pull.head_sha, pull.base_sha, pull.is_fork) == (
        "feature",
        "a" * 40,
        "b" * 40,
        False,
    )
    with pytest.raises(GitHubError, match="404"):
        bless_api.get_pull(client, REPO, 8)


def test_get_then_put_commits_to_the_branch(github: FakeGitHubRepo, client: ApiClient) -> None:
    remote = bless_api.get_file(client, REPO, PATH, "feature")
    assert remote is not None
    assert remote.content == b"version: 1\n"
    assert remote.sha == blob_sha(b"version: 1\n")
    (get,) = github.requests_to("GET", r"/repos/.*/contents/.*")
    assert get.path == f"/repos/{REPO}/contents/sub%20dir/allocgate-baseline.yml"
    assert get.query == {"ref": ["feature"]}

    commit = bless_api.put_file(
        client, REPO, PATH, branch="feature", content=b"new\n", sha=remote.sha, message="m"
    )

    branch = github.branches["feature"]
    assert branch.files[PATH] == b"new\n"
    assert commit.sha == branch.head
    assert commit.url is not None
    assert branch.commits[0]["message"] == "m"
    assert bless_api.get_file(client, REPO, "missing.yml", "feature") is None


def test_a_stale_sha_is_a_409_and_not_retried(github: FakeGitHubRepo, client: ApiClient) -> None:
    with pytest.raises(bless_api.BranchMoved, match="409"):
        bless_api.put_file(
            client, REPO, PATH, branch="feature", content=b"x", sha="0" * 40, message="m"
        )
    assert len(github.requests_to("PUT")) == 1
    assert github.branches["feature"].files[PATH] == b"version: 1\n"


def test_reply_and_reaction(github: FakeGitHubRepo, client: ApiClient) -> None:
    url = bless_api.post_comment(client, REPO, 7, "hello")
    assert url is not None
    assert [c["body"] for c in github.comments_on(REPO, 7)] == ["hello"]
    bless_api.add_reaction(client, REPO, 555, "+1")
    assert github.reactions == [(555, "+1")]
    with pytest.raises(GitHubError, match="unknown reaction"):
        bless_api.add_reaction(client, REPO, 555, "thumbs")


def test_a_non_json_answer_is_an_error_without_the_token(
    github: FakeGitHubRepo, client: ApiClient
) -> None:
    github.fail("GET", r"/repos/.*/pulls/7", 200, body=b"<html>" + TOKEN.encode())
    with pytest.raises(GitHubError) as raised:
        bless_api.get_pull(client, REPO, 7)
    assert "expected a JSON object" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_requests_authenticate(github: FakeGitHubRepo, client: ApiClient) -> None:
    bless_api.collaborator_permission(client, REPO, "x")
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in github.requests)
