"""Building workloads with cargo and running them under a heap profiler.

The only module that starts processes. Every child runs in its own process
group, so a timeout ends the workload and everything it started.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import orjson

from allocgate.config import WorkloadConfig
from allocgate.errors import ProfileError, WorkloadError
from allocgate.load import load_profile
from allocgate.profile import Profile
from allocgate.quantities import format_seconds

TAIL_LINES = 20
_INSTALL_HINTS = {
    "cargo": "install Rust with rustup (https://rustup.rs)",
    "valgrind": "install it with `apt-get install -y valgrind`",
    "heaptrack": "install it with `apt-get install -y heaptrack`",
}


def require_tool(name: str) -> str:
    """The path of an external tool, or an error saying how to install it."""
    found = shutil.which(name)
    if found is None:
        hint = _INSTALL_HINTS.get(name, "install it")
        raise WorkloadError(f"{name} not found on PATH: {hint}")
    return found


class Progress:
    """One line per step on stderr, finished with its timing; silent when quiet."""

    def __init__(self, stream: IO[str] | None = None, quiet: bool = False) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.quiet = quiet

    @contextlib.contextmanager
    def step(self, text: str) -> Iterator[None]:
        if not self.quiet:
            self.stream.write(f"allocgate: {text}… ")
            self.stream.flush()
        started = time.monotonic()
        try:
            yield
        except BaseException:
            if not self.quiet:
                self.stream.write("failed\n")
            raise
        if not self.quiet:
            self.stream.write(f"{format_seconds(time.monotonic() - started)}\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        if not self.quiet:
            self.stream.write(f"allocgate: {text}\n")


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def _signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    what: str,
) -> Finished:
    """Runs a child in its own process group; a timeout kills the whole group."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            text=True,
            errors="replace",
        )
    except FileNotFoundError as exc:
        raise WorkloadError(f"{what}: cannot start {argv[0]}: {exc.strerror}") from exc
    except PermissionError as exc:
        raise WorkloadError(f"{what}: cannot execute {argv[0]}: {exc.strerror}") from exc
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        proc.communicate()
        raise WorkloadError(
            f"{what}: timed out after {format_seconds(timeout or 0)}; the process group was killed"
        ) from None
    except BaseException:
        _kill_group(proc)
        proc.communicate()
        raise
    return Finished(proc.returncode, stdout, stderr, time.monotonic() - started)


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=2)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    kept = [line for line in text.splitlines() if line.strip()]
    return "\n".join(kept[-lines:])


# ---------------------------------------------------------------- building


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
        if features:
            argv += ["--features", ",".join(features)]
        if w.bin:
            argv += ["--bin", w.bin]
        elif w.example:
            argv += ["--example", w.example]
        label = w.cargo_profile + (f", features {','.join(features)}" if features else "")
        with self.progress.step(f"building {w.name} ({label})"):
            done = run_process(argv, cwd=w.manifest.parent, what=f"building {w.name}")
            if done.returncode != 0:
                if not self.progress.quiet:
                    self.progress.stream.write(tail(done.stderr, 40) + "\n")
                raise WorkloadError(
                    f"{w.manifest}: cargo build failed for workload {w.name!r}: "
                    + first_compiler_error(done.stderr, done.returncode)
                )
        built = _pick_executable(w, done.stdout)
        # A private copy: another workload's build into the same target dir
        # (same package name, other manifest) must not swap the binary under us.
        private = Path(self._dir.name) / f"{len(self._built)}-{built.name}"
        shutil.copy2(built, private)
        return private


