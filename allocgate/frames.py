"""Stack frames as every back end reports them, before folding."""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The ``::h0123456789abcdef`` suffix of a legacy Rust symbol: differs every build.
SYMBOL_HASH_RE = re.compile(r"::h[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class Frame:
    """One (possibly inlined) frame of an allocation stack."""

    function: str
    """Demangled function name, without the ``::h<hash>`` suffix."""
    file: str | None = None
    """Source file as the back end printed it (absolute, relative or a basename)."""
    line: int | None = None
    """Line number; ``None`` or 0 when unknown."""
    address: int | None = None
    """Instruction address; inlined frames share their physical frame's address."""
    object: str | None = None
    """Binary or shared object, when the back end names it instead of a source file."""
