"""Tokens are masked in every form, and error lines stay one line."""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import quote, quote_plus

import pytest

from allocgate.github.redact import MASK, RedactingFilter, redact, register_secret
from allocgate.messages import error_line, one_line

TOKEN = "ghp_Ab+/cD=efGH1234 5678\n"
BARE = TOKEN.strip()

FORMS = {
    "raw": TOKEN,
    "stripped": BARE,
    "repr": repr(TOKEN),
    "repr-stripped": repr(BARE),
    "json": json.dumps(TOKEN),
    "url-quoted": quote(TOKEN, safe=""),
    "url-quoted-plus": quote_plus(TOKEN),
    "url-path": quote(BARE),
    "basic-auth": base64.b64encode(f"x-access-token:{BARE}".encode()).decode(),
    "bearer-header": f"{{'Authorization': 'Bearer {TOKEN!r}'}}",
    "with-spaces": f"  {TOKEN}  ",
}


@pytest.mark.parametrize("form", FORMS.values(), ids=FORMS.keys())
def test_every_form_is_masked(form: str) -> None:
    message = f"GET /x failed: header {form} was refused"
    cleaned = redact(message, TOKEN)
    assert MASK in cleaned
    for needle in (BARE, repr(BARE)[1:-1], quote(BARE, safe=""), "ghp_Ab", "1234 5678"):
        assert needle not in cleaned, cleaned


def test_registered_secrets_are_masked_everywhere() -> None:
    secret = "ghs_registeredSecret0001"
    register_secret(secret + "\n")
    assert secret not in redact(f"token={secret!r}")
    assert secret not in one_line(f"oops {quote(secret + chr(10))}")


def test_log_records_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    secret = "ghs_loggedSecret0002"
    register_secret(secret)
    log = logging.getLogger("allocgate.test")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.DEBUG, logger="allocgate.test"):
            log.warning("sending %r to %s", secret, quote(secret))
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert secret not in caplog.text
    assert MASK in caplog.text


def test_short_strings_are_not_secrets() -> None:
    assert redact("a b c", "ab") == "a b c"


@pytest.mark.parametrize(
    "raw",
    [
        "bad\nkey",
        "bad\rkey",
        "bad\r\nkey",
        "bad\u2028key",
        "bad\u2029key",
        "bad\x85key",
        "bad\x0bkey",
        "bad\x0ckey",
        "bad\x1b[31mkey",
        "bad\x00key",
    ],
)
def test_line_breaks_and_controls_never_split_the_line(raw: str) -> None:
    line = error_line("allocgate", f"/tmp/a.yml: workloads.{raw}: unknown key")
    assert len(line.splitlines()) == 1
    assert line.isprintable()
    assert line.startswith("allocgate: error: /tmp/a.yml: workloads.bad")
    assert line.endswith("key: unknown key")


def test_one_line_is_bounded() -> None:
    assert len(one_line("x" * 100_000)) <= 2000
