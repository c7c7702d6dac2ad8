"""The fixture crates (fixtures/crates/, fixtures/demo/) build and behave as documented.

Each crate is built at most once per session, into its own target directory
under one session-scoped temporary directory (see ``built``).
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import require_tools
from orders_crate import PATCHES, orders_crate, orders_manifest

ROOT = Path(__file__).resolve().parents[1]
CRATES = ROOT / "fixtures" / "crates"
DEMO = ROOT / "fixtures" / "demo"

# The three variants that must build, run and print the same thing.
RUNNABLE = ("orders", "orders-moved", "orders-regressed")
# Every crate the tests may build, in a fixed order: the index names the target
# directory (t0, t1, ...), so all target paths have the same length and so do
# the binaries' paths, which the `orders::parse_args` site copies from argv.
MANIFESTS = {
    "orders": CRATES / "orders" / "Cargo.toml",
    "orders-moved": orders_manifest("orders-moved"),
    "orders-regressed": orders_manifest("orders-regressed"),
    "orders-broken": orders_manifest("orders-broken"),
    "dhat-wired": orders_manifest("dhat-wired"),
    "demo-reqctx": DEMO / "reqctx" / "Cargo.toml",
}
BINARIES = {"demo-reqctx": "reqctx"}

DHAT_UNAVAILABLE = (
    "dhat-wired declares the `dhat` dependency, which needs crates.io "
    "(not reachable here and not in the local cargo cache)"
)


@dataclass(frozen=True)
class Build:
    """The outcome of one ``cargo build --profile profiling``."""

    crate: str
    returncode: int
    stderr: str
    binary: Path

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and self.binary.is_file()


BuildFn = Callable[..., Build]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["CARGO_TERM_COLOR"] = "never"
    env.pop("RUSTFLAGS", None)
    return env


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> BuildFn:
    """Returns ``build(crate, *features)``, which builds each crate once per session."""
    require_tools("cargo")
    root = tmp_path_factory.mktemp("fixture-crates")
    cache: dict[tuple[str, tuple[str, ...]], Build] = {}

    def build(crate: str, *features: str) -> Build:
        key = (crate, features)
        if key not in cache:
            target = root / f"t{list(MANIFESTS).index(crate)}"
            cmd = [
                "cargo",
                "build",
                "--offline",
                "--locked",
                "--profile",
                "profiling",
                "--manifest-path",
                str(MANIFESTS[crate]),
                "--target-dir",
                str(target),
            ]
            if features:
                cmd += ["--features", ",".join(features)]
            proc = subprocess.run(
                cmd, capture_output=True, text=True, env=_env(), timeout=600, check=False
            )
            binary = target / "profiling" / BINARIES.get(crate, "orders")
            cache[key] = Build(crate, proc.returncode, proc.stderr, binary)
        return cache[key]

    return build


def run(
    build: Build, *args: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    assert build.ok, f"{build.crate} did not build:\n{build.stderr}"
    return subprocess.run(
        [str(build.binary), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


SUMMARY = re.compile(r"^orders=(\d+) customers=\d+ receipt_bytes=\d+ top_customer=\S+$", re.M)


@pytest.mark.cargo
@pytest.mark.parametrize("crate", RUNNABLE)
def test_variant_builds_and_runs(built: BuildFn, crate: str) -> None:
    proc = run(built(crate), "300")
    assert proc.returncode == 0, proc.stderr
    match = SUMMARY.search(proc.stdout)
    assert match is not None, proc.stdout
    assert match.group(1) == "300"
    assert proc.stderr.strip().splitlines()[-1] == "orders: finished"


@pytest.mark.cargo
def test_variants_compute_the_same_thing(built: BuildFn) -> None:
    outputs = {crate: run(built(crate), "1234", "--leak").stdout for crate in RUNNABLE}
    assert len(set(outputs.values())) == 1, outputs


@pytest.mark.cargo
def test_default_n_is_5000(built: BuildFn) -> None:
    proc = run(built("orders"))
    assert proc.returncode == 0
    assert proc.stdout.startswith("orders=5000 customers=250 ")


@pytest.mark.cargo
def test_broken_does_not_compile(built: BuildFn) -> None:
    build = built("orders-broken")
    assert build.returncode != 0
    assert "error[E0308]: mismatched types" in build.stderr
    assert not build.binary.exists()


@pytest.mark.cargo
def test_panic_exits_nonzero_with_message(built: BuildFn) -> None:
    # The message-only panic hook means RUST_BACKTRACE changes nothing.
    env = {**os.environ, "RUST_BACKTRACE": "1"}
    proc = run(built("orders"), "100", "--panic", env=env)
    assert proc.returncode == 101
    assert "panicked at" in proc.stderr
    assert "orders: simulated failure after 100 orders" in proc.stderr
    assert "stack backtrace" not in proc.stderr
    assert SUMMARY.search(proc.stdout) is None


@pytest.mark.cargo
def test_abort_dies_by_sigabrt(built: BuildFn) -> None:
    proc = run(built("orders"), "100", "--abort")
    assert proc.returncode == -signal.SIGABRT
    assert "orders: aborting after 100 orders" in proc.stderr


@pytest.mark.cargo
def test_exit_early_skips_the_end_of_main(built: BuildFn) -> None:
    proc = run(built("orders"), "100", "--exit-early")
    assert proc.returncode == 0
    assert SUMMARY.search(proc.stdout) is not None
    assert "orders: exiting early" in proc.stderr
    assert "orders: finished" not in proc.stderr


@pytest.mark.cargo
def test_leak_reports_leaked_bytes(built: BuildFn) -> None:
    proc = run(built("orders"), "--leak")
    assert proc.returncode == 0
    assert proc.stdout.splitlines()[0] == "leaked=2400"
    assert SUMMARY.search(proc.stdout) is not None


@pytest.mark.cargo
def test_sleep_ms_sleeps(built: BuildFn) -> None:
    build = built("orders")
    start = time.monotonic()
    proc = run(build, "10", "--sleep-ms=200")
    assert proc.returncode == 0
    assert time.monotonic() - start >= 0.2
    with pytest.raises(subprocess.TimeoutExpired):
        run(build, "10", "--sleep-ms=30000", timeout=0.5)


@pytest.mark.cargo
def test_bad_argument_is_a_usage_error(built: BuildFn) -> None:
    proc = run(built("orders"), "--sleep-ms=soon")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: orders")


@pytest.mark.cargo
def test_dhat_wired_builds_with_dhat_heap(
    built: BuildFn, tmp_path_factory: pytest.TempPathFactory
) -> None:
    build = built("dhat-wired", "dhat-heap")
    if not build.ok:
        errors = [line for line in build.stderr.splitlines() if line.startswith("error")]
        pytest.skip(f"{DHAT_UNAVAILABLE}: {errors[0] if errors else build.stderr.strip()}")
    cwd = tmp_path_factory.mktemp("dhat-wired-run")
    proc = subprocess.run(
        [str(build.binary), "200"], cwd=cwd, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    profile = json.loads((cwd / "dhat-heap.json").read_bytes())
    assert profile["mode"] == "rust-heap"


@pytest.mark.cargo
def test_demo_builds_and_runs(built: BuildFn) -> None:
    proc = run(built("demo-reqctx"), "2000")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("variant=Base requests=2000 ")


# --- Under Valgrind DHAT: the fold invariants the tool's tests rely on ---------------------


def _dhat_stacks(path: Path) -> tuple[collections.Counter[tuple[str, ...]], dict[str, set[str]]]:
    """tb per stack of function names, and the source lines seen per `orders::` function."""
    profile = json.loads(path.read_bytes())
    names: list[str] = []
    locations: list[str] = []
    for entry in profile["ftbl"]:
        text = re.sub(r"^0x[0-9a-fA-F]+: ", "", entry)
        name, _, loc = text.rpartition(" (")
        names.append(name or text)
        locations.append(loc.rstrip(")"))
    stacks: collections.Counter[tuple[str, ...]] = collections.Counter()
    lines: dict[str, set[str]] = collections.defaultdict(set)
    for pp in profile["pps"]:
        frames = pp["fs"]
        stacks[tuple(names[i] for i in frames)] += pp["tb"]
        for i in frames:
            if names[i].startswith("orders::"):
                lines[names[i]].add(locations[i])
    return stacks, dict(lines)


@pytest.mark.cargo
@pytest.mark.valgrind
def test_variants_under_valgrind_dhat(
    built: BuildFn, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_tools("valgrind")
    out = tmp_path_factory.mktemp("valgrind-dhat")
    results = {}
    for crate in RUNNABLE:
        dest = out / f"{crate}.json"
        proc = subprocess.run(
            [
                "valgrind",
                "--tool=dhat",
                f"--dhat-out-file={dest}",
                str(built(crate).binary),
                "1000",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        results[crate] = _dhat_stacks(dest)
    base, base_lines = results["orders"]
    moved, moved_lines = results["orders-moved"]
    regressed, _ = results["orders-regressed"]

    # Moved: identical stacks (by function name) and bytes, different line numbers.
    assert moved == base
    assert base_lines.keys() == moved_lines.keys()
    for function, lines in base_lines.items():
        assert lines != moved_lines[function], function

    # Regressed: only stacks through build_order change, and by more than 10 %.
    def split(
        stacks: collections.Counter[tuple[str, ...]],
    ) -> tuple[int, dict[tuple[str, ...], int]]:
        site = sum(tb for stack, tb in stacks.items() if "orders::build_order" in stack)
        rest = {s: tb for s, tb in stacks.items() if "orders::build_order" not in s}
        return site, rest

    base_site, base_rest = split(base)
    regressed_site, regressed_rest = split(regressed)
    assert regressed_rest == base_rest
    assert regressed_site > base_site * 1.10
    assert regressed_site - base_site == 1000 * 109


# --- Sources: the variants are patches of `orders` that change only what is documented -----


def _lines(crate: str) -> list[str]:
    return (orders_crate(crate) / "src" / "main.rs").read_text().splitlines()


def _patched_files(variant: str) -> list[str]:
    """The files a variant's patch touches (``a/`` side), in order."""
    text = (PATCHES / f"{variant}.patch").read_text()
    return re.findall(r"^diff --git a/(\S+) ", text, re.M)


