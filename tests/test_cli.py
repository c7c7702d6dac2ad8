"""The ``allocgate`` command as users run it (a subprocess): show, diff, bless --profile,
thresholds, exit codes and help."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
import yaml
from conftest import DHAT_RS, VALGRIND, RunCli

from allocgate.cli import build_parser

BASE = DHAT_RS / "reqctx-base.json"
REGRESSED = DHAT_RS / "reqctx-regressed.json"
RERUN = DHAT_RS / "determinism" / "reqctx-base.run2.json"
IMPROVED = DHAT_RS / "reqctx-improved.json"


def subcommands() -> list[str]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.dest == "command"]
    return sorted(action.choices)  # type: ignore[arg-type]


# ---------------------------------------------------------------- show


@pytest.mark.parametrize(
    "sample", [BASE, VALGRIND / "reqctx-base.json"], ids=["dhat-rs", "valgrind"]
)
def test_show_text(sample: Path, cli: RunCli) -> None:
    code, out, err = cli("show", sample)
    assert (code, err) == (0, "")
    rows = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert "reqctx::split_fields" in rows[0]
    assert "33.2 MiB" in rows[0]
    assert len(rows) == 10  # --top defaults to 10
    assert not any("dhat::" in row or "malloc" in row for row in rows)


def test_show_markdown(cli: RunCli) -> None:
    code, out, _ = cli("show", BASE, "--format", "markdown", "--top", "3")
    assert code == 0
    rows = [line for line in out.splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert len(rows) == 3
    assert "reqctx::split_fields" in html.unescape(rows[0])


def test_show_json(cli: RunCli) -> None:
    code, out, _ = cli("show", BASE, "--format", "json", "--top", "5")
    assert code == 0
    doc = json.loads(out)
    assert doc["profiler"] == "dhat-rs"
    assert [s["key"] for s in doc["callsites"]][:2] == [
        "reqctx::split_fields",
        "reqctx::build_context",
    ]
    assert len(doc["callsites"]) == 5
    assert doc["callsites"][0]["total_bytes"] == 34_770_970
    assert doc["totals"]["total_bytes"] == 82_623_189


def test_show_ranks_by_the_metric(cli: RunCli) -> None:
    code, out, _ = cli("show", BASE, "--format", "json", "--metric", "total_blocks")
    assert code == 0
    keys = [s["key"] for s in json.loads(out)["callsites"]]
    # build_context makes 800,000 blocks, split_fields 700,000.
    assert keys[:2] == ["reqctx::build_context", "reqctx::split_fields"]


def test_show_depth_and_skip(cli: RunCli) -> None:
    code, out, _ = cli(
        "show", BASE, "--format", "json", "--depth", "2", "--skip", "^reqctx::split_fields$"
    )
    assert code == 0
    keys = [s["key"] for s in json.loads(out)["callsites"]]
    assert keys[0] == "reqctx::handle_requests ← reqctx::main"
    assert all(" ← " in k for k in keys if k != "reqctx::main")


def test_show_metric_the_profile_lacks(cli: RunCli) -> None:
    code, _, err = cli("show", DHAT_RS / "reqctx-base.ad-hoc.json", "--metric", "peak_bytes")
    assert code == 2
    assert err.startswith("allocgate: error: ")
    assert "peak_bytes" in err


# ---------------------------------------------------------------- diff

DIFFS = [
    (BASE, REGRESSED, 1),
    (VALGRIND / "reqctx-base.json", VALGRIND / "reqctx-regressed.json", 1),
    (BASE, RERUN, 0),
    (VALGRIND / "reqctx-base.json", VALGRIND / "determinism" / "reqctx-base.run3.json", 0),
    (BASE, IMPROVED, 0),
    (REGRESSED, BASE, 0),
]


@pytest.mark.parametrize(("before", "after", "code"), DIFFS)
def test_diff_exit_codes(before: Path, after: Path, code: int, cli: RunCli) -> None:
    got, out, err = cli("diff", before, after)
    assert got == code, (out, err)
    assert err == ""
    assert ("REGRESSED" in out.splitlines()[0]) is (code == 1)


@pytest.mark.parametrize("fmt", ["text", "markdown", "json"])
def test_diff_names_the_regressed_sites(fmt: str, cli: RunCli) -> None:
    code, out, _ = cli("diff", BASE, REGRESSED, "--format", fmt)
    assert code == 1
    if fmt == "json":
        doc = json.loads(out)
        (workload,) = doc["workloads"]
        sites = workload["comparison"]["sites"]
        regressed = {s["key"] for s in sites if s["regressed_metrics"]}
        assert regressed == {"reqctx::render_response", "reqctx::is_canary_wasteful"}
        assert doc["verdict"] == "regressed"
        return
    text = html.unescape(out)
    assert "reqctx::render_response" in text
    assert "reqctx::is_canary_wasteful" in text
    if fmt == "markdown":
        assert out.startswith("<!-- allocgate-comment:")
    else:
        verdict = text.splitlines()[0]
        assert "grew: reqctx::render_response, reqctx::is_canary_wasteful" in verdict


def test_diff_on_two_gated_metrics(cli: RunCli) -> None:
    code, out, _ = cli(
        "diff",
        BASE,
        REGRESSED,
        "--metric",
        "total_bytes",
        "--metric",
        "total_blocks",
        "--format",
        "json",
    )
    assert code == 1
    sites = json.loads(out)["workloads"][0]["comparison"]["sites"]
    regressed = {s["key"]: s["regressed_metrics"] for s in sites if s["regressed_metrics"]}
    # render_response grew in bytes, not in blocks (a bigger buffer, as often);
    # is_canary_wasteful is new in both.
    assert regressed == {
        "reqctx::render_response": ["total_bytes"],
        "reqctx::is_canary_wasteful": ["total_bytes", "total_blocks"],
    }


def test_diff_ranked_by_blocks(cli: RunCli) -> None:
    code, out, _ = cli("diff", BASE, REGRESSED, "--metric", "total_blocks", "--format", "json")
    assert code == 1
    sites = json.loads(out)["workloads"][0]["comparison"]["sites"]
    # By blocks, the lower-casing closure (400,000 new blocks, keyed under its
    # function at the workspace boundary) is in the top 5.
    assert {s["key"] for s in sites if s["regressed_metrics"]} == {"reqctx::is_canary_wasteful"}


# ---------------------------------------------------------------- thresholds

THRESHOLDS = [
    # is_canary_wasteful is NEW (9.2 MiB): only the absolute bound applies to it,
    # so a huge relative tolerance alone does not make the diff pass.
    (["--threshold", "500%"], 1, {"reqctx::is_canary_wasteful"}),
    # render_response +289 % (+36.6 MiB), the total +63.7 % (+50.2 MiB).
    (["--threshold", "500%:20MiB"], 0, set()),
    (["--threshold", "200%:20MiB"], 1, {"reqctx::render_response"}),
    (["--threshold", "300%:40MiB"], 0, set()),
    (["--threshold", "5%:1KiB"], 1, {"reqctx::render_response", "reqctx::is_canary_wasteful"}),
    (
        ["--threshold", "total_bytes:500%:20MiB", "--threshold", "total_blocks:1%:1"],
        0,
        set(),
    ),
]


def _threshold_id(value: object) -> str:
    # Sets print in hash order, which differs between xdist workers.
    return repr(sorted(value)) if isinstance(value, set) else str(value)


@pytest.mark.parametrize(("args", "code", "regressed"), THRESHOLDS, ids=_threshold_id)
def test_thresholds(args: list[str], code: int, regressed: set[str], cli: RunCli) -> None:
    got, out, err = cli("diff", BASE, REGRESSED, "--format", "json", *args)
    assert (got, err) == (code, "")
    sites = json.loads(out)["workloads"][0]["comparison"]["sites"]
    assert {s["key"] for s in sites if s["regressed_metrics"]} == regressed


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("10parsecs", "10parsecs"),
        ("5%:10parsecs", "10parsecs"),
        ("peak_bites:5%", "peak_bites"),
        ("total_blocks:5%:4KiB", "4KiB"),
        ("5%:1KiB:9", "5%:1KiB:9"),
        ("", ""),
    ],
)
def test_bad_threshold_exits_2(spec: str, named: str, cli: RunCli) -> None:
    code, out, err = cli("diff", BASE, REGRESSED, "--threshold", spec)
    assert code == 2
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("allocgate: error: ")
    assert "threshold" in lines[0]
    assert named in lines[0]
    assert "Traceback" not in err


# ---------------------------------------------------------------- baselines


def test_diff_against_a_blessed_baseline(tmp_path: Path, cli: RunCli) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    code, out, err = cli("bless", "--profile", BASE, "--workload", "reqctx", "--baseline", baseline)
    assert code == 0, err
    assert "reqctx" in err
    doc = yaml.safe_load(baseline.read_text(encoding="utf-8"))
    assert doc["version"] == 2
    assert doc["workloads"]["reqctx"]["totals"]["total_bytes"] == 82_623_189

    assert cli("diff", baseline, RERUN)[0] == 0
    code, out, _ = cli("diff", baseline, REGRESSED)
    assert code == 1
    assert "reqctx::is_canary_wasteful" in out
    assert cli("diff", baseline, REGRESSED, "--workload", "reqctx")[0] == 1
    # A baseline can be the "after" side too.
    assert cli("diff", REGRESSED, baseline)[0] == 0


def test_bless_default_path_is_in_the_working_directory(tmp_path: Path, cli: RunCli) -> None:
    code, _, err = cli("bless", "--profile", BASE, "--workload", "reqctx", cwd=tmp_path)
    assert code == 0, err
    assert (tmp_path / "allocgate-baseline.yml").is_file()


def test_bless_keeps_more_callsites_than_it_gates(tmp_path: Path, cli: RunCli) -> None:
    baseline = tmp_path / "b.yml"
    code, _, err = cli(
        "bless",
        "--profile",
        VALGRIND / "manysites.json",
        "--workload",
        "many",
        "--baseline",
        baseline,
        "--top",
        "5",
        "--depth",
        "2",
    )
    assert code == 0, err
    sites = yaml.safe_load(baseline.read_text(encoding="utf-8"))["workloads"]["many"]["callsites"]
    assert len(sites) > 5


def test_diff_uses_the_baselines_depth(tmp_path: Path, cli: RunCli) -> None:
    baseline = tmp_path / "b.yml"
    cli("bless", "--profile", BASE, "--workload", "reqctx", "--baseline", baseline, "--depth", "2")
    code, out, err = cli("diff", baseline, REGRESSED, "--format", "json")
    assert code == 1, err
    keys = {s["key"] for s in json.loads(out)["workloads"][0]["comparison"]["sites"]}
    assert "reqctx::is_canary_wasteful ← reqctx::handle_requests" in keys


def test_diff_needs_workload_when_the_baseline_has_several(tmp_path: Path, cli: RunCli) -> None:
    baseline = tmp_path / "b.yml"
    for name, sample in (("reqctx", BASE), ("leaky", DHAT_RS / "leaky.json")):
        assert cli("bless", "--profile", sample, "--workload", name, "--baseline", baseline)[0] == 0
    code, _, err = cli("diff", baseline, REGRESSED)
    assert code == 2
    assert "--workload" in err
    assert "leaky" in err
    assert "reqctx" in err
    assert cli("diff", baseline, REGRESSED, "--workload", "reqctx")[0] == 1
    assert cli("diff", baseline, DHAT_RS / "leaky.json", "--workload", "leaky")[0] == 0


def test_diff_of_two_profiles_at_different_depths_refolds(cli: RunCli) -> None:
    code, out, _ = cli("diff", BASE, RERUN, "--depth", "3", "--format", "json")
    assert code == 0
    keys = [s["key"] for s in json.loads(out)["workloads"][0]["comparison"]["sites"]]
    assert keys[0].count(" ← ") == 2


# ---------------------------------------------------------------- help and arguments


def test_every_subcommand_is_listed() -> None:
    assert {"show", "diff", "bless"} <= set(subcommands())


@pytest.mark.parametrize("command", [None, *subcommands()])
def test_help_exits_0(command: str | None, cli: RunCli) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    code, out, err = cli(*args)
    assert (code, err) == (0, "")
    assert out.startswith("usage: allocgate")
    if command is not None:
        assert command in out.splitlines()[0]


def test_version(cli: RunCli) -> None:
    code, out, _ = cli("--version")
    assert code == 0
    assert out.startswith("allocgate ")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["frobnicate"],
        ["show"],
        ["show", str(BASE), "--top", "0"],
        ["show", str(BASE), "--format", "html"],
        ["show", str(BASE), "--metric", "bytes"],
        ["diff", str(BASE)],
        ["bless", "--profile", str(BASE)],
    ],
    ids=lambda a: " ".join(a) or "nothing",
)
def test_usage_errors_exit_2_in_one_line(args: list[str], cli: RunCli) -> None:
    code, out, err = cli(*args)
    assert code == 2
    assert out == ""
    assert len(err.splitlines()) == 1, err
    assert "error" in err
    assert "Traceback" not in err
