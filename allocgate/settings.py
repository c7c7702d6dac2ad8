"""Settings, frozen once at the edge: every option is declared here once and
registered for the CLI (``--name``) and for pytest (``--allocgate-name``) from
that declaration; `Settings.from_args` and `Settings.from_pytest_config` turn
parsed options into one frozen value, and nothing past them sees argparse or pytest.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from allocgate.errors import ConfigError
from allocgate.metrics import METRIC_NAMES, metric_info

if TYPE_CHECKING:
    import pytest

    from allocgate.callsites import FoldOptions
    from allocgate.compare import GateSettings
    from allocgate.quantities import Tolerance

FORMATS = ("text", "markdown", "json")
COMMENT_MODES = ("always", "on-change", "on-regression")
DEFAULT_BASELINE = "allocgate-baseline.yml"
PYTEST_PREFIX = "allocgate-"


MAX_ARGUMENT = 1_000_000


def positive_int(text: str) -> int:
    # ASCII digits only: int() would also take '٥', or a number of 4000 digits.
    value = int(text) if text.isascii() and text.isdigit() and len(text) <= 7 else 0
    if not 1 <= value <= MAX_ARGUMENT:
        raise argparse.ArgumentTypeError(
            f"expected a positive whole number up to {MAX_ARGUMENT}, got {text[:40]!r}"
        )
    return value


def seconds(text: str) -> float:
    from allocgate.schema import decimal

    value = decimal(text)
    if value is None or not 0 < value <= 3600:
        raise argparse.ArgumentTypeError(f"expected seconds up to 3600, got {text[:40]!r}")
    return value


def metric_name(text: str) -> str:
    try:
        return metric_info(text).name
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


@dataclass(frozen=True)
class Option:
    """One option, declared once; `register` adds it to argparse or pytest."""

    name: str
    help: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    short: str | None = None
    dest: str | None = None

    def register(self, add: Callable[..., Any], prefix: str = "") -> None:
        """``add`` is argparse's add_argument or pytest's addoption."""
        flags = [f"--{prefix}{self.name}"]
        if self.short and not prefix:
            flags.insert(0, self.short)
        dest = (prefix + (self.dest or self.name)).replace("-", "_")
        add(*flags, dest=dest, help=self.help, **self.kwargs)


_OPTIONS: tuple[Option, ...] = (
    Option(
        "config",
        "allocgate.yml to use (default: the nearest allocgate.yml, or [tool.allocgate] "
        "in pyproject.toml, searching upward)",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "report-json",
        "write the versioned JSON report to PATH",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "report-md",
        "write the markdown report (the PR comment's body) to PATH",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "keep-profiles",
        "keep the raw profile files in DIR (open them in DHAT's viewer or heaptrack_gui)",
        {"type": Path, "metavar": "DIR", "default": None},
    ),
    Option(
        "bless",
        "write the baseline for the workloads that ran, once, at the end of the session",
        {"action": "store_true", "default": False},
    ),
    Option(
        "workload",
        "the workload to take from a baseline file (diff), or to record --profile under (bless)",
        {"default": None},
    ),
    Option(
        "top",
        "callsites gated (default 5; `show`: callsites shown, default 10)",
        {"type": positive_int, "default": None},
    ),
    Option(
        "metric",
        f"gated metric, repeatable ({', '.join(METRIC_NAMES)}; default total_bytes); "
        "`show` ranks by the last one",
        {"action": "append", "type": metric_name, "metavar": "METRIC", "default": None},
        dest="metrics",
    ),
    Option(
        "threshold",
        "tolerance: [METRIC:]RELATIVE%% [or ABSOLUTE], e.g. '5%% or 1 KiB' or "
        "'total_blocks: 10%% or 100' (default 5%% and 1 KiB / 100 blocks; overrides the "
        "config's); a site regresses only past both; repeatable",
        {"action": "append", "default": [], "metavar": "SPEC"},
    ),
    Option(
        "depth",
        "user frames that make a callsite's key (default: 1, or the baseline's)",
        {"type": positive_int, "default": None},
    ),
    Option(
        "keys",
        "callsite keys: workspace (the workspace function and the dependency it called; "
        "default) or innermost (the first frames that are not std)",
        {"choices": ("workspace", "innermost"), "default": None},
    ),
    Option(
        "workspace",
        "a bare profile's workspace crates (default: the crate of the profiled binary)",
        {"metavar": "NAME[,NAME...]", "default": None},
    ),
    Option(
        "binary",
        "the profiled binary, for names from its debug info (default: the program in the "
        "profile's command, if it still exists)",
        {"type": Path, "metavar": "PATH", "default": None},
    ),
    Option(
        "skip",
        "treat frames matching REGEX as allocator plumbing (repeatable)",
        {"action": "append", "default": [], "metavar": "REGEX"},
    ),
    Option("format", "output format", {"choices": FORMATS, "default": "text"}),
    Option("quiet", "no progress lines on stderr", {"action": "store_true"}, short="-q"),
    Option(
        "shard",
        "run the K-th of N deterministic subsets of the workloads",
        {"metavar": "K/N", "default": None},
    ),
    Option(
        "strict",
        "a test not yet in the baseline (of a `tests:` workload) is an error, not a note",
        {"action": "store_true", "default": False},
    ),
    Option(
        "examples",
        "init: also one workload per example target",
        {"action": "store_true", "default": False},
    ),
    Option(
        "tests",
        "init: write the offered `tests:` workloads (each #[test] of a library a workload) "
        "instead of commenting them out",
        {"action": "store_true", "default": False},
    ),
    Option(
        "force",
        "init: replace an existing config file",
        {"action": "store_true", "default": False},
    ),
    Option(
        "comment",
        "also post or update the sticky PR comment (GitHub Actions)",
        {"action": "store_true"},
    ),
    Option(
        "comment-mode",
        "when to post: always (default), on-change, or on-regression",
        {"choices": COMMENT_MODES, "default": "always"},
    ),
    Option(
        "comment-id",
        "keeps separate sticky comments for several gates in one repository",
        {"default": "default"},
    ),
    Option(
        "pr",
        "pull request number (default: from the event)",
        {"type": positive_int, "default": None},
    ),
    Option(
        "reason",
        "why this bless: recorded in the baseline with your `git config user.name`, "
        "the commit and the date",
        {"default": None, "metavar": "TEXT"},
    ),
    Option(
        "from-comment",
        "bless from the `/allocgate bless` comment of the issue_comment event in "
        "GITHUB_EVENT_PATH and commit the baseline to the pull request's branch",
        {"action": "store_true"},
    ),
    Option(
        "require-reason",
        "fail when the baseline differs from the base branch's without a recorded reason "
        "(also `require_reason: true` in allocgate.yml)",
        {"action": "store_true"},
    ),
    Option(
        "base",
        "git revision whose baseline this one is compared with, to show what the change "
        "re-baselined (default: the base commit of a pull_request event)",
        {"default": None, "metavar": "REV"},
    ),
    Option(
        "token-env",
        "environment variable holding the token (default GITHUB_TOKEN)",
        {"default": "GITHUB_TOKEN", "metavar": "NAME"},
    ),
    Option(
        "github-timeout",
        "each GitHub API request is answered in full within SECONDS, or fails (default 30)",
        {"type": seconds, "default": 30.0, "metavar": "SECONDS"},
    ),
)
OPTIONS: dict[str, Option] = {o.name: o for o in _OPTIONS}

#: pytest selects workloads by option, the CLI by positional arguments.
_PYTEST_WORKLOAD = Option(
    "workload",
    "only this workload (repeatable)",
    {"action": "append", "default": [], "metavar": "NAME"},
)


def add_options(add: Callable[..., Any], *names: str, prefix: str = "") -> None:
    """Registers the named options through ``add``, spelled ``--{prefix}{name}``."""
    for name in names:
        OPTIONS[name].register(add, prefix)


def add_pytest_options(group: Any, parser: Any) -> None:
    """The plugin's options and ini key (``group``/``parser`` are pytest's)."""
    group.addoption(
        "--allocgate",
        action="store_true",
        default=False,
        help="run every workload in allocgate.yml as a test item",
    )
    add_options(
        group.addoption,
        "config",
        "report-json",
        "report-md",
        "keep-profiles",
        "bless",
        "strict",
        "threshold",
        prefix=PYTEST_PREFIX,
    )
    _PYTEST_WORKLOAD.register(group.addoption, PYTEST_PREFIX)
    parser.addini("allocgate_config", "allocgate.yml to use (--allocgate-config wins)", default="")
    parser.addini(
        "allocgate_threshold",
        "tolerances like '5% or 1 KiB', one per line (--allocgate-threshold wins)",
        type="linelist",
        default=[],
    )


@dataclass(frozen=True)
class CommentSettings:
    """Whether and how to upsert the sticky pull-request comment."""

    post: bool = False
    mode: str = "always"
    id: str = "default"
    pr: int | None = None
    token_env: str = "GITHUB_TOKEN"
    timeout: float = 30.0
    """Seconds for each API request, body included (a total deadline, not per read)."""


@dataclass(frozen=True)
class Settings:
    """Everything a command needs from its caller, whichever shell it came from."""

    config: Path | None = None
    """allocgate.yml; None: search upward from ``start``."""
    start: Path = Path(".")
    """Where the search for allocgate.yml starts."""
    workloads: tuple[str, ...] = ()
    """The workloads to run (none named: all)."""
    shard: tuple[int, int] | None = None
    """(K, N): the K-th of N deterministic subsets of the workloads."""
    report_json: Path | None = None
    report_md: Path | None = None
    keep_profiles: Path | None = None
    quiet: bool = False
    format: str = "text"
    top: int | None = None
    metrics: tuple[str, ...] = ()
    tolerances: Mapping[str, Tolerance] = field(default_factory=lambda: MappingProxyType({}))
    depth: int | None = None
    skip: tuple[str, ...] = ()
    keys: str | None = None
    """``workspace`` or ``innermost``; None: the config's (default workspace)."""
    workspace: tuple[str, ...] = ()
    """show/diff: the bare profile's workspace crates (none: guessed from its command)."""
    binary: Path | None = None
    """show/diff: the profiled binary (None: the program in the profile's command)."""
    comment: CommentSettings = field(default_factory=CommentSettings)
    bless: bool = False
    """pytest: measure for the baseline instead of judging."""
    strict: bool = False
    """A new test (not yet blessed) is an error."""
    examples: bool = False
    tests: bool = False
    """init: example targets become workloads too."""
    force: bool = False
    """init: an existing config file may be replaced."""
    profile: Path | None = None
    """bless/show: a profile file to use instead of running."""
    workload: str | None = None
    """bless --profile / diff: the workload name in the baseline."""
    baseline: Path | None = None
    """bless --profile: the baseline file."""
    before: Path | None = None
    after: Path | None = None
    reports: tuple[Path, ...] = ()
    """merge: partial reports; comment: the one report."""
    bless_base: str = "allocgate bless"
    """The command that blesses, before the workload names (the CLI's or pytest's)."""
    reason: str | None = None
    """bless: why; recorded in the baseline's provenance."""
    from_comment: bool = False
    """bless: from the `/allocgate bless` comment in the event."""
    require_reason: bool = False
    """check: a baseline change without a reason fails (or the config's require_reason)."""
    base: str | None = None
    """check: the revision whose baseline the current one is compared with."""
    environ: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    """The process environment when the settings were made (GitHub Actions' variables)."""

    @property
    def shard_text(self) -> str | None:
        return f"{self.shard[0]}/{self.shard[1]}" if self.shard else None

    def gate(self) -> GateSettings:
        """The gate `diff` applies: the metrics, --top and --threshold given."""
        from allocgate.compare import GateSettings

        metrics = self.metrics or ("total_bytes",)
        return GateSettings(metrics=metrics, top=self.top or 5, tolerances=dict(self.tolerances))

    def fold(self, depth: int | None = None, keys: str | None = None) -> FoldOptions:
        """How a bare profile folds (show, diff, bless --profile)."""
        from allocgate.callsites import FoldOptions
        from allocgate.workspace import Workspace

        return FoldOptions(
            depth=self.depth or depth or 1,
            skip=self.skip,
            keys=self.keys or keys or "workspace",
            workspace=Workspace.named(self.workspace) if self.workspace else None,
            binary=self.binary,
        )

    @classmethod
    def from_args(
        cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """From the CLI's parsed arguments (any subcommand)."""

        def get(name: str, default: Any = None) -> Any:
            return getattr(args, name, default)

        metrics = tuple(get("metrics") or ())
        return cls(
            config=get("config"),
            start=Path.cwd(),
            workloads=tuple(get("workloads") or ()),
            shard=parse_shard(get("shard")) if get("shard") else None,
            report_json=get("report_json"),
            report_md=get("report_md"),
            keep_profiles=get("keep_profiles"),
            quiet=bool(get("quiet", False)),
            strict=bool(get("strict", False)),
            format=get("format", "text"),
            top=get("top"),
            metrics=metrics,
            tolerances=MappingProxyType(_tolerances(get("threshold") or (), metrics or None)),
            depth=get("depth"),
            skip=tuple(get("skip") or ()),
            keys=get("keys"),
            workspace=tuple(n for n in (get("workspace") or "").split(",") if n.strip()),
            binary=get("binary"),
            comment=CommentSettings(
                post=bool(get("comment", False)),
                mode=get("comment_mode", "always"),
                id=get("comment_id", "default"),
                pr=get("pr"),
                token_env=get("token_env", "GITHUB_TOKEN"),
                timeout=get("github_timeout", 30.0),
            ),
            bless_base="allocgate bless"
            + (f" --config {get('config')}" if get("config") is not None else ""),
            examples=bool(get("examples", False)),
            tests=bool(get("tests", False)),
            force=bool(get("force", False)),
            profile=get("profile"),
            workload=get("workload"),
            baseline=get("baseline"),
            before=get("before"),
            after=get("after"),
            reports=tuple(get("reports") or ((get("report"),) if get("report") else ())),
            reason=get("reason"),
            from_comment=bool(get("from_comment", False)),
            require_reason=bool(get("require_reason", False)),
            base=get("base"),
            environ=_frozen_env(environ),
        )

    @classmethod
    def from_pytest_config(cls, config: pytest.Config) -> Settings:
        """From pytest's options and ini file; the command line wins over the ini."""

        def get(name: str) -> Any:
            return config.getoption((PYTEST_PREFIX + name).replace("-", "_"))

        specs = get("threshold") or config.getini("allocgate_threshold")
        given = get("config")
        return cls(
            bless_base="pytest --allocgate-bless"
            + (f" --allocgate-config {given}" if given else ""),
            config=pytest_config_path(config),
            start=config.invocation_params.dir,
            workloads=tuple(get("workload")),
            tolerances=MappingProxyType(_tolerances(specs, None)),
            report_json=get("report-json"),
            report_md=get("report-md"),
            keep_profiles=get("keep-profiles"),
            quiet=True,
            bless=bool(get("bless")),
            strict=bool(get("strict")),
            environ=_frozen_env(None),
        )


def pytest_config_path(config: pytest.Config) -> Path | None:
    """--allocgate-config, else the ini key (relative to the rootdir), else None."""
    value = config.getoption("allocgate_config")
    if value:
        return Path(value)
    ini = config.getini("allocgate_config")
    if ini:
        return config.rootpath / str(ini)
    return None


def parse_shard(text: str) -> tuple[int, int]:
    """``K/N`` (1-based) → (K, N)."""
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ConfigError(f"--shard: expected K/N such as 2/3, got {text!r}") from None
    if not 1 <= k <= n:
        raise ConfigError(f"--shard: expected 1 <= K <= N, got {text!r}")
    return k, n


def _tolerances(specs: Any, metrics: tuple[str, ...] | None) -> dict[str, Tolerance]:
    from allocgate.quantities import parse_threshold

    tolerances: dict[str, Tolerance] = {}
    for spec in specs:
        tolerances.update(parse_threshold(spec, metrics, what=f"threshold {spec!r}"))
    return tolerances


def _frozen_env(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(os.environ if environ is None else environ))
