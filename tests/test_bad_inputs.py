"""Bad profiles and baselines: exit 2, one line naming the file and the problem, no traceback,
and the baseline on disk untouched.

Bad profiles are cut or edited from the real samples; bad baselines are the small
hand-written files in ``fixtures/bad/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import BAD, DHAT_RS, VALGRIND, RunCli

from allocgate.baseline import WorkloadBaseline
from allocgate.baseline_file import update_baseline
from allocgate.load import load_profile

BASE = DHAT_RS / "reqctx-base.json"
VG_BASE = VALGRIND / "reqctx-base.json"


def _raw(sample: Path = BASE) -> bytes:
    return sample.read_bytes()


def _edited(edit: Callable[[dict[str, Any]], None], sample: Path = BASE) -> Callable[[], bytes]:
    """A real profile decoded with ``json``, edited, and written back."""

    def make() -> bytes:
        doc = json.loads(_raw(sample))
        edit(doc)
        return json.dumps(doc, ensure_ascii=False, indent=1).encode()

    return make


def _pp(index: int, **fields: Any) -> Callable[[dict[str, Any]], None]:
    """Sets (or, with value ``...``, deletes) fields of program point ``index``."""

    def edit(doc: dict[str, Any]) -> None:
        pp = doc["pps"][index]
        for name, value in fields.items():
            if value is ...:
                del pp[name]
            else:
                pp[name] = value

    return edit


def _set(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        for name, value in fields.items():
            if value is ...:
                del doc[name]
            else:
                doc[name] = value

    return edit


def _cut(marker: bytes, after: int, sample: Path = BASE) -> Callable[[], bytes]:
    """The real profile cut ``after`` bytes past the first ``marker``."""

    def make() -> bytes:
        data = _raw(sample)
        at = data.index(marker) + after
        assert at < len(data) - 1
        return data[:at]

    return make


def _replace(old: bytes, new: bytes, sample: Path = BASE) -> Callable[[], bytes]:
    def make() -> bytes:
        data = _raw(sample)
        assert old in data
        return data.replace(old, new, 1)

    return make


def _file(name: str) -> Callable[[], bytes]:
    return lambda: (BAD / name).read_bytes()


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    """How the bad file is used: see ``_argv``."""
    make: Callable[[], bytes] | None
    """The bad file's bytes; None: the file does not exist."""
    expect: str
    """A substring of the error line saying what is wrong."""
    suffix: str = ".json"


