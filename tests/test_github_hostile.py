"""The GitHub side against hostile servers and awkward tokens, on loopback.

A server that drips one byte at a time, one that answers 200 with HTML, one
that echoes the token back in every spelling: ``allocgate comment`` ends in
time, with one line, and never shows the token.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import DHAT_RS, ROOT
from github_server import FakeGitHub

from allocgate.errors import GitHubError
from allocgate.github.client import RetryPolicy, make_session
from allocgate.github.comment import upsert_comment
from allocgate.github.context import GitHubContext

TOKEN = "ghs_h4rdenTokenValue0123456789"
REPO = "octo/rust-service"
PR = 7


class DripServer:
    """Accepts connections and answers one byte every ``interval`` seconds, forever."""

    def __init__(self, interval: float = 0.3) -> None:
        self.interval = interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> DripServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + b"X-Pad: " * 10_000
        with conn:
            conn.recv(65536)
            for byte in answer:
                if self._stop.is_set():
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(self.interval)


@pytest.fixture
def report(tmp_path: Path) -> Path:
    from conftest import run_cli

    code, stdout, stderr = run_cli(
        "diff",
        DHAT_RS / "reqctx-base.json",
        DHAT_RS / "reqctx-regressed.json",
        "--workload",
        "reqctx",
        "--format",
        "json",
    )
    assert code == 1, stderr
    path = tmp_path / "report.json"
    path.write_text(stdout, encoding="utf-8")
    return path


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    server = FakeGitHub(TOKEN).start()
    yield server
    server.stop()


def comment(
    api_url: str, report: Path, tmp_path: Path, *extra: str, token: str = TOKEN
) -> tuple[int, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "GITHUB_API_URL": api_url,
            "GITHUB_REPOSITORY": REPO,
            "GITHUB_TOKEN": token,
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
        }
    )
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "allocgate.cli",
            "comment",
            "--report",
            str(report),
            "--pr",
            str(PR),
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.returncode, proc.stderr, time.monotonic() - started


def assert_one_error(code: int, stderr: str) -> str:
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("allocgate: error: ")
    return lines[0]


def test_slow_drip_server_cannot_keep_comment_waiting(report: Path, tmp_path: Path) -> None:
    with DripServer() as server:
        code, stderr, seconds = comment(server.url, report, tmp_path, "--github-timeout", "2")
    line = assert_one_error(code, stderr)
    assert "within 2 s" in line, line
    # Python start-up under a loaded CI machine is most of the margin.
    assert seconds < 2 + 8, seconds


def test_slow_drip_server_and_the_library_deadline() -> None:
    ctx = GitHubContext(api_url="", repository=REPO, pr_number=PR, token=TOKEN)
    with DripServer(interval=0.1) as server:
        ctx = GitHubContext(api_url=server.url, repository=REPO, pr_number=PR, token=TOKEN)
        started = time.monotonic()
        with make_session(TOKEN, timeout=1.0) as session, pytest.raises(GitHubError):
            upsert_comment(
                session,
                ctx,
                "<!-- m -->",
                marker="<!-- m -->",
                regressed=True,
                retry=RetryPolicy(sleep=lambda _: None),
            )
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/user"),
        ("GET", f"/repos/{REPO}/issues/{PR}/comments"),
        ("POST", f"/repos/{REPO}/issues/{PR}/comments"),
    ],
)
def test_a_200_that_is_not_json_is_one_error_line(
    github: FakeGitHub, report: Path, tmp_path: Path, method: str, path: str
) -> None:
    status = 201 if method == "POST" else 200
    github.fail(method, path, status, body=b"<html>Unicorn!</html>")
    code, stderr, _ = comment(github.url, report, tmp_path)
    line = assert_one_error(code, stderr)
    assert "not JSON" in line, line


def test_a_token_read_from_a_file_with_its_newline_works(
    github: FakeGitHub, report: Path, tmp_path: Path
) -> None:
    code, stderr, _ = comment(github.url, report, tmp_path, token=TOKEN + "\n")
    assert code == 0, stderr
    assert len(github.comments_on(REPO, PR)) == 1
    assert TOKEN not in stderr


def test_a_token_with_a_line_break_inside_is_refused_without_showing_it(
    github: FakeGitHub, report: Path, tmp_path: Path
) -> None:
    broken = TOKEN[:10] + "\n" + TOKEN[10:]
    code, stderr, _ = comment(github.url, report, tmp_path, token=broken)
    line = assert_one_error(code, stderr)
    for part in (TOKEN[:10], TOKEN[10:], repr(broken)[1:-1]):
        assert part not in line, line


ECHOES = {
    "raw": TOKEN,
    "repr": repr(TOKEN + "\n"),
    "url-encoded": quote(TOKEN + "\n", safe=""),
    "basic-auth": base64.b64encode(f"x-access-token:{TOKEN}".encode()).decode(),
    "json-escaped": json.dumps(TOKEN + "\n"),
}


@pytest.mark.parametrize("echo", ECHOES.values(), ids=ECHOES.keys())
def test_a_server_echoing_the_token_never_gets_it_printed(
    github: FakeGitHub, report: Path, tmp_path: Path, echo: str
) -> None:
    github.fail("POST", f"/repos/{REPO}/issues/{PR}/comments", 422, body={"message": echo})
    code, stderr, _ = comment(github.url, report, tmp_path, token=TOKEN + "\n")
    line = assert_one_error(code, stderr)
    assert echo not in line
    assert TOKEN not in line
    assert TOKEN[4:20] not in line
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert TOKEN not in summary
