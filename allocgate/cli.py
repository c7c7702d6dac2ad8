"""The ``allocgate`` command: a thin shell over the library. Exit codes: 0 within
budget, 1 regression, 2 could not evaluate."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NoReturn

from allocgate import __version__, gate
from allocgate.baseline import WorkloadBaseline, read_baseline, update_baseline
from allocgate.callsites import FoldOptions
from allocgate.compare import GateSettings, compare
from allocgate.config import load_config
from allocgate.errors import AllocgateError, ConfigError
from allocgate.load import load_profile, sniff
from allocgate.metrics import METRIC_NAMES, metric_info, parse_threshold
from allocgate.options import add_shared_options
from allocgate.profile import Profile
from allocgate.quantities import Tolerance
from allocgate.render import (
    MarkdownContext,
    comment_marker,
    profile_json,
    profile_markdown,
    profile_text,
    report_markdown,
    report_text,
)
from allocgate.report import EXIT_ERROR, Report, WorkloadResult, merge_reports, read_report
from allocgate.run import Progress, Runner

FORMATS = ("text", "markdown", "json")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, like every other allocgate error, not argparse's usage dump.
        self.exit(EXIT_ERROR, f"{self.prog}: error: {message} (see --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number, got {text!r}"
        ) from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def metric_name(text: str) -> str:
    try:
        return metric_info(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_fold_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--depth",
        type=positive_int,
        default=None,
        help="user frames that make a callsite's key (default: 1, or the baseline's)",
    )
    p.add_argument(
        "--skip",
        action="append",
        default=[],
        metavar="REGEX",
        help="treat frames matching REGEX as allocator plumbing (repeatable)",
    )


def _add_gate_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        type=metric_name,
        metavar="METRIC",
        help=f"gated metric, repeatable ({', '.join(METRIC_NAMES)}; default total_bytes)",
    )
    p.add_argument("--top", type=positive_int, default=None, help="callsites gated (default 5)")
    p.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="SPEC",
        help="tolerance: [METRIC:]RELATIVE%%[:ABSOLUTE], e.g. 5%%:1KiB or total_blocks:10%%:100 "
        "(default 5%% and 1 KiB / 100 blocks); a site regresses only past both",
    )


def _add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="text", help="output format")


def _add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")


def _add_comment_options(p: argparse.ArgumentParser, flag: bool = True) -> None:
    if flag:
        p.add_argument(
            "--comment",
            action="store_true",
            help="also post or update the sticky PR comment (GitHub Actions)",
        )
    p.add_argument(
        "--comment-mode",
        choices=("always", "on-change", "on-regression"),
        default="always",
        help="when to post: always (default), on-change, or on-regression",
    )
    p.add_argument(
        "--comment-id",
        default="default",
        help="keeps separate sticky comments for several gates in one repository",
    )
    p.add_argument("--pr", type=positive_int, help="pull request number (default: from the event)")
    p.add_argument(
        "--token-env",
        default="GITHUB_TOKEN",
        metavar="NAME",
        help="environment variable holding the token (default GITHUB_TOKEN)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="allocgate",
        description="Stop heap-allocation regressions in Rust programs before they merge.",
    )
    parser.add_argument("--version", action="version", version=f"allocgate {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    show = sub.add_parser("show", help="the top callsites of one profile")
    show.add_argument("profile", type=Path, metavar="PROFILE")
    show.add_argument("--top", type=positive_int, default=10, help="callsites shown (default 10)")
    show.add_argument(
        "--metric", type=metric_name, default=None, help="rank by this metric (default total_bytes)"
    )
    _add_fold_options(show)
    _add_format(show)

    diff = sub.add_parser("diff", help="compare two profiles or baselines")
    diff.add_argument("before", type=Path, metavar="BEFORE", help="profile or baseline file")
    diff.add_argument("after", type=Path, metavar="AFTER", help="profile or baseline file")
    diff.add_argument("--workload", help="the workload to take from a baseline file")
    _add_gate_options(diff)
    _add_fold_options(diff)
    _add_format(diff)

    bless = sub.add_parser(
        "bless", help="build, run and record the baseline (or record it from --profile)"
    )
    bless.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="default: all")
    add_shared_options(bless.add_argument, names=("config", "keep-profiles"))
    bless.add_argument("--profile", type=Path, help="record this profile file instead of running")
    bless.add_argument("--workload", help="with --profile: the workload name to record it under")
    bless.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="with --profile: the baseline file (default allocgate-baseline.yml)",
    )
    bless.add_argument(
        "--top", type=positive_int, default=5, help="with --profile: callsites gated (default 5)"
    )
    _add_fold_options(bless)
    _add_quiet(bless)

    check = sub.add_parser("check", help="build, run and compare workloads with the baseline")
    check.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="default: all")
    add_shared_options(check.add_argument)
    check.add_argument(
        "--shard", metavar="K/N", help="run the K-th of N deterministic subsets of the workloads"
    )
    _add_format(check)
    _add_quiet(check)
    _add_comment_options(check)

    run = sub.add_parser("run", help="build, run and show the top callsites without comparing")
    run.add_argument("workloads", nargs="*", metavar="WORKLOAD", help="default: all")
    add_shared_options(run.add_argument, names=("config", "keep-profiles"))
    run.add_argument("--top", type=positive_int, default=None, help="callsites shown")
    _add_format(run)
    _add_quiet(run)

    merge = sub.add_parser("merge", help="combine partial (sharded) JSON reports into one")
    merge.add_argument("reports", nargs="+", type=Path, metavar="REPORT")
    add_shared_options(merge.add_argument, names=("report-json", "report-md"))
    _add_format(merge)

    comment = sub.add_parser(
        "comment", help="post or update the sticky pull-request comment from a JSON report"
    )
    comment.add_argument("--report", type=Path, required=True, help="the JSON report")
    _add_comment_options(comment, flag=False)
    return parser


def _fold(args: argparse.Namespace, depth: int | None = None) -> FoldOptions:
    return FoldOptions(depth=args.depth or depth or 1, skip=tuple(args.skip))


def _settings(args: argparse.Namespace) -> GateSettings:
    metrics = tuple(args.metrics or ("total_bytes",))
    tolerances: dict[str, Tolerance] = {}
    for spec in args.threshold:
        tolerances.update(parse_threshold(spec, metrics))
    return GateSettings(metrics=metrics, top=args.top or 5, tolerances=tolerances)


def cmd_show(args: argparse.Namespace) -> int:
    profile = load_profile(args.profile, _fold(args))
    metric = args.metric or profile.metrics[0]
    if metric not in profile.metrics:
        raise ConfigError(
            f"{args.profile}: {profile.profiler} does not measure {metric!r} "
            f"(it has: {', '.join(profile.metrics)})"
        )
    sites = profile.top(args.top, metric)
    if args.format == "json":
        sys.stdout.buffer.write(profile_json(profile, sites))
    elif args.format == "markdown":
        sys.stdout.write(profile_markdown(profile, sites, metric))
    else:
        sys.stdout.write(profile_text(profile, sites, metric))
    return 0


def _baseline_side(path: Path, workload: str | None) -> Profile:
    baseline = read_baseline(path)
    if workload is None:
        if len(baseline.workloads) != 1:
            names = ", ".join(sorted(baseline.workloads)) or "none"
            raise ConfigError(
                f"{path}: holds several workloads ({names}); pick one with --workload"
            )
        workload = next(iter(baseline.workloads))
    return baseline.get(workload).as_profile(str(path))


def cmd_diff(args: argparse.Namespace) -> int:
    settings = _settings(args)
    # Baseline sides are already folded; profile sides are folded once, at the
    # depth asked for, else at a baseline side's depth, so both sides agree.
    sides: dict[Path, Profile] = {
        p: _baseline_side(p, args.workload)
        for p in (args.before, args.after)
        if sniff(p) == "baseline"
    }
    depth = args.depth or next((s.depth for s in sides.values()), None)
    before, after = (
        sides.get(p) or load_profile(p, _fold(args, depth)) for p in (args.before, args.after)
    )
    name = args.workload or Path(args.after).stem
    comparison = compare(name, before, after, settings)
    report = Report((WorkloadResult(name, comparison),))
    emit_report(report, args.format)
    return report.exit_code


def emit_report(report: Report, fmt: str, ctx: MarkdownContext | None = None) -> None:
    if fmt == "json":
        sys.stdout.buffer.write(report.to_json())
    elif fmt == "markdown":
        sys.stdout.write(report_markdown(report, ctx))
    else:
        sys.stdout.write(report_text(report))


def cmd_bless(args: argparse.Namespace) -> int:
    if args.profile is not None:
        return _bless_profile(args)
    if args.workload or args.baseline:
        raise ConfigError("--workload and --baseline go with --profile; name workloads instead")
    config = load_config(args.config)
    workloads = config.select(args.workloads)
    outcome = gate.bless(config, workloads, _runner(args))
    for name, entry in outcome.new.items():
        print(describe_bless(outcome.old.get(name), entry, config.baseline), file=sys.stderr)
    return 0


def _bless_profile(args: argparse.Namespace) -> int:
    if not args.workload:
        raise ConfigError("bless --profile needs --workload NAME")
    path = args.baseline or Path("allocgate-baseline.yml")
    profile = load_profile(args.profile, _fold(args))
    entry = WorkloadBaseline.from_profile(args.workload, profile, gate.recorded_count(args.top))
    old = read_baseline(path).workloads.get(args.workload)
    update_baseline(path, {args.workload: entry})
    print(describe_bless(old, entry, path), file=sys.stderr)
    return 0


def _runner(args: argparse.Namespace) -> Runner:
    return Runner(progress=Progress(quiet=args.quiet), keep_profiles=args.keep_profiles)


def cmd_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    workloads = config.select(args.workloads)
    if args.shard:
        k, n = gate.parse_shard(args.shard)
        workloads = gate.shard(workloads, k, n)
    report = gate.check(config, workloads, _runner(args), shard_of=args.shard)
    return finish_report(report, args)


def finish_report(report: Report, args: argparse.Namespace) -> int:
    """Prints and writes a report, then hands it to GitHub when asked; returns the
    gate's exit code whatever happened to the comment."""
    ctx = _markdown_context(args)
    emit_report(report, args.format, ctx)
    markdown = None
    if args.report_json is not None:
        atomic_write_bytes(args.report_json, report.to_json())
    if args.report_md is not None:
        markdown = report_markdown(report, ctx)
        atomic_write_bytes(args.report_md, markdown.encode())
    publish(report, args, markdown)
    return report.exit_code


def cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    runner = _runner(args)
    failed = False
    for w in config.select(args.workloads):
        try:
            measurement = runner.measure(w)
        except AllocgateError as exc:
            print(f"allocgate: error: {exc}", file=sys.stderr)
            failed = True
            continue
        profile = measurement.profile
        sites = profile.top(args.top or w.gate.top, w.gate.rank_metric)
        if args.format == "json":
            sys.stdout.buffer.write(profile_json(profile, sites))
        elif args.format == "markdown":
            sys.stdout.write(profile_markdown(profile, sites, w.gate.rank_metric))
        else:
            sys.stdout.write(f"== {w.name}\n")
            sys.stdout.write(profile_text(profile, sites, w.gate.rank_metric))
            if measurement.nondeterministic:
                sys.stdout.write(
                    f"warning: {len(measurement.nondeterministic)} callsite(s) varied between "
                    f"runs: {', '.join(measurement.nondeterministic[:5])}\n"
                )
            if measurement.kept:
                sys.stdout.write("raw profiles: " + ", ".join(measurement.kept) + "\n")
    return EXIT_ERROR if failed else 0


def cmd_merge(args: argparse.Namespace) -> int:
    reports = [read_report(p) for p in args.reports]
    merged = merge_reports(reports, [str(p) for p in args.reports])
    args.comment = False
    return finish_report(merged, args)


