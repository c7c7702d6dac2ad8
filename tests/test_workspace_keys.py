"""Keys at the workspace boundary on a real threaded workspace (fixtures/crates/logscan),
under real Valgrind DHAT and heaptrack, with names from the binary's debug info.

Each variant is built once per session (tests/logscan_crate.py) and profiled once
per profiler (the ``profiled`` fixture); the CLI tests bless and check through
allocgate's own build, into the same cargo target directory.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import RunCli, require_tools, run_cli
from logscan_crate import REGISTRY, Builds, Variant, logscan  # noqa: F401

from allocgate.boundary import name_crate
from allocgate.callsites import BOUNDARY, KEY_SEPARATOR, FoldOptions
from allocgate.load import load_profile
from allocgate.profile import Profile
from allocgate.workspace import read_workspace

pytestmark = pytest.mark.cargo

PROFILERS = ("valgrind-dhat", "heaptrack")
LINES = "3000"
TOP = 5


def _profile_run(profiler: str, binary: Path, out: Path) -> Path:
    if profiler == "valgrind-dhat":
        require_tools("valgrind")
        target = out / "dhat.json"
        argv = [
            "valgrind",
            "--tool=dhat",
            f"--dhat-out-file={target}",
            "--num-callers=64",
            str(binary),
            LINES,
        ]
        subprocess.run(argv, capture_output=True, check=True, timeout=300)
        return target
    require_tools("heaptrack")
    base = out / "trace"
    argv = ["heaptrack", "-o", str(base), str(binary), LINES]
    subprocess.run(argv, capture_output=True, check=True, timeout=300)
    (trace,) = out.glob("trace.*")
    return trace


Profiled = Callable[[str, str], Profile]


@pytest.fixture(scope="module")
def profiled(logscan: Builds, tmp_path_factory: pytest.TempPathFactory) -> Profiled:  # noqa: F811
    """``profiled(profiler, variant)``: the variant run once under the profiler and
    folded with workspace keys and names from its binary."""
    require_tools("llvm-symbolizer")
    cache: dict[tuple[str, str], Profile] = {}

    def get(profiler: str, variant: str) -> Profile:
        if (profiler, variant) not in cache:
            built = logscan(variant)
            out = tmp_path_factory.mktemp(f"{profiler}-{variant}")
            raw = _profile_run(profiler, built.binary, out)
            options = FoldOptions(workspace=read_workspace(built.manifest), binary=built.binary)
            cache[profiler, variant] = load_profile(raw, options)
        return cache[profiler, variant]

    return get


def _functions(key: str) -> list[str]:
    """The function paths a key is made of."""
    return [part for half in key.split(BOUNDARY) for part in half.split(KEY_SEPARATOR)]


def _workspace_sources(variant: Variant) -> dict[str, Path]:
    return {
        "scan_core": variant.root / "crates" / "scan-core" / "src",
        "logscan": variant.root / "crates" / "logscan" / "src",
    }


def _source_dir(crate: str, variant: Variant) -> Path | None:
    mine = _workspace_sources(variant)
    if crate in mine:
        return mine[crate]
    found = sorted(REGISTRY.glob(f"{crate.replace('_', '-')}-[0-9]*"))
    found += sorted(REGISTRY.glob(f"{crate}-[0-9]*"))
    return found[-1] / "src" if found else None


def _defines(function: str, variant: Variant) -> tuple[bool, str]:
    """Whether the sources define ``function`` at its module path: the module's
    file has ``fn name`` (or, for a trait method, the type the impl is for)."""
    trait_impl = re.match(r"^<(?P<self>[^ ]+) as [^>]+>::(?P<name>\w+)$", function)
    path = trait_impl.group("self") if trait_impl else function
    segments = path.split("::")
    crate = segments[0]
    source = _source_dir(crate, variant)
    if source is None:
        return False, f"no sources for crate {crate!r}"
    # The module path ends where the type or function begins.
    modules: list[str] = []
    for segment in segments[1:-1] if not trait_impl else segments[1:]:
        if segment[:1].isupper():
            break
        modules.append(segment)
    candidates = (
        [source / "lib.rs", source / "main.rs"]
        if not modules
        else [source.joinpath(*modules).with_suffix(".rs"), source.joinpath(*modules, "mod.rs")]
    )
    files = [c for c in candidates if c.is_file()]
    if not files:
        return False, f"no module file for {function!r} under {source}"
    text = "\n".join(f.read_text() for f in files)
    if trait_impl:
        item = segments[len(modules) + 1] if len(segments) > len(modules) + 1 else ""
        pattern = rf"\b(struct|enum|trait|type)\s+{re.escape(item)}\b"
    else:
        pattern = rf"\bfn\s+{re.escape(segments[-1])}\b"
    return re.search(pattern, text) is not None, f"{pattern!r} not in {files}"


@pytest.mark.parametrize("profiler", PROFILERS)
def test_top_keys_name_workspace_functions(profiled: Profiled, profiler: str) -> None:
    profile = profiled(profiler, "base")
    assert profile.keys == "workspace"
    top = profile.callsites[:TOP]
    assert len(top) == TOP
    for site in top:
        head = _functions(site.key)[0]
        assert site.outside or name_crate(head) in ("scan_core", "logscan"), site.key
        # These five are all the program's own (README: they hold most bytes).
        assert not site.outside, site.key
        assert site.location is not None
        assert site.location.startswith("crates/scan-core/src/"), site.location


@pytest.mark.parametrize("profiler", PROFILERS)
def test_no_key_names_a_function_the_sources_do_not_define(
    logscan: Builds,  # noqa: F811
    profiled: Profiled,
    profiler: str,
) -> None:
    profile = profiled(profiler, "base")
    floor = profile.totals["total_bytes"] // 200
    checked = 0
    for site in profile.callsites:
        if site.outside or site.metrics["total_bytes"] < floor:
            continue
        for function in _functions(site.key):
            ok, why = _defines(function, logscan("base"))
            assert ok, f"{site.key}: {function}: {why}"
            checked += 1
    assert checked >= 10


def test_valgrind_and_heaptrack_agree_on_keys_and_paths(profiled: Profiled) -> None:
    a = profiled("valgrind-dhat", "base")
    b = profiled("heaptrack", "base")
    top_a = [(s.key, s.location) for s in a.callsites[:TOP]]
    top_b = [(s.key, s.location) for s in b.callsites[:TOP]]
    assert sorted(top_a) == sorted(top_b)
    # Deterministic sites (no regex pool or per-worker vector growth in them)
    # have the very same bytes under both.
    for key in (
        "scan_core::record::enrich → <serde_json::value::Value as core::clone::Clone>::clone",
        "scan_core::generate::make_line",
    ):
        sa = next(s for s in a.callsites if s.key == key)
        sb = next(s for s in b.callsites if s.key == key)
        assert sa.metrics["total_bytes"] == sb.metrics["total_bytes"], key


@pytest.mark.parametrize("profiler", PROFILERS)
def test_moved_lines_fold_to_the_same_keys(profiled: Profiled, profiler: str) -> None:
    base = profiled(profiler, "base")
    moved = profiled(profiler, "moved")
    floor = base.totals["total_bytes"] // 200

    def big(p: Profile) -> dict[str, str]:
        return {
            s.key: (s.location or "").rsplit(":", 1)[0]
            for s in p.callsites
            if s.metrics["total_bytes"] >= floor and not s.outside
        }

    assert big(base) == big(moved)
    key = "scan_core::record::enrich → <serde_json::value::Value as core::clone::Clone>::clone"
    a = next(s for s in base.callsites if s.key == key)
    b = next(s for s in moved.callsites if s.key == key)
    assert a.metrics == b.metrics
    assert a.location != b.location  # the line moved; the key did not


@pytest.mark.parametrize("profiler", PROFILERS)
def test_regression_inside_a_dependency_call_is_the_workspace_function(
    profiled: Profiled, profiler: str
) -> None:
    base = {s.key: s.metrics["total_bytes"] for s in profiled(profiler, "base").callsites}
    regressed = {s.key: s.metrics["total_bytes"] for s in profiled(profiler, "regressed").callsites}
    key = "scan_core::record::enrich → <serde_json::value::Value as core::clone::Clone>::clone"
    assert regressed[key] > 1.5 * base[key]
    # No site appears named after serde_json's own Clone impl.
    assert not [k for k in regressed if k.startswith("<serde_json")]


def test_innermost_keys_are_still_available(logscan: Builds, profiled: Profiled) -> None:  # noqa: F811
    built = logscan("base")
    workspace = profiled("heaptrack", "base")
    raw_dir = Path(workspace.source).parent
    innermost = load_profile(
        Path(workspace.source), FoldOptions(keys="innermost", binary=built.binary)
    )
    assert raw_dir.is_dir()
    assert innermost.keys == "innermost"
    assert innermost.callsites[0].key.startswith("<serde_json::map::Map as core::clone::Clone>")


# ---------------------------------------------------------------- through the CLI


def _config(variant: Variant, baseline: Path, features: tuple[str, ...] = ()) -> str:
    workload = {
        "manifest": str(variant.manifest),
        "bin": "logscan",
        "profiler": "heaptrack",
        "args": [LINES],
        "metrics": ["total_bytes"],
        "threshold": {"total_bytes": {"relative": "5%", "absolute": "64 KiB"}},
    }
    if features:
        workload["features"] = [f"logscan/{f}" for f in features]
    return yaml.safe_dump({"baseline": str(baseline), "workloads": {"logscan": workload}})


def _cli(variant: Variant, *args: str | os.PathLike[str]) -> tuple[int, str, str]:
    """The CLI, building into the session's shared cargo target directory."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CARGO_TARGET_DIR", str(variant.target_dir))
        return run_cli(*args)


