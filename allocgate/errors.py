"""The exception hierarchy: every error allocgate reports derives from AllocgateError."""

from __future__ import annotations


class AllocgateError(Exception):
    """Root of every error allocgate reports as one line and exit code 2."""


class ProfileError(AllocgateError):
    """A profile file is missing, malformed, truncated or of an unsupported kind."""


class BaselineError(AllocgateError):
    """The baseline file cannot be read, validated or written."""


class ConfigError(AllocgateError):
    """allocgate.yml (or [tool.allocgate]) is invalid."""


class WorkloadError(AllocgateError):
    """A workload could not be built, run or profiled."""


class ReportError(AllocgateError):
    """A JSON report cannot be read or merged."""


class GitHubError(AllocgateError):
    """The GitHub API could not be reached or refused a request."""
