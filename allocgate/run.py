"""A workload measured: built once, run ``runs`` times under its profiler, each
run's profile read and folded, the runs combined."""

from __future__ import annotations

import dataclasses
import functools
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from allocgate import profilers
from allocgate.build import Builder
from allocgate.errors import ProfileError, WorkloadError
from allocgate.harness import split_harness
from allocgate.load import check_counts
from allocgate.process import Progress, require_tool
from allocgate.profile import Profile
from allocgate.provenance import Provenance
from allocgate.provenance import current as current_provenance
from allocgate.runs import combine_runs
from allocgate.test_workloads import TestSuites
from allocgate.workspace import read_workspace

if TYPE_CHECKING:
    from allocgate.callsites import FoldOptions
    from allocgate.config import WorkloadConfig


@dataclass(frozen=True)
class Measurement:
    """A workload's profile (the median of its runs) and how the runs varied."""

    profile: Profile
    """The runs combined: per-callsite medians and the ranges they spanned."""
    runs: int
    kept: tuple[str, ...] = ()
    seconds: dict[str, float] = field(default_factory=dict)
    harness: dict[str, int] = field(default_factory=dict)
    """A test workload's allocations by the test harness, per metric (in the totals,
    never a callsite)."""
    provenance: Provenance = field(default_factory=Provenance)
    """The toolchain and profiler that made it."""


@functools.lru_cache(maxsize=32)
def location_root(manifest: Path) -> Path:
    """What locations are relative to: the repository's checkout, else the cargo workspace."""
    import os

    from allocgate.annotations import repository_root
    from allocgate.cargo_profiles import workspace_manifest

    return repository_root(manifest.parent, os.environ) or workspace_manifest(manifest).parent


def relative_locations(profile: Profile, root: Path) -> Profile:
    """Locations under ``root`` relative to it: the same on every machine and
    checkout, and the paths links and annotations need."""
    prefix = str(root).rstrip("/") + "/"
    if not any(s.location and s.location.startswith(prefix) for s in profile.callsites):
        return profile
    sites = tuple(
        dataclasses.replace(s, location=s.location[len(prefix) :])
        if s.location and s.location.startswith(prefix)
        else s
        for s in profile.callsites
    )
    return dataclasses.replace(profile, callsites=sites)


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
        self.tests = TestSuites(self.progress)
        """Test binaries for ``tests:`` workloads, built and listed once."""
        self.keep_profiles = keep_profiles

    def measure(self, w: WorkloadConfig, runs: int | None = None) -> Measurement:
        """Builds ``w`` and runs it ``runs`` times (default: its configured ``runs``)."""
        n = runs or w.runs
        profiler = profilers.get(w.profiler)
        # Fail before a long build when the profiler itself is missing.
        require_tool("cargo")
        if profiler.tool is not None:
            require_tool(profiler.tool)
        started = time.monotonic()
        # A test's binary was built when its workload was made from a `tests:` one.
        exe = w.test.binary.path if w.test is not None else self.builder.executable(w, w.features)
        seconds = {"build": time.monotonic() - started}
        fold = self.fold_options(w, exe)
        profiles: list[Profile] = []
        kept: list[str] = []
        run_time = analyse_time = 0.0
        with tempfile.TemporaryDirectory(prefix="allocgate-") as tmp:
            for i in range(1, n + 1):
                counter = f" {i}/{n}" if n > 1 else ""
                out = Path(tmp) / f"{w.name}.{i}.{profiler.raw_suffix}"
                with self.progress.step(f"running {w.name}{counter} under {profiler.name}"):
                    done, raw = profiler.run(w, exe, out)
                run_time += done.seconds
                t0 = time.monotonic()
                try:
                    profile = profiler.read(raw, fold)
                    check_counts(raw, profile)
                except ProfileError as exc:
                    raise WorkloadError(f"workload {w.name!r}: {exc}") from exc
                profile = relative_locations(profile, location_root(w.manifest))
                analyse_time += time.monotonic() - t0
                missing = [m for m in w.gate.metrics if m not in profile.metrics]
                if missing:
                    raise WorkloadError(
                        f"workload {w.name!r}: {w.profiler} does not measure "
                        f"{', '.join(missing)} (it measures: {', '.join(profile.metrics)}); "
                        "remove it from 'metrics'"
                    )
                if self.keep_profiles is not None:
                    kept_path = self._keep(raw, w.name, i, n)
                    kept.append(str(kept_path))
                    profile = dataclasses.replace(profile, source=str(kept_path))
                else:
                    profile = dataclasses.replace(profile, source=f"{w.name} ({w.profiler})")
                profiles.append(profile)
        seconds.update(run=run_time, analyse=analyse_time)
        if not profiles[0].symbolized:
            from allocgate.render.text import NO_DEBUG_INFO_HINT

            self.progress.note(f"{w.name}: {NO_DEBUG_INFO_HINT}")
        combined = combine_runs(profiles)
        harness: dict[str, int] = {}
        if w.fold.harness:
            combined, harness = split_harness(combined)
        return Measurement(
            harness=harness,
            provenance=current_provenance(w.manifest, w.cargo_profile, w.profiler),
            profile=combined,
            runs=len(profiles),
            kept=tuple(kept),
            seconds=seconds,
        )

    def fold_options(self, w: WorkloadConfig, exe: Path) -> FoldOptions:
        """The workload's fold, with what the build knows: the workspace's crates
        (``cargo metadata``, once per manifest) and the binary, for its debug info."""
        workspace = w.fold.workspace
        if workspace is None and w.fold.keys == "workspace":
            workspace = read_workspace(w.manifest)
        return dataclasses.replace(w.fold, workspace=workspace, binary=exe)

    def _keep(self, raw: Path, name: str, run: int, runs: int) -> Path:
        assert self.keep_profiles is not None
        self.keep_profiles.mkdir(parents=True, exist_ok=True)
        suffix = "".join(raw.suffixes[-1:]) if raw.suffix in (".zst", ".gz") else ".json"
        stem = name if runs == 1 else f"{name}.run{run}"
        dest = self.keep_profiles / f"{stem}{suffix}"
        shutil.copyfile(raw, dest)
        return dest.resolve()
