"""The test harness is not the user's code.

When a ``#[test]`` runs as a workload, libtest (crate ``test``) and what it
vendors (``getopts``, its terminfo reader) parse the arguments, print the
results, capture the test's output and may spawn the test's thread. None of it
is the crate under test, so:

* a harness frame never keys a callsite (it is plumbing, like std), and
* a program point with no user frame at all — libtest's own work, the runtime
  start-up, thread spawning — is summed into one ``harness`` figure instead of
  a callsite, so that the callsites plus the harness add up to the totals.

The fold asks two questions of this module; that is the whole rule.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from allocgate.profile import Profile

HARNESS_KEY = "[harness]"
"""The key the fold gives harness program points; never a callsite of a report."""

HARNESS_CRATES = frozenset({"test", "getopts", "unicode_width"})
"""libtest and the crates it is built with (shipped with the toolchain)."""

_HARNESS_PATH_RE = re.compile(r"(?:^|/)library/test/|(?:^|/)rust/deps/(?:getopts|unicode-width)-")


def is_harness_frame(crate: str | None, file: str | None) -> bool:
    """A frame of libtest or its vendored crates, judged by crate name or source path."""
    if crate in HARNESS_CRATES:
        return True
    return bool(file) and _HARNESS_PATH_RE.search(file or "") is not None


def split_harness(profile: Profile) -> tuple[Profile, dict[str, int]]:
    """The profile without its harness pseudo-site, and that site's metrics.

    The totals are unchanged: they still count every allocation of the run.
    """
    harness: dict[str, int] = {}
    kept = []
    for site in profile.callsites:
        if site.key == HARNESS_KEY:
            harness = dict(site.metrics)
        else:
            kept.append(site)
    if not harness:
        return profile, {m: 0 for m in profile.metrics}
    return dataclasses.replace(profile, callsites=tuple(kept)), harness