# Program points in the dhat-rs sample: 0 is the first, 5 is std's stdout buffer.
CASES = [
    # ---- unreadable or not a profile at all
    Case("missing-file", "show", None, "no such file"),
    Case("empty-file", "show", _file("empty.json"), "empty"),
    Case("whitespace-only", "bless", _file("whitespace.json"), "empty"),
    Case("valgrind-text-log", "diff", _file("not-json.json"), "not a DHAT JSON profile"),
    Case("binary-garbage", "show", lambda: bytes(range(256)) * 16, "not a DHAT JSON profile"),
    Case(
        "json-garbage-after-brace",
        "bless",
        lambda: b'{"dhatFileVersion": 2, \x00\x01\x02\xff garbage',
        "invalid JSON",
    ),
    Case(
        "invalid-utf8-in-header-string",
        "show",
        _replace(b"--variant=base", b"--variant=\xff\xfe\xfd"),
        "not UTF-8",
    ),
    Case(
        "invalid-utf8-in-ftbl-string",
        "diff",
        _replace(b"reqctx::split_fields", b"reqctx::split_\xc3\x28ields"),
        "not UTF-8",
    ),
    # ---- truncated real profiles
    Case("truncated-in-header", "show", _cut(b'"cmd"', 10), "ends early"),
    Case("truncated-in-pps", "bless", _cut(b'"pps"', 5000), "truncated"),
    Case("truncated-valgrind-in-pps", "diff", _cut(b'"pps"', 2000, VG_BASE), "truncated"),
    Case("truncated-in-ftbl", "show", _cut(b'"ftbl"', 700), "ends early"),
    Case("truncated-before-last-brace", "diff", lambda: _raw().rstrip()[:-1], "ends early"),
    # ---- header
    Case("missing-dhatFileVersion", "show", _edited(_set(dhatFileVersion=...)), "dhatFileVersion"),
    Case("dhatFileVersion-3", "bless", _edited(_set(dhatFileVersion=3)), "dhatFileVersion 3"),
    Case("mode-copy", "diff", _file("dhat-copy-mode.json"), "'copy'"),
    Case("mode-unknown", "show", _edited(_set(mode="rust-copy")), "'rust-copy'"),
    Case("mode-missing", "bless", _edited(_set(mode=...)), "'mode'"),
    Case("top-level-array", "show", lambda: b"[" + _raw() + b"]", "not a DHAT"),
    # ---- program points
    Case("pps-not-an-array", "show", _edited(_set(pps={"tb": 1})), "'pps' must be an array"),
    Case("pps-missing", "diff", _edited(_set(pps=...)), "'pps'"),
    Case("pp-missing-tb", "bless", _edited(_pp(3, tb=...)), "missing field 'tb'"),
    Case("pp-missing-fs", "show", _edited(_pp(0, fs=...)), "missing field 'fs'"),
    Case("pp-negative-tb", "diff", _edited(_pp(3, tb=-9600000)), "-9600000"),
    Case("pp-negative-eb", "show", _edited(_pp(5, eb=-1)), "'eb'"),
    Case("pp-string-tb", "bless", _edited(_pp(3, tb="9600000")), "'9600000'"),
    Case("pp-float-tb", "show", _edited(_pp(3, tb=9600000.5)), "9600000.5"),
    Case("pp-bool-tbk", "diff", _edited(_pp(3, tbk=True)), "'tbk'"),
    Case("pp-empty-fs", "show", _edited(_pp(3, fs=[])), "'fs'"),
    Case("pp-fs-outside-ftbl", "bless", _edited(_pp(3, fs=[1, 100000])), "outside 'ftbl'"),
    Case("pp-fs-negative", "show", _edited(_pp(3, fs=[-1, 38])), "-1"),
    Case("pp-fs-string", "diff", _edited(_pp(3, fs=["1", "38"])), "'1'"),
    Case("pp-fs-bool", "show", _edited(_pp(3, fs=[True, 38])), "True"),
    Case("pp-not-an-object", "bless", _edited(lambda d: d["pps"].insert(2, [1, 2])), "object"),
    # ---- frame table
    Case("ftbl-not-a-list", "show", _edited(_set(ftbl="[root]")), "'ftbl'"),
    Case("ftbl-missing", "diff", _edited(_set(ftbl=...)), "'ftbl'"),
    Case("ftbl-holds-a-number", "bless", _edited(lambda d: d["ftbl"].__setitem__(4, 7)), "ftbl[4]"),
    # ---- baselines
    Case(
        "baseline-invalid-yaml", "bless-into", _file("baseline-invalid-syntax.yml"), "YAML", ".yml"
    ),
    Case(
        "baseline-python-object-tag",
        "diff-baseline",
        _file("baseline-python-object.yml"),
        "python/object",
        ".yml",
    ),
    Case(
        "baseline-python-apply-tag",
        "bless-into",
        _file("baseline-python-apply.yml"),
        "python/object/apply",
        ".yml",
    ),
    Case(
        "baseline-version-3",
        "diff-baseline",
        _file("baseline-version-3.yml"),
        "written by a newer allocgate",
        ".yml",
    ),
    Case(
        "baseline-wrong-type",
        "bless-into",
        _file("baseline-wrong-type.yml"),
        "workloads.reqctx.totals.total_bytes",
        ".yml",
    ),
    Case(
        "baseline-duplicate-callsite",
        "diff-baseline",
        _file("baseline-duplicate-callsite.yml"),
        "duplicate callsite 'reqctx::split_fields'",
        ".yml",
    ),
    Case(
        "baseline-duplicate-mapping-key",
        "bless-into",
        _file("baseline-duplicate-key.yml"),
        "duplicate key 'total_bytes'",
        ".yml",
    ),
    Case(
        "baseline-unknown-key",
        "diff-baseline",
        _file("baseline-unknown-key.yml"),
        "workloads.reqctx.tolerance",
        ".yml",
    ),
    Case("baseline-is-a-list", "bless-into", _file("baseline-list.yml"), "mapping", ".yml"),
    Case("baseline-without-the-workload", "diff-nope", None, "'nope'", ".yml"),
]