def first_compiler_error(stderr: str, returncode: int) -> str:
    """The first ``error…`` line of cargo's output and the ``-->`` location after it."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("error"):
            where = next(
                (x.strip()[4:] for x in lines[i + 1 : i + 4] if x.strip().startswith("--> ")), ""
            )
            return line.strip() + (f" ({where})" if where else "")
    return tail(stderr, 1) or f"exit code {returncode}"


def _pick_executable(w: WorkloadConfig, messages: str) -> Path:
    candidates: list[tuple[str, str]] = []
    for line in messages.splitlines():
        if not line.startswith("{"):
            continue
        try:
            msg = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
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


# ---------------------------------------------------------------- back ends


class Backend(Protocol):
    """One heap profiler: how to build for it, run under it and find its output."""

    name: str
    tool: str | None
    """The external program it needs besides cargo."""

    def features(self, w: WorkloadConfig) -> tuple[str, ...]: ...

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        """Runs the workload once, returning how it ended and the raw profile."""
        ...


def _workload_env(w: WorkloadConfig) -> dict[str, str]:
    env = dict(os.environ)
    env.update(w.env)
    return env


def _check_exit(w: WorkloadConfig, done: Finished, tool: str) -> None:
    if done.returncode == 0:
        return
    if done.returncode < 0:
        how = f"was killed by {_signal_name(done.returncode)}"
    else:
        how = f"exited with code {done.returncode}"
    last = tail(_strip_tool_lines(done.stderr), 3).replace("\n", " | ")
    raise WorkloadError(
        f"workload {w.name!r} {how} under {tool}" + (f"; stderr: {last}" if last else "")
    )


def _strip_tool_lines(stderr: str) -> str:
    return "\n".join(
        line for line in stderr.splitlines() if not line.startswith(("==", "heaptrack ", "dhat:"))
    )


class DhatRs:
    name = "dhat-rs"
    tool: str | None = None

    def features(self, w: WorkloadConfig) -> tuple[str, ...]:
        return w.features

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        target = w.cwd / "dhat-heap.json"
        # dhat-rs always writes ./dhat-heap.json; a user's file of that name is
        # moved aside and restored, and concurrent runs in one directory queue.
        with _directory_lock(w.cwd):
            saved = None
            if target.exists():
                saved = target.with_name(f".dhat-heap.json.allocgate-{os.getpid()}")
                os.replace(target, saved)
            try:
                done = run_process(
                    [str(exe), *w.args],
                    cwd=w.cwd,
                    env=_workload_env(w),
                    timeout=w.timeout,
                    what=f"workload {w.name!r}",
                )
                _check_exit(w, done, "dhat-rs")
                if not target.exists():
                    raise WorkloadError(
                        f"workload {w.name!r} wrote no {target}: the dhat::Profiler never "
                        "dropped (the program called process::exit or was killed), the "
                        f"'{','.join(w.features) or 'dhat-heap'}' feature does not enable dhat, "
                        "or main() creates no dhat::Profiler::new_heap()"
                    )
                os.replace(target, out)
            finally:
                if saved is not None:
                    os.replace(saved, target)
        return done, out


@contextlib.contextmanager
def _directory_lock(directory: Path) -> Iterator[None]:
    digest = hashlib.sha256(str(directory).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"allocgate-{digest}.lock"
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class ValgrindDhat:
    name = "valgrind-dhat"
    tool: str | None = "valgrind"
    num_callers = 64
    """Valgrind's default of 12 frames often stops inside std's inlined generics."""

    def features(self, w: WorkloadConfig) -> tuple[str, ...]:
        return w.features

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        valgrind = require_tool("valgrind")
        done = run_process(
            [
                valgrind,
                "--tool=dhat",
                f"--dhat-out-file={out}",
                f"--num-callers={self.num_callers}",
                str(exe),
                *w.args,
            ],
            cwd=w.cwd,
            env=_workload_env(w),
            timeout=w.timeout,
            what=f"workload {w.name!r}",
        )
        _check_exit(w, done, "valgrind --tool=dhat")
        if not out.exists():
            raise WorkloadError(
                f"workload {w.name!r}: valgrind wrote no profile: {tail(done.stderr, 2)}"
            )
        return done, out


class Heaptrack:
    name = "heaptrack"
    tool: str | None = "heaptrack"

    def features(self, w: WorkloadConfig) -> tuple[str, ...]:
        return w.features

    def run(self, w: WorkloadConfig, exe: Path, out: Path) -> tuple[Finished, Path]:
        heaptrack = require_tool("heaptrack")
        base = out.with_suffix("")
        done = run_process(
            [heaptrack, "-o", str(base), str(exe), *w.args],
            cwd=w.cwd,
            env=_workload_env(w),
            timeout=w.timeout,
            what=f"workload {w.name!r}",
        )
        written = [p for p in base.parent.glob(base.name + ".*") if p.suffix in (".zst", ".gz")]
        # heaptrack's own exit code is the workload's; a crash still writes a trace.
        _check_exit(w, done, "heaptrack")
        if not written:
            raise WorkloadError(
                f"workload {w.name!r}: heaptrack wrote no trace: {tail(done.stderr, 2)}"
            )
        return done, written[0]


BACKENDS: dict[str, Backend] = {b.name: b for b in (DhatRs(), ValgrindDhat(), Heaptrack())}


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Measurement:
    """A workload's profile (the median of its runs) and how the runs varied."""

    profile: Profile
    runs: int
    spread: dict[str, list[int]] = field(default_factory=dict)
    nondeterministic: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)


