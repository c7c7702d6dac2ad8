"""pytest plugin: ``pytest --allocgate`` runs each configured workload as a test item.

A thin shell over allocgate.api, beside the CLI (neither imports the other): pytest's
options become `Settings` once, and hooks hand off to the session object kept in
``config.stash``. Nothing heavy is imported unless ``--allocgate`` is given.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from allocgate.messages import one_line

if TYPE_CHECKING:
    from allocgate.baseline import WorkloadBaseline
    from allocgate.config import Config, WorkloadConfig
    from allocgate.report import WorkloadResult
    from allocgate.run import Measurement, Runner
    from allocgate.settings import Settings

_PROPERTY = "allocgate"


def pytest_addoption(parser: pytest.Parser) -> None:
    from allocgate.settings import add_pytest_options

    add_pytest_options(parser.getgroup("allocgate", "heap-allocation regression gate"), parser)


class AllocgateSession:
    """Per-session state: the config, one runner (builds are shared) and results."""

    def __init__(self, config: pytest.Config) -> None:
        from allocgate.settings import Settings

        self.pytest_config = config
        self.settings: Settings = Settings.from_pytest_config(config)
        self.bless = self.settings.bless
        self.results: dict[str, WorkloadResult] = {}
        self.blessed: dict[str, dict[str, Any]] = {}
        self.bless_notes: list[str] = []
        self.unexplained: tuple[str, ...] = ()
        """Workloads re-baselined in this PR without a reason, when reasons are required."""
        self._config: Config | None = None
        self._runner: Runner | None = None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.pytest_config, "workerinput")

    def load(self) -> Config:
        if self._config is None:
            from allocgate import api

            self._config = api.load(self.settings)
        return self._config

    @property
    def runner(self) -> Runner:
        if self._runner is None:
            from allocgate import api

            self._runner = api.runner(self.settings)
        return self._runner

    def record(self, properties: list[tuple[str, object]]) -> None:
        """Takes a finished item's result (from this process or an xdist worker)."""
        from allocgate.report import WorkloadResult

        for name, value in properties:
            if name != _PROPERTY or not isinstance(value, str):
                continue
            data = json.loads(value)
            result = WorkloadResult.from_dict(data["result"])
            self.results[result.name] = result
            if data.get("blessed") is not None:
                self.blessed[result.name] = data["blessed"]

    def finish(self) -> None:
        """Bless and reports happen once, in the controller."""
        if self.is_worker or not self.results:
            return
        from allocgate import api
        from allocgate.baseline_file import workload_from_dict
        from allocgate.render.text import bless_line

        config = self.load()
        if self.bless and self.blessed:
            entries = {
                name: workload_from_dict(name, entry, config.baseline)
                for name, entry in sorted(self.blessed.items())
            }
            blessed = api.record(config.baseline, entries)
            self.bless_notes = [
                bless_line(blessed.old.get(name), entry, blessed.path)
                for name, entry in entries.items()
            ]
        # A blessed workload was measured, not judged: it has no verdict to report.
        judged = [r for n, r in self.results.items() if n not in self.blessed]
        outcome = api.outcome_of(judged, self.settings, config)
        api.write_reports(outcome, self.settings)
        self.bless_notes += [f"warning: {note}" for note in outcome.notes]
        self.unexplained = outcome.report.unexplained
        if self.unexplained:
            self.bless_notes.append(
                "require_reason: the baseline changed in this pull request without a reason "
                f"for {', '.join(self.unexplained)}"
            )

    # ---- hooks (this object is registered as a plugin)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "teardown" and report.user_properties:
            self.record(list(report.user_properties))

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        from allocgate.errors import AllocgateError

        try:
            self.finish()
        except AllocgateError as exc:
            self.bless_notes.append(f"error: {one_line(str(exc))}")
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
            return
        if self.unexplained and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.results:
            return
        terminalreporter.section("allocgate")
        for name in sorted(self.results):
            terminalreporter.write_line(self._summary_line(name))
        for note in self.bless_notes:
            terminalreporter.write_line(note)

    def _summary_line(self, name: str) -> str:
        from allocgate.metrics import format_delta, format_value

        result = self.results[name]
        c = result.comparison
        if self.bless and name in self.blessed:
            total = self.blessed[name]["totals"].get("total_bytes")
            size = format_value("total_bytes", total) if total is not None else "?"
            return f"{name}: measured for the baseline ({size} total)"
        if result.status is not None and result.error is None:
            return f"{name}: {result.status} test, not gated until blessed"
        if c is None:
            return f"{name}: error — {result.error}"
        metric = c.settings.rank_metric
        base = (c.totals.baseline or {}).get(metric, 0)
        cur = (c.totals.current or {}).get(metric, 0)
        return (
            f"{name}: {c.verdict} — {metric} {format_value(metric, cur, c.units)} "
            f"({format_delta(metric, cur - base, c.units)})"
        )


