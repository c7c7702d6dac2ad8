"""The one tolerance grammar: a table of strings and what they mean, and what is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from allocgate.errors import ConfigError
from allocgate.quantities import (
    Tolerance,
    did_you_mean,
    parse_percent,
    parse_threshold,
    parse_threshold_value,
)

EXAMPLE = "e.g. threshold: 5% or 1 KiB"
"""Every threshold error ends with this example of the grammar."""

KIB = 1024


@pytest.mark.parametrize(
    ("spec", "metric", "expected"),
    [
        ("5%", "total_bytes", Tolerance(0.05, 1024)),
        ("5%", "total_blocks", Tolerance(0.05, 100)),
        ("5% or 1 KiB", "total_bytes", Tolerance(0.05, KIB)),
        ("5% or 1 KiB", "total_blocks", Tolerance(0.05, 100)),
        ("10% or 2KiB", "peak_bytes", Tolerance(0.10, 2 * KIB)),
        ("5%:1KiB", "total_bytes", Tolerance(0.05, KIB)),
        ("1 KiB or 5%", "total_bytes", Tolerance(0.05, KIB)),
        ("2.5% or 300", "total_blocks", Tolerance(0.025, 300)),
        ("2.5% or 300", "total_bytes", Tolerance(0.025, 300)),
        ("total_blocks:10%:100", "total_blocks", Tolerance(0.10, 100)),
        ("total_blocks: 10% or 50", "total_blocks", Tolerance(0.10, 50)),
        ("2 KiB", "total_bytes", Tolerance(0.05, 2 * KIB)),
    ],
)
def test_spec_table(spec: str, metric: str, expected: Tolerance) -> None:
    assert parse_threshold(spec, what="threshold")[metric] == expected


def test_a_metric_prefix_limits_the_spec_to_that_metric() -> None:
    assert set(parse_threshold("total_blocks:10%:100", what="t")) == {"total_blocks"}


@pytest.mark.parametrize(
    ("value", "suggestion"),
    [(0.05, "5%"), (5, "5%"), ("0.05", "5%"), ("5", "5%"), (0.1, "10%"), (12.5, "12.5%")],
)
def test_bare_numbers_are_refused_with_a_suggestion(value: object, suggestion: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_percent(value, what="allocgate.yml: defaults.threshold.relative")
    message = str(exc.value)
    assert f"did you mean {suggestion}?" in message
    assert message.startswith("allocgate.yml: defaults.threshold.relative: ")
    assert EXAMPLE in message


@pytest.mark.parametrize("value", [5, 0.05, "5", "0.05", {"relative": 0.05}, {"total_bytes": 5}])
def test_bare_numbers_are_refused_in_every_yaml_shape(value: object) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 5%\?"):
        parse_threshold_value(value, what="f.yml: threshold")


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("5% or 1 KiB or 2 KiB", "expected [METRIC:]RELATIVE%"),
        ("5% or 6%", "one relative and one absolute"),
        ("total_bytez:5%", "unknown metric 'total_bytez'"),
        ({"total_blocks": "5% or 1 KiB"}, "is a size, but this metric counts blocks"),
        ({"relative": "5%", "absolut": 3}, "unknown key"),
        ({"total_bytes": {"relative": "five%"}}, "expected a percentage"),
        (True, "expected '5%'"),
    ],
)
def test_errors_name_the_problem_the_key_and_an_example(value: object, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_threshold_value(value, what="a.yml: workloads.x.threshold")
    message = str(exc.value)
    assert fragment in message
    assert "a.yml: workloads.x.threshold" in message
    assert EXAMPLE in message


@pytest.mark.parametrize(
    "value",
    [
        "5% or 1 KiB",
        {"relative": "5%", "absolute": "1 KiB"},
        {"total_bytes": "5% or 1 KiB"},
        {"total_bytes": {"relative": "5%", "absolute": 1024}},
    ],
)
def test_every_yaml_shape_gives_the_same_byte_tolerance(value: object) -> None:
    assert parse_threshold_value(value, what="t")["total_bytes"] == Tolerance(0.05, KIB)


def test_did_you_mean() -> None:
    assert did_you_mean(0.05) == "5%"
    assert did_you_mean(20) == "20%"


SPECS = ["5%", "5% or 1 KiB", "10%:2KiB", "total_blocks: 10% or 50", "2.5% or 300"]


def yaml_tolerances(tmp_path: Path, spec: str) -> dict[str, Tolerance]:
    from allocgate.config import load_config

    (tmp_path / "Cargo.toml").write_text("[package]\n")
    config = tmp_path / "allocgate.yml"
    config.write_text(
        yaml.safe_dump(
            {"defaults": {"threshold": spec}, "workloads": {"w": {"manifest": "Cargo.toml"}}}
        )
    )
    return dict(load_config(config).workloads["w"].gate.tolerances)


def cli_tolerances(spec: str) -> dict[str, Tolerance]:
    from allocgate.cli import build_parser
    from allocgate.settings import Settings

    args = build_parser().parse_args(["check", "--threshold", spec])
    return dict(Settings.from_args(args, environ={}).tolerances)


def ini_tolerances(pytester: pytest.Pytester, spec: str) -> dict[str, Tolerance]:
    from allocgate.settings import Settings

    pytester.makeini(f"[pytest]\nallocgate_threshold = {spec}\n")
    return dict(Settings.from_pytest_config(pytester.parseconfig()).tolerances)


@pytest.mark.parametrize("spec", SPECS)
def test_the_same_string_means_the_same_in_yaml_cli_and_ini(
    spec: str, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    from_yaml = yaml_tolerances(tmp_path, spec)
    assert from_yaml == parse_threshold(spec, what="t")
    assert cli_tolerances(spec) == from_yaml
    assert ini_tolerances(pytester, spec) == from_yaml


@pytest.mark.parametrize("bare", ["5", "0.05"])
def test_bare_numbers_are_refused_on_every_surface(
    bare: str, tmp_path: Path, pytester: pytest.Pytester
) -> None:
    with pytest.raises(
        ConfigError, match=r"allocgate\.yml: defaults\.threshold: .*did you mean 5%\?"
    ):
        yaml_tolerances(tmp_path, bare)
    with pytest.raises(ConfigError, match=r"did you mean 5%\?"):
        cli_tolerances(bare)
    with pytest.raises(ConfigError, match=r"did you mean 5%\?"):
        ini_tolerances(pytester, bare)