class Runner:
    """Builds, runs and folds workloads; shared by the CLI and the pytest plugin."""

    def __init__(
        self,
        *,
        progress: Progress | None = None,
        keep_profiles: Path | None = None,
    ) -> None:
        self.progress = progress or Progress()
        self.builder = Builder(self.progress)
        self.keep_profiles = keep_profiles

    def measure(self, w: WorkloadConfig) -> Measurement:
        backend = BACKENDS[w.profiler]
        # Fail before a long build when the profiler itself is missing.
        require_tool("cargo")
        if backend.tool is not None:
            require_tool(backend.tool)
        started = time.monotonic()
        exe = self.builder.executable(w, backend.features(w))
        seconds = {"build": time.monotonic() - started}
        profiles: list[Profile] = []
        kept: list[str] = []
        run_time = analyse_time = 0.0
        with tempfile.TemporaryDirectory(prefix="allocgate-") as tmp:
            for i in range(1, w.runs + 1):
                counter = f" {i}/{w.runs}" if w.runs > 1 else ""
                out = Path(tmp) / f"{w.name}.{i}.{_extension(backend.name)}"
                with self.progress.step(f"running {w.name}{counter} under {backend.name}"):
                    done, raw = backend.run(w, exe, out)
                run_time += done.seconds
                t0 = time.monotonic()
                try:
                    profile = load_profile(raw, w.fold)
                except ProfileError as exc:
                    raise WorkloadError(f"workload {w.name!r}: {exc}") from exc
                analyse_time += time.monotonic() - t0
                missing = [m for m in w.gate.metrics if m not in profile.metrics]
                if missing:
                    raise WorkloadError(
                        f"workload {w.name!r}: {w.profiler} does not measure "
                        f"{', '.join(missing)} (it measures: {', '.join(profile.metrics)}); "
                        "remove it from 'metrics'"
                    )
                if self.keep_profiles is not None:
                    kept_path = self._keep(raw, w.name, i, w.runs)
                    kept.append(str(kept_path))
                    profile = dataclasses.replace(profile, source=str(kept_path))
                else:
                    profile = dataclasses.replace(profile, source=f"{w.name} ({w.profiler})")
                profiles.append(profile)
        seconds.update(run=run_time, analyse=analyse_time)
        if not profiles[0].symbolized:
            from allocgate.render import NO_DEBUG_INFO_HINT

            self.progress.note(f"{w.name}: {NO_DEBUG_INFO_HINT}")
        combined, spread, unstable = combine_runs(profiles)
        return Measurement(
            profile=combined,
            runs=len(profiles),
            spread=spread,
            nondeterministic=unstable,
            kept=tuple(kept),
            seconds=seconds,
        )

    def _keep(self, raw: Path, name: str, run: int, runs: int) -> Path:
        assert self.keep_profiles is not None
        self.keep_profiles.mkdir(parents=True, exist_ok=True)
        suffix = "".join(raw.suffixes[-1:]) if raw.suffix in (".zst", ".gz") else ".json"
        stem = name if runs == 1 else f"{name}.run{run}"
        dest = self.keep_profiles / f"{stem}{suffix}"
        shutil.copyfile(raw, dest)
        return dest.resolve()


def _extension(profiler: str) -> str:
    return "heaptrack" if profiler == "heaptrack" else "json"


def combine_runs(
    profiles: Sequence[Profile],
) -> tuple[Profile, dict[str, list[int]], tuple[str, ...]]:
    """The per-callsite median over runs, each site's spread, and the unstable sites.

    The median ignores one outlier run in three; a site missing from a run counts
    as zero there, so a site that only sometimes appears is flagged, not hidden.
    """
    first = profiles[0]
    if len(profiles) == 1:
        return first, {}, ()
    from allocgate.callsites import Callsite, sort_callsites

    keys = sorted({s.key for p in profiles for s in p.callsites})
    by_run = [{s.key: s for s in p.callsites} for p in profiles]
    rank = first.metrics[0]
    sites: list[Callsite] = []
    spread: dict[str, list[int]] = {}
    unstable: list[str] = []
    for key in keys:
        present = [run[key] for run in by_run if key in run]
        values = {
            m: [run[key].metrics.get(m, 0) if key in run else 0 for run in by_run]
            for m in first.metrics
        }
        if len(present) != len(by_run) or any(len(set(v)) > 1 for v in values.values()):
            unstable.append(key)
        spread[key] = values[rank]
        representative = present[0]
        sites.append(
            Callsite(
                key=key,
                metrics={m: _median(v) for m, v in values.items()},
                location=representative.location,
                stack=representative.stack,
                points=representative.points,
            )
        )
    totals = {m: _median([p.totals.get(m, 0) for p in profiles]) for m in first.metrics}
    combined = Profile(
        source=first.source,
        profiler=first.profiler,
        mode=first.mode,
        command=first.command,
        metrics=first.metrics,
        totals=totals,
        callsites=tuple(sort_callsites(sites, rank)),
        depth=first.depth,
        points=first.points,
        units=first.units,
        symbolized=first.symbolized,
    )
    ordered = sorted(unstable, key=lambda k: -max(spread[k]))
    return combined, spread, tuple(ordered)


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) // 2
