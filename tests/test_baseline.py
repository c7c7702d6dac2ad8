"""The committed baseline: round trip, deterministic text, other workloads kept byte for byte,
and atomic writes that leave the old file intact when anything fails."""

from __future__ import annotations

import os
import re
import resource
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import DHAT_RS, ROOT, SAMPLES, VALGRIND, require_tools

from allocgate.baseline import Baseline, WorkloadBaseline
from allocgate.baseline_file import HEADER, read_baseline, render_workload, update_baseline
from allocgate.callsites import Callsite, FoldOptions
from allocgate.errors import BaselineError
from allocgate.load import load_profile

KEEP = 15


def entry(name: str, sample: str, depth: int = 1, keep: int = KEEP) -> WorkloadBaseline:
    profile = load_profile(SAMPLES / sample, FoldOptions(depth=depth))
    return WorkloadBaseline.from_profile(name, profile, keep)


def bless(path: Path, *entries: WorkloadBaseline) -> Baseline:
    return update_baseline(path, {e.name: e for e in entries})


def block(text: str, name: str) -> str:
    """The exact text of one workload's block under ``workloads:``."""
    match = re.search(rf"^  {re.escape(name)}:\n(?:(?:   |\n).*\n?)*", text, re.M)
    assert match is not None, f"no block for {name} in:\n{text}"
    return match.group(0)


def same_sites(a: WorkloadBaseline, b: WorkloadBaseline) -> None:
    assert [(s.key, s.metrics, s.location) for s in a.callsites] == [
        (s.key, s.metrics, s.location) for s in b.callsites
    ]


# ---------------------------------------------------------------- round trip

ROUND_TRIPS = [
    ("reqctx", "dhat-rs/reqctx-base.json", 1),
    ("reqctx-vg", "valgrind-dhat/reqctx-base.json", 1),
    ("reqctx-deep", "dhat-rs/reqctx-base.json", 3),
    ("ad-hoc", "dhat-rs/reqctx-base.ad-hoc.json", 1),
    ("threads", "dhat-rs/threads.json", 2),
    ("manysites", "valgrind-dhat/manysites.json", 2),
]


@pytest.mark.parametrize(("name", "sample", "depth"), ROUND_TRIPS)
def test_write_then_read_round_trips(name: str, sample: str, depth: int, tmp_path: Path) -> None:
    written = entry(name, sample, depth)
    path = tmp_path / "allocgate-baseline.yml"
    bless(path, written)
    read = read_baseline(path).get(name)
    assert read.name == name
    assert read.profiler == written.profiler
    assert read.totals == written.totals
    assert read.depth == depth
    assert read.mode == written.mode
    assert read.units == written.units
    same_sites(read, written)
    folded = load_profile(SAMPLES / sample, FoldOptions(depth=depth))
    assert len(read.callsites) == min(KEEP, len(folded.callsites))


def test_ad_hoc_units_are_kept() -> None:
    text = render_workload(entry("ad-hoc", "dhat-rs/reqctx-base.ad-hoc.json"))
    assert "mode: ad-hoc" in text
    assert "total_bytes: units" in text
    assert "total_blocks: events" in text


def test_as_profile_compares_like_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    bless(path, entry("reqctx", "valgrind-dhat/reqctx-base.json"))
    profile = read_baseline(path).get("reqctx").as_profile(str(path))
    assert profile.profiler == "valgrind-dhat"
    assert profile.metrics == ("total_bytes", "total_blocks", "peak_bytes", "end_bytes")
    assert profile.callsites[0].key == "reqctx::split_fields"
    assert profile.source == str(path)


TRICKY_KEYS = [
    "reqctx::split_fields ← reqctx::handle_requests",
    "<Vec<T> as Clone>::clone",
    "key: with a colon",
    "# not a comment",
    "- not a list item",
    "'quoted' \"twice\"",
    "yes",
    "null",
    "~",
    "123",
    "1e3",
    "true",
    "trailing space ",
    "tab\there",
    "[allocator]",
    "{closure}",
    "@user #1 `code` | pipe",
    "ünïcödé ✓",
]


def test_awkward_keys_survive_yaml(tmp_path: Path) -> None:
    sites = tuple(
        Callsite(key, {"total_bytes": 1000 - i, "total_blocks": i}, f"src/x{i}.rs:{i}")
        for i, key in enumerate(TRICKY_KEYS)
    )
    written = WorkloadBaseline(
        "tricky", "dhat-rs", {"total_bytes": 10**12, "total_blocks": 2**40}, sites
    )
    path = tmp_path / "b.yml"
    bless(path, written)
    read = read_baseline(path).get("tricky")
    assert {s.key: s.metrics for s in read.callsites} == {s.key: s.metrics for s in sites}
    assert read.totals == {"total_bytes": 10**12, "total_blocks": 2**40}
    # Numbers are written as plain integers, never in scientific notation.
    assert "total_bytes: 1000000000000\n" in path.read_text(encoding="utf-8")


