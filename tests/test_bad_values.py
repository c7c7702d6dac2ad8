"""Every bad value in a config, baseline or profile: exit 2, one line naming file and key.

One case per class of issue 9 item 5 and 8, each through the real CLI: numbers too
long for Python's int(), unhashable and deeply nested YAML, look-alike digits,
overflowing thresholds and timeouts, broken regexes, NUL bytes and '=' on their way
to execve, counts JSON cannot hold, duplicate or nested 'pps', and line breaks or
control characters echoed from a key that must not split the error line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import DHAT_RS, run_cli

GOOD = DHAT_RS / "reqctx-base.json"
CONFIG = """\
defaults:
  profiler: valgrind-dhat
  threshold: {relative: 5%, absolute: 1 KiB}
workloads:
  reqctx:
    manifest: crate/Cargo.toml
    args: ["20000"]
"""


def _config(edit: Callable[[str], str]) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "crate").mkdir()
        (tmp / "crate" / "Cargo.toml").write_text('[package]\nname = "x"\nversion = "0.1.0"\n')
        (tmp / "allocgate.yml").write_text(edit(CONFIG), encoding="utf-8")
        return ["check", "__none__", "-q", "--config", str(tmp / "allocgate.yml")]

    return make


def _profile(edit: Callable[[str], str], *extra: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "bad.json").write_text(edit(GOOD.read_text()), encoding="utf-8")
        return ["show", str(tmp / "bad.json"), *extra]

    return make


def _json(edit: Callable[[dict[str, object]], None]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        doc = json.loads(text)
        edit(doc)
        return json.dumps(doc)

    return apply


def _frame(text: str) -> Callable[[dict[str, object]], None]:
    def edit(doc: dict[str, object]) -> None:
        ftbl = doc["ftbl"]
        assert isinstance(ftbl, list)
        ftbl[3] = text

    return edit


def _counts(doc: dict[str, object]) -> None:
    pps = doc["pps"]
    assert isinstance(pps, list)
    for pp in pps[:3]:
        pp["tb"] = 2**64 - 1


def _baseline(text: str) -> Callable[[Path], list[str]]:
    def make(tmp: Path) -> list[str]:
        (tmp / "allocgate-baseline.yml").write_text(text, encoding="utf-8")
        return ["diff", str(tmp / "allocgate-baseline.yml"), str(GOOD), "--workload", "reqctx"]

    return make


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], list[str]]
    expect: str


LONG = "9" * 5000
CASES = [
    Case("yaml-long-int", _config(lambda t: t.replace('"20000"', LONG)), "5000 digits"),
    Case("yaml-unhashable-key", _config(lambda t: t + "? [a, b]\n: 1\n"), "mapping key"),
    Case("yaml-deep", _config(lambda t: t + "x: " + "[" * 5000 + "]" * 5000 + "\n"), "deep"),
    Case(
        "yaml-deep-block",
        _config(lambda t: t + "x:\n" + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(2000))),
        "deep",
    ),
    Case("percent-superscript", _config(lambda t: t.replace("5%", "'5²%'")), "relative"),
    Case("percent-exponent", _config(lambda t: t.replace("5%", "1e999%")), "relative"),
    Case("percent-arabic-digit", _config(lambda t: t.replace("5%", "'٥%'")), "relative"),
    Case("size-overflow", _config(lambda t: t.replace("1 KiB", "9" * 400 + " KiB")), "absolute"),
    Case(
        "timeout-overflow",
        _config(lambda t: t.replace("  profiler:", "  timeout: " + "9" * 30 + "\n  profiler:")),
        "timeout",
    ),
    Case(
        "timeout-inf",
        _config(lambda t: t.replace("  profiler:", "  timeout: .inf\n  profiler:")),
        "timeout",
    ),
    Case(
        "skip-regex",
        _config(lambda t: t.replace("  profiler:", "  skip: ['(unclosed']\n  profiler:")),
        "invalid regular expression",
    ),
    Case("nul-in-args", _config(lambda t: t.replace('"20000"', '"20\\x00000"')), "NUL"),
    Case("equals-in-env-key", _config(lambda t: t + '    env: {"A=B": "1"}\n'), "'='"),
    Case("nul-in-env-value", _config(lambda t: t + '    env: {A: "1\\x00"}\n'), "NUL"),
    Case("yaml-control-char", _config(lambda t: t + 'x: "\x01\x1b[31m"\n'), "unacceptable"),
    Case("key-with-line-breaks", _config(lambda t: t + '"bad\\nkey\\u2028x\\r": 1\n'), "bad\\n"),
    Case(
        "profile-long-line-number",
        _profile(_json(_frame(f"0x1: reqctx::main (src/main.rs:{LONG}:1)"))),
        "ftbl[3]",
    ),
    Case("profile-counts-over-2-64", _profile(_json(_counts), "--format", "json"), "add up"),
    Case(
        "profile-duplicate-pps",
        _profile(lambda t: t.replace('"pps":', '"pps": [], "pps":', 1)),
        "'pps'",
    ),
    Case(
        "profile-nested-pps",
        _profile(lambda t: t.replace('"pps":', '"extra": {"pps": []}, "pps":', 1)),
        "'pps'",
    ),
    Case("baseline-long-int", _baseline(f"version: 1\nworkloads:\n  r: {LONG}\n"), "digits"),
    Case(
        "baseline-count-over-2-63",
        _baseline(
            "version: 1\nworkloads:\n  reqctx:\n    profiler: dhat-rs\n"
            f"    totals: {{total_bytes: {2**64}}}\n"
        ),
        "total_bytes",
    ),
    Case(
        "baseline-name-with-cr",
        _baseline('version: 1\nworkloads:\n  "re\\rq": {profiler: nope, totals: {}}\n'),
        "re\\rq",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_bad_value_is_one_error_line(case: Case, tmp_path: Path) -> None:
    argv = case.make(tmp_path)
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    code, _, stderr = run_cli(*argv, cwd=tmp_path)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    assert "internal error" not in stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("allocgate: error: "), lines[0]
    assert lines[0].isprintable(), lines[0]
    assert case.expect in lines[0], lines[0]
    # Nothing was written: every input file is byte-identical.
    assert {p: p.read_bytes() for p in files} == files


def test_the_json_output_of_big_but_valid_counts(tmp_path: Path) -> None:
    """Counts up to 2^63-1 in total are real numbers: they print as JSON."""
    doc = json.loads(GOOD.read_text())
    doc["pps"][0]["tb"] = 2**62
    (tmp_path / "big.json").write_text(json.dumps(doc))
    code, stdout, stderr = run_cli("show", tmp_path / "big.json", "--format", "json")
    assert code == 0, stderr
    assert json.loads(stdout)["totals"]["total_bytes"] > 2**62
