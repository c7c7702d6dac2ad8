"""The one escaper: every hostile string renders literally in markdown, HTML and
mermaid, pings nobody, links nothing, stays on one line, and round-trips through
GitHub's workflow-command encoding."""

from __future__ import annotations

import re

import pytest
from markdown_check import pings, read, visible

from allocgate.escape import (
    DISPLAY_LIMIT,
    ELLIPSIS,
    html_text,
    json_for_html,
    md_code,
    md_fence,
    md_text,
    mermaid_label,
    one_line,
    shorten,
    workflow_command,
    workflow_data,
    workflow_property,
)

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "a|b || c \\| d",
    "`code` and ``more`` and ```fence```",
    "@someone please look",
    "cc @org/team and someone@example.com",
    "fixes #12, GH-3 and owner/repo#4",
    "[x](javascript:alert(1)) ![i](http://evil.example/i.png)",
    "<https://evil.example> www.evil.example http://evil.example/x",
    "*bold* _em_ __strong__ ~~gone~~ $x$ $$y$$",
    "line\nbreak\r\nand\u2028sep\u2029para\x85nel\x0bvt\x0cff",
    "nul\x00 bell\x07 esc\x1b[31mred\x1b[0m del\x7f c1\x9b",
    "rtl \u202eevil\u202c isolate \u2066x\u2069",
    "</pre></code></details><!-- x --> -->",
    "&amp; &lt; &#64;a &#35;12 entity",
    "- item",
    "1. ordered",
    "2) ordered",
    "# heading",
    "> quote",
    "===",
    "+ plus",
    ":tada: and reqctx::b::c",
    "<Vec<T> as Clone>::clone",
    "bu <b>bold</b> bsu",
    "ünïcødé 名前 ←",
    "",
]

IDS = [repr(s)[:30] for s in HOSTILE]


def expected_visible(s: str) -> str:
    return one_line(s)


@pytest.mark.parametrize("s", HOSTILE, ids=IDS)
def test_one_line_never_splits_and_shows_controls(s: str) -> None:
    line = one_line(s)
    assert len(line.splitlines()) <= 1
    assert not re.search(
        "[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", line
    )
    if "\x07" in s:
        assert "\\x07" in line


@pytest.mark.parametrize("s", HOSTILE, ids=IDS)
@pytest.mark.parametrize("escaper", [md_text, md_code])
def test_markdown_table_cell_renders_literally(s: str, escaper: object) -> None:
    assert callable(escaper)
    md = f"| a | b |\n|---|---|\n| {escaper(s)} | end |\n"
    rendered = read(md)
    # Only the table and, for md_code, its <code>: no tag, link or image of the input's.
    allowed = {"table", "thead", "tbody", "tr", "th", "td"} | (
        {"code"} if escaper is md_code else set()
    )
    assert set(rendered.tags) <= allowed, rendered.tags
    assert rendered.cells_per_row == [2, 2]
    assert [visible(c) for c in rendered.cells] == ["a", "b", expected_visible(s).strip(), "end"]
    assert pings(rendered) == []


@pytest.mark.parametrize("s", HOSTILE, ids=IDS)
def test_markdown_prose_line_renders_literally(s: str) -> None:
    # At the start of a line, where list, heading and quote markers would count.
    rendered = read(md_text(s, line_start=True) + "\n")
    assert set(rendered.tags) <= {"p"}, rendered.tags
    assert visible(rendered.text).strip() == expected_visible(s).strip()
    assert pings(rendered) == []


@pytest.mark.parametrize("s", HOSTILE[:-1], ids=IDS[:-1])
def test_html_text_inside_pre_and_summary(s: str) -> None:
    pre = html_text(s, in_pre=True)
    md = f"<details><summary>{html_text(s)}</summary>\n\n<pre>\n{pre}\n</pre>\n</details>\n"
    rendered = read(md)
    assert rendered.tags == ["details", "summary", "pre"]
    seen = visible(rendered.text)
    assert seen.count(expected_visible(s) + "\n") == 2
    assert pings(rendered) == []


def test_mentions_are_not_entities() -> None:
    # GitHub decodes entities before it looks for mentions (cmark-gfm#181): &#64; pings.
    for escaped in (md_text("@someone #12"), md_code("@someone #12"), html_text("@someone #12")):
        assert "&#64;" not in escaped
        assert "&#35;" not in escaped
        assert "@\u200bsomeone" in escaped
        assert "#\u200b12" in escaped


def test_identifiers_keep_their_colons_inside_code() -> None:
    assert md_code("reqctx::split_fields") == "<code>reqctx::split&#95;fields</code>"
    assert "\u200b" in md_text("reqctx::split")  # prose: no :split: emoji either