def test_every_variant_is_a_patch_of_orders() -> None:
    assert sorted(p.name for p in PATCHES.iterdir()) == [
        "broken.patch",
        "dhat-wired.patch",
        "moved.patch",
        "regressed.patch",
    ]
    for variant in ("moved", "regressed", "broken"):
        assert _patched_files(variant) == ["src/main.rs"], variant
    assert _patched_files("dhat-wired") == ["Cargo.lock", "Cargo.toml", "src/main.rs"]
    # Only orders is a full crate under fixtures/crates (besides logscan and hostile).
    for gone in ("orders-moved", "orders-regressed", "orders-broken", "dhat-wired"):
        assert not (CRATES / gone).exists(), gone


def test_regressed_patch_changes_one_code_line() -> None:
    text = (PATCHES / "regressed.patch").read_text().splitlines()
    removed = [line[1:] for line in text if line.startswith("-") and not line.startswith("---")]
    added = [line[1:] for line in text if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 3
    assert [line.startswith("//!") for line in added] == [True, True, False]
    assert added[2].strip() == "tags: tags.clone(),"
    assert removed[2].strip() == "tags,"


def _changed_lines(crate: str) -> list[int]:
    base, other = _lines("orders"), _lines(crate)
    assert len(base) == len(other)
    return [n for n, (a, b) in enumerate(zip(base, other, strict=True), 1) if a != b]


def test_regressed_differs_by_one_clone_in_build_order() -> None:
    changed = _changed_lines("orders-regressed")
    assert changed[:2] == [1, 2]  # the doc comment naming the change
    assert len(changed) == 3
    line = _lines("orders-regressed")[changed[2] - 1]
    assert line.strip() == "tags: tags.clone(),"
    assert "build_order" in _lines("orders-regressed")[1]
    # The changed line is inside build_order.
    header = [n for n, text in enumerate(_lines("orders"), 1) if text.startswith("fn ")]
    owner = max(n for n in header if n < changed[2])
    assert _lines("orders")[owner - 1].startswith("fn build_order(")


def test_broken_differs_by_one_line() -> None:
    changed = _changed_lines("orders-broken")
    assert len(changed) == 3
    assert changed[:2] == [1, 2]


def test_moved_has_the_same_functions_on_other_lines() -> None:
    def functions(crate: str) -> dict[str, int]:
        return {
            m.group(1): n
            for n, text in enumerate(_lines(crate), 1)
            if (m := re.match(r"fn (\w+)", text))
        }

    base, moved = functions("orders"), functions("orders-moved")
    assert base.keys() == moved.keys()
    assert all(base[f] != moved[f] for f in base)
    source = (orders_crate("orders-moved") / "src" / "main.rs").read_text()
    assert source.count("#[inline(never)]") == _lines("orders").count("#[inline(never)]")


def test_dhat_wired_is_wired_like_the_samples() -> None:
    manifest = (orders_crate("dhat-wired") / "Cargo.toml").read_text()
    assert 'dhat = { version = "0.3", optional = true }' in manifest
    assert 'dhat-heap = ["dhat"]' in manifest
    source = (orders_crate("dhat-wired") / "src" / "main.rs").read_text()
    assert (
        '#[cfg(feature = "dhat-heap")]\n#[global_allocator]\nstatic ALLOC: dhat::Alloc = dhat::Alloc;'
    ) in source
    assert "let _profiler = dhat::Profiler::new_heap();" in source


@pytest.mark.parametrize("crate", ["orders", "orders-moved", "orders-regressed", "orders-broken"])
def test_crates_have_no_dependencies(crate: str) -> None:
    manifest = (orders_crate(crate) / "Cargo.toml").read_text()
    assert "[dependencies]" not in manifest
    assert '[profile.profiling]\ninherits = "release"\ndebug = 1' in manifest
    assert (orders_crate(crate) / "Cargo.lock").is_file()


def test_demo_has_no_dhat_and_a_valid_config() -> None:
    for path in (DEMO / "reqctx").rglob("*"):
        if path.is_file() and path.suffix in {".rs", ".toml"}:
            assert "dhat" not in path.read_text(), path
    config = yaml.safe_load((DEMO / "allocgate.yml").read_text())
    assert config["baseline"] == "allocgate-baseline.yml"
    workload = config["workloads"]["reqctx"]
    assert (DEMO / workload["manifest"]).is_file()
    assert workload["args"] == ["20000"]
