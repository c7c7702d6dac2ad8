"""The threaded fixture workspace builds offline and its variants do what the README says."""

from __future__ import annotations

import re
import subprocess

import pytest
from logscan_crate import Builds, logscan  # noqa: F401  (the session fixture)

pytestmark = pytest.mark.cargo

SERVICES = re.compile(r"^service=(\w+) records=(\d+) slowest_ms=(\d+)$", re.M)


def _run(builds: Builds, variant: str, *args: str) -> subprocess.CompletedProcess[str]:
    built = builds(variant)
    return subprocess.run(
        [str(built.binary), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_base_runs_and_summarises(logscan: Builds) -> None:  # noqa: F811
    proc = _run(logscan, "base", "2000")
    assert proc.returncode == 0, proc.stderr
    services = SERVICES.findall(proc.stdout)
    assert [s[0] for s in services] == ["auth", "billing", "gateway", "search", "storage"]
    # WARN and ERROR lines only: the level cycles with i % 7 % 4 ∈ {1, 2}.
    kept = sum(1 for i in range(2000) if i % 7 % 4 in (1, 2))
    assert sum(int(s[1]) for s in services) == kept
    assert proc.stderr.strip() == "logscan: finished"


@pytest.mark.parametrize("variant", ["moved", "regressed", "improved"])
def test_variants_compute_the_same_output(logscan: Builds, variant: str) -> None:  # noqa: F811
    base = _run(logscan, "base", "3000", "--workers=3")
    other = _run(logscan, variant, "3000", "--workers=3")
    assert other.returncode == 0, other.stderr
    # The same records and summary (the regression's extra copy is dropped).
    assert other.stdout == base.stdout


def test_moved_variant_moves_every_function(logscan: Builds) -> None:  # noqa: F811
    base, moved = logscan("base"), logscan("moved")
    for name in ("pipeline.rs", "record.rs", "parse.rs", "report.rs"):
        path = f"crates/scan-core/src/{name}"
        a = (base.root / path).read_text()
        b = (moved.root / path).read_text()
        fns = re.findall(r"^(?:pub )?fn (\w+)", a, re.M)
        assert sorted(fns) == sorted(re.findall(r"^(?:pub )?fn (\w+)", b, re.M))
        for fn in fns:
            line_a = a[: a.index(f"fn {fn}(")].count("\n")
            line_b = b[: b.index(f"fn {fn}(")].count("\n")
            assert line_a != line_b, f"{name}: {fn} did not move"