@pytest.mark.parametrize("s", HOSTILE, ids=IDS)
def test_mermaid_label_is_a_whitelist(s: str) -> None:
    label = mermaid_label(s)
    assert re.fullmatch(r"[\w:. +,/()…-]+|\?", label), label
    assert not re.search(r"[\"'`#%<>&;\[\]{}|\\]", label)
    assert len(label) <= 24


def test_mermaid_label_keeps_readable_names() -> None:
    assert mermaid_label("reqctx::split_fields") == "reqctx::split_fields"
    assert mermaid_label("<img src=x onerror=alert(1)>") == "img srcx onerroralert(1)"
    assert mermaid_label("x" * 100).endswith(ELLIPSIS)
    assert mermaid_label("\"#<>'") == "?"


WORKFLOW = [
    ("50% grew", "50%25 grew", "50%25 grew"),
    ("a\nb\r\nc", "a%0Ab%0D%0Ac", "a%0Ab%0D%0Ac"),
    ("src/a,b.rs:3", "src/a,b.rs:3", "src/a%2Cb.rs%3A3"),
    ("::stop-commands::x", "::stop-commands::x", "%3A%3Astop-commands%3A%3Ax"),
    ("%0A already", "%250A already", "%250A already"),
    ("plain", "plain", "plain"),
]


@pytest.mark.parametrize(("raw", "data", "prop"), WORKFLOW)
def test_workflow_command_escapes(raw: str, data: str, prop: str) -> None:
    assert workflow_data(raw) == data
    assert workflow_property(raw) == prop


def _runner_parse(line: str) -> tuple[str, dict[str, str], str]:
    """The Actions runner's reading of a command line (ActionCommand.TryParseV2)."""

    def unescape(s: str, prop: bool) -> str:
        pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if prop else [])
        for enc, dec in [*pairs, ("%25", "%")]:
            s = s.replace(enc, dec)
        return s

    assert line.startswith("::")
    assert "\n" not in line
    assert "\r" not in line
    end = line.index("::", 2)
    head, data = line[2:end], line[end + 2 :]
    name, _, props = head.partition(" ")
    properties = {}
    for pair in filter(None, props.split(",")):
        k, _, v = pair.partition("=")
        properties[k] = unescape(v, True)
    return name, properties, unescape(data, False)


@pytest.mark.parametrize("s", HOSTILE, ids=IDS)
def test_workflow_command_round_trips(s: str) -> None:
    line = workflow_command("error", s, file=f"src/{s}.rs", line=12, title=s)
    name, props, data = _runner_parse(line)
    assert name == "error"
    assert props == {"file": f"src/{s}.rs", "line": "12", "title": s}
    assert data == s


def test_workflow_command_leaves_out_none_and_refuses_bad_names() -> None:
    assert workflow_command("notice", "ok", file=None, line=None) == "::notice::ok"
    with pytest.raises(ValueError, match="command"):
        workflow_command("error x", "m")
    with pytest.raises(ValueError, match="property"):
        workflow_command("error", "m", **{"a,b": 1})


def test_display_names_are_truncated_with_an_ellipsis() -> None:
    huge = "app::" + "z" * 100_000
    for escaped in (md_code(huge), html_text(huge)):
        assert len(escaped) < DISPLAY_LIMIT * 2
        assert ELLIPSIS in escaped
    assert shorten(huge) == huge[: DISPLAY_LIMIT - 1] + ELLIPSIS
    assert len(shorten(huge)) == DISPLAY_LIMIT
    assert shorten("short") == "short"
    assert md_text(huge).count("z") == 100_000  # prose is not cut unless asked


def test_md_fence_cannot_be_closed_by_its_content() -> None:
    content = "a ``` b ```` c\n@someone"
    block = md_fence(content, "json")
    assert block.startswith("`````json\n")
    rendered = read(block + "\n\nafter\n")
    assert rendered.tags == ["pre", "code", "p"]
    assert visible(rendered.text).startswith(content)


def test_json_for_html_cannot_close_a_comment_and_stays_json() -> None:
    import orjson

    doc = {"key": "--> <script>x</script> & \u2028"}
    safe = json_for_html(orjson.dumps(doc))
    assert "-->" not in safe
    assert "<" not in safe
    assert "\u2028" not in safe
    assert orjson.loads(safe) == doc
    rendered = read(f"<!-- allocgate-data: {safe} -->\n\nvisible\n")
    assert visible(rendered.text).strip() == "visible"
