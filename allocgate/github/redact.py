"""Secrets never reach a person: every form a token can take in text is replaced.

A token read from a file often ends in a newline; an error that shows it in a
``repr`` escapes that newline, a URL quotes it, Basic auth base64-encodes it.
Each of those forms is redacted, wherever the text goes (errors, logs, reports,
the step summary). Secrets are registered once, when they are read.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
_MIN_LENGTH = 4
"""Shorter strings would mask ordinary words; no real token is that short."""
_secrets: set[str] = set()
_forms: tuple[str, ...] = ()
_lock = threading.Lock()


def token_forms(token: str) -> set[str]:
    """The spellings of ``token`` that can appear in a message."""
    forms: set[str] = set()
    for raw in {token, token.strip()}:
        if len(raw.strip()) < _MIN_LENGTH:
            continue
        forms.add(raw)
        forms.add(repr(raw)[1:-1])
        forms.add(ascii(raw)[1:-1])
        forms.add(json.dumps(raw)[1:-1])
        forms.add(quote(raw, safe=""))
        forms.add(quote_plus(raw, safe=""))
        forms.add(quote(raw))
        forms.add(raw.encode("unicode_escape").decode("ascii"))
        for user in ("", "x-access-token", "token", "git"):
            forms.add(base64.b64encode(f"{user}:{raw}".encode()).decode("ascii").rstrip("="))
        forms.add(base64.b64encode(raw.encode()).decode("ascii").rstrip("="))
    forms.discard("")
    return {f for f in forms if len(f) >= _MIN_LENGTH}


def register_secret(token: str | None) -> None:
    """From now on, ``token`` in any form is masked by :func:`redact`."""
    global _forms
    if not token or len(token.strip()) < _MIN_LENGTH:
        return
    with _lock:
        if token in _secrets:
            return
        _secrets.add(token)
        forms: set[str] = set(_forms)
        for secret in _secrets:
            forms |= token_forms(secret)
        # Longest first, so a form that contains another is masked whole.
        _forms = tuple(sorted(forms, key=len, reverse=True))


def redact(text: str, *secrets: str) -> str:
    """``text`` with every registered secret (and ``secrets``) masked."""
    forms = _forms
    if secrets:
        extra: set[str] = set()
        for secret in secrets:
            if secret and len(secret.strip()) >= _MIN_LENGTH:
                extra |= token_forms(secret)
        forms = tuple(sorted(set(forms) | extra, key=len, reverse=True))
    for form in forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks registered secrets in every log record passing through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _forms:
            message = record.getMessage()
            cleaned = redact(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return True
