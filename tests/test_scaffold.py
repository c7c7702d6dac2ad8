"""`allocgate init`'s decisions on real crates made with `cargo new`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from allocgate.config import load_config
from allocgate.errors import ConfigError, WorkloadError
from allocgate.scaffold import INSTALL_PROFILER, scaffold, write_new

pytestmark = pytest.mark.cargo


def cargo_new(where: Path, *args: str) -> Path:
    if shutil.which("cargo") is None:
        pytest.skip("cargo not found on PATH")
    subprocess.run(
        ["cargo", "new", "--quiet", "--vcs", "none", *args, str(where)],
        check=True,
        capture_output=True,
    )
    return where


def only(*tools: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in tools else None


def test_one_binary_crate_gets_one_workload_under_valgrind(tmp_path: Path) -> None:
    crate = cargo_new(tmp_path / "tokenize")
    result = scaffold(crate, crate / "allocgate.yml", which=only("valgrind", "heaptrack"))
    assert result.workloads == ("tokenize",)
    write_new(result.path, result.text)
    config = load_config(result.path)
    w = config.workloads["tokenize"]
    assert (w.profiler, w.bin, w.manifest) == ("valgrind-dhat", "tokenize", crate / "Cargo.toml")
    assert (w.gate.top, w.gate.metrics, w.cargo_profile) == (5, ("total_bytes",), "profiling")
    tolerance = w.gate.tolerances["total_bytes"]
    assert (tolerance.relative, tolerance.absolute) == (0.05, 1024)
    assert "profiler: valgrind-dhat" in result.text
    steps = result.next_steps()
    assert "allocgate bless" in steps
    assert "allocgate check" in steps


def test_heaptrack_when_valgrind_is_missing(tmp_path: Path) -> None:
    crate = cargo_new(tmp_path / "tokenize")
    result = scaffold(crate, crate / "allocgate.yml", which=only("heaptrack"))
    assert "profiler: heaptrack" in result.text


def test_no_profiler_names_the_install_command(tmp_path: Path) -> None:
    crate = cargo_new(tmp_path / "tokenize")
    with pytest.raises(WorkloadError) as exc:
        scaffold(crate, crate / "allocgate.yml", which=only())
    assert str(exc.value) == INSTALL_PROFILER
    assert "apt-get install -y valgrind" in INSTALL_PROFILER


def test_workspace_binaries_examples_and_the_dhat_feature(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "Cargo.toml").write_text('[workspace]\nmembers = ["a", "b"]\nresolver = "2"\n')
    cargo_new(root / "a")
    cargo_new(root / "b")
    # b already has the opt-in dhat feature (no dependency: it must resolve offline).
    manifest_b = root / "b" / "Cargo.toml"
    manifest_b.write_text(manifest_b.read_text() + "\n[features]\ndhat-heap = []\n")
    (root / "a" / "src" / "bin").mkdir()
    (root / "a" / "src" / "bin" / "b.rs").write_text("fn main() {}\n")
    (root / "a" / "examples").mkdir()
    (root / "a" / "examples" / "demo.rs").write_text("fn main() {}\n")

    plain = scaffold(root, root / "allocgate.yml", which=only("valgrind"))
    assert plain.workloads == ("a", "a-b", "b-b")
    with_examples = scaffold(root, root / "allocgate.yml", examples=True, which=only("valgrind"))
    assert with_examples.workloads == ("a", "a-b", "b-b", "example-demo")
    write_new(with_examples.path, with_examples.text)
    config = load_config(with_examples.path)
    assert config.workloads["b-b"].profiler == "dhat-rs"
    assert config.workloads["b-b"].features == ("dhat-heap",)
    assert config.workloads["a"].profiler == "valgrind-dhat"
    assert config.workloads["example-demo"].example == "demo"
    assert config.workloads["a-b"].manifest == root / "a" / "Cargo.toml"


def test_not_a_crate(tmp_path: Path) -> None:
    if shutil.which("cargo") is None:
        pytest.skip("cargo not found on PATH")
    with pytest.raises(ConfigError, match="not a cargo crate or workspace"):
        scaffold(tmp_path, tmp_path / "allocgate.yml", which=only("valgrind"))


def test_an_existing_config_is_left_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "allocgate.yml"
    path.write_bytes(b"# mine\r\nworkloads: {}\n")
    with pytest.raises(ConfigError, match=r"already exists.*--force"):
        write_new(path, "new")
    assert path.read_bytes() == b"# mine\r\nworkloads: {}\n"
    write_new(path, "new\n", force=True)
    assert path.read_text() == "new\n"
