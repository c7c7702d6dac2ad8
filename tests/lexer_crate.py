"""The `lexer` fixture crate (fixtures/crates/lexer), built once per session.

Imported by the tests of per-test workloads. Its variants are cargo features
(`regress`, `extra-test`, `failing`); each feature set is built once into one
session target directory under the pytest basetemp.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import require_tools, run_cli

__all__ = ["require_tools"]

ROOT = Path(__file__).resolve().parents[1]
LEXER = ROOT / "fixtures" / "crates" / "lexer"
MANIFEST = LEXER / "Cargo.toml"
UNIT_TESTS = (
    "idents::tests::interns_names",
    "idents::tests::rejects_empty",
    "numbers::tests::parses_numbers",
    "render::tests::renders_summary",
    "tokens::tests::long_line",
    "tokens::tests::short_line",
)
SPLIT_TOKENS = "lexer::tokens::split_tokens"
CALLS_SPLIT_TOKENS = ("tokens::tests::long_line", "tokens::tests::short_line")


# Taken at import, before any fixture (pytester) points HOME elsewhere: rustup's
# cargo finds its toolchain through it.
_ENVIRON = dict(os.environ)


def cargo_env(target: Path) -> dict[str, str]:
    env = dict(_ENVIRON)
    env["CARGO_TARGET_DIR"] = str(target)
    env["CARGO_TERM_COLOR"] = "never"
    env.pop("RUSTFLAGS", None)
    return env


@pytest.fixture(scope="session")
def lexer_target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cargo target directory for every build of the lexer crate in this session
    (per xdist worker: cargo's lock makes a second worker wait, then reuse)."""
    require_tools("cargo")
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    return root / "lexer-target"


@dataclass(frozen=True)
class Done:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Project:
    """A user's project in a temporary directory whose allocgate.yml has one
    ``tests:`` workload over the lexer crate; the CLI runs in it as users run it."""

    def __init__(self, path: Path, target: Path, profiler: str = "valgrind-dhat") -> None:
        self.path = path
        self.target = target
        self.profiler = profiler
        path.mkdir(parents=True, exist_ok=True)

    @property
    def baseline(self) -> Path:
        return self.path / "allocgate-baseline.yml"

    def config(self, **lexer: Any) -> Path:
        entry = {"manifest": str(MANIFEST), "tests": "", **lexer}
        doc = {"defaults": {"profiler": self.profiler}, "workloads": {"lexer": entry}}
        path = self.path / "allocgate.yml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        env = cargo_env(self.target)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    def allocgate(self, *args: str | os.PathLike[str]) -> Done:
        code, stdout, stderr = run_cli(*args, cwd=self.path, env=self.env(), timeout=300)
        assert "Traceback" not in stderr, stderr
        return Done(code, stdout, stderr)

    def report(self, *args: str) -> tuple[Done, dict[str, Any]]:
        """``check ARGS --report-json``: how it ended and the report's results by name."""
        path = self.path / "report.json"
        path.unlink(missing_ok=True)
        done = self.allocgate("check", "-q", *args, "--report-json", path)
        doc = json.loads(path.read_bytes())
        return done, {r["name"]: r for r in doc["workloads"]}
