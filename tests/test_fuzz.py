"""Fuzz-style: mutated real profiles, baselines, configs and arguments never crash allocgate.

Each case is a real sample with bytes flipped, fields deleted, types swapped,
numbers grown, keys duplicated or nested. Whatever the mutation, the command ends
with exit 0, 1 or 2, no traceback, at most two lines on stderr, and a baseline it
refused to write is byte-identical afterwards. The seed is fixed, so a failure
reproduces; the case count is bounded to keep the run short.

Cases run through the CLI's ``main`` in this process (the real code, only
faster than a process per case); a few run as real processes too.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import DHAT_RS, ROOT, VALGRIND, run_cli

from allocgate.cli import main

SEED = 20261202
PROFILES = [
    DHAT_RS / "reqctx-base.json",
    DHAT_RS / "reqctx-base.ad-hoc.json",
    DHAT_RS / "leaky.json",
    VALGRIND / "reqctx-base.json",
]
HEAPTRACK_TEXT = ROOT / "fixtures" / "heaptrack" / "tiny.trace"
DEMO_BASELINE = ROOT / "fixtures" / "demo" / "allocgate-baseline.yml"
GOOD = DHAT_RS / "reqctx-base.json"
LONG = "9" * 5000
WEIRD_VALUES: list[str] = [
    '"text"',
    "-1",
    "1.5",
    "true",
    "null",
    "[]",
    "{}",
    str(2**64),
    str(2**63),
    str(2**70),
    LONG,
    "1e999",
    '"\\u2028"',
    '"a\\nb"',
]


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str
    crash: str | None


def run_main(*argv: str | Path) -> Outcome:
    """The CLI's main() with its streams captured; an escaping exception is a crash."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="replace")
    err = io.StringIO()
    crash = None
    code: Any = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:
            code = exc.code
        except BaseException:  # the point of the test: nothing may escape main()
            crash = traceback.format_exc()
    out.flush()
    stdout = out.buffer.getvalue().decode("utf-8", errors="replace")  # type: ignore[attr-defined]
    return Outcome(code if isinstance(code, int) else -1, stdout, err.getvalue(), crash)


def assert_clean(outcome: Outcome, allowed: tuple[int, ...], what: str) -> None:
    assert outcome.crash is None, f"{what}: crashed\n{outcome.crash}"
    assert outcome.code in allowed, f"{what}: exit {outcome.code}\n{outcome.stderr}"
    assert "Traceback" not in outcome.stderr, what
    assert "internal error" not in outcome.stderr, f"{what}: {outcome.stderr}"
    lines = outcome.stderr.splitlines()
    assert len(lines) <= 2, f"{what}: {len(lines)} stderr lines\n{outcome.stderr[:2000]}"
    if outcome.code == 2:
        assert any(re.match(r"allocgate( \w+)?: error: ", line) for line in lines), (
            what,
            outcome.stderr,
        )


# ---------------------------------------------------------------- mutations


def _walk(doc: Any) -> Iterator[tuple[Any, Any]]:
    """(container, key) for every value in a decoded JSON document."""
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in list(items):
            yield node, key
            if isinstance(value, (dict, list)):
                stack.append(value)


def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return bytes(buf)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(1, len(data))]


def _json_edit(
    edit: Callable[[random.Random, Any], None],
) -> Callable[[random.Random, bytes], bytes]:
    def mutate(rng: random.Random, data: bytes) -> bytes:
        doc = json.loads(data)
        edit(rng, doc)
        text = json.dumps(doc)
        # Values json cannot write (long ints) go in as text.
        return text.replace('"@LONG@"', LONG).encode()

    return mutate


def _delete_field(rng: random.Random, doc: Any) -> None:
    places = [(c, k) for c, k in _walk(doc) if isinstance(c, dict)]
    container, key = rng.choice(places)
    del container[key]


def _swap_type(rng: random.Random, doc: Any) -> None:
    container, key = rng.choice(list(_walk(doc)))
    choice = rng.choice(WEIRD_VALUES)
    container[key] = "@LONG@" if choice == LONG else json.loads(choice)


def _grow_number(rng: random.Random, doc: Any) -> None:
    numbers = [(c, k) for c, k in _walk(doc) if type(c[k]) is int]
    if not numbers:
        return
    container, key = rng.choice(numbers)
    container[key] = container[key] * 2 ** rng.choice((32, 62, 63, 64)) + 1


def _overflow_sums(rng: random.Random, doc: Any) -> None:
    for pp in doc.get("pps", []):
        if isinstance(pp, dict) and "tb" in pp:
            pp["tb"] = 2**63 + rng.randrange(1000)


