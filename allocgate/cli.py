"""The ``allocgate`` command: a thin shell over allocgate.api. It turns arguments
into `Settings` and an outcome into output. Exit codes: 0 within budget,
1 regression, 2 could not evaluate."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from allocgate import __version__
from allocgate.github.redact import register_secret
from allocgate.messages import error_line, one_line
from allocgate.report import EXIT_ERROR
from allocgate.settings import Settings, add_options

if TYPE_CHECKING:
    from allocgate.api import Outcome
    from allocgate.callsites import Callsite
    from allocgate.profile import Profile


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other allocgate error, not argparse's usage dump.
        self.exit(EXIT_ERROR, error_line(self.prog, f"{message} (see --help)") + "\n")


_WORKLOADS: dict[str, Any] = {"nargs": "*", "metavar": "WORKLOAD", "help": "default: all"}
_COMMENT = ("comment-mode", "comment-id", "pr", "token-env", "github-timeout")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="allocgate",
        description="Stop heap-allocation regressions in Rust programs before they merge.",
    )
    parser.add_argument("--version", action="version", version=f"allocgate {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    init = sub.add_parser(
        "init", help="write allocgate.yml for the crate or workspace in this directory"
    )
    add_options(init.add_argument, "config", "examples", "tests", "force")

    tools = sub.add_parser(
        "tools",
        help="print the apt packages of the profilers the config needs and PATH lacks",
    )
    tools.add_argument("workloads", **_WORKLOADS)
    add_options(tools.add_argument, "config")

    show = sub.add_parser("show", help="the top callsites of one profile")
    show.add_argument("profile", type=Path, metavar="PROFILE")
    add_options(show.add_argument, "top", "metric", "depth", "skip", "format")
    add_options(show.add_argument, "keys", "workspace", "binary")

    diff = sub.add_parser("diff", help="compare two profiles or baselines")
    diff.add_argument("before", type=Path, metavar="BEFORE", help="profile or baseline file")
    diff.add_argument("after", type=Path, metavar="AFTER", help="profile or baseline file")
    add_options(diff.add_argument, "workload", "metric", "top", "threshold", "depth", "skip")
    add_options(diff.add_argument, "format", "keys", "workspace", "binary")

    bless = sub.add_parser(
        "bless", help="build, run and record the baseline (or record it from --profile)"
    )
    bless.add_argument("workloads", **_WORKLOADS)
    add_options(bless.add_argument, "config", "keep-profiles")
    bless.add_argument("--profile", type=Path, help="record this profile file instead of running")
    bless.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="with --profile: the baseline file (default allocgate-baseline.yml)",
    )
    add_options(bless.add_argument, "workload", "top", "depth", "skip", "quiet")
    add_options(bless.add_argument, "keys", "workspace", "binary")
    add_options(bless.add_argument, "reason", "from-comment", "token-env")

    check = sub.add_parser("check", help="build, run and compare workloads with the baseline")
    check.add_argument("workloads", **_WORKLOADS)
    add_options(check.add_argument, "config", "report-json", "report-md", "keep-profiles")
    add_options(check.add_argument, "threshold")
    add_options(
        check.add_argument, "shard", "format", "quiet", "strict", "comment", "keys", *_COMMENT
    )
    add_options(check.add_argument, "require-reason", "base")

    show_baseline = sub.add_parser(
        "show-baseline", help="each workload's provenance: who blessed it, when and why"
    )
    show_baseline.add_argument("workloads", **_WORKLOADS)
    add_options(show_baseline.add_argument, "config")

    run = sub.add_parser("run", help="build, run and show the top callsites without comparing")
    run.add_argument("workloads", **_WORKLOADS)
    add_options(run.add_argument, "config", "keep-profiles", "top", "format", "quiet", "keys")

    merge = sub.add_parser("merge", help="combine partial (sharded) JSON reports into one")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT")
    add_options(merge.add_argument, "report-json", "report-md", "format")

    comment = sub.add_parser(
        "comment", help="post or update the sticky pull-request comment from a JSON report"
    )
    comment.add_argument("--report", type=Path, required=True, help="the JSON report")
    add_options(comment.add_argument, *_COMMENT)
    return parser


def cmd_init(settings: Settings) -> int:
    from allocgate import api

    sys.stdout.write(api.init(settings).next_steps())
    return 0


def cmd_tools(settings: Settings) -> int:
    from allocgate import api

    for package in api.missing_packages(settings):
        print(package)
    return 0


def cmd_show(settings: Settings) -> int:
    from allocgate.errors import ConfigError
    from allocgate.load import load_profile

    assert settings.profile is not None
    profile = load_profile(settings.profile, settings.fold())
    metric = settings.metrics[-1] if settings.metrics else profile.metrics[0]
    if metric not in profile.metrics:
        raise ConfigError(
            f"{settings.profile}: {profile.profiler} does not measure {metric!r} "
            f"(it has: {', '.join(profile.metrics)})"
        )
    _print_profile(profile, profile.top(settings.top or 10, metric), metric, settings.format)
    return 0


def _print_profile(profile: Profile, sites: Sequence[Callsite], metric: str, fmt: str) -> None:
    from allocgate.render.json import profile_json
    from allocgate.render.markdown import profile_markdown
    from allocgate.render.text import profile_text

    if fmt == "json":
        sys.stdout.buffer.write(profile_json(profile, sites))
    elif fmt == "markdown":
        sys.stdout.write(profile_markdown(profile, sites, metric))
    else:
        sys.stdout.write(profile_text(profile, sites, metric))


def _print_outcome(outcome: Outcome, fmt: str) -> None:
    from allocgate.render.markdown import report_markdown
    from allocgate.render.text import report_text

    if fmt == "json":
        sys.stdout.buffer.write(outcome.report.to_json())
    elif fmt == "markdown":
        sys.stdout.write(report_markdown(outcome.report, outcome.context))
    else:
        sys.stdout.write(report_text(outcome.report))


def cmd_diff(settings: Settings) -> int:
    from allocgate import api

    outcome = api.diff(settings)
    _print_outcome(outcome, settings.format)
    return outcome.exit_code


def cmd_bless(settings: Settings) -> int:
    from allocgate import api
    from allocgate.render.text import bless_line

    if settings.from_comment:
        result = api.bless_from_comment(settings)
        print(f"allocgate: {result.message}", file=sys.stderr)
        return result.exit_code
    outcome = api.bless(settings)
    for name, entry in outcome.new.items():
        print(bless_line(outcome.old.get(name), entry, outcome.path), file=sys.stderr)
    for name in outcome.removed:
        print(f"{outcome.path}: removed {name} (the test no longer exists)", file=sys.stderr)
    return 0


def cmd_check(settings: Settings) -> int:
    from allocgate import api

    outcome = api.check(settings)
    code = _finish(outcome, settings)
    # After the report: GitHub reads these from the log and puts them on the diff.
    for line in api.workflow_commands(outcome):
        print(line)
    if outcome.report.regressed and settings.format == "text":
        names = [r.name for r in outcome.report.results if r.verdict == "regressed"]
        print(f"If the growth is intended: {api.bless_command(settings, names)}")
    return code


def cmd_merge(settings: Settings) -> int:
    from allocgate import api

    return _finish(api.merge(settings), settings)


def _finish(outcome: Outcome, settings: Settings) -> int:
    """Prints and writes a report, then hands it to GitHub when asked; returns the
    gate's exit code whatever happened to the comment."""
    from allocgate import api

    _print_outcome(outcome, settings.format)
    for note in outcome.notes:
        print(f"allocgate: warning: {one_line(note)}", file=sys.stderr)
    api.write_reports(outcome, settings)
    return outcome.exit_code


