"""Issue 15's acceptance test for the noise envelope, on the threaded fixture crate
``logscan`` under Valgrind DHAT: after a bless with the envelope (3 runs), 20 checks
of the unchanged program raise no false alarm, and a 30% growth in one workspace
function is still caught and named.

The 20 checks are 20 real runs, each judged on its own: one ``allocgate check`` of
20 workloads that share one build and one blessed entry (copied through the
baseline model), so the build and the process start-up are paid once, not 20 times.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from logscan_crate import ROOT, Builds, Variant, _locked, logscan, prepare  # noqa: F401

from allocgate.baseline_file import read_baseline, update_baseline

pytestmark = pytest.mark.cargo

CHECKS = 20
LINES = "2000"
# The workspace function that grows in the variant, and the environment variable
# its new allocation reads its size from (the test sizes it to 30% of the site).
GROWN = "report::render"
PATCH_FROM = '    let _ = write!(out, "# {count} records");\n'
PATCH_TO = PATCH_FROM + (
    '    if let Ok(n) = std::env::var("LOGSCAN_GROW_BYTES") {\n'
    '        let pad: Vec<u8> = vec![1u8; n.parse().expect("LOGSCAN_GROW_BYTES")];\n'
    "        std::hint::black_box(&pad);\n"
    "    }\n"
)


def _tools() -> None:
    if shutil.which("valgrind") is None:
        if os.environ.get("ALLOCGATE_REQUIRE_TOOLS") == "1":
            pytest.fail("valgrind is not installed, and ALLOCGATE_REQUIRE_TOOLS=1 requires it")
        pytest.skip("valgrind is not installed")


def grown_variant(builds: Builds) -> Path:
    """A copy of the base workspace whose ``render`` allocates LOGSCAN_GROW_BYTES more."""
    root = builds.shared / "src-noise-grown"
    with _locked(builds.shared / "build.lock"):
        if not (root / "Cargo.toml").is_file():
            prepare(root, "base")
            report = root / "crates" / "scan-core" / "src" / "report.rs"
            source = report.read_text(encoding="utf-8")
            assert PATCH_FROM in source
            report.write_text(source.replace(PATCH_FROM, PATCH_TO), encoding="utf-8")
    return root


def config(directory: Path, workloads: dict[str, Path], env: dict[str, str] | None = None) -> Path:
    lines = [
        "baseline: allocgate-baseline.yml",
        "defaults:",
        "  profiler: valgrind-dhat",
        "  cargo_profile: profiling",
        "  runs: 1",
        "  bless_runs: 3",
        "  timeout: 5m",
        "workloads:",
    ]
    for name, root in workloads.items():
        lines += [
            f"  {name}:",
            f"    manifest: {root / 'Cargo.toml'}",
            "    bin: logscan",
            f"    args: [{LINES!r}]",
        ]
        if env:
            lines.append(f"    env: {json.dumps(env)}")
    path = directory / "allocgate.yml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def allocgate(variant: Variant, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = variant.env()  # the shared CARGO_TARGET_DIR: dependencies are built once
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "allocgate.cli", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )


def test_twenty_checks_of_unchanged_code_and_a_grown_function(
    logscan: Builds,  # noqa: F811
    tmp_path: Path,
) -> None:
    _tools()
    base = logscan("base")
    # Bless with the envelope: 3 runs, each site's range recorded.
    cfg = config(tmp_path, {"logscan": base.root})
    done = allocgate(base, "bless", "--config", cfg, "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    baseline = tmp_path / "allocgate-baseline.yml"
    entry = read_baseline(baseline).get("logscan")
    assert entry.runs == 3

    # 20 checks of the unchanged program: 20 workloads, one blessed entry.
    names = [f"check{i:02}" for i in range(1, CHECKS + 1)]
    update_baseline(baseline, {n: dataclasses.replace(entry, name=n) for n in names})
    config(tmp_path, dict.fromkeys(names, base.root))
    report = tmp_path / "report.json"
    done = allocgate(
        base, "check", "--config", cfg, "--quiet", "--report-json", report, cwd=tmp_path
    )
    doc = json.loads(report.read_text(encoding="utf-8"))
    verdicts = {w["name"]: w["verdict"] for w in doc["workloads"]}
    assert len(verdicts) == CHECKS
    false_alarms = {
        w["name"]: [s["key"] for s in w["comparison"]["sites"] if s["regressed_metrics"]]
        for w in doc["workloads"]
        if w["verdict"] != "pass"
    }
    assert false_alarms == {}, done.stdout
    assert done.returncode == 0, done.stderr

    # A 30% growth of one workspace function is caught and named.
    site = next(s for s in entry.callsites if s.key.endswith(GROWN))
    grow = int(site.metrics["total_bytes"] * 0.3)
    root = grown_variant(logscan)
    cfg = config(tmp_path, {"logscan": root}, env={"LOGSCAN_GROW_BYTES": str(grow)})
    done = allocgate(
        base, "check", "--config", cfg, "--quiet", "--report-json", report, cwd=tmp_path
    )
    assert done.returncode == 1, done.stdout + done.stderr
    (workload,) = json.loads(report.read_text(encoding="utf-8"))["workloads"]
    regressed = [s["key"] for s in workload["comparison"]["sites"] if s["regressed_metrics"]]
    assert regressed == [site.key]
    assert f"grew: {site.key}" in done.stdout