_SESSION = pytest.StashKey[AllocgateSession]()


def pytest_configure(config: pytest.Config) -> None:
    # --allocgate-bless alone means: run the workloads to bless them.
    if config.getoption("allocgate", default=False) or config.getoption(
        "allocgate_bless", default=False
    ):
        from allocgate.errors import AllocgateError

        try:
            state = AllocgateSession(config)
        except AllocgateError as exc:
            # A bad option or ini value: one line, like pytest's own usage errors.
            raise pytest.UsageError(f"allocgate: {exc}") from None
        config.stash[_SESSION] = state
        # Registered as a plugin: its hook methods see every report, including
        # the ones xdist workers send to the controller.
        config.pluginmanager.register(state, "allocgate-session")


class WorkloadFile(pytest.File):
    """The config file as a collector: one item per workload."""

    def collect(self) -> Iterator[pytest.Item]:
        from allocgate.errors import AllocgateError

        state = self.config.stash[_SESSION]
        try:
            from allocgate import api

            workloads = api.configured(state.load(), state.settings)
        except AllocgateError as exc:
            raise self.CollectError(f"allocgate: {one_line(str(exc))}") from None
        from allocgate.test_workloads import expand

        for w in workloads:
            if w.tests is None:
                yield WorkloadItem.from_parent(self, name=w.name, workload=w)
                continue
            # A `tests:` workload is one item per test (so `-k long_line` picks one);
            # one that cannot be built is one failing item, not a broken collection.
            try:
                tests = expand([w], state.runner.tests)
            except AllocgateError as exc:
                yield WorkloadItem.from_parent(self, name=w.name, workload=w, error=str(exc))
                continue
            for t in tests:
                yield WorkloadItem.from_parent(self, name=t.name, workload=t)


class RegressionFound(Exception):
    """A workload's allocations grew past its tolerance."""