@pytest.fixture(scope="module")
def blessed(
    logscan: Builds,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    """The base variant blessed through the CLI: (config, baseline)."""
    require_tools("heaptrack")
    require_tools("llvm-symbolizer")
    base = logscan("base")
    work = tmp_path_factory.mktemp("cli")
    baseline = work / "allocgate-baseline.yml"
    config = work / "allocgate.yml"
    config.write_text(_config(base, baseline))
    base.touch()
    code, _out, err = _cli(base, "bless", "--config", config, "-q")
    assert code == 0, err
    return config, baseline


def test_bless_records_workspace_keys(blessed: tuple[Path, Path]) -> None:
    _config_path, baseline = blessed
    doc = yaml.safe_load(baseline.read_text())
    entry = doc["workloads"]["logscan"]
    assert entry["keys"] == "workspace"
    keys = [s["key"] for s in entry["callsites"]]
    assert any(k.startswith("scan_core::record::enrich → ") for k in keys)
    at = {s["key"]: s.get("at") for s in entry["callsites"]}
    assert at["scan_core::generate::make_line"].startswith("crates/scan-core/src/generate.rs:")


def test_regressed_variant_fails_naming_the_crate_function(
    logscan: Builds,  # noqa: F811
    blessed: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    _config_path, baseline = blessed
    regressed = logscan("base")  # same sources, the feature switches the regression on
    config = tmp_path / "allocgate.yml"
    config.write_text(_config(regressed, baseline, features=("regressed",)))
    regressed.touch()
    code, out, err = _cli(regressed, "check", "--config", config, "-q")
    assert code == 1, out + err
    flagged = [line for line in out.splitlines() if line.startswith("  !")]
    enrich = "scan_core::record::enrich → <serde_json::value::Value as core::clone::Clone>::clone"
    assert any(enrich in line and "+100.0%" in line for line in flagged), out
    # (regex's per-thread caches may flap too with four workers and one run:
    # the noise envelope's business, not the keys'.) No key is serde_json's.
    assert "<serde_json::map::Map" not in out
    assert not re.search(r"^\s+!?\s+\w+\s+<serde_json", out, re.M), out


def test_baseline_of_the_other_key_kind_stops_before_building(
    blessed: tuple[Path, Path], cli: RunCli
) -> None:
    config, _baseline = blessed
    code, out, err = cli("check", "--config", config, "--keys", "innermost")
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "blessed with workspace keys" in lines[0]
    assert re.search(r"run `allocgate bless .*logscan`$", lines[0]), lines[0]
    assert "building" not in err
