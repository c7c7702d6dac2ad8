"""Rust symbol demangling, in the style of rustc-demangle's alternate (``{:#}``) format.

Back ends hand us function names in three shapes:

* raw legacy symbols, ``_ZN6reqctx4main17h4ea3e6cbe49eb36cE``;
* legacy symbols that a C++ demangler has already taken apart (heaptrack runs
  ``__cxa_demangle`` on every ``_Z`` name), ``reqctx::main::h4ea3e6cbe49eb36c``,
  still carrying the hash and the ``$LT$``-style escapes;
* v0 symbols, ``_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc``, which heaptrack leaves raw.

All three come out the way dhat-rs prints frames: no ``::h<hash>``, no crate
disambiguators, so the same function has the same name in every back end and
every build. Anything that is not a Rust symbol is returned unchanged, and so is
a Rust-looking symbol that does not parse: a profile must never fail to load
because of one odd name.

The v0 part follows the grammar of the v0 mangling spec and prints like
rustc-demangle (v0.rs). Punycode identifiers are decoded with Python's
``punycode`` codec; one that does not decode prints as ``punycode{...}``, as
rustc-demangle does.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from allocgate.frames import SYMBOL_HASH_RE

__all__ = ["demangle", "strip_hash"]

# __cxa_demangle renders LLVM's `.llvm.NNN` / `.cold` name suffixes as `[clone .x]`.
_CXX_LEGACY_RE = re.compile(r"^(?P<path>.+?)::h[0-9a-f]{16}(?P<clones>(?: \[clone \.[^\]]+\])*)$")
_CLONE_RE = re.compile(r" \[clone \.([^\]]+)\]")
_LEGACY_ESCAPE_RE = re.compile(r"\$(?:LT|GT|SP|BP|RF|LP|RP|C|u[0-9a-f]+)\$")
_LLVM_SUFFIX_RE = re.compile(r"\.llvm\.[0-9A-F@]*$")

# Python's own recursion limit is 1000 frames and each level of the v0 grammar
# costs two or three of them, so stay well below rustc-demangle's 500.
_MAX_DEPTH = 150
# Backrefs can make the output exponentially longer than the input.
_MAX_OUTPUT = 1 << 16

_BASIC_TYPES = {
    "a": "i8",
    "b": "bool",
    "c": "char",
    "d": "f64",
    "e": "str",
    "f": "f32",
    "h": "u8",
    "i": "isize",
    "j": "usize",
    "l": "i32",
    "m": "u32",
    "n": "i128",
    "o": "u128",
    "p": "_",
    "s": "i16",
    "t": "u16",
    "u": "()",
    "v": "...",
    "x": "i64",
    "y": "u64",
    "z": "!",
}

_LEGACY_ESCAPES = {
    "SP": "@",
    "BP": "*",
    "RF": "&",
    "LT": "<",
    "GT": ">",
    "LP": "(",
    "RP": ")",
    "C": ",",
}


def strip_hash(name: str) -> str:
    """Removes a trailing legacy ``::h<16 hex digits>`` hash from a demangled name."""
    return SYMBOL_HASH_RE.sub("", name)


def demangle(symbol: str) -> str:
    """Returns the readable form of a Rust symbol, or ``symbol`` itself for anything else."""
    try:
        result = _demangle(symbol)
    except (_Invalid, RecursionError):
        return symbol
    return symbol if result is None else result


class _Invalid(Exception):
    """The symbol does not follow the grammar it claims to."""


def _demangle(symbol: str) -> str | None:
    name = _LLVM_SUFFIX_RE.sub("", symbol)
    for prefix in ("_ZN", "__ZN"):
        if name.startswith(prefix):
            return _demangle_legacy_raw(name[len(prefix) :])
    for prefix in ("_R", "__R"):
        if name.startswith(prefix) and name[len(prefix) : len(prefix) + 1].isupper():
            return _demangle_v0(name[len(prefix) :])
    return _demangle_legacy_cxx(symbol)


def _suffix_ok(rest: str) -> bool:
    # rustc-demangle keeps `.cold`-style suffixes and rejects any other trailing text.
    return rest == "" or (
        rest.startswith(".") and rest.isascii() and all(c.isalnum() or _is_punct(c) for c in rest)
    )


def _is_punct(c: str) -> bool:
    return c.isascii() and not c.isalnum() and c.isprintable() and c != " "


# --- legacy -----------------------------------------------------------------------


def _demangle_legacy_raw(inner: str) -> str | None:
    if not inner.isascii():
        return None
    elements: list[str] = []
    pos = 0
    while True:
        if pos >= len(inner):
            return None
        if inner[pos] == "E":
            pos += 1
            break
        start = pos
        while pos < len(inner) and inner[pos].isdigit():
            pos += 1
        if start == pos:
            return None
        length = int(inner[start:pos])
        if pos + length >= len(inner):
            return None
        elements.append(inner[pos : pos + length])
        pos += length
    rest = inner[pos:]
    if not elements or not _suffix_ok(rest):
        return None
    return _legacy_path(elements) + rest


def _demangle_legacy_cxx(name: str) -> str | None:
    match = _CXX_LEGACY_RE.match(name)
    if match is not None:
        path = match.group("path")
        suffix = "".join(
            "." + clone
            for clone in _CLONE_RE.findall(match.group("clones"))
            if not clone.startswith("llvm.")
        )
    elif _LEGACY_ESCAPE_RE.search(name) and " " not in name and "(" not in name:
        path, suffix = name, ""
    else:
        return None
    return _legacy_path(path.split("::"), has_hash=False) + suffix


def _is_rust_hash(element: str) -> bool:
    return (
        len(element) > 1
        and element[0] == "h"
        and all(c in "0123456789abcdefABCDEF" for c in element[1:])
    )


def _legacy_path(elements: list[str], *, has_hash: bool = True) -> str:
    if has_hash and len(elements) > 1 and _is_rust_hash(elements[-1]):
        elements = elements[:-1]
    return "::".join(_legacy_element(element) for element in elements)


def _legacy_element(element: str) -> str:
    rest = element[1:] if element.startswith("_$") else element
    out: list[str] = []
    while rest:
        if rest[0] == ".":
            if rest.startswith(".."):
                out.append("::")
                rest = rest[2:]
            else:
                out.append(".")
                rest = rest[1:]
        elif rest[0] == "$":
            end = rest.find("$", 1)
            if end < 0:
                break
            escape = rest[1:end]
            text = _LEGACY_ESCAPES.get(escape)
            if text is None:
                text = _legacy_unicode_escape(escape)
                if text is None:
                    break  # an unknown escape: keep the remainder as it is
            out.append(text)
            rest = rest[end + 1 :]
        else:
            cut = min((i for i in (rest.find("$"), rest.find(".")) if i >= 0), default=len(rest))
            out.append(rest[:cut])
            rest = rest[cut:]
    out.append(rest)
    return "".join(out)


def _legacy_unicode_escape(escape: str) -> str | None:
    digits = escape[1:]
    if not escape.startswith("u") or not digits or any(c not in "0123456789abcdef" for c in digits):
        return None
    code = int(digits, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        return None
    char = chr(code)
    if code < 0x20 or 0x7F <= code < 0xA0:
        return None
    return char


# --- v0 ---------------------------------------------------------------------------


def _demangle_v0(inner: str) -> str | None:
    if not inner.isascii():
        return None
    printer = _V0Printer(inner)
    printer.print_path(in_value=True)
    # The instantiating crate says where the code was compiled, not what it is.
    if printer.pos < len(inner) and inner[printer.pos].isupper():
        printer.skipping += 1
        printer.print_path(in_value=False)
        printer.skipping -= 1
    rest = inner[printer.pos :]
    if not _suffix_ok(rest):
        return None
    return "".join(printer.out) + rest


class _V0Printer:
    """Parses one v0 symbol (without its ``_R``) and prints it as it goes."""

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
            raise _Invalid
        char = self.sym[self.pos]
        self.pos += 1
        return char

    def push_depth(self) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise _Invalid

    def pop_depth(self) -> None:
        self.depth -= 1

    def hex_nibbles(self) -> str:
        end = self.sym.find("_", self.pos)
        if end < 0:
            raise _Invalid
        nibbles = self.sym[self.pos : end]
        if any(c not in "0123456789abcdef" for c in nibbles):
            raise _Invalid
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
                raise _Invalid
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
            raise _Invalid
        length = int(self.sym[start : self.pos])
        self.eat("_")
        if self.pos + length > len(self.sym):
            raise _Invalid
        text = self.sym[self.pos : self.pos + length]
        self.pos += length
        if not is_punycode:
            return text, ""
        ascii_part, _, punycode = text.rpartition("_")
        if not punycode:
            raise _Invalid
        return ascii_part, punycode

    # printing primitives

    def print(self, text: str) -> None:
        if self.skipping:
            return
        self.out_len += len(text)
        if self.out_len > _MAX_OUTPUT:
            raise _Invalid
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
            raise _Invalid
        if self.skipping:
            return
        saved = self.pos
        self.pos = target
        self.push_depth()
        body()
        self.pop_depth()
        self.pos = saved

    def print_lifetime(self, index: int) -> None:
        if self.skipping:
            return
        if index == 0:
            self.print("'_")
            return
        depth = self.bound_lifetime_depth - index
        if depth < 0:
            raise _Invalid
        self.print("'" + (chr(ord("a") + depth) if depth < 26 else f"_{depth}"))

    def in_binder(self, body: Callable[[], None]) -> None:
        bound = self.opt_integer_62("G")
        if self.skipping:
            body()
            return
        if bound:
            self.print("for<")
            for i in range(bound):
                if i:
                    self.print(", ")
                self.bound_lifetime_depth += 1
                self.print_lifetime(1)
            self.print("> ")
        body()
        self.bound_lifetime_depth -= bound

    # the grammar

    def print_path(self, in_value: bool) -> None:
        self.push_depth()
        tag = self.next()
        if tag == "C":
            self.disambiguator()  # the crate hash: left out, as `{:#}` does
            self.print_ident(self.ident())
        elif tag == "N":
            namespace = self.next()
            if not namespace.isalpha():
                raise _Invalid
            self.print_path(in_value)
            disambiguator = self.disambiguator()
            ascii_part, punycode = self.ident()
            if namespace.isupper():
                kind = {"C": "closure", "S": "shim"}.get(namespace, namespace)
                self.print("::{" + kind)
                if ascii_part or punycode:
                    self.print(":")
                    self.print_ident((ascii_part, punycode))
                self.print(f"#{disambiguator}}}")
            elif ascii_part or punycode:
                self.print("::")
                self.print_ident((ascii_part, punycode))
        elif tag in "MXY":
            if tag != "Y":
                # The impl block's own path only says where the impl is written.
                self.disambiguator()
                self.skipping += 1
                self.print_path(in_value=False)
                self.skipping -= 1
            self.print("<")
            self.print_type()
            if tag != "M":
                self.print(" as ")
                self.print_path(in_value=False)
            self.print(">")
        elif tag == "I":
            self.print_path(in_value)
            if in_value:
                self.print("::")
            self.print("<")
            self.print_sep_list(self.print_generic_arg, ", ")
            self.print(">")
        elif tag == "B":
            self.print_backref(lambda: self.print_path(in_value))
        else:
            raise _Invalid
        self.pop_depth()

    def print_generic_arg(self) -> None:
        if self.eat("L"):
            self.print_lifetime(self.integer_62())
        elif self.eat("K"):
            self.print_const(in_value=False)
        else:
            self.print_type()

    def print_type(self) -> None:
        tag = self.next()
        basic = _BASIC_TYPES.get(tag)
        if basic is not None:
            self.print(basic)
            return
        self.push_depth()
        if tag in "RQ":
            self.print("&")
            if self.eat("L"):
                lifetime = self.integer_62()
                if lifetime:
                    self.print_lifetime(lifetime)
                    self.print(" ")
            if tag == "Q":
                self.print("mut ")
            self.print_type()
        elif tag == "P":
            self.print("*const ")
            self.print_type()
        elif tag == "O":
            self.print("*mut ")
            self.print_type()
        elif tag in "AS":
            self.print("[")
            self.print_type()
            if tag == "A":
                self.print("; ")
                self.print_const(in_value=True)
            self.print("]")
        elif tag == "T":
            self.print("(")
            if self.print_sep_list(self.print_type, ", ") == 1:
                self.print(",")
            self.print(")")
        elif tag == "F":
            self.in_binder(self.print_fn_sig)
        elif tag == "D":
            self.print("dyn ")
            self.in_binder(self.print_object_bounds)
            if not self.eat("L"):
                raise _Invalid
            lifetime = self.integer_62()
            if lifetime:
                self.print(" + ")
                self.print_lifetime(lifetime)
        elif tag == "B":
            self.print_backref(self.print_type)
        else:
            self.pos -= 1  # a path: let print_path see its tag
            self.print_path(in_value=False)
        self.pop_depth()

    def print_fn_sig(self) -> None:
        is_unsafe = self.eat("U")
        abi: str | None = None
        if self.eat("K"):
            if self.eat("C"):
                abi = "C"
            else:
                ascii_part, punycode = self.ident()
                if not ascii_part or punycode:
                    raise _Invalid
                # `-` is not allowed in identifiers, so the mangler wrote `_`.
                abi = ascii_part.replace("_", "-")
        if is_unsafe:
            self.print("unsafe ")
        if abi is not None:
            self.print(f'extern "{abi}" ')
        self.print("fn(")
        self.print_sep_list(self.print_type, ", ")
        self.print(")")
        if not self.eat("u"):  # `-> ()` is not written
            self.print(" -> ")
            self.print_type()

    def print_object_bounds(self) -> None:
        self.print_sep_list(self.print_dyn_trait, " + ")

    def print_dyn_trait(self) -> None:
        is_open = self.print_path_maybe_open_generics()
        while self.eat("p"):
            self.print(", " if is_open else "<")
            is_open = True
            self.print_ident(self.ident())
            self.print(" = ")
            self.print_type()
        if is_open:
            self.print(">")

    def print_path_maybe_open_generics(self) -> bool:
        """Prints a trait path, leaving its ``<...>`` open for associated-type bindings."""
        if self.eat("B"):
            result = [False]

            def body() -> None:
                result[0] = self.print_path_maybe_open_generics()

            self.print_backref(body)
            return result[0]
        if self.eat("I"):
            self.print_path(in_value=False)
            self.print("<")
            self.print_sep_list(self.print_generic_arg, ", ")
            return True
        self.print_path(in_value=False)
        return False

    def print_const(self, in_value: bool) -> None:
        tag = self.next()
        self.push_depth()
        # Only literals may stand in generic-argument position without braces.
        braced = False

        def open_brace() -> None:
            nonlocal braced
            if not in_value:
                braced = True
                self.print("{")

        if tag == "p":
            self.print("_")
        elif tag in "hmtyoj":
            self.print_const_uint()
        elif tag in "aslxni":
            if self.eat("n"):
                self.print("-")
            self.print_const_uint()
        elif tag == "b":
            value = self.hex_nibbles()
            if value.lstrip("0") not in ("", "1"):
                raise _Invalid
            self.print("true" if value.lstrip("0") == "1" else "false")
        elif tag == "c":
            self.print(_quote_chars(chr(self.const_char()), "'"))
        elif tag == "e":
            open_brace()
            self.print("*")
            self.print_const_str()
        elif tag in "RQ":
            if tag == "R" and self.eat("e"):
                self.print_const_str()
            else:
                open_brace()
                self.print("&mut " if tag == "Q" else "&")
                self.print_const(in_value=True)
        elif tag == "A":
            open_brace()
            self.print("[")
            self.print_sep_list(lambda: self.print_const(in_value=True), ", ")
            self.print("]")
        elif tag == "T":
            open_brace()
            self.print("(")
            if self.print_sep_list(lambda: self.print_const(in_value=True), ", ") == 1:
                self.print(",")
            self.print(")")
        elif tag == "V":
            open_brace()
            self.print_path(in_value=True)
            kind = self.next()
            if kind == "T":
                self.print("(")
                self.print_sep_list(lambda: self.print_const(in_value=True), ", ")
                self.print(")")
            elif kind == "S":
                self.print(" { ")
                self.print_sep_list(self.print_const_field, ", ")
                self.print(" }")
            elif kind != "U":
                raise _Invalid
        elif tag == "B":
            self.print_backref(lambda: self.print_const(in_value))
        else:
            raise _Invalid
        if braced:
            self.print("}")
        self.pop_depth()

    def print_const_uint(self) -> None:
        nibbles = self.hex_nibbles()
        digits = nibbles.lstrip("0")
        # `{:#}` leaves out the type suffix (`5`, not `5usize`).
        self.print(str(int(digits or "0", 16)) if len(digits) <= 16 else "0x" + nibbles)

    def const_char(self) -> int:
        nibbles = self.hex_nibbles()
        code = int(nibbles or "0", 16) if len(nibbles.lstrip("0")) <= 8 else -1
        if not 0 <= code <= 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            raise _Invalid
        return code

    def print_const_str(self) -> None:
        nibbles = self.hex_nibbles()
        if len(nibbles) % 2:
            raise _Invalid
        try:
            text = bytes.fromhex(nibbles).decode("utf-8")
        except ValueError:
            raise _Invalid from None
        self.print(_quote_chars(text, '"'))

    def print_const_field(self) -> None:
        self.disambiguator()
        self.print_ident(self.ident())
        self.print(": ")
        self.print_const(in_value=True)


def _quote_chars(text: str, quote: str) -> str:
    escapes = {
        "\0": "\\0",
        "\t": "\\t",
        "\r": "\\r",
        "\n": "\\n",
        "\\": "\\\\",
        quote: "\\" + quote,
    }
    parts = [quote]
    for char in text:
        if char in escapes:
            parts.append(escapes[char])
        elif char.isprintable():
            parts.append(char)
        else:
            parts.append(f"\\u{{{ord(char):x}}}")
    parts.append(quote)
    return "".join(parts)
