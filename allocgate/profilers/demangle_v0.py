"""Rust v0 symbols (``_R…``), parsed by the grammar of the v0 mangling spec and
printed like rustc-demangle's alternate (``{:#}``) format (v0.rs). Punycode
identifiers are decoded with Python's ``punycode`` codec; one that does not
decode prints as ``punycode{...}``, as rustc-demangle does.
"""

from __future__ import annotations

from collections.abc import Callable

from allocgate.profilers.demangle_v0_cursor import Invalid, V0Cursor

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


def suffix_ok(rest: str) -> bool:
    # rustc-demangle keeps `.cold`-style suffixes and rejects any other trailing text.
    return rest == "" or (
        rest.startswith(".") and rest.isascii() and all(c.isalnum() or is_punct(c) for c in rest)
    )


def is_punct(c: str) -> bool:
    return c.isascii() and not c.isalnum() and c.isprintable() and c != " "


def demangle_v0(inner: str) -> str | None:
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
    if not suffix_ok(rest):
        return None
    return "".join(printer.out) + rest


class _V0Printer(V0Cursor):
    """Parses one v0 symbol (without its ``_R``) and prints it as it goes."""

    def print_lifetime(self, index: int) -> None:
        if self.skipping:
            return
        if index == 0:
            self.print("'_")
            return
        depth = self.bound_lifetime_depth - index
        if depth < 0:
            raise Invalid
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
                raise Invalid
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
            raise Invalid
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
                raise Invalid
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
                    raise Invalid
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
                raise Invalid
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
                raise Invalid
        elif tag == "B":
            self.print_backref(lambda: self.print_const(in_value))
        else:
            raise Invalid
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
            raise Invalid
        return code

    def print_const_str(self) -> None:
        nibbles = self.hex_nibbles()
        if len(nibbles) % 2:
            raise Invalid
        try:
            text = bytes.fromhex(nibbles).decode("utf-8")
        except ValueError:
            raise Invalid from None
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
