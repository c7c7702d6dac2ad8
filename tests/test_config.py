"""allocgate.yml (and [tool.allocgate]) → WorkloadConfig values, and every bad config
→ exit 2 with one line naming the file and the key, through the real CLI."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, RunCli

from allocgate.config import load_config
from allocgate.errors import ConfigError
from allocgate.quantities import Tolerance

CONFIGS = ROOT / "fixtures" / "configs"
BAD = CONFIGS / "bad"
ORDERS = ROOT / "fixtures" / "crates" / "orders" / "Cargo.toml"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_with(directory: Path, body: str) -> Path:
    """An allocgate.yml in ``directory``; ``$ORDERS`` stands for the orders crate's manifest."""
    return write(directory / "allocgate.yml", textwrap.dedent(body).replace("$ORDERS", str(ORDERS)))


# ---------------------------------------------------------------- the documented shape


def test_documented_shape_loads() -> None:
    path = CONFIGS / "documented.yml"
    config = load_config(path)
    assert config.path == path.resolve()
    assert config.baseline == CONFIGS / "allocgate-baseline.yml"
    assert list(config.workloads) == ["reqctx"]
    w = config.workloads["reqctx"]
    assert w.name == "reqctx"
    assert w.manifest == ORDERS.resolve()
    assert w.cwd == CONFIGS.resolve()
    assert w.profiler == "dhat-rs"
    assert w.cargo_profile == "profiling"
    assert w.features == ("dhat-heap",)
    assert w.bin == "reqctx"
    assert w.example is None
    assert w.args == ("20000",)
    assert w.env == {"RUST_LOG": "warn"}
    assert w.runs == 1
    assert w.timeout == 600.0
    assert w.gate.top == 5
    assert w.gate.metrics == ("total_bytes",)
    assert w.gate.tolerance("total_bytes") == Tolerance(0.05, 1024)
    assert w.gate.tolerance("total_blocks") == Tolerance(0.05, 100)


def test_minimal_config_takes_the_documented_defaults(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        """\
        workloads:
          orders:
            manifest: $ORDERS
        """,
    )
    config = load_config(path)
    assert config.baseline == tmp_path / "allocgate-baseline.yml"
    w = config.workloads["orders"]
    assert (w.profiler, w.cargo_profile, w.features) == ("dhat-rs", "profiling", ("dhat-heap",))
    assert (w.gate.top, w.gate.metrics, w.runs, w.timeout) == (5, ("total_bytes",), 1, 600.0)
    assert (w.bin, w.example, w.args, w.env, w.cwd) == (None, None, (), {}, tmp_path)
    assert w.gate.tolerance("total_bytes") == Tolerance(0.05, 1024)


@pytest.mark.parametrize(
    ("profiler", "defaults_features", "workload_features", "expected"),
    [
        ("dhat-rs", None, None, ("dhat-heap",)),
        ("dhat-rs", "[dhat-heap, extra]", None, ("dhat-heap", "extra")),
        ("dhat-rs", None, "[custom-dhat]", ("custom-dhat",)),
        # dhat's global allocator must not be built into a Valgrind or heaptrack run.
        ("valgrind-dhat", None, None, ()),
        ("valgrind-dhat", "[dhat-heap]", None, ()),
        ("heaptrack", "[dhat-heap]", None, ()),
        # ... unless the workload asks for features itself.
        ("valgrind-dhat", "[dhat-heap]", "[simd]", ("simd",)),
        ("heaptrack", None, "simd", ("simd",)),
    ],
)
def test_features_default_to_dhat_heap_only_for_dhat_rs(
    tmp_path: Path,
    profiler: str,
    defaults_features: str | None,
    workload_features: str | None,
    expected: tuple[str, ...],
) -> None:
    defaults = f"defaults:\n  features: {defaults_features}\n" if defaults_features else ""
    extra = f"\n    features: {workload_features}" if workload_features else ""
    path = write(
        tmp_path / "allocgate.yml",
        f"{defaults}workloads:\n  w:\n    manifest: {ORDERS}\n    profiler: {profiler}{extra}\n",
    )
    assert load_config(path).workloads["w"].features == expected


