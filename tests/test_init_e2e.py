"""Zero to a gated build: `cargo new`, `allocgate init`, `bless`, `check`, no file edited by hand.

The crate is what a new user has: std only, no [profile.profiling], no dhat.
Then a function is made to allocate more, and `check` fails naming it, with an
annotation on its line when run as GitHub Actions runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tools

ROOT = Path(__file__).resolve().parents[1]
HEAD = "0123456789abcdef0123456789abcdef01234567"

MAIN = """\
#[inline(never)]
fn tokenize(text: &str) -> Vec<String> {
    let words: Vec<String> = text.split_whitespace().map(|w| w.to_string()).collect();
    words
}

#[inline(never)]
fn count(words: &[String]) -> usize {
    words.iter().map(|w| w.len()).sum()
}

fn main() {
    let text = "the quick brown fox jumps over the lazy dog ".repeat(500);
    let mut total = 0;
    for _ in 0..10 {
        total += count(&tokenize(&text));
    }
    println!("{total}");
}
"""
# Every word is now also copied in upper case: tokenize allocates about twice as much.
GROWN = MAIN.replace(
    "    words\n}",
    "    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();\n"
    "    std::hint::black_box(&upper);\n"
    "    words\n}",
)


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str


def allocgate(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> Run:
    full = dict(os.environ)
    for key in list(full):
        if key.startswith("GITHUB_"):
            del full[key]
    full["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), full.get("PYTHONPATH")]))
    full["CARGO_TERM_COLOR"] = "never"
    full.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "allocgate.cli", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def crate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_tools("cargo", "valgrind")
    root = tmp_path_factory.mktemp("zero") / "tokenize"
    subprocess.run(
        ["cargo", "new", "--quiet", "--vcs", "none", str(root)], check=True, capture_output=True
    )
    (root / "src" / "main.rs").write_text(MAIN)
    return root


@pytest.mark.cargo
@pytest.mark.valgrind
def test_init_bless_check_then_a_regression_named_on_its_line(crate: Path) -> None:
    manifest = (crate / "Cargo.toml").read_bytes()

    init = allocgate("init", cwd=crate)
    assert init.code == 0, init.stderr
    config = (crate / "allocgate.yml").read_text()
    assert "profiler: valgrind-dhat" in config
    assert "allocgate bless" in init.stdout
    assert "allocgate check" in init.stdout

    again = allocgate("init", cwd=crate)
    assert again.code == 2
    assert "--force" in again.stderr
    assert (crate / "allocgate.yml").read_text() == config

    # No baseline yet: check stops before building, with the exact command.
    early = allocgate("check", cwd=crate)
    assert early.code == 2
    assert "allocgate bless tokenize" in early.stderr
    assert "building" not in early.stderr
    assert not (crate / "target").exists()

    bless = allocgate("bless", cwd=crate)
    assert bless.code == 0, bless.stderr
    assert bless.stderr.count("defines no [profile.profiling]") == 1
    baseline = (crate / "allocgate-baseline.yml").read_text()
    assert "tokenize" in baseline
    assert "rustc:" in baseline

    check = allocgate("check", cwd=crate)
    assert check.code == 0, check.stdout + check.stderr
    assert (crate / "Cargo.toml").read_bytes() == manifest
    assert (crate / "allocgate.yml").read_text() == config
    assert "warning" not in check.stdout

    # A baseline made by another rustc: a warning naming both, the verdict unchanged.
    rustc = re.search(r"rustc: (.+)", baseline)
    assert rustc is not None
    older = baseline.replace(rustc.group(0), "rustc: 1.94.0 (4a4ef493e 2026-03-02)")
    (crate / "allocgate-baseline.yml").write_text(older)
    report_json = crate.parent / "drift.json"
    drift = allocgate("check", "--report-json", str(report_json), cwd=crate)
    assert drift.code == 0, drift.stdout + drift.stderr
    (warning,) = [x for x in drift.stdout.splitlines() if "warning:" in x]
    assert "rustc 1.94.0 (4a4ef493e 2026-03-02)" in warning
    assert f"rustc {rustc.group(1)}" in warning
    (result,) = json.loads(report_json.read_bytes())["workloads"]
    assert result["warnings"] == [warning.split("warning: ", 1)[1]]
    (crate / "allocgate-baseline.yml").write_text(baseline)

    (crate / "src" / "main.rs").write_text(GROWN)
    line = GROWN.splitlines().index(
        "    let upper: Vec<String> = words.iter().map(|w| w.to_uppercase()).collect();"
    )
    event = crate.parent / "event.json"
    event.write_text(json.dumps({"pull_request": {"number": 3, "head": {"sha": HEAD}}}))
    report_md = crate.parent / "report.md"
    actions = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(crate),
        "GITHUB_REPOSITORY": "octo/tokenize",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SHA": "f" * 40,
    }
    grown = allocgate("check", "--report-md", str(report_md), cwd=crate, env=actions)
    assert grown.code == 1, grown.stdout + grown.stderr
    assert re.search(r"tokenize: REGRESSED .*grew: \S*tokenize", grown.stdout), grown.stdout
    errors = [x for x in grown.stdout.splitlines() if x.startswith("::error ")]
    assert errors, grown.stdout
    m = re.match(r"::error file=src/main\.rs,line=(\d+),title=", errors[0])
    assert m, errors[0]
    # Inside tokenize: from its signature to its closing brace.
    assert 1 <= int(m.group(1)) <= line + 3
    assert "allocgate bless tokenize" in errors[0]
    assert "If the growth is intended: allocgate bless tokenize" in grown.stdout
    markdown = report_md.read_text()
    assert f"https://github.com/octo/tokenize/blob/{HEAD}/src/main.rs#L" in markdown
    assert "`allocgate bless tokenize`" in markdown

    quiet = allocgate("check", cwd=crate)
    assert quiet.code == 1
    assert "::error" not in quiet.stdout
