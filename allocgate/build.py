"""Building workloads with cargo, once per (manifest, profile, features)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from allocgate import cargo_profiles
from allocgate.errors import WorkloadError
from allocgate.process import Progress, require_tool, run_process, tail

if TYPE_CHECKING:
    from allocgate.config import WorkloadConfig


@dataclass(frozen=True)
class BuildKey:
    manifest: Path
    cargo_profile: str
    features: tuple[str, ...]


class Builder:
    """Builds with cargo, once per (manifest, profile, features) per invocation."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._built: dict[tuple[BuildKey, str | None, str | None], Path] = {}
        self._said: set[str] = set()
        self._dir = tempfile.TemporaryDirectory(prefix="allocgate-bin-")

    def executable(self, w: WorkloadConfig, features: tuple[str, ...]) -> Path:
        key = (BuildKey(w.manifest, w.cargo_profile, features), w.bin, w.example)
        if key not in self._built:
            self._built[key] = self._build(w, features)
        return self._built[key]

    def _build(self, w: WorkloadConfig, features: tuple[str, ...]) -> Path:
        cargo = require_tool("cargo")
        argv = [
            cargo,
            "build",
            "--manifest-path",
            str(w.manifest),
            "--profile",
            w.cargo_profile,
            "--message-format=json-render-diagnostics",
        ]
        plan = cargo_profiles.plan(w.manifest, w.cargo_profile)
        argv += plan.args
        for message in (plan.note, plan.warning and f"warning: {plan.warning}"):
            # Once per invocation, before the build and the run it concerns.
            if message and message not in self._said:
                self._said.add(message)
                self.progress.stream.write(f"allocgate: {message}\n")
        if features:
            argv += ["--features", ",".join(features)]
        if w.bin:
            argv += ["--bin", w.bin]
        elif w.example:
            argv += ["--example", w.example]
        label = w.cargo_profile + (f", features {','.join(features)}" if features else "")
        # cargo's messages go to files: a big workspace prints megabytes of them.
        with (
            self.progress.step(f"building {w.name} ({label})"),
            tempfile.TemporaryFile() as messages,
            tempfile.TemporaryFile() as diagnostics,
        ):
            done = run_process(
                argv,
                cwd=w.manifest.parent,
                what=f"building {w.name}",
                workload=False,
                stdout_sink=messages,
                stderr_sink=diagnostics,
            )
            if done.returncode != 0:
                if not self.progress.quiet:
                    self.progress.stream.write(tail(done.stderr, 40) + "\n")
                raise WorkloadError(
                    f"{w.manifest}: cargo build failed for workload {w.name!r}: "
                    + first_compiler_error(_lines(diagnostics), done.returncode, done.stderr)
                )
            built = _pick_executable(w, _lines(messages))
        # A private copy: another workload's build into the same target dir
        # (same package name, other manifest) must not swap the binary under us.
        private = Path(self._dir.name) / f"{len(self._built)}-{built.name}"
        shutil.copy2(built, private)
        return private


def _lines(handle: IO[bytes]) -> Iterator[str]:
    """The lines of a spooled output file, decoded one at a time."""
    handle.seek(0)
    for raw in handle:
        yield raw.decode("utf-8", errors="replace").rstrip("\r\n")


def first_compiler_error(lines: Iterable[str], returncode: int, stderr_tail: str = "") -> str:
    """The first ``error…`` line of cargo's output and the ``-->`` location after it."""
    found: str | None = None
    after = 0
    for line in lines:
        if found is None:
            if line.startswith("error"):
                found = line.strip()
            continue
        after += 1
        if line.strip().startswith("--> "):
            return f"{found} ({line.strip()[4:]})"
        if after >= 3:
            break
    if found is not None:
        return found
    return tail(stderr_tail, 1) or f"exit code {returncode}"


def executables(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """cargo's ``compiler-artifact`` messages (``--message-format=json``) that built
    an executable, in order."""
    for line in lines:
        if not line.startswith("{"):
            continue
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            yield msg


def _pick_executable(w: WorkloadConfig, messages: Iterable[str]) -> Path:
    candidates: list[tuple[str, str]] = []
    for msg in executables(messages):
        target = msg.get("target", {})
        kinds = target.get("kind", [])
        candidates.append((str(target.get("name")), str(msg["executable"])))
        wanted = w.example if w.example else w.bin
        if wanted and target.get("name") == wanted:
            kind = "example" if w.example else "bin"
            if kind in kinds:
                return Path(msg["executable"])
    if not (w.bin or w.example) and len(candidates) == 1:
        return Path(candidates[0][1])
    what = f"bin {w.bin!r}" if w.bin else f"example {w.example!r}" if w.example else "a binary"
    found = ", ".join(name for name, _ in candidates) or "none"
    raise WorkloadError(
        f"{w.manifest}: cargo built no executable for {what} of workload {w.name!r} "
        f"(executables: {found}); set 'bin' or 'example'"
    )