def describe_bless(old: WorkloadBaseline | None, new: WorkloadBaseline, path: Path) -> str:
    """One line saying what a bless changed, for the terminal."""
    from allocgate.metrics import format_delta, format_value

    total = new.totals.get("total_bytes")
    size = format_value("total_bytes", total) if total is not None else "?"
    if old is None:
        return f"{path}: recorded {new.name} ({len(new.callsites)} callsites, {size} total)"
    before = old.totals.get("total_bytes")
    delta = ""
    if before is not None and total is not None:
        delta = f", {format_delta('total_bytes', total - before)}"
    added = len({s.key for s in new.callsites} - {s.key for s in old.callsites})
    removed = len({s.key for s in old.callsites} - {s.key for s in new.callsites})
    return (
        f"{path}: updated {new.name} ({size} total{delta}; "
        f"{added} callsite(s) added, {removed} removed)"
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    from allocgate.baseline import atomic_write

    try:
        atomic_write(path, data.decode())
    except AllocgateError as exc:
        raise ConfigError(str(exc)) from None


def run_url_from_env(env: Mapping[str, str]) -> str | None:
    """The link to this workflow run, when running in GitHub Actions."""
    repo, run_id = env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")
    if not repo or not run_id:
        return None
    server = env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    return f"{server}/{repo}/actions/runs/{run_id}"


def _markdown_context(args: argparse.Namespace) -> MarkdownContext:
    return MarkdownContext(
        comment_id=getattr(args, "comment_id", "default"),
        run_url=run_url_from_env(os.environ),
        bless_command="allocgate bless",
    )


def publish(report: Report, args: argparse.Namespace, markdown: str | None) -> None:
    """Job summary, step outputs and (with --comment) the sticky PR comment."""
    from allocgate import github

    ctx = _markdown_context(args)
    body = markdown if markdown is not None else report_markdown(report, ctx)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        github.append_step_summary(Path(summary), body)
    outputs = os.environ.get("GITHUB_OUTPUT")
    if outputs:
        github.write_outputs(
            Path(outputs),
            {
                "regressed": "true" if report.regressed else "false",
                "verdict": report.verdict,
                "report-json": str(args.report_json.resolve()) if args.report_json else "",
                "report-md": str(args.report_md.resolve()) if args.report_md else "",
            },
        )
    if getattr(args, "comment", False):
        post_comment(report, body, args)


def upsert_sticky_comment(report: Report, body: str, args: argparse.Namespace) -> bool:
    """Posts or updates the sticky comment and says what happened on stderr.

    Returns False when the token may not write (a fork's PR): a warning, not an
    error. Anything that prevents trying at all raises."""
    from allocgate import github

    ctx = github.GitHubContext.from_env(os.environ, pr=args.pr, token_env=args.token_env)
    result = github.upsert_comment(
        github.make_session(ctx.token),
        ctx,
        body,
        marker=comment_marker(args.comment_id),
        mode=args.comment_mode,
        regressed=report.regressed,
    )
    forbidden = result.action == "forbidden"
    print(f"allocgate: {'warning: ' if forbidden else ''}{result.message}", file=sys.stderr)
    return not forbidden


def post_comment(report: Report, body: str, args: argparse.Namespace) -> bool:
    """For `check --comment`: failures are warnings, never the verdict."""
    try:
        return upsert_sticky_comment(report, body, args)
    except AllocgateError as exc:
        print(f"allocgate: warning: could not comment on the pull request: {exc}", file=sys.stderr)
        return False


def cmd_comment(args: argparse.Namespace) -> int:
    from allocgate import github

    report = read_report(args.report)
    # Fail on a missing token or PR number before writing anything.
    github.GitHubContext.from_env(os.environ, pr=args.pr, token_env=args.token_env)
    body = report_markdown(report, _markdown_context(args))
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        github.append_step_summary(Path(summary), body)
    upsert_sticky_comment(report, body, args)
    return 0


COMMANDS = {
    "show": cmd_show,
    "diff": cmd_diff,
    "bless": cmd_bless,
    "check": cmd_check,
    "run": cmd_run,
    "merge": cmd_merge,
    "comment": cmd_comment,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except AllocgateError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"allocgate: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("allocgate: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `allocgate show | head`: the reader went away; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
