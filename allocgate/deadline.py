"""HTTP requests with a total deadline, not only a timeout per socket read.

A server that sends one byte every few seconds never trips a read timeout, so
``requests`` alone would wait for it forever. Each request runs in a daemon
thread that the caller stops waiting for at the deadline; the thread, blocked
on a socket nobody reads any more, ends with the process.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests


class DeadlineExceeded(requests.Timeout):
    """No complete answer (headers and body) arrived before the deadline."""


def request_within(
    session: requests.Session, method: str, url: str, seconds: float, **kwargs: Any
) -> requests.Response:
    """``session.request(method, url, **kwargs)``, finished within ``seconds`` or raising
    DeadlineExceeded. The body is read inside the deadline too."""
    started = time.monotonic()
    # Reads also time out on their own, so a silent server frees the thread early.
    kwargs.setdefault("timeout", (min(seconds, 10.0), seconds))
    kwargs["stream"] = False
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def send() -> None:
        try:
            outcome["response"] = session.request(method, url, **kwargs)
        except BaseException as exc:  # handed to the waiting thread, re-raised there
            outcome["error"] = exc
        finally:
            done.set()

    worker = threading.Thread(target=send, name=f"allocgate-http-{method}", daemon=True)
    worker.start()
    if not done.wait(max(seconds - (time.monotonic() - started), 0.0)):
        raise DeadlineExceeded(f"no complete answer within {seconds:g} s")
    error = outcome.get("error")
    if error is not None:
        raise error
    response: requests.Response = outcome["response"]
    return response