def test_missing_file_is_an_empty_baseline(tmp_path: Path) -> None:
    baseline = read_baseline(tmp_path / "nope.yml")
    assert baseline.workloads == {}
    with pytest.raises(BaselineError, match="no baseline for workload 'x'"):
        baseline.get("x")


# ---------------------------------------------------------------- deterministic text


def test_two_writes_are_byte_identical(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yml", tmp_path / "b.yml"
    entries = [entry("reqctx", "dhat-rs/reqctx-base.json"), entry("leaky", "dhat-rs/leaky.json")]
    bless(a, *entries)
    bless(b, *reversed(entries))
    assert a.read_bytes() == b.read_bytes()
    # Writing the same thing again changes nothing.
    before = a.read_bytes()
    bless(a, *entries)
    assert a.read_bytes() == before


def test_blessing_equivalent_reruns_writes_the_same_bytes(tmp_path: Path) -> None:
    # Three runs of the same program (addresses and pp order differ): a re-bless
    # must not churn the committed file.
    runs = sorted((DHAT_RS / "determinism").glob("reqctx-base.run*.json"))
    texts = set()
    for i, run in enumerate(runs):
        path = tmp_path / f"{i}.yml"
        profile = load_profile(run)
        bless(path, WorkloadBaseline.from_profile("reqctx", profile, KEEP))
        texts.add(path.read_text(encoding="utf-8"))
    assert len(texts) == 1, "\n\n".join(texts)


def test_layout_is_sorted_and_versioned(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    bless(
        path,
        entry("zeta", "dhat-rs/leaky.json"),
        entry("alpha", "valgrind-dhat/reqctx-base.json"),
        entry("mid", "dhat-rs/threads.json"),
    )
    text = path.read_text(encoding="utf-8")
    assert text.startswith(HEADER)
    assert text.startswith("# ")
    assert "allocgate bless" in text.splitlines()[0] + text.splitlines()[1] + text.splitlines()[2]
    doc = yaml.safe_load(text)
    assert doc["version"] == 2
    assert re.search(r"^version: 2$", text, re.M)
    assert list(doc["workloads"]) == ["alpha", "mid", "zeta"]
    for workload in doc["workloads"].values():
        # Callsites by key, so a change of rank alone does not reorder the file;
        # metrics by name.
        keys = [s["key"] for s in workload["callsites"]]
        assert keys == sorted(keys)
        assert list(workload["totals"]) == sorted(workload["totals"])
        for site in workload["callsites"]:
            metrics = [k for k in site if k not in ("key", "at", "outside", "range", "stacks")]
            assert metrics == sorted(metrics)
    assert text.endswith("\n")
    assert "\r" not in text


def test_callsites_record_where_they_were_seen(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    bless(path, entry("reqctx", "dhat-rs/reqctx-base.json"))
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    sites = {s["key"]: s for s in doc["workloads"]["reqctx"]["callsites"]}
    assert sites["reqctx::split_fields"]["at"] == "reqctx/src/main.rs:90"
    assert sites["reqctx::split_fields"]["total_bytes"] == 34_770_970


# ---------------------------------------------------------------- other workloads kept


def test_blessing_one_workload_keeps_the_others_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "allocgate-baseline.yml"
    bless(path, entry("reqctx", "dhat-rs/reqctx-base.json"), entry("zz", "dhat-rs/threads.json"))
    before = path.read_text(encoding="utf-8")
    kept = block(before, "reqctx"), block(before, "zz")

    bless(path, entry("leaky", "valgrind-dhat/leaky.json"))
    bless(path, entry("zz", "dhat-rs/determinism/threads.run2.json"))
    after = path.read_text(encoding="utf-8")
    assert block(after, "reqctx") == kept[0]
    assert block(after, "zz") != kept[1]
    assert set(read_baseline(path).workloads) == {"reqctx", "leaky", "zz"}


def test_kept_workloads_keep_hand_formatting(tmp_path: Path) -> None:
    # A block someone reformatted (flow style, a comment) is kept as it is.
    path = tmp_path / "b.yml"
    reqctx = (
        "  reqctx:\n"
        "    # grew on purpose in #123\n"
        "    profiler: dhat-rs\n"
        "    depth: 1\n"
        "    totals: {total_bytes: 82623189, total_blocks: 2010065}\n"
        "    callsites:\n"
        "    - {key: reqctx::split_fields, total_bytes: 34770970}\n"
    )
    path.write_text(HEADER + "version: 1\nworkloads:\n" + reqctx, encoding="utf-8")
    bless(path, entry("leaky", "dhat-rs/leaky.json"))
    text = path.read_text(encoding="utf-8")
    assert block(text, "reqctx") == reqctx
    assert read_baseline(path).get("reqctx").totals["total_bytes"] == 82_623_189


# ---------------------------------------------------------------- atomic


def _leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def test_a_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    # RLIMIT_FSIZE makes the write of the temporary file fail half-way (EFBIG),
    # for root too; the old baseline must be untouched and no temp file left.
    path = tmp_path / "allocgate-baseline.yml"
    bless(path, entry("leaky", "dhat-rs/leaky.json"))
    old = path.read_bytes()
    limit = len(old) + 200
    assert len(render_workload(entry("reqctx", "dhat-rs/reqctx-base.json"))) > 400

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "allocgate.cli",
            "bless",
            "--profile",
            str(DHAT_RS / "reqctx-base.json"),
            "--workload",
            "reqctx",
            "--baseline",
            str(path),
        ],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit_file_size,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"allocgate: error: {path}: cannot write")
    assert "Traceback" not in proc.stderr
    assert path.read_bytes() == old
    assert _leftovers(tmp_path, {path.name}) == []


def _without_root_privileges() -> list[str]:
    """A command prefix under which file permissions bind even for root (CI runs
    as root, whose CAP_DAC_OVERRIDE writes into read-only directories)."""
    if os.geteuid() != 0:
        return []
    require_tools("setpriv")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", "--"]


def test_read_only_directory_keeps_the_old_file(tmp_path: Path) -> None:
    path = tmp_path / "allocgate-baseline.yml"
    bless(path, entry("leaky", "dhat-rs/leaky.json"))
    old = path.read_bytes()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
    argv = [sys.executable, "-m", "allocgate.cli", "bless", "--profile"]
    argv += [str(DHAT_RS / "reqctx-base.json"), "--workload", "reqctx", "--baseline", str(path)]
    tmp_path.chmod(0o555)
    try:
        proc = subprocess.run(
            [*_without_root_privileges(), *argv],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    finally:
        tmp_path.chmod(0o755)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"allocgate: error: {path}: cannot write: Permission denied")
    assert path.read_bytes() == old
    assert _leftovers(tmp_path, {path.name}) == []


def test_baseline_path_that_is_a_directory(tmp_path: Path) -> None:
    path = tmp_path / "allocgate-baseline.yml"
    path.mkdir()
    (path / "inside").write_text("x", encoding="utf-8")
    with pytest.raises(BaselineError, match=re.escape(str(path))):
        bless(path, entry("reqctx", "dhat-rs/reqctx-base.json"))
    assert path.is_dir()
    assert sorted(p.name for p in path.iterdir()) == ["inside"]
    assert _leftovers(tmp_path, {path.name}) == []


def test_missing_parent_directory_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "no" / "such" / "dir" / "b.yml"
    with pytest.raises(BaselineError, match="cannot write"):
        bless(path, entry("reqctx", "dhat-rs/reqctx-base.json"))
    assert not (tmp_path / "no").exists()


def test_an_invalid_baseline_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    path.write_text("version: 1\nworkloads:\n  x: [1, 2\n", encoding="utf-8")
    old = path.read_bytes()
    with pytest.raises(BaselineError, match="invalid YAML"):
        bless(path, entry("reqctx", "dhat-rs/reqctx-base.json"))
    assert path.read_bytes() == old


def test_the_file_mode_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    bless(path, entry("leaky", "dhat-rs/leaky.json"))
    path.chmod(0o640)
    bless(path, entry("reqctx", "dhat-rs/reqctx-base.json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_new_files_are_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    bless(path, entry("leaky", "dhat-rs/leaky.json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_bless_through_the_symlink_updates_the_target(tmp_path: Path) -> None:
    real = tmp_path / "real.yml"
    bless(real, entry("leaky", "dhat-rs/leaky.json"))
    link = tmp_path / "link.yml"
    link.symlink_to(real)
    bless(link, entry("reqctx", "valgrind-dhat/reqctx-base.json"))
    assert link.is_symlink()
    assert set(read_baseline(real).workloads) == {"leaky", "reqctx"}


def test_valgrind_sample_blesses_too(tmp_path: Path) -> None:
    path = tmp_path / "b.yml"
    bless(path, entry("reqctx", "valgrind-dhat/reqctx-base.json"))
    assert read_baseline(path).get("reqctx").profiler == "valgrind-dhat"
    assert VALGRIND.is_dir()
