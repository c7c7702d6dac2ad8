"""Cargo profiles that just work: the ``profiling`` profile supplied when the manifest
has none, and a warning before the run when a profile has no debug info.

Without line tables every frame of a Rust binary is an address, and every
allocation folds into ``main``. allocgate never edits the user's Cargo.toml:
a missing ``profiling`` profile is passed to cargo with ``--config``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from allocgate.errors import ConfigError
from allocgate.process import command_output

SUPPLIED = "profiling"
SUPPLIED_ARGS = (
    "--config",
    'profile.profiling.inherits="release"',
    "--config",
    'profile.profiling.debug="line-tables-only"',
)
_BUILTIN: dict[str, dict[str, Any]] = {
    "dev": {"debug": True},
    "release": {"debug": False},
    "test": {"inherits": "dev"},
    "bench": {"inherits": "release"},
}
_NO_DEBUG = (False, 0, "0", "none")
_STRIPS_DEBUG = (True, "debuginfo", "symbols")


@dataclass(frozen=True)
class ProfilePlan:
    """How to build with a cargo profile: extra arguments, and what to tell the user."""

    args: tuple[str, ...] = ()
    note: str | None = None
    """Said once: allocgate supplied the profile."""
    warning: str | None = None
    """Said before the run: the profile has no debug info."""


@lru_cache(maxsize=32)
def workspace_manifest(manifest: Path) -> Path:
    """The workspace root's Cargo.toml: the only one whose ``[profile]`` tables count."""
    cargo = shutil.which("cargo")
    argv = ["locate-project", "--workspace", "--message-format", "plain", "--manifest-path"]
    out = command_output([cargo, *argv, str(manifest)]) if cargo else None
    return Path(out.strip()) if out and out.strip() else manifest


def _profiles(root_manifest: Path) -> Mapping[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    try:
        doc = tomllib.loads(root_manifest.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{root_manifest}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{root_manifest}: invalid TOML: {exc}") from None
    profiles = doc.get("profile")
    return profiles if isinstance(profiles, dict) else {}


def _setting(
    name: str, key: str, profiles: Mapping[str, Any], env: Mapping[str, str]
) -> tuple[bool, Any]:
    """(found, value) of ``key`` for profile ``name``, following ``inherits``."""
    seen = set()
    while name not in seen:
        seen.add(name)
        override = env.get(f"CARGO_PROFILE_{name.upper().replace('-', '_')}_{key.upper()}")
        if override is not None:
            return True, override
        table = profiles.get(name)
        table = table if isinstance(table, dict) else {}
        builtin = _BUILTIN.get(name, {})
        if key in table:
            return True, table[key]
        parent = table.get("inherits") or builtin.get("inherits")
        if parent is None:
            return key in builtin, builtin.get(key)
        name = str(parent)
    return False, None


def has_debug_info(
    name: str, profiles: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> bool:
    env = os.environ if env is None else env
    _, debug = _setting(name, "debug", profiles, env)
    _, strip = _setting(name, "strip", profiles, env)
    if isinstance(debug, str) and debug.lower() in ("false", "none", "0"):
        debug = False
    if isinstance(strip, str) and strip.lower() == "true":
        strip = True
    return debug not in _NO_DEBUG and debug is not None and strip not in _STRIPS_DEBUG


def plan(manifest: Path, profile: str, env: Mapping[str, str] | None = None) -> ProfilePlan:
    """What building ``manifest`` with ``--profile profile`` needs and should say."""
    env = os.environ if env is None else env
    root = workspace_manifest(manifest)
    profiles = _profiles(root)
    if profile == SUPPLIED and SUPPLIED not in profiles:
        return ProfilePlan(
            args=SUPPLIED_ARGS,
            note=(
                f"{root} defines no [profile.{SUPPLIED}]: allocgate builds with one that "
                'inherits "release" with line-table debug info (cargo --config; '
                "Cargo.toml is not changed)"
            ),
        )
    if profile not in profiles and profile not in _BUILTIN:
        raise ConfigError(
            f"{root}: cargo profile {profile!r} is not defined; define [profile.{profile}] "
            f"or use cargo_profile: {SUPPLIED} (allocgate supplies it)"
        )
    if has_debug_info(profile, profiles, env):
        return ProfilePlan()
    return ProfilePlan(
        warning=(
            f"cargo profile {profile!r} of {root} has no debug info, so every allocation "
            f'folds into `main`: add `debug = "line-tables-only"` to [profile.{profile}], '
            f"or use cargo_profile: {SUPPLIED}"
        )
    )
