"""Rust symbol demangling, in the style of rustc-demangle's alternate (``{:#}``) format.

Back ends hand us function names in three shapes:

* raw legacy symbols, ``_ZN6reqctx4main17h4ea3e6cbe49eb36cE``;
* legacy symbols that a C++ demangler has already taken apart (heaptrack runs
  ``__cxa_demangle`` on every ``_Z`` name), ``reqctx::main::h4ea3e6cbe49eb36c``,
  still carrying the hash and the ``$LT$``-style escapes;
* v0 symbols, ``_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc``, which heaptrack leaves raw.

All three come out the way dhat-rs prints frames: no ``::h<hash>``, no crate
disambiguators, so the same function has the same name in every back end and
every build. Anything that is not a Rust symbol is returned unchanged, and so is
a Rust-looking symbol that does not parse: a profile must never fail to load
because of one odd name.

The v0 part follows the grammar of the v0 mangling spec and prints like
rustc-demangle (v0.rs). Punycode identifiers are decoded with Python's
``punycode`` codec; one that does not decode prints as ``punycode{...}``, as
rustc-demangle does.
"""

from __future__ import annotations

import re

from allocgate.frames import SYMBOL_HASH_RE
from allocgate.profilers.demangle_v0 import demangle_v0, suffix_ok
from allocgate.profilers.demangle_v0_cursor import Invalid

__all__ = ["demangle", "strip_hash"]

# __cxa_demangle renders LLVM's `.llvm.NNN` / `.cold` name suffixes as `[clone .x]`.
_CXX_LEGACY_RE = re.compile(r"^(?P<path>.+?)::h[0-9a-f]{16}(?P<clones>(?: \[clone \.[^\]]+\])*)$")
_CLONE_RE = re.compile(r" \[clone \.([^\]]+)\]")
_LEGACY_ESCAPE_RE = re.compile(r"\$(?:LT|GT|SP|BP|RF|LP|RP|C|u[0-9a-f]+)\$")
_LLVM_SUFFIX_RE = re.compile(r"\.llvm\.[0-9A-F@]*$")

_LEGACY_ESCAPES = {
    "SP": "@",
    "BP": "*",
    "RF": "&",
    "LT": "<",
    "GT": ">",
    "LP": "(",
    "RP": ")",
    "C": ",",
}


def strip_hash(name: str) -> str:
    """Removes a trailing legacy ``::h<16 hex digits>`` hash from a demangled name."""
    return SYMBOL_HASH_RE.sub("", name)


def demangle(symbol: str) -> str:
    """Returns the readable form of a Rust symbol, or ``symbol`` itself for anything else."""
    try:
        result = _demangle(symbol)
    except (Invalid, RecursionError, ValueError):
        # ValueError: a length with more digits than int() takes, or a non-ASCII digit.
        return symbol
    return symbol if result is None else result


def _demangle(symbol: str) -> str | None:
    name = _LLVM_SUFFIX_RE.sub("", symbol)
    for prefix in ("_ZN", "__ZN"):
        if name.startswith(prefix):
            return _demangle_legacy_raw(name[len(prefix) :])
    for prefix in ("_R", "__R"):
        if name.startswith(prefix) and name[len(prefix) : len(prefix) + 1].isupper():
            return demangle_v0(name[len(prefix) :])
    return _demangle_legacy_cxx(symbol)


# --- legacy -----------------------------------------------------------------------


def _demangle_legacy_raw(inner: str) -> str | None:
    if not inner.isascii():
        return None
    elements: list[str] = []
    pos = 0
    while True:
        if pos >= len(inner):
            return None
        if inner[pos] == "E":
            pos += 1
            break
        start = pos
        while pos < len(inner) and inner[pos].isdigit():
            pos += 1
        if start == pos:
            return None
        length = int(inner[start:pos])
        if pos + length >= len(inner):
            return None
        elements.append(inner[pos : pos + length])
        pos += length
    rest = inner[pos:]
    if not elements or not suffix_ok(rest):
        return None
    return _legacy_path(elements) + rest


def _demangle_legacy_cxx(name: str) -> str | None:
    match = _CXX_LEGACY_RE.match(name)
    if match is not None:
        path = match.group("path")
        suffix = "".join(
            "." + clone
            for clone in _CLONE_RE.findall(match.group("clones"))
            if not clone.startswith("llvm.")
        )
    elif _LEGACY_ESCAPE_RE.search(name) and " " not in name and "(" not in name:
        path, suffix = name, ""
    else:
        return None
    return _legacy_path(path.split("::"), has_hash=False) + suffix


def _is_rust_hash(element: str) -> bool:
    return (
        len(element) > 1
        and element[0] == "h"
        and all(c in "0123456789abcdefABCDEF" for c in element[1:])
    )


def _legacy_path(elements: list[str], *, has_hash: bool = True) -> str:
    if has_hash and len(elements) > 1 and _is_rust_hash(elements[-1]):
        elements = elements[:-1]
    return "::".join(_legacy_element(element) for element in elements)


def _legacy_element(element: str) -> str:
    rest = element[1:] if element.startswith("_$") else element
    out: list[str] = []
    while rest:
        if rest[0] == ".":
            if rest.startswith(".."):
                out.append("::")
                rest = rest[2:]
            else:
                out.append(".")
                rest = rest[1:]
        elif rest[0] == "$":
            end = rest.find("$", 1)
            if end < 0:
                break
            escape = rest[1:end]
            text = _LEGACY_ESCAPES.get(escape)
            if text is None:
                text = _legacy_unicode_escape(escape)
                if text is None:
                    break  # an unknown escape: keep the remainder as it is
            out.append(text)
            rest = rest[end + 1 :]
        else:
            cut = min((i for i in (rest.find("$"), rest.find(".")) if i >= 0), default=len(rest))
            out.append(rest[:cut])
            rest = rest[cut:]
    out.append(rest)
    return "".join(out)


def _legacy_unicode_escape(escape: str) -> str | None:
    digits = escape[1:]
    if not escape.startswith("u") or not digits or any(c not in "0123456789abcdef" for c in digits):
        return None
    code = int(digits, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    char = chr(code)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return None
    return char