def test_workload_settings_override_defaults(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        """\
        defaults:
          profiler: heaptrack
          cargo_profile: bench
          top: 7
          metrics: [total_blocks]
          threshold: {total_blocks: {relative: 20%, absolute: 500}}
          runs: 3
          timeout: 90s
        workloads:
          inherits:
            manifest: $ORDERS
          overrides:
            manifest: $ORDERS
            profiler: valgrind-dhat
            cargo_profile: profiling
            top: 2
            metrics: [total_bytes, peak_bytes]
            threshold: {peak_bytes: {relative: 1%}}
            runs: 1
            timeout: 10m
        """,
    )
    config = load_config(path)
    a, b = config.workloads["inherits"], config.workloads["overrides"]
    assert (a.profiler, a.cargo_profile, a.gate.top, a.runs, a.timeout) == (
        "heaptrack",
        "bench",
        7,
        3,
        90.0,
    )
    assert a.gate.metrics == ("total_blocks",)
    assert a.gate.tolerance("total_blocks") == Tolerance(0.20, 500)
    assert (b.profiler, b.cargo_profile, b.gate.top, b.runs, b.timeout) == (
        "valgrind-dhat",
        "profiling",
        2,
        1,
        600.0,
    )
    assert b.gate.metrics == ("total_bytes", "peak_bytes")
    # A workload's threshold replaces the defaults' one; what it leaves out is the default.
    assert b.gate.tolerance("peak_bytes") == Tolerance(0.01, 1024)
    assert b.gate.tolerance("total_blocks") == Tolerance(0.05, 100)


def test_threshold_shorthand_applies_to_byte_metrics(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        """\
        defaults:
          metrics: [total_bytes, total_blocks, peak_bytes, end_bytes]
          threshold: {relative: 10%, absolute: 2 KiB}
        workloads:
          orders:
            manifest: $ORDERS
        """,
    )
    gate = load_config(path).workloads["orders"].gate
    for metric in ("total_bytes", "peak_bytes", "end_bytes"):
        assert gate.tolerance(metric) == Tolerance(0.10, 2048), metric
    # 2 KiB means nothing for a count: blocks keep their own default.
    assert gate.tolerance("total_blocks") == Tolerance(0.05, 100)


def test_per_metric_thresholds(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        """\
        workloads:
          orders:
            manifest: $ORDERS
            metrics: [total_bytes, total_blocks, temporary_blocks]
            threshold:
              total_bytes: {relative: 2.5%, absolute: 4 KiB}
              total_blocks: {relative: 0%, absolute: 1_000}
              temporary_blocks: {absolute: 7}
        """,
    )
    gate = load_config(path).workloads["orders"].gate
    assert gate.tolerance("total_bytes") == Tolerance(0.025, 4096)
    assert gate.tolerance("total_blocks") == Tolerance(0.0, 1000)
    assert gate.tolerance("temporary_blocks") == Tolerance(0.05, 7)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("1 KiB", 1024),
        ("1KB", 1000),
        ("1 kB", 1000),
        ("4KiB", 4096),
        ("1.5 MiB", 1536 * 1024),
        ("2 MB", 2_000_000),
        ("1 GiB", 1024**3),
        ("512 B", 512),
        ("512", 512),
        (512, 512),
        ("0", 0),
    ],
)
def test_sizes(tmp_path: Path, size: str | int, expected: int) -> None:
    value = f"'{size}'" if isinstance(size, str) else str(size)
    path = config_with(
        tmp_path,
        "workloads:\n  orders:\n    manifest: $ORDERS\n"
        f"    threshold:\n      total_bytes:\n        absolute: {value}\n",
    )
    assert load_config(path).workloads["orders"].gate.tolerance("total_bytes").absolute == expected


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [("10m", 600.0), ("90s", 90.0), ("1.5h", 5400.0), ("250ms", 0.25), ("30", 30.0), (45, 45.0)],
)
def test_timeouts(tmp_path: Path, timeout: str | int, expected: float) -> None:
    value = f"'{timeout}'" if isinstance(timeout, str) else str(timeout)
    path = config_with(
        tmp_path, f"workloads:\n  orders:\n    manifest: $ORDERS\n    timeout: {value}\n"
    )
    assert load_config(path).workloads["orders"].timeout == expected


