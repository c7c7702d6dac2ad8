"""The one tolerance grammar: a table of strings and what they mean, and what is refused."""

from __future__ import annotations

import pytest

from allocgate.errors import ConfigError
from allocgate.quantities import Tolerance
from allocgate.tolerance import did_you_mean, parse_relative, parse_spec, parse_threshold

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
    assert parse_spec(spec, what="threshold")[metric] == expected


def test_a_metric_prefix_limits_the_spec_to_that_metric() -> None:
    assert set(parse_spec("total_blocks:10%:100", what="t")) == {"total_blocks"}


@pytest.mark.parametrize(
    ("value", "suggestion"),
    [(0.05, "5%"), (5, "5%"), ("0.05", "5%"), ("5", "5%"), (0.1, "10%"), (12.5, "12.5%")],
)
def test_bare_numbers_are_refused_with_a_suggestion(value: object, suggestion: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_relative(value, what="allocgate.yml: defaults.threshold.relative")
    message = str(exc.value)
    assert f"did you mean {suggestion}?" in message
    assert message.startswith("allocgate.yml: defaults.threshold.relative: ")
    assert "e.g. threshold: 5% or 1 KiB" in message


@pytest.mark.parametrize("value", [5, 0.05, "5", "0.05", {"relative": 0.05}, {"total_bytes": 5}])
def test_bare_numbers_are_refused_in_every_yaml_shape(value: object) -> None:
    with pytest.raises(ConfigError, match=r"did you mean 5%\?"):
        parse_threshold(value, what="f.yml: threshold")


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
        parse_threshold(value, what="a.yml: workloads.x.threshold")
    message = str(exc.value)
    assert fragment in message
    assert "a.yml: workloads.x.threshold" in message
    assert "e.g. threshold: 5% or 1 KiB" in message


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
    assert parse_threshold(value, what="t")["total_bytes"] == Tolerance(0.05, KIB)


def test_did_you_mean() -> None:
    assert did_you_mean(0.05) == "5%"
    assert did_you_mean(20) == "20%"
