"""``allocgate.yml`` (or ``[tool.allocgate]`` in pyproject.toml): read once, validated,
turned into frozen settings. Paths are relative to the config file."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allocgate import profilers
from allocgate.callsites import KEYS, FoldOptions
from allocgate.compare import GateSettings
from allocgate.errors import ConfigError
from allocgate.metrics import METRIC_NAMES, METRICS
from allocgate.quantities import Tolerance, parse_duration, parse_threshold_value
from allocgate.schema import argument, environment, regex, show
from allocgate.schema import text as plain_text
from allocgate.settings import DEFAULT_BASELINE
from allocgate.yaml_doc import parse_yaml

if TYPE_CHECKING:
    from allocgate.cargo_tests import TestCase

CONFIG_NAMES = ("allocgate.yml", "allocgate.yaml")

_SETTING_KEYS = {
    "profiler",
    "cargo_profile",
    "features",
    "top",
    "metrics",
    "threshold",
    "runs",
    "bless_runs",
    "timeout",
    "depth",
    "skip",
    "keys",
}
_WORKLOAD_KEYS = _SETTING_KEYS | {
    "manifest",
    "bin",
    "example",
    "args",
    "env",
    "cwd",
    "tests",
    "test_target",
    "tests_write_dhat_json",
}
_TOP_KEYS = {"baseline", "defaults", "require_reason", "workloads"}


@dataclass(frozen=True)
class WorkloadConfig:
    """Everything needed to build, run, profile and judge one workload."""

    name: str
    manifest: Path
    cwd: Path
    profiler: str = "dhat-rs"
    bin: str | None = None
    example: str | None = None
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    cargo_profile: str = "profiling"
    features: tuple[str, ...] = ()
    runs: int = 1
    """Runs per check; the median is compared, the range judged."""
    bless_runs: int = 3
    """Runs per bless at least, so the baseline records each site's noise envelope."""
    timeout: float = 600.0
    gate: GateSettings = field(default_factory=GateSettings)
    fold: FoldOptions = field(default_factory=FoldOptions)
    tests: str | None = None
    """A cargo test filter: every matching #[test] becomes a workload of its own."""
    test_target: str = "lib"
    """``lib``, ``all``, or the NAME of tests/NAME.rs."""
    tests_exact: bool = False
    """``tests`` names one test exactly (``allocgate check lexer::tokens::tests::x``)."""
    test: TestCase | None = None
    """Set on the workload of one test, made from a ``tests:`` workload."""


@dataclass(frozen=True)
class Config:
    path: Path
    baseline: Path
    workloads: dict[str, WorkloadConfig]
    require_reason: bool = False
    """Fail `check` when a PR changes the baseline without a recorded reason."""

    def select(self, names: Sequence[str]) -> list[WorkloadConfig]:
        """The named workloads (all when none are named), in a stable order."""
        if not names:
            return [self.workloads[n] for n in sorted(self.workloads)]
        chosen = []
        for name in names:
            if name not in self.workloads:
                test = self._one_test(name)
                if test is not None:
                    chosen.append(test)
                    continue
                known = ", ".join(sorted(self.workloads)) or "none"
                raise ConfigError(f"{self.path}: unknown workload {name!r} (configured: {known})")
            chosen.append(self.workloads[name])
        return chosen

    def _one_test(self, name: str) -> WorkloadConfig | None:
        """``lexer::tokens::tests::long_line``: workload ``lexer`` narrowed to that test."""
        parts = name.split("::")
        for i in range(len(parts) - 1, 0, -1):
            w = self.workloads.get("::".join(parts[:i]))
            if w is not None and w.tests is not None:
                return dataclasses.replace(w, tests="::".join(parts[i:]), tests_exact=True)
        return None


