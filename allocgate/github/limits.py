"""What GitHub accepts."""

from __future__ import annotations

#: GitHub rejects longer comment bodies with a bare 422.
MAX_COMMENT_CHARS = 65536

#: GitHub drops a step summary over 1 MiB with an error instead of showing it.
MAX_STEP_SUMMARY_BYTES = 1024 * 1024
