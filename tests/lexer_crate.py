"""The `lexer` fixture crate (fixtures/crates/lexer), built once per session.

Imported by the tests of per-test workloads. Its variants are cargo features
(`regress`, `extra-test`, `failing`); each feature set is built once into one
session target directory under the pytest basetemp.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

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


def require_tools(*names: str) -> None:
    """Skips when a tool is missing, or fails when ALLOCGATE_REQUIRE_TOOLS=1 (CI)."""
    missing = [name for name in names if shutil.which(name) is None]
    if not missing:
        return
    reason = f"{', '.join(missing)} not found on PATH"
    if os.environ.get("ALLOCGATE_REQUIRE_TOOLS") == "1":
        pytest.fail(f"{reason}, and ALLOCGATE_REQUIRE_TOOLS=1 requires it")
    pytest.skip(reason)


def cargo_env(target: Path) -> dict[str, str]:
    env = dict(os.environ)
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
