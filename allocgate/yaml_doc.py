"""YAML as allocgate reads it (allocgate.yml, the baseline): safe, and without surprises.

``yaml.safe_load`` keeps the last of duplicate keys, crashes on unhashable keys
(``? [a, b]``), hands integers of any length to ``int()`` (which refuses more
than 4300 digits) and recurses once per nesting level. This loader turns each of
those into one error naming file:line:column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from allocgate.schema import ErrorType, show

MAX_DIGITS = 40
"""Longer numbers are refused before Python's int() sees them."""
MAX_DEPTH = 100
"""Deeper nesting is refused before the composer recurses."""


class SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses what would crash or mislead later.

    Duplicate keys (the last would silently win), unhashable keys (``? [a, b]``),
    integers longer than MAX_DIGITS (Python's int-to-str limit would raise deep
    inside a report) and nesting deeper than MAX_DEPTH (the composer recurses).
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested more than {MAX_DEPTH} levels deep",
                    self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader: SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    result: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "a mapping key must be a plain value, not a list or mapping",
                key_node.start_mark,
            ) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {show(key)}", key_node.start_mark
            )
        result[key] = loader.construct_object(value_node, deep=True)
    return result


def _construct_int(loader: SafeLoader, node: yaml.ScalarNode) -> int:
    digits = sum(c.isalnum() for c in str(node.value))
    if digits > MAX_DIGITS:
        raise yaml.constructor.ConstructorError(
            None, None, f"the number has {digits} digits (at most {MAX_DIGITS})", node.start_mark
        )
    value = yaml.SafeLoader.construct_yaml_int(loader, node)
    assert isinstance(value, int)
    return value


SafeLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
SafeLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def parse_yaml(path: Path | str, source: str, error: ErrorType) -> Any:
    """The YAML document in ``source``; every problem one error naming file:line:column."""
    try:
        return yaml.load(source, Loader=SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = exc.problem or exc.context or "invalid YAML"
        raise error(f"{where}: invalid YAML: {' '.join(problem.split())}") from None
    except yaml.reader.ReaderError as exc:
        char = exc.character
        shown = f"#x{char:04x}" if isinstance(char, int) else show(char)
        raise error(
            f"{path}: invalid YAML: unacceptable character {shown} at position {exc.position}"
        ) from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise error(f"{path}: invalid YAML: nested too deeply") from None
