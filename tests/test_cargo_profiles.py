"""Which cargo profiles allocgate supplies, and which get a no-debug-info warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from allocgate.cargo_profiles import SUPPLIED_ARGS, has_debug_info, plan
from allocgate.errors import ConfigError

PACKAGE = '[package]\nname = "t"\nversion = "0.1.0"\nedition = "2021"\n'


def crate(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "main.rs").write_text("fn main() {}\n")
    manifest = tmp_path / "Cargo.toml"
    manifest.write_text(PACKAGE + extra)
    return manifest


def test_a_missing_profiling_profile_is_supplied_without_editing(tmp_path: Path) -> None:
    manifest = crate(tmp_path)
    before = manifest.read_bytes()
    result = plan(manifest, "profiling", env={})
    assert result.args == SUPPLIED_ARGS
    assert result.note is not None
    assert "Cargo.toml is not changed" in result.note
    assert result.warning is None
    assert manifest.read_bytes() == before


def test_a_defined_profiling_profile_is_used_as_is(tmp_path: Path) -> None:
    manifest = crate(tmp_path, '[profile.profiling]\ninherits = "release"\ndebug = 1\n')
    assert plan(manifest, "profiling", env={}).args == ()
    assert plan(manifest, "profiling", env={}).warning is None


def test_release_without_debug_info_is_warned_about_with_the_fix(tmp_path: Path) -> None:
    manifest = crate(tmp_path)
    result = plan(manifest, "release", env={})
    assert result.args == ()
    assert result.warning is not None
    assert "[profile.release]" in result.warning
    assert 'debug = "line-tables-only"' in result.warning


def test_the_workspace_roots_profiles_count(tmp_path: Path) -> None:
    (tmp_path / "Cargo.toml").write_text(
        '[workspace]\nmembers = ["m"]\nresolver = "2"\n[profile.release]\ndebug = "limited"\n'
    )
    (tmp_path / "m").mkdir()
    member = crate(tmp_path / "m")
    assert plan(member, "release", env={}).warning is None


def test_an_undefined_custom_profile_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'perf' is not defined"):
        plan(crate(tmp_path), "perf", env={})


@pytest.mark.parametrize(
    ("profiles", "name", "env", "expected"),
    [
        ({}, "dev", {}, True),
        ({}, "release", {}, False),
        ({}, "bench", {}, False),
        ({"release": {"debug": 1}}, "bench", {}, True),
        ({"p": {"inherits": "release", "debug": "line-tables-only"}}, "p", {}, True),
        ({"p": {"inherits": "release", "debug": 1, "strip": True}}, "p", {}, False),
        ({"p": {"inherits": "release"}}, "p", {"CARGO_PROFILE_P_DEBUG": "true"}, True),
        ({"release": {"debug": "none"}}, "release", {}, False),
    ],
)
def test_debug_info_follows_inherits_and_the_environment(
    profiles: dict[str, object], name: str, env: dict[str, str], expected: bool
) -> None:
    assert has_debug_info(name, profiles, env) is expected
