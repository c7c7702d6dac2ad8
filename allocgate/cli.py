"""The ``allocgate`` command: a thin shell over the library. Exit codes: 0 within
budget, 1 regression, 2 could not evaluate."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from allocgate import __version__
from allocgate.baseline import WorkloadBaseline, read_baseline, update_baseline
from allocgate.callsites import FoldOptions
from allocgate.compare import GateSettings, compare
from allocgate.errors import AllocgateError, ConfigError
from allocgate.load import load_profile, sniff
from allocgate.metrics import METRIC_NAMES, metric_info, parse_threshold
from allocgate.profile import Profile
from allocgate.quantities import Tolerance
from allocgate.render import (
    MarkdownContext,
    profile_json,
    profile_markdown,
    profile_text,
    report_markdown,
    report_text,
)
from allocgate.report import EXIT_ERROR, Report, WorkloadResult

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

    bless = sub.add_parser("bless", help="record the baseline from a profile")
    bless.add_argument("--profile", type=Path, required=True, help="the profile to record")
    bless.add_argument("--workload", required=True, help="the workload name to record it under")
    bless.add_argument(
        "--baseline",
        type=Path,
        default=Path("allocgate-baseline.yml"),
        help="baseline file (default allocgate-baseline.yml)",
    )
    bless.add_argument(
        "--top", type=positive_int, default=5, help="callsites gated; more are recorded"
    )
    _add_fold_options(bless)
    return parser


def recorded_count(top: int) -> int:
    """How many callsites a baseline keeps: enough that a site climbing from rank
    N+1 is compared against its old value rather than reported as new."""
    return max(3 * top, top + 10)


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


def _side(path: Path, workload: str | None, depth: int | None, args: argparse.Namespace) -> Profile:
    if sniff(path) == "baseline":
        baseline = read_baseline(path)
        if workload is None:
            if len(baseline.workloads) != 1:
                names = ", ".join(sorted(baseline.workloads)) or "none"
                raise ConfigError(
                    f"{path}: holds several workloads ({names}); pick one with --workload"
                )
            workload = next(iter(baseline.workloads))
        return baseline.get(workload).as_profile(str(path))
    return load_profile(path, _fold(args, depth))


def cmd_diff(args: argparse.Namespace) -> int:
    settings = _settings(args)
    before = _side(args.before, args.workload, None, args)
    after = _side(args.after, args.workload, before.depth if args.depth is None else None, args)
    if args.depth is None and before.depth != after.depth and sniff(args.before) != "baseline":
        before = _side(args.before, args.workload, after.depth, args)
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
    profile = load_profile(args.profile, _fold(args))
    entry = WorkloadBaseline.from_profile(args.workload, profile, recorded_count(args.top))
    old = read_baseline(args.baseline).workloads.get(args.workload)
    update_baseline(args.baseline, {args.workload: entry})
    print(describe_bless(old, entry, args.baseline), file=sys.stderr)
    return 0


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


COMMANDS = {"show": cmd_show, "diff": cmd_diff, "bless": cmd_bless}


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
