"""A profile's top callsites as JSON (the report's JSON form is in report.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from allocgate.callsites import Callsite
from allocgate.profile import Profile


def profile_json(profile: Profile, sites: Sequence[Callsite]) -> bytes:
    doc: dict[str, Any] = {
        "allocgate_profile": 1,
        "source": profile.source,
        "profiler": profile.profiler,
        "mode": profile.mode,
        "command": profile.command,
        "depth": profile.depth,
        "points": profile.points,
        "units": profile.units,
        "totals": profile.totals,
        "callsites": [
            {
                "key": s.key,
                "outside": s.outside,
                "unresolved": s.unresolved,
                "location": s.location,
                "points": s.points,
                "stack": list(s.stack),
                **s.metrics,
            }
            for s in sites
        ],
    }
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
