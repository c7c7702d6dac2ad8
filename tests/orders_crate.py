"""The variants of the fixture crate ``fixtures/crates/orders``, materialised on demand.

``orders`` is the only full crate; each variant is a unified diff against it in
``fixtures/crates/orders/variants/<variant>.patch`` (``moved``, ``regressed``,
``broken``, ``dhat-wired``). ``orders_crate("orders-moved")`` copies ``orders``
into a scratch directory, applies the patch with ``git apply`` and returns the
crate directory; each variant is materialised once per test process.

Every materialised crate lives at ``<scratch>/<index>/orders``, so the source
paths have the same length (the binaries' paths, which ``orders::parse_args``
copies from argv, are set by each test's target directory, as before).
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDERS = ROOT / "fixtures" / "crates" / "orders"
PATCHES = ORDERS / "variants"
# Crate name → variant (patch name). "orders" itself is the unpatched source.
VARIANTS = {
    "orders-moved": "moved",
    "orders-regressed": "regressed",
    "orders-broken": "broken",
    "dhat-wired": "dhat-wired",
}

_cache: dict[str, Path] = {}
_scratch: list[Path] = []


def patch_of(crate: str) -> Path:
    """The patch that turns ``orders`` into ``crate``."""
    return PATCHES / f"{VARIANTS[crate]}.patch"


def materialise(crate: str, dest: Path) -> Path:
    """Copies ``orders`` to ``dest`` and applies ``crate``'s patch; returns ``dest``."""
    if crate not in VARIANTS:
        raise ValueError(f"unknown orders variant {crate!r}")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(
        ORDERS, dest, ignore=shutil.ignore_patterns("target", "variants"), copy_function=shutil.copy
    )
    subprocess.run(
        ["git", "apply", "-p1", str(patch_of(crate))],
        cwd=dest,
        check=True,
        capture_output=True,
        text=True,
        # Never let git find a repository above the copy (it would apply the patch
        # relative to that repository's root, i.e. not at all).
        env={**os.environ, "GIT_CEILING_DIRECTORIES": str(dest.parent)},
    )
    return dest


def orders_crate(crate: str) -> Path:
    """The directory of ``crate`` (``orders`` or a variant name from ``VARIANTS``)."""
    if crate == "orders":
        return ORDERS
    if crate not in _cache:
        if not _scratch:
            scratch = Path(tempfile.mkdtemp(prefix="allocgate-orders-"))
            atexit.register(shutil.rmtree, scratch, True)
            _scratch.append(scratch)
        index = list(VARIANTS).index(crate)
        _cache[crate] = materialise(crate, _scratch[0] / str(index) / "orders")
    return _cache[crate]


def orders_manifest(crate: str) -> Path:
    """``crate``'s ``Cargo.toml`` (see ``orders_crate``)."""
    return orders_crate(crate) / "Cargo.toml"
