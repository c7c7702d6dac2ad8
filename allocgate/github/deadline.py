"""An HTTP adapter whose requests end within a total deadline, body included.

``requests`` only has timeouts per socket operation: a server that sends one
byte every few seconds never trips them and keeps the caller waiting forever.
Here each request (headers and body) runs in a daemon thread that the caller
stops waiting for at the deadline; the thread, blocked on a socket nobody
reads any more, ends with the process or when the server finally closes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter


class DeadlineExceeded(requests.Timeout):
    """No complete answer (headers and body) arrived before the deadline."""

    def __init__(self, seconds: float, request: requests.PreparedRequest) -> None:
        super().__init__(f"no complete answer within {seconds:g} s", request=request)
        self.seconds = seconds


class DeadlineAdapter(HTTPAdapter):
    """Every request sent through it is answered in full within ``seconds``, or raises
    DeadlineExceeded; each socket read also times out after ``seconds``."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | tuple[float, None] | None = None,
        verify: bool | str = True,
        cert: bytes | str | tuple[bytes | str, bytes | str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        seconds = self.seconds
        if isinstance(timeout, (int, float)):
            seconds = min(seconds, float(timeout))
        outcome: dict[str, Any] = {}
        done = threading.Event()

        def send() -> None:
            try:
                response = HTTPAdapter.send(
                    self,
                    request,
                    stream=stream,
                    timeout=seconds if timeout is None else timeout,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
                if not stream:
                    # Read the body here, inside the deadline, not later in Session.send.
                    response.content  # noqa: B018
                outcome["response"] = response
            except BaseException as exc:  # handed to the waiting thread, raised there
                outcome["error"] = exc
            finally:
                done.set()

        worker = threading.Thread(target=send, name="allocgate-http", daemon=True)
        worker.start()
        # A little past the read timeout, so a silent server still reports a read
        # timeout (worth a retry) and only a slow one hits the deadline.
        if not done.wait(seconds * 1.1 + 0.05):
            raise DeadlineExceeded(seconds, request)
        error = outcome.get("error")
        if error is not None:
            raise error
        response: requests.Response = outcome["response"]
        return response