def _good_baseline_text(tmp: Path) -> bytes:
    path = tmp / "seed.yml"
    profile = load_profile(BASE)
    update_baseline(path, {"reqctx": WorkloadBaseline.from_profile("reqctx", profile, 15)})
    return path.read_bytes()


@pytest.fixture(scope="module")
def good_baseline(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return _good_baseline_text(tmp_path_factory.mktemp("seed"))


def _argv(case: Case, bad: Path, baseline: Path) -> list[str]:
    good = str(BASE)
    return {
        "show": ["show", str(bad)],
        "diff": ["diff", str(baseline), str(bad), "--workload", "reqctx"],
        "bless": [
            "bless",
            "--profile",
            str(bad),
            "--workload",
            "reqctx",
            "--baseline",
            str(baseline),
        ],
        "bless-into": ["bless", "--profile", good, "--workload", "reqctx", "--baseline", str(bad)],
        "diff-baseline": ["diff", str(bad), good, "--workload", "reqctx"],
        "diff-nope": ["diff", str(baseline), good, "--workload", "nope"],
    }[case.command]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 20
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_input_is_refused_cleanly(
    case: Case, tmp_path: Path, good_baseline: bytes, cli: RunCli
) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    baseline.write_bytes(good_baseline)
    bad = tmp_path / f"bad-{case.id}{case.suffix}"
    before = None
    if case.make is not None:
        before = case.make()
        bad.write_bytes(before)
    named = baseline if case.command == "diff-nope" else bad

    code, stdout, stderr = cli(*_argv(case, bad, baseline), cwd=tmp_path)

    assert code == 2, (stdout, stderr)
    assert "Traceback" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("allocgate: error: ")
    assert str(named) in line, line
    assert case.expect in line, line
    assert baseline.read_bytes() == good_baseline
    if before is not None:
        assert bad.read_bytes() == before
    else:
        assert not bad.exists()
    # Nothing was executed, and no temporary file was left behind.
    assert not (tmp_path / "allocgate-pwned").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {baseline.name, *([bad.name] if before is not None else [])}
    )


def test_python_tags_are_not_executed_by_the_library(tmp_path: Path) -> None:
    from allocgate.baseline_file import read_baseline
    from allocgate.errors import BaselineError

    path = tmp_path / "b.yml"
    shutil.copy(BAD / "baseline-python-apply.yml", path)
    with pytest.raises(BaselineError, match="python/object/apply"):
        read_baseline(path)
    assert not (tmp_path / "allocgate-pwned").exists()
    assert not (Path.cwd() / "allocgate-pwned").exists()


def test_debug_shows_the_traceback(tmp_path: Path, cli: RunCli) -> None:
    bad = tmp_path / "bad.json"
    bad.write_bytes(_edited(_set(dhatFileVersion=3))())
    code, _, stderr = cli("--debug", "show", str(bad))
    assert code == 2
    assert "Traceback (most recent call last)" in stderr
    assert "ProfileError" in stderr
    assert stderr.rstrip().splitlines()[-1].startswith("allocgate: error: ")
    assert "dhatFileVersion 3" in stderr.rstrip().splitlines()[-1]


def test_bad_arguments_exit_2_in_one_line(cli: RunCli) -> None:
    code, _, stderr = cli("show", str(BASE), "--top", "zero")
    assert code == 2
    assert len(stderr.splitlines()) == 1
    assert "--top" in stderr
    assert "Traceback" not in stderr
