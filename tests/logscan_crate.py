"""The threaded fixture workspace ``fixtures/crates/logscan``, built once per session.

A variant is the one source tree plus a patch (``moved``: lines moved and
functions reordered) or a cargo feature (``regressed``, ``improved``). Each is
copied into a scratch directory with a ``.cargo/config.toml`` that points cargo
at Debian's crate sources (``/usr/share/cargo/registry``), so it builds offline.

All variants share one ``CARGO_TARGET_DIR`` (the dependencies are compiled
once), builds are serialised with a file lock shared by the xdist workers, and
each variant's binary is copied to a path of the same length (``v0/logscan``,
``v1/logscan``, ...), because ``std::env::args`` copies argv into the heap.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import skip_or_fail

ROOT = Path(__file__).resolve().parents[1]
LOGSCAN = ROOT / "fixtures" / "crates" / "logscan"
REGISTRY = Path("/usr/share/cargo/registry")
VARIANTS = ("base", "moved", "regressed", "improved")
# The crates the workspace depends on, as Debian packages them.
DEPENDENCIES = ("regex-1.7.1", "serde_json-1.0.87", "crossbeam-channel-0.5.6")
WORKSPACE_CRATES = ("logscan", "scan_core")

CARGO_CONFIG = f"""\
[source.crates-io]
replace-with = "debian"

# cargo reads this from the working directory: run it in the copy.
[source.debian]
directory = "{REGISTRY}"

[net]
offline = true
"""


@dataclass(frozen=True)
class Variant:
    """One variant's scratch workspace, and its binary once built."""

    name: str
    root: Path
    """The scratch copy of the workspace (holds ``Cargo.toml`` and ``.cargo/``)."""
    features: tuple[str, ...]
    binary: Path
    target_dir: Path

    @property
    def manifest(self) -> Path:
        return self.root / "Cargo.toml"

    def touch(self) -> None:
        """Marks the sources changed, so that the next cargo build in the shared
        target directory rebuilds this variant rather than reusing another's."""
        for source in self.root.rglob("*.rs"):
            os.utime(source)

    def env(self) -> dict[str, str]:
        """The environment that builds into the shared target directory."""
        env = dict(os.environ)
        env["CARGO_TARGET_DIR"] = str(self.target_dir)
        env["CARGO_TERM_COLOR"] = "never"
        env.pop("RUSTFLAGS", None)
        return env


def missing_requirements() -> str | None:
    """Why the crate cannot be built here, or None."""
    if shutil.which("cargo") is None:
        return "cargo is not installed"
    absent = [d for d in DEPENDENCIES if not (REGISTRY / d).is_dir()]
    if absent:
        return (
            f"Debian crate sources missing under {REGISTRY}: {', '.join(absent)} "
            "(apt-get install librust-regex-dev librust-serde-json-dev "
            "librust-crossbeam-channel-dev)"
        )
    return None


def prepare(dest: Path, variant: str) -> Path:
    """Copies the workspace to ``dest`` as ``variant``; returns ``dest``."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown logscan variant {variant!r}")
    if dest.exists():
        shutil.rmtree(dest)
    # Fresh modification times (copy, not copy2): the variants share one target
    # directory, where cargo judges freshness by the sources' mtimes and their
    # workspace-relative paths, which are the same in every variant.
    shutil.copytree(
        LOGSCAN,
        dest,
        ignore=shutil.ignore_patterns("target", "variants"),
        copy_function=shutil.copy,
    )
    (dest / ".cargo").mkdir()
    (dest / ".cargo" / "config.toml").write_text(CARGO_CONFIG)
    if variant == "moved":
        patch = LOGSCAN / "variants" / "moved.patch"
        subprocess.run(
            ["patch", "-p1", "--quiet", "-i", str(patch)],
            cwd=dest,
            check=True,
            capture_output=True,
        )
    return dest


def features_of(variant: str) -> tuple[str, ...]:
    return (variant,) if variant in ("regressed", "improved") else ()


class Builds:
    """Builds variants on demand, each once per session (and once across xdist workers)."""

    def __init__(self, shared: Path) -> None:
        self.shared = shared
        self.target_dir = shared / "target"
        self.cache: dict[str, Variant] = {}

    def __call__(self, variant: str = "base") -> Variant:
        if variant not in self.cache:
            self.cache[variant] = self._build(variant)
        return self.cache[variant]

    def _build(self, variant: str) -> Variant:
        index = VARIANTS.index(variant)
        root = self.shared / f"src{index}"
        binary = self.shared / f"v{index}" / "logscan"
        features = features_of(variant)
        result = Variant(variant, root, features, binary, self.target_dir)
        with _locked(self.shared / "build.lock"):
            if binary.is_file():
                return result
            prepare(root, variant)
            cmd = [
                "cargo",
                "build",
                "--locked",
                "--profile",
                "profiling",
                "--manifest-path",
                str(root / "Cargo.toml"),
            ]
            if features:
                cmd += ["--features", ",".join(f"logscan/{f}" for f in features)]
            proc = subprocess.run(
                cmd,
                cwd=root,
                capture_output=True,
                text=True,
                env=result.env(),
                timeout=900,
                check=False,
            )
            if proc.returncode != 0:
                pytest.fail(f"logscan ({variant}) did not build:\n{proc.stderr[-4000:]}")
            binary.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(self.target_dir / "profiling" / "logscan", binary)
        return result


def _locked(path: Path) -> _Lock:
    return _Lock(path)


class _Lock:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.handle = self.path.open("w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def shared_dir(factory: pytest.TempPathFactory) -> Path:
    """A directory every xdist worker of this session sees (the basetemp's parent
    under xdist, the basetemp itself otherwise)."""
    base = factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    shared = root / "logscan-builds"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(scope="session")
def logscan(tmp_path_factory: pytest.TempPathFactory) -> Builds:
    """``logscan(variant)`` → the built Variant (``base``, ``moved``, ``regressed``,
    ``improved``). Import this fixture into a test module to use it."""
    why = missing_requirements()
    if why is not None:
        skip_or_fail(why)
    return Builds(shared_dir(tmp_path_factory))