def _strange_frame(rng: random.Random, doc: Any) -> None:
    ftbl = doc.get("ftbl")
    if not isinstance(ftbl, list) or len(ftbl) < 2:
        return
    i = rng.randrange(1, len(ftbl))
    ftbl[i] = rng.choice(
        [
            f"0x1: main (src/main.rs:{'9' * 5000}:1)",
            f"0x1: _ZN{'9' * 5000}reqctxE (src/main.rs:1:1)",
            "0x1: _ZN6reqctx" + "9" * 30 + "xE (src/main.rs:1:1)",
            "0x1: _RNvCs" + "9" * 5000 + "_6reqctx4main (src/main.rs:1:1)",
            "0x1: bad\nname\u2028x (src/main.rs:12:1)",
            "0x1: main (src/main.rs:\u0661\u0662:1)",
            "0x1: main (src/main.rs:12\u00b2:1)",
            "0x1: " + "x" * 100_000 + " (src/main.rs:1:1)",
        ]
    )


def _text_edit(
    edit: Callable[[random.Random, str], str],
) -> Callable[[random.Random, bytes], bytes]:
    return lambda rng, data: edit(rng, data.decode()).encode()


def _duplicate_pps(rng: random.Random, text: str) -> str:
    at = text.index('"pps"')
    copy = rng.choice(['"pps": [], ', '"pps": [{"tb": 1, "tbk": 1, "fs": [1]}], '])
    if rng.random() < 0.5:
        return text[:at] + copy + text[at:]
    end = text.rindex("}")
    return text[:end] + ", " + copy.rstrip(", ") + text[end:]


def _nested_pps(rng: random.Random, text: str) -> str:
    at = text.index('"pps"')
    return text[:at] + '"extra": {"pps": []}, ' + text[at:]


def _grow_hex(rng: random.Random, text: str) -> str:
    """One hexadecimal field of a heaptrack record made longer than 64 bits."""
    lines = text.splitlines(True)
    i = rng.randrange(len(lines))
    fields = lines[i].split(" ")
    if len(fields) > 1:
        fields[rng.randrange(1, len(fields))] = "f" * rng.choice((17, 100, 4000))
    lines[i] = " ".join(fields).rstrip("\n") + "\n"
    return "".join(lines)


PROFILE_MUTATIONS: list[tuple[str, Callable[[random.Random, bytes], bytes]]] = [
    ("flip", flip_bytes),
    ("truncate", truncate),
    ("delete-field", _json_edit(_delete_field)),
    ("swap-type", _json_edit(_swap_type)),
    ("grow-number", _json_edit(_grow_number)),
    ("overflow-sums", _json_edit(_overflow_sums)),
    ("strange-frame", _json_edit(_strange_frame)),
    ("duplicate-pps", _text_edit(_duplicate_pps)),
    ("nested-pps", _text_edit(_nested_pps)),
]


def _baseline_lines(rng: random.Random, text: str) -> str:
    lines = text.splitlines(True)
    i = rng.randrange(4, len(lines))
    match rng.randrange(4):
        case 0:
            del lines[i]
        case 1:
            lines.insert(i, lines[i])
        case 2:
            lines[i] = re.sub(
                r"\d+",
                lambda _: rng.choice(["-1", LONG, "1.5", "true", ".inf", str(2**64), "٥"]),
                lines[i],
            )
        case _:
            lines[i] = (
                lines[i].rstrip("\n")
                + rng.choice([": x", " {", "\t", " # c", ' "\\u2028"', "\x01"])
                + "\n"
            )
    return "".join(lines)


def _baseline_structure(rng: random.Random, text: str) -> str:
    return rng.choice(
        [
            text.rstrip("\n") + "   ",
            text.rstrip("\n") + "\n  # trailing comment",
            text + "  ? [a, b]\n  : 1\n",
            text + "  deep: " + "[" * 3000 + "]" * 3000 + "\n",
            text.replace(
                "version: 1", rng.choice(["version: 2", "version: '1'", "version: " + LONG])
            ),
            text + '  "bad\\nname\\u2028": {}\n',
            text.replace("workloads:", "workloads: []\nx:", 1),
        ]
    )


BASELINE_MUTATIONS: list[tuple[str, Callable[[random.Random, bytes], bytes]]] = [
    ("flip", flip_bytes),
    ("truncate", truncate),
    ("lines", _text_edit(_baseline_lines)),
    ("structure", _text_edit(_baseline_structure)),
]