class WorkloadItem(pytest.Item):
    def __init__(
        self, *, workload: WorkloadConfig, error: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.workload = workload
        self.error = error
        """Why the item could not even be made (a `tests:` workload that did not build)."""
        self.result: WorkloadResult | None = None
        self.blessed: WorkloadBaseline | None = None

    def setup(self) -> None:
        # Could-not-evaluate problems surface here, so pytest reports an error,
        # not a failure; only a real regression fails in runtest().
        from allocgate.api import baseline_entry, bless_runs, judge
        from allocgate.baseline_file import read_baseline
        from allocgate.errors import AllocgateError

        state = self.config.stash[_SESSION]
        w = self.workload
        if self.error is not None:
            self._keep_error(self.error)
            pytest.fail(f"allocgate: {self.error}", pytrace=False)
        try:
            if not state.bless:
                # Before the build: a missing or mismatched baseline entry stops here.
                from allocgate.api import bless_command, preflight

                baseline = read_baseline(state.load().baseline)
                # A test not blessed yet is new (judged below), not a missing entry.
                if w.test is None:
                    preflight([w], baseline, bless_command(state.settings, [w.name]))
            runs = bless_runs(w) if state.bless else None
            measurement: Measurement = state.runner.measure(w, runs)
        except AllocgateError as exc:
            self._keep_error(one_line(str(exc)))
            pytest.fail(f"allocgate: {one_line(str(exc))}", pytrace=False)
        if state.bless:
            from allocgate.report import WorkloadResult

            self.blessed = baseline_entry(w, measurement)
            self.result = WorkloadResult(w.name, error=None, profiles=measurement.kept)
            return
        self.result = judge(w, measurement, baseline, state.settings.strict)
        if self.result.error is not None:
            pytest.fail(f"allocgate: {self.result.error}", pytrace=False)

    def _keep_error(self, message: str) -> None:
        from allocgate.report import WorkloadResult

        test = self.workload.test
        group = test.group if test is not None else None
        self.result = WorkloadResult(self.workload.name, error=message, group=group)

    def runtest(self) -> None:
        if self.result is not None and self.result.verdict == "regressed":
            from allocgate.api import bless_command
            from allocgate.render.text import comparison_text

            state = self.config.stash[_SESSION]
            hint = bless_command(state.settings, [self.workload.name])
            raise RegressionFound(
                comparison_text(self.result) + f"If the growth is intended: {hint}\n"
            )

    def repr_failure(
        self,
        excinfo: pytest.ExceptionInfo[BaseException],
        style: Any = None,
    ) -> str | Any:
        if isinstance(excinfo.value, RegressionFound):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"allocgate workload {self.workload.name}"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    # tryfirst: the workloads must be in the list before -k and -m deselect.
    state = config.stash.get(_SESSION, None)
    if state is None:
        return
    from _pytest.runner import collect_one_node

    from allocgate.errors import AllocgateError

    try:
        path = state.settings.config
        if path is None:
            from allocgate.config import find_config

            path = find_config(config.invocation_params.dir)
    except AllocgateError as exc:
        path = config.invocation_params.dir / "allocgate.yml"
        collector = WorkloadFile.from_parent(session, path=path)
        report = pytest.CollectReport(
            collector.nodeid, "failed", f"allocgate: {one_line(str(exc))}", [], sections=[]
        )
        config.hook.pytest_collectreport(report=report)
        return
    collector = WorkloadFile.from_parent(session, path=path.resolve())
    report = collect_one_node(collector)
    # Reported like any collection, so counts, -k/-m and --collect-only see it.
    config.hook.pytest_collectreport(report=report)
    if report.failed:
        return
    items.extend(item for item in report.result if isinstance(item, pytest.Item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if isinstance(item, WorkloadItem) and call.when == "teardown" and item.result is not None:
        payload = {
            "result": item.result.to_dict(),
            "blessed": item.blessed.to_dict() if item.blessed is not None else None,
        }
        # user_properties travel from xdist workers to the controller.
        report.user_properties.append((_PROPERTY, json.dumps(payload)))
    return report


class AllocgateFixture:
    """For tests that want their own assertions on a workload's profile."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._state = config.stash.get(_SESSION, None) or AllocgateSession(config)

    @property
    def config(self) -> Config:
        return self._state.load()

    def measure(self, name: str) -> Measurement:
        """Builds and runs the named workload; the result has ``.profile`` with its callsites."""
        (w,) = self._one(name)
        return self._state.runner.measure(w)

    def _one(self, name: str) -> list[WorkloadConfig]:
        from allocgate.test_workloads import expand

        return expand(self.config.select([name]), self._state.runner.tests)

    def baseline(self, name: str) -> WorkloadBaseline:
        from allocgate.baseline_file import read_baseline

        return read_baseline(self.config.baseline).get(name)

    def check(self, name: str) -> WorkloadResult:
        """Measures the workload and compares it with its baseline."""
        from allocgate.api import judge
        from allocgate.baseline_file import read_baseline

        (w,) = self._one(name)
        return judge(w, self._state.runner.measure(w), read_baseline(self.config.baseline))


@pytest.fixture
def allocgate(request: pytest.FixtureRequest) -> AllocgateFixture:
    """Run configured workloads from a test: ``allocgate.measure("reqctx").profile``."""
    return AllocgateFixture(request.config)