def find_config(start: Path) -> Path:
    """allocgate.yml in ``start`` or a parent; else a pyproject.toml with [tool.allocgate]."""
    start = start.resolve()
    for directory in (start, *start.parents):
        for name in CONFIG_NAMES:
            candidate = directory / name
            if candidate.is_file():
                return candidate
        pyproject = directory / "pyproject.toml"
        if pyproject.is_file() and "[tool.allocgate" in pyproject.read_text(errors="replace"):
            return pyproject
    raise ConfigError(
        f"no allocgate.yml found in {start} or its parents (pass --config PATH, "
        "or add [tool.allocgate] to pyproject.toml)"
    )


def load_config(path: Path | None = None, cwd: Path | None = None) -> Config:
    path = path.resolve() if path is not None else find_config(cwd or Path.cwd())
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config: {exc}") from exc
    if path.name == "pyproject.toml":
        doc = _read_pyproject(path, text)
    else:
        doc = parse_yaml(path, text, ConfigError)
    return parse_config(path, doc)


def _read_pyproject(path: Path, text: str) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:
        # A number too long for int() or tables nested too deep.
        raise ConfigError(f"{path}: invalid TOML: {type(exc).__name__}: {exc}") from None
    section = doc.get("tool", {}).get("allocgate")
    if section is None:
        raise ConfigError(f"{path}: no [tool.allocgate] table")
    return section