CONFIG = """\
baseline: allocgate-baseline.yml
defaults:
  profiler: valgrind-dhat
  cargo_profile: profiling
  top: 5
  runs: 1
  timeout: 10m
  metrics: [total_bytes, total_blocks]
  threshold: {relative: 5%, absolute: 1 KiB}
  skip: ['^my_alloc::']
workloads:
  reqctx:
    manifest: crate/Cargo.toml
    bin: reqctx
    args: ["20000", "--flag"]
    env: {MODE: fast}
"""
CONFIG_VALUES = [
    LONG,
    "-1",
    "0",
    "1.5",
    "true",
    "null",
    "[]",
    "{}",
    ".inf",
    "1e999",
    "5²%",
    "٥%",
    "1e999%",
    "'\\x00'",
    '"a\\0b"',
    '"(unclosed"',
    '"A=B"',
    "[a, b]",
    "? [a, b]\n    : 1",
    "9" * 30 + "%",
    "9" * 30 + " KiB",
    "9" * 30 + "h",
    '"\\u2028"',
]


def _config_value(rng: random.Random, text: str) -> str:
    lines = text.splitlines(True)
    candidates = [i for i, line in enumerate(lines) if ": " in line]
    i = rng.choice(candidates)
    key = lines[i].split(": ", 1)[0]
    lines[i] = f"{key}: {rng.choice(CONFIG_VALUES)}\n"
    return "".join(lines)


def _config_env_key(rng: random.Random, text: str) -> str:
    key = rng.choice(['"A=B"', '"A\\0"', '""', "[x]", "1", '"\\n"'])
    return text.replace("{MODE: fast}", f"{{{key}: fast}}")


def _config_args(rng: random.Random, text: str) -> str:
    arg = rng.choice(['"a\\0b"', LONG, "[1]", "{a: 1}", "true", "null"])
    return text.replace('"--flag"', arg)


def _config_threshold(rng: random.Random, text: str) -> str:
    rel = rng.choice(["5²%", "٥%", "1e999%", "9" * 400 + "%", "-5%", "nan%", "5%%", "0x10%"])
    ab = rng.choice(["1 KiB", "9" * 400 + " KiB", "1e999", "١ KiB", LONG, "-1"])
    return text.replace("{relative: 5%, absolute: 1 KiB}", f"{{relative: '{rel}', absolute: {ab}}}")


CONFIG_MUTATIONS: list[tuple[str, Callable[[random.Random, bytes], bytes]]] = [
    ("flip", flip_bytes),
    ("value", _text_edit(_config_value)),
    ("env-key", _text_edit(_config_env_key)),
    ("args", _text_edit(_config_args)),
    ("threshold", _text_edit(_config_threshold)),
    ("structure", _text_edit(_baseline_structure)),
]


def _cases(
    mutations: list[tuple[str, Callable[[random.Random, bytes], bytes]]],
    sources: list[Path],
    per_mutation: int,
    salt: int,
) -> list[tuple[str, bytes]]:
    rng = random.Random(SEED + salt)
    cases = []
    for name, mutate in mutations:
        for n in range(per_mutation):
            source = sources[n % len(sources)]
            cases.append((f"{name}-{source.stem}-{n}", mutate(rng, source.read_bytes())))
    return cases


# ---------------------------------------------------------------- tests


