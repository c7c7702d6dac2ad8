"""Loader for the DHAT JSON format that dhat-rs and Valgrind DHAT both write.

Big programs write profiles of hundreds of megabytes. Decoding the whole document
into Python objects costs many times the file size, so the program points (`pps`,
the bulk of the file) are decoded in slices of a few megabytes and folded as they
go; only the header and the frame table are decoded whole.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from allocgate.callsites import Folder, FoldOptions
from allocgate.errors import ProfileError
from allocgate.frames import Frame
from allocgate.profile import Profile
from allocgate.profilers.symbols import frame_table
from allocgate.schema import show, top_level_key_once

_MODES = {
    "rust-heap": ("dhat-rs", "heap"),
    "rust-ad-hoc": ("dhat-rs", "ad-hoc"),
    "heap": ("valgrind-dhat", "heap"),
    "ad-hoc": ("valgrind-dhat", "ad-hoc"),
}
HEAP_METRICS = ("total_bytes", "total_blocks", "peak_bytes", "end_bytes")
AD_HOC_METRICS = ("total_bytes", "total_blocks")
_PP_FIELDS = {"total_bytes": "tb", "total_blocks": "tbk", "peak_bytes": "gb", "end_bytes": "eb"}
_HEAP_FIELDS = ("tb", "tbk", "gb", "eb")

_PPS_RE = re.compile(rb'"pps"\s*:\s*\[')
_PPS_END_RE = re.compile(rb"\}\s*\]")
_EMPTY_RE = re.compile(rb"\s*\]")
_FRAME_RE = re.compile(r"^(?:0x(?P<addr>[0-9a-fA-F]+): )?(?P<func>.*) \((?P<loc>[^()]*)\)$")
_LOC_RE = re.compile(r"^(?P<file>.*?):(?P<line>\d+)(?::\d+)?$")
_CHUNK = 1 << 21


def looks_like_dhat(head: bytes) -> bool:
    """Whether the first bytes of a file are a DHAT JSON document."""
    return head.lstrip()[:1] == b"{"


def load_dhat(path: Path, options: FoldOptions | None = None) -> Profile:
    """Reads and folds one DHAT JSON profile, validating it as it goes."""
    options = options or FoldOptions()
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc.strerror or exc}") from exc
    if not data.strip():
        raise ProfileError(f"{path}: the profile is empty")
    gc_was_enabled = gc.isenabled()
    # The decoded slices are acyclic; collecting them mid-loop only costs time.
    gc.disable()
    try:
        return _load(path, data, options)
    finally:
        if gc_was_enabled:
            gc.enable()


def _load(path: Path, data: bytes, options: FoldOptions) -> Profile:
    if not looks_like_dhat(data[:64]):
        raise ProfileError(f"{path}: not a DHAT profile (expected a JSON object)")
    match = _PPS_RE.search(data)
    if match is None:
        # No program points at all: decode whole to give the precise complaint.
        header = _decode(path, data)
        _check_header(path, header)
        if "pps" in header:
            raise ProfileError(f"{path}: field 'pps' must be an array of program points")
        raise ProfileError(f"{path}: missing field 'pps'")
    pps_start = match.end()
    if _EMPTY_RE.match(data, pps_start):
        pps_end = data.index(b"]", pps_start)
        body_end = pps_start
    else:
        end = _PPS_END_RE.search(data, pps_start)
        if end is None:
            raise ProfileError(f"{path}: truncated profile: the 'pps' array never ends")
        pps_end = end.end() - 1
        body_end = end.start() + 1
    # Everything but the program points, decoded whole: header and frame table.
    rest = _decode(path, data[:pps_start] + data[pps_end:])
    profiler, mode = _check_header(path, rest)
    _check_unique_keys(path, data, rest)
    frames = _parse_frames(path, rest.get("ftbl"), profiler)
    metrics = HEAP_METRICS if mode == "heap" else AD_HOC_METRICS
    table = frame_table(frames, options, str(rest.get("cmd", "")))
    folder = Folder(table, metrics, options.depth)
    fields = tuple(_PP_FIELDS[m] for m in metrics)
    folder.add_batches(_program_points(path, data, pps_start, body_end, fields, len(frames)))
    totals = folder.totals()
    if any(type(v) is not int for v in totals.values()):
        _find_non_integer(path, data, pps_start, body_end, fields)
    units = {"total_bytes": "bytes", "total_blocks": "blocks"}
    if mode == "ad-hoc":
        units = {
            "total_bytes": str(rest.get("bsu") or "units"),
            "total_blocks": str(rest.get("bksu") or "events"),
        }
    return Profile(
        source=str(path),
        profiler=profiler,
        mode=mode,
        command=str(rest.get("cmd", "")),
        metrics=metrics,
        totals=totals,
        callsites=folder.callsites(),
        depth=options.depth,
        keys="workspace" if table.workspace_keys else "innermost",
        points=folder.points,
        units=units,
        symbolized=any(f.file for f in frames),
    )


def _program_points(
    path: Path, data: bytes, start: int, end: int, fields: tuple[str, ...], nframes: int
) -> Iterator[list[tuple[list[int], list[int]]]]:
    """The program points, validated, as (frame indices, metric values), one
    batch per slice of the array: memory follows the slice, not the file."""
    seen = 0
    for chunk in _chunks(data, start, end):
        pps = _decode(path, chunk, what="program points")
        if not isinstance(pps, list):
            raise ProfileError(f"{path}: field 'pps' must be an array of program points")
        # Without a '-' in the slice no frame index can be negative (dhat-rs
        # files); Valgrind's 'acc' arrays have them, so check.
        check_signs = b"-" in chunk
        try:
            # Program points hold only numbers and arrays; a boolean would pass
            # for 0 or 1 (bool is an int), so its mere presence is an error.
            if b"true" in chunk or b"false" in chunk:
                raise TypeError
            checked: list[tuple[list[int], list[int]]] = []
            append = checked.append
            if fields == _HEAP_FIELDS:
                # The common case, spelled out: a heap profile's four counters.
                for pp in pps:
                    tb = pp["tb"]
                    tbk = pp["tbk"]
                    gb = pp["gb"]
                    eb = pp["eb"]
                    fs = pp["fs"]
                    # The comparisons also refuse strings and nulls (TypeError).
                    if (
                        tb < 0
                        or tbk < 0
                        or gb < 0
                        or eb < 0
                        or max(fs) >= nframes
                        or (check_signs and min(fs) < 0)
                    ):
                        raise ValueError
                    append((fs, [tb, tbk, gb, eb]))
            else:
                for pp in pps:
                    values = [pp[f] for f in fields]
                    fs = pp["fs"]
                    if min(values) < 0 or max(fs) >= nframes or (check_signs and min(fs) < 0):
                        raise ValueError
                    append((fs, values))
        except (KeyError, TypeError, ValueError, IndexError):
            problem, position = _first_bad_pp(pps, fields, nframes)
            raise ProfileError(f"{path}: program point {seen + position}: {problem}") from None
        seen += len(pps)
        yield checked


def _first_bad_pp(pps: list[Any], fields: tuple[str, ...], nframes: int) -> tuple[str, int]:
    for i, pp in enumerate(pps):
        problem = _explain_pp(pp, fields, nframes)
        if problem is not None:
            return problem, i
    return "invalid program point", 0


def _chunks(data: bytes, start: int, end: int) -> Iterator[bytes]:
    """Slices of the pps array, each a JSON array of whole program points.

    Program points hold only numbers and one array, so every ``}`` ends one.
    """
    pos = start
    while pos < end:
        cut = data.find(b"}", min(pos + _CHUNK, end - 1), end)
        cut = end if cut < 0 else cut + 1
        yield b"[" + data[pos:cut] + b"]"
        nxt = data.find(b"{", cut, end)
        if nxt < 0:
            tail = data[cut:end].strip()
            if tail not in (b"", b","):
                yield b"[" + tail + b"]"
            return
        pos = nxt


def _decode(path: Path, data: bytes, what: str = "profile") -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        detail = str(exc).split(":", 1)[0]
        if "UTF-8" in str(exc):
            detail = "the file is not UTF-8 text"
        elif "end of data" in str(exc) or "EOF" in str(exc):
            detail = "the file ends early (truncated?)"
        raise ProfileError(
            f"{path}: not a valid DHAT profile: invalid JSON in the {what} ({detail})"
        ) from None


def _check_unique_keys(path: Path, data: bytes, rest: dict[str, Any]) -> None:
    """'pps' and 'ftbl' once each, at the top level.

    The program points are found by searching the bytes, and a JSON decoder keeps
    the last of duplicate keys: either would silently read the wrong copy.
    """
    for key in ("pps", "ftbl"):
        if not top_level_key_once(data, key):
            raise ProfileError(
                f"{path}: field {key!r} appears more than once (duplicated or nested); "
                "a DHAT profile has exactly one"
            )
    if rest.get("pps") != []:
        # The array cut out was not the top-level one: it sits inside another field.
        raise ProfileError(f"{path}: field 'pps' is nested inside another field, not top-level")


def _check_header(path: Path, doc: Any) -> tuple[str, str]:
    if not isinstance(doc, dict):
        raise ProfileError(f"{path}: not a DHAT profile (expected a JSON object)")
    if "dhatFileVersion" not in doc:
        raise ProfileError(f"{path}: not a DHAT profile: missing field 'dhatFileVersion'")
    version = doc["dhatFileVersion"]
    if version != 2 or type(version) is not int:
        raise ProfileError(f"{path}: unsupported dhatFileVersion {version!r} (expected 2)")
    mode = doc.get("mode")
    if not isinstance(mode, str):
        raise ProfileError(f"{path}: field 'mode' must be a string, got {mode!r}")
    if mode == "copy":
        raise ProfileError(
            f"{path}: Valgrind DHAT 'copy' profiles are not supported "
            "(profile with the default --mode=heap)"
        )
    if mode not in _MODES:
        raise ProfileError(
            f"{path}: unsupported DHAT mode {mode!r} (expected one of: {', '.join(_MODES)})"
        )
    cmd = doc.get("cmd", "")
    if not isinstance(cmd, str):
        raise ProfileError(f"{path}: field 'cmd' must be a string, got {type(cmd).__name__}")
    return _MODES[mode]


def _parse_frames(path: Path, ftbl: Any, profiler: str) -> list[Frame]:
    if ftbl is None:
        raise ProfileError(f"{path}: missing field 'ftbl'")
    if not isinstance(ftbl, list):
        raise ProfileError(f"{path}: field 'ftbl' must be an array of strings")
    frames = []
    for i, text in enumerate(ftbl):
        if not isinstance(text, str):
            raise ProfileError(f"{path}: ftbl[{i}] must be a string, got {show(text)}")
        try:
            frames.append(parse_frame(text))
        except ValueError as exc:
            raise ProfileError(f"{path}: ftbl[{i}]: {exc}") from None
    return frames


def parse_frame(text: str) -> Frame:
    """``0x55d1: reqctx::split_fields (reqctx/src/main.rs:90:65)`` → Frame."""
    m = _FRAME_RE.match(text)
    if m is None:
        return Frame(function=text.split(": ", 1)[-1] if text.startswith("0x") else text)
    address = int(m.group("addr"), 16) if m.group("addr") else None
    loc = m.group("loc")
    if loc.startswith("in "):
        return Frame(function=m.group("func"), address=address, object=loc[3:])
    lm = _LOC_RE.match(loc)
    if lm is None or lm.group("file") == "???":
        return Frame(function=m.group("func"), address=address)
    digits = lm.group("line")
    if len(digits) > 9 or not digits.isascii():
        raise ValueError(f"line number {show(digits, 40)} is not a line number")
    line = int(digits)
    return Frame(
        function=m.group("func"), file=lm.group("file"), line=line or None, address=address
    )


def _explain_pp(pp: Any, fields: tuple[str, ...], nframes: int) -> str | None:
    if not isinstance(pp, dict):
        return f"expected an object, got {type(pp).__name__}"
    for name in (*fields, "fs"):
        if name not in pp:
            return f"missing field {name!r}"
    for name in fields:
        value = pp[name]
        if type(value) is not int or value < 0:
            return f"field {name!r} must be a non-negative integer, got {value!r}"
    fs = pp["fs"]
    if not isinstance(fs, list) or not fs:
        return "field 'fs' must be a non-empty array of frame indices"
    for f in fs:
        if type(f) is not int:
            return f"field 'fs' holds {f!r}, not a frame index"
        if not 0 <= f < nframes:
            return f"frame index {f} is outside 'ftbl' ({nframes} entries)"
    return None


def _find_non_integer(
    path: Path, data: bytes, start: int, end: int, fields: tuple[str, ...]
) -> None:
    number = 0
    for chunk in _chunks(data, start, end):
        for pp in orjson.loads(chunk):
            for name in fields:
                if type(pp[name]) is not int:
                    raise ProfileError(
                        f"{path}: program point {number}: field {name!r} must be a "
                        f"non-negative integer, got {pp[name]!r}"
                    )
            number += 1
    raise ProfileError(f"{path}: a program point holds a non-integer count")
