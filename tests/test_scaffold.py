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


def test_library_tests_are_offered_commented_out_next_to_binaries(tmp_path: Path) -> None:
    app = cargo_new(tmp_path / "app", "--bin")
    cargo_new(tmp_path / "app" / "core-lib", "--lib")  # `cargo new --lib` writes a #[test]
    with (app / "Cargo.toml").open("a") as handle:
        handle.write('core-lib = { path = "core-lib" }\n\n[workspace]\nmembers = ["core-lib"]\n')
    offered = scaffold(app, app / "allocgate.yml", which=only("valgrind"))
    assert offered.workloads == ("app",)
    assert (
        "\n  # core-lib-tests:\n  #   manifest: core-lib/Cargo.toml\n  #   tests: " in offered.text
    )
    write_new(offered.path, offered.text)
    assert list(load_config(offered.path).workloads) == ["app"]
    # Uncommenting the offer (deleting "# ") gives the same workload as --tests.
    uncommented = offered.text.replace("  # core-lib-tests:", "  core-lib-tests:").replace(
        "  #   ", "    "
    )
    offered.path.write_text(uncommented)
    assert load_config(offered.path).workloads["core-lib-tests"].tests == ""

    written = scaffold(app, app / "allocgate.yml", tests=True, which=only("valgrind"))
    assert written.workloads == ("app", "core-lib-tests")
    write_new(written.path, written.text, force=True)
    suite = load_config(written.path).workloads["core-lib-tests"]
    assert suite.tests == ""
    assert suite.test_target == "lib"
    assert suite.profiler == "valgrind-dhat"


def test_a_library_alone_gets_its_tests_as_workloads(tmp_path: Path) -> None:
    lib = cargo_new(tmp_path / "lexer", "--lib")
    (lib / "tests").mkdir()
    (lib / "tests" / "roundtrip.rs").write_text("#[test]\nfn roundtrip() {}\n")
    result = scaffold(lib, lib / "allocgate.yml", which=only("heaptrack"))
    assert result.workloads == ("lexer-tests",)
    write_new(result.path, result.text)
    (suite,) = load_config(result.path).workloads.values()
    assert (suite.tests, suite.test_target, suite.profiler) == ("", "all", "heaptrack")


def test_a_library_without_tests_is_not_offered(tmp_path: Path) -> None:
    lib = cargo_new(tmp_path / "quiet", "--lib")
    (lib / "src" / "lib.rs").write_text("pub fn f() -> Vec<u8> { Vec::new() }\n")
    with pytest.raises(ConfigError, match=r"no binary targets .* and no library tests"):
        scaffold(lib, lib / "allocgate.yml", which=only("valgrind"))
