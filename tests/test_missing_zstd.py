"""A zstd-compressed heaptrack trace where the zstd command is not installed."""

from __future__ import annotations

from pathlib import Path

from conftest import SAMPLES, RunCli

LEAKY = SAMPLES / "heaptrack" / "leaky.zst"


def test_missing_zstd_is_one_line_saying_what_to_install(tmp_path: Path, cli: RunCli) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    code, out, err = cli("show", LEAKY, path=str(empty))
    assert code == 2, err
    assert out == ""
    assert err == (
        f"allocgate: error: {LEAKY}: the zstd command is needed to read this heaptrack "
        "trace (apt-get install zstd)\n"
    )