@pytest.fixture(scope="module")
def seeded_baseline(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("seed") / "allocgate-baseline.yml"
    code = run_main("bless", "--profile", GOOD, "--workload", "reqctx", "--baseline", path, "-q")
    assert code.code == 0, code.stderr
    return path.read_bytes()


def test_mutated_profiles(tmp_path: Path, seeded_baseline: bytes) -> None:
    baseline = tmp_path / "allocgate-baseline.yml"
    baseline.write_bytes(seeded_baseline)
    cases = _cases(PROFILE_MUTATIONS, PROFILES, per_mutation=12, salt=1)
    rng = random.Random(SEED)
    for i, (name, data) in enumerate(cases):
        bad = tmp_path / f"{name}.json"
        bad.write_bytes(data)
        fmt = ("text", "json", "markdown")[i % 3]
        # Silently wrong before: a second or nested 'pps' read instead of the real one.
        must_fail = name.startswith(("duplicate-pps", "nested-pps", "overflow-sums"))
        expected = (2,) if must_fail else (0, 2)
        assert_clean(run_main("show", bad, "--format", fmt), expected, f"show {name} {fmt}")
        assert_clean(
            run_main("diff", baseline, bad, "--workload", "reqctx", "--format", fmt),
            (0, 1, 2),
            f"diff {name}",
        )
        if rng.random() < 0.5:
            result = run_main(
                "bless", "--profile", bad, "--workload", "other", "--baseline", baseline, "-q"
            )
            assert_clean(result, (0, 2), f"bless {name}")
            if result.code != 0:
                assert baseline.read_bytes() == seeded_baseline, name
            else:
                shown = run_main("diff", baseline, GOOD, "--workload", "reqctx")
                assert_clean(shown, (0,), f"baseline after bless {name}")
                baseline.write_bytes(seeded_baseline)
        bad.unlink()
    heaptrack = _cases(
        [("flip", flip_bytes), ("truncate", truncate), ("grow-hex", _text_edit(_grow_hex))],
        [HEAPTRACK_TEXT],
        15,
        2,
    )
    for name, data in heaptrack:
        bad = tmp_path / f"{name}.trace"
        bad.write_bytes(data)
        assert_clean(run_main("show", bad, "--format", "json"), (0, 2), f"show heaptrack {name}")


def test_mutated_baselines(tmp_path: Path, seeded_baseline: bytes) -> None:
    sources = [tmp_path / "seeded.yml", DEMO_BASELINE]
    sources[0].write_bytes(seeded_baseline)
    for name, data in _cases(BASELINE_MUTATIONS, sources, per_mutation=16, salt=3):
        path = tmp_path / "allocgate-baseline.yml"
        path.write_bytes(data)
        assert_clean(
            run_main("diff", path, GOOD, "--workload", "reqctx"), (0, 1, 2), f"diff {name}"
        )
        before = run_main("diff", path, path, "--workload", "reqctx")
        blessed = run_main(
            "bless", "--profile", GOOD, "--workload", "fuzzed", "--baseline", path, "-q"
        )
        assert_clean(blessed, (0, 2), f"bless into {name}")
        if blessed.code == 2:
            assert path.read_bytes() == data, name
        elif before.code == 0:
            # The workload that was readable before the bless is still there after it.
            after = run_main("diff", path, path, "--workload", "reqctx")
            assert after.code == 0, (name, after.stderr)
        leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
        assert leftovers == [], (name, leftovers)


def test_mutated_configs(tmp_path: Path) -> None:
    crate = tmp_path / "crate"
    crate.mkdir()
    (crate / "Cargo.toml").write_text('[package]\nname = "reqctx"\nversion = "0.1.0"\n')
    path = tmp_path / "allocgate.yml"
    path.write_text(CONFIG)
    ok = run_main("check", "__no_such_workload__", "--config", path, "-q")
    assert_clean(ok, (2,), "the unmutated config")
    assert "unknown workload" in ok.stderr
    for name, data in _cases(CONFIG_MUTATIONS, [path], per_mutation=15, salt=4):
        bad = tmp_path / "fuzzed.yml"
        bad.write_bytes(data)
        result = run_main("check", "__no_such_workload__", "--config", bad, "-q")
        assert_clean(result, (2,), f"config {name}")
        assert str(bad) in result.stderr, (name, result.stderr)


ARGUMENTS = [
    ("show", GOOD, "--skip", "(unclosed"),
    ("show", GOOD, "--skip", "a)|(b"),
    ("show", GOOD, "--skip", "x" * 5000),
    ("show", GOOD, "--top", "9" * 5000),
    ("show", GOOD, "--top", "٥"),
    ("diff", GOOD, GOOD, "--threshold", "5²%"),
    ("diff", GOOD, GOOD, "--threshold", "total_blocks:5%:²"),
    ("diff", GOOD, GOOD, "--threshold", "1e999%"),
    ("diff", GOOD, GOOD, "--threshold", "9" * 400 + "%"),
    ("diff", GOOD, GOOD, "--threshold", "5%:" + "9" * 400 + "KiB"),
    ("diff", GOOD, GOOD, "--threshold", "total_blocks:5%:" + "9" * 5000),
    ("diff", GOOD, GOOD, "--threshold", "٥%"),
    ("diff", GOOD, GOOD, "--depth", "9" * 5000),
]


@pytest.mark.parametrize("argv", ARGUMENTS, ids=range(len(ARGUMENTS)))
def test_hostile_arguments(argv: tuple[str | Path, ...]) -> None:
    assert_clean(run_main(*argv), (0, 2), " ".join(map(str, argv))[:200])


@pytest.mark.parametrize("index", [0, 5, 6])
def test_hostile_arguments_in_a_real_process(index: int) -> None:
    code, _, stderr = run_cli(*ARGUMENTS[index])
    assert code in (0, 2)
    assert "Traceback" not in stderr
    assert len(stderr.splitlines()) <= 2