class _Where:
    """Builds error messages that name the file and the key path."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {message}")


def parse_config(path: Path, doc: Any) -> Config:
    where = _Where(path)
    if not isinstance(doc, Mapping):
        raise ConfigError(
            f"{path}: expected a mapping with 'workloads' (and 'defaults', 'baseline')"
        )
    for key in doc:
        if key not in _TOP_KEYS:
            raise where.error(
                str(key), f"unknown key (expected one of: {', '.join(sorted(_TOP_KEYS))})"
            )
    root = path.parent
    baseline = doc.get("baseline", DEFAULT_BASELINE)
    if not isinstance(baseline, str) or not baseline:
        raise where.error("baseline", f"expected a file path, got {show(baseline)}")
    plain_text(baseline, ConfigError, path, "baseline")
    require_reason = doc.get("require_reason", False)
    if not isinstance(require_reason, bool):
        raise where.error("require_reason", f"expected true or false, got {show(require_reason)}")
    defaults = doc.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        raise where.error("defaults", "expected a mapping")
    for key in defaults:
        if key not in _SETTING_KEYS:
            raise where.error(
                f"defaults.{key}",
                f"unknown key (expected one of: {', '.join(sorted(_SETTING_KEYS))})",
            )
    workloads = doc.get("workloads")
    if not isinstance(workloads, Mapping) or not workloads:
        raise where.error("workloads", "expected a mapping of workload names to settings")
    result: dict[str, WorkloadConfig] = {}
    for name, entry in workloads.items():
        if not isinstance(name, str) or not name or any(c in name for c in "/\\"):
            raise where.error(f"workloads.{show(name)}", "expected a plain workload name")
        plain_text(name, ConfigError, path, f"workloads.{name}")
        result[name] = _workload(where, root, name, entry, defaults)
    return Config(
        path=path, baseline=(root / baseline), workloads=result, require_reason=require_reason
    )


def _workload(
    where: _Where, root: Path, name: str, entry: Any, defaults: Mapping[str, Any]
) -> WorkloadConfig:
    at = f"workloads.{name}"
    if not isinstance(entry, Mapping):
        raise where.error(at, "expected a mapping with at least 'manifest'")
    for key in entry:
        if key not in _WORKLOAD_KEYS:
            raise where.error(
                f"{at}.{key}", f"unknown key (expected one of: {', '.join(sorted(_WORKLOAD_KEYS))})"
            )
    setting = _Settings(at, entry, defaults)
    manifest = _manifest(where, root, at, entry)
    key, profiler = setting("profiler", "dhat-rs")
    if profiler not in profilers.NAMES:
        raise where.error(
            key, f"expected one of {', '.join(profilers.NAMES)}, got {show(profiler)}"
        )
    key, cargo_profile = setting("cargo_profile", "profiling")
    _string(where, key, cargo_profile)
    features = _features(where, at, entry, defaults, profiler)
    bin_name, example = _target(where, at, entry)
    args, env, cwd = _args(where, at, entry), _env(where, at, entry), _cwd(where, root, at, entry)
    tests, test_target = _tests(where, at, entry, profiler)
    if tests is not None and "cwd" not in entry:
        cwd = manifest.parent  # where `cargo test` runs a package's tests
    key, runs = setting("runs", 1)
    runs = _positive(where, key, runs)
    key, bless_runs = setting("bless_runs", 3)
    bless_runs = _positive(where, key, bless_runs)
    key, timeout = setting("timeout", "10m")
    try:
        timeout_s = parse_duration(timeout, what=key)
    except ConfigError as exc:
        raise ConfigError(f"{where.path}: {exc}") from None
    return WorkloadConfig(
        name=name,
        manifest=manifest,
        cwd=cwd,
        profiler=profiler,
        bin=bin_name,
        example=example,
        args=args,
        env=env,
        cargo_profile=cargo_profile,
        features=features,
        runs=runs,
        bless_runs=bless_runs,
        timeout=timeout_s,
        gate=_gate(where, setting),
        fold=dataclasses.replace(_fold(where, setting), harness=tests is not None),
        tests=tests,
        test_target=test_target,
    )


def _tests(
    where: _Where, at: str, entry: Mapping[str, Any], profiler: str
) -> tuple[str | None, str]:
    """``tests`` (a cargo test filter; ``true`` or "" for every test) and ``test_target``."""
    if "tests" not in entry:
        for key in ("test_target", "tests_write_dhat_json"):
            if key in entry:
                raise where.error(f"{at}.{key}", "goes with 'tests' (a cargo test filter)")
        return None, "lib"
    tests = entry["tests"]
    if tests is True:
        tests = ""
    if not isinstance(tests, str):
        raise where.error(
            f"{at}.tests", f"expected a cargo test filter such as 'tokens::', got {tests!r}"
        )
    for key in ("bin", "example", "args"):
        if key in entry:
            raise where.error(
                f"{at}.{key}",
                "does not go with 'tests': each test runs alone as "
                "`TEST_BINARY --exact NAME --test-threads=1`",
            )
    test_target = entry.get("test_target", "lib")
    _string(where, f"{at}.test_target", test_target)
    writes_dhat = entry.get("tests_write_dhat_json", False)
    if not isinstance(writes_dhat, bool):
        raise where.error(
            f"{at}.tests_write_dhat_json", f"expected true or false, got {writes_dhat!r}"
        )
    if profiler == "dhat-rs" and not writes_dhat:
        raise where.error(
            f"{at}.tests",
            "profiler dhat-rs cannot profile #[test]s without code in each test (a dhat::Profiler "
            "created inside it); use profiler: valgrind-dhat or heaptrack, which need no "
            "code change (or set tests_write_dhat_json: true if your tests write "
            "dhat-heap.json themselves)",
        )
    return tests, test_target


class _Settings:
    """A setting of one workload: its own value, else the default's, else allocgate's."""

    def __init__(self, at: str, entry: Mapping[str, Any], defaults: Mapping[str, Any]) -> None:
        self.at, self.entry, self.defaults = at, entry, defaults

    def __call__(self, key: str, default: Any) -> tuple[str, Any]:
        if key in self.entry:
            return f"{self.at}.{key}", self.entry[key]
        if key in self.defaults:
            return f"defaults.{key}", self.defaults[key]
        return f"{self.at}.{key}", default


def _manifest(where: _Where, root: Path, at: str, entry: Mapping[str, Any]) -> Path:
    manifest = entry.get("manifest")
    if not isinstance(manifest, str) or not manifest:
        raise where.error(f"{at}.manifest", "missing: the path of the workload's Cargo.toml")
    plain_text(manifest, ConfigError, where.path, f"{at}.manifest")
    manifest_path = (root / manifest).resolve()
    if not manifest_path.is_file():
        raise where.error(f"{at}.manifest", f"no such file: {manifest_path}")
    return manifest_path


def _features(
    where: _Where, at: str, entry: Mapping[str, Any], defaults: Mapping[str, Any], profiler: str
) -> tuple[str, ...]:
    if "features" in entry:
        return _strings(where, f"{at}.features", entry["features"])
    chosen = profilers.get(profiler)
    if not chosen.reads_default_features:
        return ()
    if "features" in defaults:
        return _strings(where, "defaults.features", defaults["features"])
    return chosen.default_features


def _target(where: _Where, at: str, entry: Mapping[str, Any]) -> tuple[str | None, str | None]:
    bin_name, example = entry.get("bin"), entry.get("example")
    if bin_name is not None and example is not None:
        raise where.error(at, "give either 'bin' or 'example', not both")
    for k, v in (("bin", bin_name), ("example", example)):
        if v is not None:
            _string(where, f"{at}.{k}", v)
    return bin_name, example


def _args(where: _Where, at: str, entry: Mapping[str, Any]) -> tuple[str, ...]:
    args = entry.get("args", [])
    if not isinstance(args, list):
        raise where.error(f"{at}.args", "expected a list of strings")
    # A NUL byte cannot reach execve: refused here, with the key, not at the first run.
    return tuple(
        argument(a, ConfigError, where.path, f"{at}.args[{i}]") for i, a in enumerate(args)
    )


def _env(where: _Where, at: str, entry: Mapping[str, Any]) -> dict[str, str]:
    return environment(entry.get("env", {}), ConfigError, where.path, f"{at}.env")


def _cwd(where: _Where, root: Path, at: str, entry: Mapping[str, Any]) -> Path:
    cwd = _string(where, f"{at}.cwd", entry.get("cwd", "."))
    cwd_path = (root / cwd).resolve()
    if not cwd_path.is_dir():
        raise where.error(f"{at}.cwd", f"no such directory: {cwd_path}")
    return cwd_path


def _gate(where: _Where, setting: _Settings) -> GateSettings:
    key, top = setting("top", 5)
    top = _positive(where, key, top)
    key, metrics = setting("metrics", ["total_bytes"])
    metric_names = _strings(where, key, metrics)
    if not metric_names:
        raise where.error(key, "expected at least one metric")
    for m in metric_names:
        if m not in METRICS:
            raise where.error(
                key, f"unknown metric {show(m)} (expected: {', '.join(METRIC_NAMES)})"
            )
    key, threshold = setting("threshold", {})
    tolerances = _thresholds(where, key, threshold)
    return GateSettings(metrics=metric_names, top=top, tolerances=tolerances)


def _fold(where: _Where, setting: _Settings) -> FoldOptions:
    key, depth = setting("depth", 1)
    depth = _positive(where, key, depth)
    key, skip = setting("skip", [])
    skip_patterns = _strings(where, key, skip)
    for i, pattern in enumerate(skip_patterns):
        regex(pattern, ConfigError, where.path, f"{key}[{i}]")
    key, keys = setting("keys", "workspace")
    if keys not in KEYS:
        raise where.error(key, f"expected one of {', '.join(KEYS)}, got {show(keys)}")
    return FoldOptions(depth=depth, skip=skip_patterns, keys=keys)


def _string(where: _Where, key: str, value: Any) -> str:
    return plain_text(value, ConfigError, where.path, key)


def _strings(where: _Where, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise where.error(key, f"expected a list of strings, got {show(value)}")
    return tuple(plain_text(v, ConfigError, where.path, f"{key}[{i}]") for i, v in enumerate(value))


_MAX_SETTING = 100_000
"""More runs, callsites or frames than anyone means; a bigger number is a typo."""


def _positive(where: _Where, key: str, value: Any) -> int:
    if type(value) is not int or not 1 <= value <= _MAX_SETTING:
        raise where.error(
            key, f"expected a positive whole number up to {_MAX_SETTING}, got {show(value)}"
        )
    return value


def _thresholds(where: _Where, key: str, value: Any) -> dict[str, Tolerance]:
    return parse_threshold_value(value, what=f"{where.path}: {key}")
