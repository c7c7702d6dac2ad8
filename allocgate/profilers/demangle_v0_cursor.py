"""Reading and printing primitives of the v0 demangler (demangle_v0.py): the
symbol as a cursor, base-62 numbers, identifiers, backrefs, and an output that
gives up past a bound."""

from __future__ import annotations

from collections.abc import Callable

# Python's own recursion limit is 1000 frames and each level of the v0 grammar
# costs two or three of them, so stay well below rustc-demangle's 500.
_MAX_DEPTH = 150
# Backrefs can make the output exponentially longer than the input.
_MAX_OUTPUT = 1 << 16


class Invalid(Exception):
    """The symbol does not follow the grammar it claims to."""


class V0Cursor:
    """One v0 symbol (without its ``_R``) being read, and what has been printed."""

    def __init__(self, sym: str) -> None:
        self.sym = sym
        self.pos = 0
        self.depth = 0
        self.out: list[str] = []
        self.out_len = 0
        # While positive, parse without printing (the path of an impl block);
        # backrefs are not followed then, as in rustc-demangle.
        self.skipping = 0
        self.bound_lifetime_depth = 0

    # parsing primitives

    def peek(self) -> str:
        return self.sym[self.pos] if self.pos < len(self.sym) else ""

    def eat(self, char: str) -> bool:
        if self.pos < len(self.sym) and self.sym[self.pos] == char:
            self.pos += 1
            return True
        return False

    def next(self) -> str:
        if self.pos >= len(self.sym):
            raise Invalid
        char = self.sym[self.pos]
        self.pos += 1
        return char

    def push_depth(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise Invalid

    def pop_depth(self) -> None:
        self.depth -= 1

    def hex_nibbles(self) -> str:
        end = self.sym.find("_", self.pos)
        if end < 0:
            raise Invalid
        nibbles = self.sym[self.pos : end]
        if any(c not in "0123456789abcdef" for c in nibbles):
            raise Invalid
        self.pos = end + 1
        return nibbles

    def integer_62(self) -> int:
        if self.eat("_"):
            return 0
        value = 0
        while not self.eat("_"):
            char = self.next()
            if "0" <= char <= "9":
                digit = ord(char) - ord("0")
            elif "a" <= char <= "z":
                digit = 10 + ord(char) - ord("a")
            elif "A" <= char <= "Z":
                digit = 36 + ord(char) - ord("A")
            else:
                raise Invalid
            value = value * 62 + digit
        return value + 1

    def opt_integer_62(self, tag: str) -> int:
        return self.integer_62() + 1 if self.eat(tag) else 0

    def disambiguator(self) -> int:
        return self.opt_integer_62("s")

    def ident(self) -> tuple[str, str]:
        """Returns (ascii part, punycode part) of an identifier."""
        is_punycode = self.eat("u")
        start = self.pos
        while self.peek().isdigit():
            self.pos += 1
            if self.sym[start] == "0":
                break  # a length of 0 has no further digits
        if start == self.pos:
            raise Invalid
        length = int(self.sym[start : self.pos])
        self.eat("_")
        if self.pos + length > len(self.sym):
            raise Invalid
        text = self.sym[self.pos : self.pos + length]
        self.pos += length
        if not is_punycode:
            return text, ""
        ascii_part, _, punycode = text.rpartition("_")
        if not punycode:
            raise Invalid
        return ascii_part, punycode

    # printing primitives

    def print(self, text: str) -> None:
        if self.skipping:
            return
        self.out_len += len(text)
        if self.out_len > _MAX_OUTPUT:
            raise Invalid
        self.out.append(text)

    def print_ident(self, ident: tuple[str, str]) -> None:
        ascii_part, punycode = ident
        if not punycode:
            self.print(ascii_part)
            return
        encoded = f"{ascii_part}-{punycode}" if ascii_part else punycode
        try:
            self.print(encoded.encode("ascii").decode("punycode"))
        except UnicodeError:
            self.print(f"punycode{{{encoded}}}")

    def print_sep_list(self, item: Callable[[], None], sep: str) -> int:
        count = 0
        while not self.eat("E"):
            if count:
                self.print(sep)
            item()
            count += 1
        return count

    def print_backref(self, body: Callable[[], None]) -> None:
        tag_pos = self.pos - 1  # the `B` itself
        target = self.integer_62()
        # Only strictly backwards references, so following them always terminates.
        if target >= tag_pos:
            raise Invalid
        if self.skipping:
            return
        saved = self.pos
        self.pos = target
        self.push_depth()
        body()
        self.pop_depth()
        self.pos = saved