def test_args_and_env_values_become_strings(tmp_path: Path) -> None:
    path = config_with(
        tmp_path,
        """\
        workloads:
          orders:
            manifest: $ORDERS
            args: [200, --leak, 1.5]
            env: {N: 3, RUST_LOG: warn}
        """,
    )
    w = load_config(path).workloads["orders"]
    assert w.args == ("200", "--leak", "1.5")
    assert w.env == {"N": "3", "RUST_LOG": "warn"}


def test_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    write(project / "crates" / "app" / "Cargo.toml", "[package]\nname = 'app'\n")
    (project / "data").mkdir()
    path = write(
        project / "ci" / "allocgate.yml",
        """\
        baseline: ../baselines/allocgate-baseline.yml
        workloads:
          app:
            manifest: ../crates/app/Cargo.toml
            cwd: ../data
        """,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(Path("../project/ci/allocgate.yml"))
    assert config.path == path
    assert config.baseline.resolve() == project / "baselines" / "allocgate-baseline.yml"
    w = config.workloads["app"]
    assert w.manifest == project / "crates" / "app" / "Cargo.toml"
    assert w.cwd == project / "data"


def test_cwd_defaults_to_the_config_directory(tmp_path: Path) -> None:
    path = write(
        tmp_path / "sub" / "allocgate.yml", f"workloads:\n  orders:\n    manifest: {ORDERS}\n"
    )
    assert load_config(path).workloads["orders"].cwd == tmp_path / "sub"


PYPROJECT = """\
[project]
name = "app"
version = "0"

[tool.allocgate]
baseline = "ci/allocgate-baseline.yml"

[tool.allocgate.defaults]
profiler = "valgrind-dhat"
threshold = { relative = "10%", absolute = "1KB" }
timeout = "90s"

[tool.allocgate.workloads.orders]
manifest = "$ORDERS"
args = ["200"]
top = 3
"""


def test_tool_allocgate_in_pyproject(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", PYPROJECT.replace("$ORDERS", str(ORDERS)))
    config = load_config(cwd=tmp_path)
    assert config.path == tmp_path / "pyproject.toml"
    assert config.baseline == tmp_path / "ci" / "allocgate-baseline.yml"
    w = config.workloads["orders"]
    assert (w.profiler, w.features, w.args, w.gate.top, w.timeout) == (
        "valgrind-dhat",
        (),
        ("200",),
        3,
        90.0,
    )
    assert w.gate.tolerance("total_bytes") == Tolerance(0.10, 1000)


def test_search_upward_from_a_subdirectory(tmp_path: Path) -> None:
    path = config_with(tmp_path, "workloads:\n  orders:\n    manifest: $ORDERS\n")
    deep = tmp_path / "src" / "bin" / "deep"
    deep.mkdir(parents=True)
    # A pyproject.toml without [tool.allocgate] on the way up is not a config.
    write(tmp_path / "src" / "pyproject.toml", "[project]\nname = 'other'\n")
    config = load_config(cwd=deep)
    assert config.path == path
    assert list(config.workloads) == ["orders"]


def test_search_upward_finds_pyproject_and_the_nearest_wins(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", PYPROJECT.replace("$ORDERS", str(ORDERS)))
    sub = tmp_path / "sub"
    nearer = config_with(sub, "workloads:\n  near:\n    manifest: $ORDERS\n")
    (sub / "deeper").mkdir()
    assert load_config(cwd=sub / "deeper").path == nearer
    assert load_config(cwd=tmp_path).path == tmp_path / "pyproject.toml"
    # In one directory, allocgate.yml is preferred to pyproject.toml.
    both = config_with(tmp_path, "workloads:\n  yml:\n    manifest: $ORDERS\n")
    assert load_config(cwd=tmp_path).path == both


def _text_or_empty(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def test_no_config_anywhere_is_an_error(tmp_path: Path) -> None:
    above = [
        parent
        for parent in tmp_path.parents
        if (parent / "allocgate.yml").exists()
        or (parent / "allocgate.yaml").exists()
        or "[tool.allocgate" in _text_or_empty(parent / "pyproject.toml")
    ]
    if above:
        pytest.skip(f"a config exists above the temporary directory, in {above[0]}")
    with pytest.raises(ConfigError, match=r"no allocgate\.yml found in .* --config PATH"):
        load_config(cwd=tmp_path)


# ---------------------------------------------------------------- bad configs, through the CLI

# (file under fixtures/configs/bad, the key the message must name, other words it must contain)
BAD_CONFIGS = [
    ("unknown-top-level-key.yml", "baselines", ["unknown key", "baseline"]),
    ("unknown-workload-key.yml", "workloads.orders.argv", ["unknown key", "args"]),
    ("unknown-defaults-key.yml", "defaults.profilr", ["unknown key", "profiler"]),
    ("bad-percent.yml", "workloads.orders.threshold.total_bytes.relative", ["5 %%", "5%"]),
    ("defaults-bad-percent.yml", "defaults.threshold.relative", ["five percent"]),
    ("null-tolerance.yml", "workloads.orders.threshold.total_bytes.relative", ["None", "5%"]),
    ("negative-top.yml", "workloads.orders.top", ["-1", "positive whole number"]),
    ("fractional-top.yml", "workloads.orders.top", ["2.5", "whole number"]),
    ("bad-size-unit.yml", "workloads.orders.threshold.total_bytes.absolute", ["10 parsecs"]),
    ("size-for-count.yml", "workloads.orders.threshold.total_blocks.absolute", ["1 KiB", "size"]),
    ("unknown-threshold-metric.yml", "workloads.orders.threshold.total_bites", ["metric"]),
    ("unknown-tolerance-key.yml", "workloads.orders.threshold.total_bytes.slack", ["relative"]),
    ("no-manifest.yml", "workloads.orders.manifest", ["missing", "Cargo.toml"]),
    ("manifest-not-found.yml", "workloads.orders.manifest", ["no-such-crate/Cargo.toml"]),
    ("unknown-profiler.yml", "workloads.orders.profiler", ["massif", "valgrind-dhat"]),
    ("unknown-metric.yml", "workloads.orders.metrics", ["total_bites", "total_bytes"]),
    ("bin-and-example.yml", "workloads.orders", ["'bin'", "'example'"]),
    ("zero-runs.yml", "workloads.orders.runs", ["0", "positive"]),
    ("bad-timeout.yml", "workloads.orders.timeout", ["soon", "10m"]),
    ("args-not-a-list.yml", "workloads.orders.args", ["list"]),
    ("env-not-a-mapping.yml", "workloads.orders.env", ["mapping"]),
    ("cwd-not-found.yml", "workloads.orders.cwd", ["no-such-directory"]),
    ("no-workloads.yml", "workloads", ["mapping"]),
    ("empty.yml", "workloads", ["mapping"]),
    ("invalid-yaml.yml", "invalid YAML", []),
    ("duplicate-workload.yml", "duplicate key 'orders'", ["invalid YAML"]),
]


def one_error_line(code: int, stdout: str, stderr: str) -> str:
    assert code == 2, (code, stdout, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("allocgate: error: "), stderr
    assert stdout == ""
    return lines[0]


@pytest.fixture
def isolated_cargo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CARGO_TARGET_DIR for the CLI; it must stay absent (nothing is built)."""
    target = tmp_path / "cargo-target"
    monkeypatch.setenv("CARGO_TARGET_DIR", str(target))
    return target


def test_bad_config_table_covers_every_file() -> None:
    assert sorted(name for name, _, _ in BAD_CONFIGS) == sorted(p.name for p in BAD.glob("*.yml"))
    assert len(BAD_CONFIGS) >= 15


# check reads every file; bless and run load the config the same way, so two files each.
BAD_CASES = [
    *(pytest.param("check", *case, id=case[0]) for case in BAD_CONFIGS),
    *(
        pytest.param(command, *case, id=f"{command}-{case[0]}")
        for command in ("bless", "run")
        for case in BAD_CONFIGS
        if case[0] in ("unknown-workload-key.yml", "bad-percent.yml")
    ),
]


@pytest.mark.parametrize(("command", "name", "key", "words"), BAD_CASES)
def test_bad_config_is_one_error_line(
    cli: RunCli, isolated_cargo: Path, command: str, name: str, key: str, words: list[str]
) -> None:
    path = BAD / name
    line = one_error_line(*cli(command, "--config", path))
    assert f"{path}:" in line, line
    assert key in line, line
    for word in words:
        assert word in line, line
    assert not isolated_cargo.exists(), "a bad config must fail before anything is built"


def test_invalid_yaml_names_the_line(cli: RunCli, isolated_cargo: Path) -> None:
    path = BAD / "invalid-yaml.yml"
    line = one_error_line(*cli("check", "--config", path))
    assert f"allocgate: error: {path}:7:" in line, line


def test_bad_pyproject_is_one_error_line(cli: RunCli, isolated_cargo: Path) -> None:
    path = CONFIGS / "pyproject-bad" / "pyproject.toml"
    line = one_error_line(*cli("check", "--config", path))
    assert f"{path}:" in line
    assert "workloads.orders.arg" in line
    assert "unknown key" in line


def test_invalid_toml_is_one_error_line(cli: RunCli, tmp_path: Path, isolated_cargo: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[tool.allocgate\nbaseline = 1\n")
    line = one_error_line(*cli("check", "--config", path))
    assert f"{path}:" in line
    assert "TOML" in line


def test_python_tags_are_refused_and_never_run(
    cli: RunCli, tmp_path: Path, isolated_cargo: Path
) -> None:
    marker = tmp_path / "pwned"
    path = write(
        tmp_path / "allocgate.yml",
        f'baseline: !!python/object/apply:os.system ["touch {marker}"]\n'
        f"workloads:\n  orders:\n    manifest: {ORDERS}\n",
    )
    line = one_error_line(*cli("check", "--config", path))
    assert f"{path}:1:" in line
    assert "invalid YAML" in line
    assert not marker.exists()


def test_unknown_workload_on_the_command_line(cli: RunCli, isolated_cargo: Path) -> None:
    path = CONFIGS / "documented.yml"
    line = one_error_line(*cli("check", "no-such-workload", "--config", path))
    assert f"{path}:" in line
    assert "'no-such-workload'" in line
    assert "reqctx" in line  # the workloads that are configured
    assert not isolated_cargo.exists()


def test_missing_config_file(cli: RunCli, tmp_path: Path, isolated_cargo: Path) -> None:
    path = tmp_path / "nope.yml"
    line = one_error_line(*cli("check", "--config", path))
    assert f"{path}:" in line
    assert "no such config file" in line


def test_cli_searches_upward_from_a_subdirectory(
    cli: RunCli, tmp_path: Path, isolated_cargo: Path
) -> None:
    # The config found above the working directory is the one reported (and used).
    path = config_with(tmp_path, "workloads:\n  orders:\n    manifest: $ORDERS\n    runs: 0\n")
    (tmp_path / "a" / "b").mkdir(parents=True)
    line = one_error_line(*cli("check", cwd=tmp_path / "a" / "b"))
    assert f"{path}: workloads.orders.runs:" in line