def cmd_run(settings: Settings) -> int:
    from allocgate import api
    from allocgate.render.text import varied_text
    from allocgate.runs import profile_swings

    failed = False
    for w, measured in api.measure_each(settings):
        if isinstance(measured, Exception):
            print(error_line("allocgate", measured), file=sys.stderr)
            failed = True
            continue
        profile = measured.profile
        metric = w.gate.rank_metric
        sites = profile.top(settings.top or w.gate.top, metric)
        if settings.format == "text":
            sys.stdout.write(f"== {w.name}\n")
        _print_profile(profile, sites, metric, settings.format)
        if settings.format == "text":
            varied = profile_swings(profile, w.gate.metrics, [s.key for s in sites])
            if varied:
                runs = f"{measured.runs} runs"
                sys.stdout.write(varied_text(varied, runs, profile.units) + "\n")
            if measured.kept:
                sys.stdout.write("raw profiles: " + ", ".join(measured.kept) + "\n")
    return EXIT_ERROR if failed else 0


def cmd_show_baseline(settings: Settings) -> int:
    from allocgate import api

    sys.stdout.write("".join(f"{line}\n" for line in api.show_baseline(settings)))
    return 0


def cmd_comment(settings: Settings) -> int:
    from allocgate import api

    return api.comment(settings)


COMMANDS: dict[str, Callable[[Settings], int]] = {
    "init": cmd_init,
    "tools": cmd_tools,
    "show": cmd_show,
    "diff": cmd_diff,
    "bless": cmd_bless,
    "check": cmd_check,
    "run": cmd_run,
    "merge": cmd_merge,
    "comment": cmd_comment,
    "show-baseline": cmd_show_baseline,
}


def main(argv: Sequence[str] | None = None) -> int:
    from allocgate.errors import AllocgateError

    # Masked in every message from the start, whichever command runs.
    register_secret(os.environ.get("GITHUB_TOKEN"))
    parser = build_parser()
    args = parser.parse_args(argv)
    register_secret(os.environ.get(getattr(args, "token_env", None) or "GITHUB_TOKEN"))
    try:
        return COMMANDS[args.command](Settings.from_args(args))
    except AllocgateError as exc:
        if args.debug:
            traceback.print_exc()
        print(error_line("allocgate", exc), file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("allocgate: interrupted", file=sys.stderr)
        return 130
    except (RecursionError, MemoryError, ValueError, TypeError, OverflowError, KeyError) as exc:
        # A bug, not bad input (bad input is an AllocgateError): still one line, exit 2.
        if args.debug:
            traceback.print_exc()
        what = f"internal error: {type(exc).__name__}: {exc}"
        print(error_line("allocgate", f"{what} (rerun with --debug for details)"), file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:
        # `allocgate show | head`: the reader went away; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
