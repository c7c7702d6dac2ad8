"""The heap profilers allocgate can run, by name. Adding one: a module with a
`Profiler` (see base.py) and one line in the registry below."""

from __future__ import annotations

from allocgate.errors import ConfigError
from allocgate.profilers import dhat_rs, heaptrack, valgrind_dhat
from allocgate.profilers.base import Profiler

_REGISTRY: dict[str, Profiler] = {
    p.name: p
    for p in (
        dhat_rs.PROFILER,
        valgrind_dhat.PROFILER,
        heaptrack.PROFILER,
    )
}
NAMES: tuple[str, ...] = tuple(_REGISTRY)


def get(name: str) -> Profiler:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown profiler {name!r} (expected one of {', '.join(NAMES)})"
        ) from None


__all__ = ["NAMES", "Profiler", "get"]
