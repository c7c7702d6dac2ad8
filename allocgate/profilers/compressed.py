"""Reading a trace whether it is zstd, gzip or plain text, a block of lines at a
time; zstd through the ``zstd`` command, whose own verdict explains damaged data."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, cast

from allocgate.errors import ProfileError, WorkloadError

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
_READ_SIZE = 1 << 16
# Lines are split a block at a time: big enough that the per-block cost
# vanishes, small enough that memory does not grow with the trace.
_BLOCK = 1 << 14


@contextmanager
def open_stream(path: Path, head: bytes) -> Iterator[IO[bytes]]:
    """The decompressed bytes of a trace; ``head`` is its first bytes."""
    if head.startswith(ZSTD_MAGIC):
        with _zstd_stream(path) as stream:
            yield stream
    elif head.startswith(GZIP_MAGIC):
        with gzip.open(path, "rb") as gz:
            try:
                yield cast(IO[bytes], gz)
            except (EOFError, OSError, zlib.error) as exc:
                raise ProfileError(
                    f"{path}: truncated or corrupt gzip data: {one_line(str(exc))}"
                ) from None
    else:
        with path.open("rb") as stream:
            yield stream


@contextmanager
def _zstd_stream(path: Path) -> Iterator[IO[bytes]]:
    zstd = shutil.which("zstd")
    if zstd is None:
        raise WorkloadError(
            f"{path}: the zstd command is needed to read this heaptrack trace"
            " (apt-get install zstd)"
        )
    proc = subprocess.Popen(
        [zstd, "-dc", "--", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    try:
        try:
            yield proc.stdout
        except ProfileError:
            # A truncated stream ends in a partial line; zstd's own verdict
            # explains that better than the parse error it caused.
            _drain(proc.stdout)
            if proc.wait() != 0:
                raise _zstd_error(path, proc) from None
            raise
        # Reading stopped at the end of the text; zstd may still report damage.
        _drain(proc.stdout)
        if proc.wait() != 0:
            raise _zstd_error(path, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def line_blocks(stream: IO[bytes]) -> Iterator[list[bytes]]:
    """The stream's lines (without their newline), a block of them at a time."""
    carry = b""
    while block := stream.read(_BLOCK):
        lines = (carry + block).split(b"\n")
        carry = lines.pop()
        # A block without a newline completes no line: nothing to hand on yet.
        if lines:
            yield lines
    if carry:
        yield [carry]


def _drain(stream: IO[bytes]) -> None:
    while stream.read(_READ_SIZE):
        pass


def _zstd_error(path: Path, proc: subprocess.Popen[bytes]) -> ProfileError:
    assert proc.stderr is not None
    message = one_line(proc.stderr.read().decode("utf-8", "replace"))
    # zstd starts with (the tail of) the file name: "...name.zst : Read error (39) : ..."
    parts = message.split(" : ")
    detail = ": ".join(parts[1:] if len(parts) > 1 else parts) or f"exit {proc.returncode}"
    return ProfileError(f"{path}: truncated or corrupt zstd data: {detail}")


def one_line(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
