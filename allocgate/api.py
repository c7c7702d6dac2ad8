"""The gate: everything between reading the config and the exit code, shared by
the CLI, the pytest plugin and the action. Each takes frozen `Settings`."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from allocgate.baseline import Baseline, WorkloadBaseline
from allocgate.baseline_file import read_baseline, update_baseline
from allocgate.compare import GateSettings, compare, recorded_count
from allocgate.config import Config, WorkloadConfig, load_config
from allocgate.envelope import Span, Swing, merge_spans, swings
from allocgate.errors import AllocgateError, BaselineError, ConfigError, WorkloadError
from allocgate.load import load_profile, sniff
from allocgate.process import Progress
from allocgate.profile import Profile
from allocgate.render.markdown import MarkdownContext, report_markdown
from allocgate.report import Report, WorkloadResult, merge_reports, read_report
from allocgate.run import Measurement, Runner
from allocgate.settings import DEFAULT_BASELINE, Settings
from allocgate.test_workloads import GONE, NEW, expand, plan

if TYPE_CHECKING:
    from allocgate.bless_record import BlessRecord
    from allocgate.github.bless_flow import CommentBlessResult
    from allocgate.scaffold import Scaffold


@dataclass(frozen=True)
class Outcome:
    """A report and what its markdown form needs to know besides it."""

    report: Report
    context: MarkdownContext = field(default_factory=MarkdownContext)
    notes: tuple[str, ...] = ()
    """Warnings for the person running it (e.g. the base baseline could not be read)."""

    @property
    def exit_code(self) -> int:
        return self.report.exit_code


@dataclass(frozen=True)
class BlessOutcome:
    path: Path
    old: dict[str, WorkloadBaseline]
    new: dict[str, WorkloadBaseline]
    removed: tuple[str, ...] = ()
    """Entries of tests that no longer exist, dropped by blessing their workload."""


def shard(workloads: Sequence[WorkloadConfig], k: int, n: int) -> list[WorkloadConfig]:
    """A deterministic 1/N of the workloads: round robin over their sorted names."""
    ordered = sorted(workloads, key=lambda w: w.name)
    return [w for i, w in enumerate(ordered) if i % n == k - 1]


def load(settings: Settings) -> Config:
    return load_config(settings.config, settings.start)


def selected(config: Config, settings: Settings, measure: Runner) -> list[WorkloadConfig]:
    """The named workloads, a ``tests:`` one as one workload per test (which builds
    its test binaries), then this shard of them."""
    workloads = expand(configured(config, settings), measure.tests)
    if settings.shard is not None:
        workloads = shard(workloads, *settings.shard)
    return workloads


def configured(config: Config, settings: Settings) -> list[WorkloadConfig]:
    """The named workloads (all when none are named) as configured and overridden."""
    workloads = config.select(settings.workloads)
    if settings.keys is not None:
        workloads = [replace(w, fold=replace(w.fold, keys=settings.keys)) for w in workloads]
    if settings.tolerances:
        # --threshold (or the pytest ini) wins over the config, metric by metric.
        workloads = [
            replace(
                w,
                gate=replace(w.gate, tolerances={**w.gate.tolerances, **settings.tolerances}),
            )
            for w in workloads
        ]
    return workloads


def runner(settings: Settings) -> Runner:
    return Runner(progress=Progress(quiet=settings.quiet), keep_profiles=settings.keep_profiles)


def markdown_context(settings: Settings, config: Config | None = None) -> MarkdownContext:
    from allocgate.github.context import run_url_from_env

    baseline = DEFAULT_BASELINE
    if config is not None:
        baseline = os.path.relpath(config.baseline, config.path.parent)
    from allocgate.annotations import ActionsContext

    return MarkdownContext(
        comment_id=settings.comment.id,
        run_url=run_url_from_env(settings.environ),
        bless_command=settings.bless_base,
        baseline_file=baseline,
        links=ActionsContext.from_env(settings.environ, settings.start),
    )


def judge(
    w: WorkloadConfig, measurement: Measurement, baseline: Baseline, strict: bool = False
) -> WorkloadResult:
    """Compares one measured workload with its baseline entry; errors become results."""
    group = w.test.group if w.test is not None else None
    if group is not None and w.name not in baseline.workloads:
        return new_test(w, baseline, strict, measurement)
    try:
        entry = baseline.get(w.name)
        if entry.profiler != w.profiler:
            raise BaselineError(
                f"{baseline.path}: {w.name!r} was blessed under {entry.profiler} but is "
                f"configured for {w.profiler}; run `allocgate bless {w.name}`"
            )
        started = time.monotonic()
        comparison = compare(
            w.name, entry.as_profile(str(baseline.path)), measurement.profile, w.gate
        )
        seconds = dict(measurement.seconds)
        seconds["analyse"] = seconds.get("analyse", 0.0) + time.monotonic() - started
    except AllocgateError as exc:
        return WorkloadResult(w.name, error=str(exc), profiles=measurement.kept, group=group)
    from allocgate.provenance import Provenance, drift

    recorded = Provenance.from_mapping(entry.provenance)
    return WorkloadResult(
        name=w.name,
        comparison=comparison,
        profiles=measurement.kept,
        runs=measurement.runs,
        baseline_runs=entry.runs,
        swings=tuple(nondeterministic(entry, measurement.profile, w.gate)),
        seconds=seconds,
        group=group,
        harness=measurement.harness,
        warnings=tuple(drift(w.name, w.profiler, recorded, measurement.provenance)),
    )


def nondeterministic(entry: WorkloadBaseline, current: Profile, gate: GateSettings) -> list[Swing]:
    """The sites whose gated metrics varied between the bless's runs or this check's,
    each with the whole range seen on both, widest swing first."""
    keep = recorded_count(gate.top)
    keys = [s.key for s in entry.callsites] + [s.key for s in current.top(keep, gate.rank_metric)]
    spans: dict[str, dict[str, Span]] = {}
    for key in dict.fromkeys(keys):
        merged = merge_spans(entry.spans.get(key, {}), current.spans.get(key, {}))
        if merged:
            spans[key] = merged
    return swings(spans, gate.metrics)


def new_test(
    w: WorkloadConfig, baseline: Baseline, strict: bool, measurement: Measurement | None = None
) -> WorkloadResult:
    """A test added since the bless: reported, gated only once blessed (``--strict``: an error)."""
    assert w.test is not None
    error = None
    if strict:
        error = (
            f"test {w.name!r} is not in {baseline.path} (--strict); "
            f"run `allocgate bless {w.test.group}` to record it"
        )
    return WorkloadResult(
        w.name,
        error=error,
        group=w.test.group,
        status=NEW,
        profiles=measurement.kept if measurement else (),
        harness=measurement.harness if measurement else {},
    )


def check_workload(
    w: WorkloadConfig, runner: Runner, baseline: Baseline, strict: bool = False
) -> WorkloadResult:
    """Measures and judges one workload; one failing workload spoils no other."""
    try:
        entry = baseline.workloads.get(w.name)
        if entry is not None and entry.keys != w.fold.keys:
            raise BaselineError(f"{baseline.path}: {_keys_problem(w, entry.keys)}")
        measurement = runner.measure(w)
    except AllocgateError as exc:
        group = w.test.group if w.test is not None else None
        return WorkloadResult(w.name, error=str(exc), group=group)
    return judge(w, measurement, baseline, strict)


def bless_command(settings: Settings, names: Sequence[str]) -> str:
    """The exact command that blesses ``names`` from the shell these settings came from."""
    return bless_hint_for(settings.bless_base, names)


def preflight(workloads: Sequence[WorkloadConfig], baseline: Baseline, bless_hint: str) -> None:
    """Before any build: the baseline has an entry for each workload, made with the
    same profiler. Stops at once, naming the command that fixes it."""
    problems = []
    known = ", ".join(sorted(baseline.workloads)) or "none"
    for w in workloads:
        entry = baseline.workloads.get(w.name)
        if entry is None:
            problems.append(f"no baseline for workload {w.name!r} (has: {known})")
        elif entry.profiler != w.profiler:
            problems.append(
                f"{w.name!r} was blessed under {entry.profiler} but is configured for {w.profiler}"
            )
        elif entry.keys != w.fold.keys:
            # Compared, every site would be "new": re-bless instead.
            problems.append(_keys_problem(w, entry.keys))
    if problems:
        where = baseline.path if baseline.path.exists() else f"{baseline.path} (no such file)"
        raise BaselineError(f"{where}: {'; '.join(problems)}; run `{bless_hint}`")


def init(settings: Settings) -> Scaffold:
    """Writes allocgate.yml for the crate or workspace in ``settings.start``."""
    from allocgate.scaffold import CONFIG_NAME, exists_error, scaffold, write_new

    path = settings.config or (settings.start / CONFIG_NAME)
    if path.exists() and not settings.force:
        # Checked first, so nothing runs (not even cargo metadata) for nothing.
        raise exists_error(path)
    result = scaffold(settings.start, path, examples=settings.examples, tests=settings.tests)
    write_new(path, result.text, force=settings.force)
    return result


def missing_packages(settings: Settings) -> list[str]:
    """The Debian packages of the profilers the selected workloads use and PATH lacks."""
    import shutil

    from allocgate import profilers

    config = load(settings)
    needed = {profilers.get(w.profiler).tool for w in configured(config, settings)}
    return sorted(tool for tool in needed if tool is not None and shutil.which(tool) is None)


def check(settings: Settings, run_with: Runner | None = None) -> Outcome:
    """Builds, runs and compares each selected workload with the baseline; a
    ``tests:`` workload is one workload per test, its vanished tests reported as gone."""
    config = load(settings)
    baseline = read_baseline(config.baseline)
    measure = run_with or runner(settings)
    todo = plan(configured(config, settings), measure.tests, baseline.workloads)
    if settings.shard is not None:
        todo = todo.shard(*settings.shard)
    # Before building: each plain workload has its entry. (A test's entry is its own,
    # and a test not blessed yet is new, not an error.)
    plain = [w for w in todo.workloads if w.test is None]
    problems = [w.name for w in plain if _mismatch(w, baseline)]
    if problems:
        preflight(plain, baseline, bless_command(settings, problems))
    results = [check_workload(w, measure, baseline, settings.strict) for w in todo.workloads]
    results += [WorkloadResult(name, error=error) for name, error in todo.failed.items()]
    results += [WorkloadResult(name, group=group, status=GONE) for name, group in todo.gone.items()]
    return _outcome(tuple(sorted(results, key=lambda r: r.name)), settings, config, baseline)


def _mismatch(w: WorkloadConfig, baseline: Baseline) -> bool:
    entry = baseline.workloads.get(w.name)
    return entry is None or entry.profiler != w.profiler or entry.keys != w.fold.keys


def _keys_problem(w: WorkloadConfig, blessed: str) -> str:
    return (
        f"{w.name!r} was blessed with {blessed} keys but is configured for "
        f"{w.fold.keys} keys (see `keys:` in allocgate.yml)"
    )


def workflow_commands(outcome: Outcome) -> list[str]:
    """``::error``/``::notice`` lines putting each changed callsite on its line of the
    pull request; none outside GitHub Actions."""
    from allocgate.annotations import comparison_annotations
    from allocgate.annotations import workflow_commands as commands

    links = outcome.context.links
    if links is None or not links.in_actions:
        return []
    found = []
    for result in outcome.report.results:
        if result.comparison is not None:
            hint = bless_hint_for(outcome.context.bless_command, [result.name])
            found += comparison_annotations(result.comparison, links, bless=hint)
    return commands(links, found)


def bless_hint_for(command: str, names: Sequence[str]) -> str:
    from allocgate.render.text import bless_hint

    return bless_hint(command, names)


def outcome_of(results: Sequence[WorkloadResult], settings: Settings, config: Config) -> Outcome:
    """The outcome of workloads judged one by one (the pytest plugin's items)."""
    ordered = tuple(sorted(results, key=lambda r: r.name))
    return _outcome(ordered, settings, config, read_baseline(config.baseline))


def _outcome(
    results: tuple[WorkloadResult, ...], settings: Settings, config: Config, baseline: Baseline
) -> Outcome:
    """The report, opened by how the baseline changed against the PR's base (if any)."""
    from allocgate.base_baseline import changes_for

    changes, notes = changes_for(settings, config, baseline)
    report = Report(
        results,
        shard=settings.shard_text,
        baseline_changes=changes,
        require_reason=settings.require_reason or config.require_reason,
    )
    return Outcome(report, markdown_context(settings, config), notes)


def baseline_entry(w: WorkloadConfig, measurement: Measurement) -> WorkloadBaseline:
    return WorkloadBaseline.from_profile(
        w.name,
        measurement.profile,
        recorded_count(w.gate.top),
        provenance=measurement.provenance.to_dict(),
        ranged=w.gate.metrics,
    )


def bless_runs(w: WorkloadConfig) -> int:
    """A bless measures at least ``bless_runs`` times, so the baseline holds each
    site's noise envelope, not one run's luck."""
    return max(w.runs, w.bless_runs)


def record(
    path: Path,
    entries: dict[str, WorkloadBaseline],
    blessing: BlessRecord | None = None,
    remove: Sequence[str] = (),
) -> BlessOutcome:
    """Writes the entries into the baseline at ``path`` (others are kept, those in
    ``remove`` dropped), once, with who blessed them and why in each one's provenance."""
    if blessing is not None and not blessing.empty:
        entries = {
            name: replace(entry, provenance={**entry.provenance, **blessing.to_dict()})
            for name, entry in entries.items()
        }
    current = read_baseline(path)
    removed = tuple(sorted(n for n in remove if n in current.workloads and n not in entries))
    update_baseline(path, entries, remove=removed)
    return BlessOutcome(
        path=path,
        old={n: current.workloads[n] for n in entries if n in current.workloads},
        new=entries,
        removed=removed,
    )


def bless(settings: Settings, run_with: Runner | None = None) -> BlessOutcome:
    """Measures every selected workload first and writes the baseline once: all or nothing.
    With ``settings.profile``, records that profile file instead of running."""
    if settings.profile is not None:
        return _bless_profile(settings)
    if settings.workload or settings.baseline:
        raise ConfigError("--workload and --baseline go with --profile; name workloads instead")
    config = load(settings)
    blessing = _cli_blessing(settings, config)
    outcome = bless_workloads(
        config, configured(config, settings), run_with or runner(settings), blessing
    )
    outputs = settings.environ.get("GITHUB_OUTPUT")
    if outputs:
        from allocgate.github.summary import write_outputs

        # The action uploads the file as an artifact from this path.
        write_outputs(Path(outputs), {"baseline": str(outcome.path.resolve())})
    return outcome


def bless_workloads(
    config: Config, workloads: Sequence[WorkloadConfig], measure: Runner, blessing: BlessRecord
) -> BlessOutcome:
    """Measures every workload first (a `tests:` one as one workload per test), then
    writes the baseline once: all or nothing. Entries of tests that are gone are dropped."""
    todo = plan(workloads, measure.tests, read_baseline(config.baseline).workloads)
    for error in todo.failed.values():
        raise WorkloadError(error)
    entries = {w.name: baseline_entry(w, measure.measure(w, bless_runs(w))) for w in todo.workloads}
    return record(config.baseline, entries, blessing, remove=tuple(todo.gone))


def _cli_blessing(settings: Settings, config: Config | None) -> BlessRecord:
    from allocgate import bless_record

    if settings.reason is not None and not settings.reason.strip():
        raise ConfigError("--reason is empty: say why the baseline changes")
    reason = settings.reason.strip() if settings.reason else None
    where = config.path.parent if config is not None else settings.start
    return bless_record.from_cli(reason, where)


def bless_from_comment(settings: Settings) -> CommentBlessResult:
    """`bless --from-comment`: the `/allocgate bless` comment of an issue_comment event,
    checked, blessed, committed to the pull request's branch and answered."""
    from allocgate.github import bless_flow

    if settings.workloads or settings.reason is not None or settings.profile is not None:
        raise ConfigError(
            "bless --from-comment takes the workloads and the reason from the comment; "
            "give it no workloads, --reason or --profile"
        )
    return bless_flow.from_environment(
        settings.environ,
        cwd=settings.start,
        token_env=settings.comment.token_env,
        load_config=lambda: load(settings),
        bless=lambda config, workloads, blessing: bless_workloads(
            config, workloads, runner(settings), blessing
        ),
    )


def show_baseline(settings: Settings) -> list[str]:
    """Each workload's provenance: who blessed it, when, for which PR and why."""
    from allocgate import bless_record
    from allocgate.escape import one_line

    config = load(settings)
    baseline = read_baseline(config.baseline)
    names = settings.workloads or tuple(sorted(baseline.workloads))
    lines = [f"{baseline.path}:"]
    for name in names:
        entry = baseline.get(name)
        lines += [
            "  " + line
            for line in bless_record.describe(name, entry.profiler, entry.provenance, one_line)
        ]
    return lines


def _bless_profile(settings: Settings) -> BlessOutcome:
    assert settings.profile is not None
    if not settings.workload:
        raise ConfigError("bless --profile needs --workload NAME")
    path = settings.baseline or Path(DEFAULT_BASELINE)
    profile = load_profile(settings.profile, settings.fold())
    entry = WorkloadBaseline.from_profile(
        settings.workload, profile, recorded_count(settings.top or 5)
    )
    return record(path, {settings.workload: entry}, _cli_blessing(settings, None))


def measure_each(
    settings: Settings,
) -> Iterator[tuple[WorkloadConfig, Measurement | AllocgateError]]:
    """`run`: each selected workload measured, or the error that stopped it."""
    config = load(settings)
    measure = runner(settings)
    for w in selected(config, settings, measure):
        try:
            yield w, measure.measure(w)
        except AllocgateError as exc:
            yield w, exc


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


def diff(settings: Settings) -> Outcome:
    """Compares two profiles or baseline entries (``before``, ``after``)."""
    assert settings.before is not None
    assert settings.after is not None
    paths = (settings.before, settings.after)
    # Baseline sides are already folded; profile sides are folded once, at the
    # depth asked for, else at a baseline side's depth, so both sides agree.
    sides: dict[Path, Profile] = {
        p: _baseline_side(p, settings.workload) for p in paths if sniff(p) == "baseline"
    }
    depth = settings.depth or next((s.depth for s in sides.values()), None)
    before, after = (sides.get(p) or load_profile(p, settings.fold(depth)) for p in paths)
    name = settings.workload or Path(settings.after).stem
    comparison = compare(name, before, after, settings.gate())
    return Outcome(Report((WorkloadResult(name, comparison),)))


def merge(settings: Settings) -> Outcome:
    """Partial (sharded) JSON reports → one."""
    reports = [read_report(p) for p in settings.reports]
    merged = merge_reports(reports, [str(p) for p in settings.reports])
    return Outcome(merged, markdown_context(settings))


def write_reports(outcome: Outcome, settings: Settings) -> None:
    """Writes the JSON and markdown reports (atomically) and hands the markdown to
    GitHub Actions; the gate's verdict does not depend on any of it."""
    from allocgate.atomic import atomic_write
    from allocgate.github.publish import publish
    from allocgate.github.redact import redact

    markdown = None
    # Reports quote profiles and configs: a token that got into one is masked.
    if settings.report_json is not None:
        atomic_write(settings.report_json, redact(outcome.report.to_json().decode()), ConfigError)
    if settings.report_md is not None:
        markdown = redact(report_markdown(outcome.report, outcome.context))
        atomic_write(settings.report_md, markdown, ConfigError)
    env = settings.environ
    if env.get("GITHUB_STEP_SUMMARY") or env.get("GITHUB_OUTPUT") or settings.comment.post:
        body = (
            markdown if markdown is not None else report_markdown(outcome.report, outcome.context)
        )
        publish(outcome.report, body, settings)


def comment(settings: Settings) -> int:
    """Posts or updates the sticky comment from a JSON report (``comment --report``)."""
    from allocgate.github.publish import github_context, upsert_sticky_comment
    from allocgate.github.summary import append_step_summary

    (path,) = settings.reports
    report = read_report(path)
    # Fail on a missing token or PR number before writing anything.
    github_context(settings)
    body = report_markdown(report, markdown_context(settings))
    summary = settings.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        append_step_summary(Path(summary), body)
    upsert_sticky_comment(report, body, settings)
    return 0
