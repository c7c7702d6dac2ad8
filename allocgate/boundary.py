"""What each frame is (the user's code, a dependency, std, plumbing) and where it is.

The fold keys a program point at the workspace boundary: the innermost frame of
a workspace crate, then the dependency entry point it called. That needs, per
frame: which crate the code belongs to, the stable spelling of its name, and
its source location without machine-specific prefixes. The frame's own source
path decides when it is decisive (a registry directory, the toolchain's
``library/``, the workspace root); otherwise its name's crate does. A frame is
never named after another frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from allocgate.frames import SYMBOL_HASH_RE, Frame
from allocgate.workspace import Workspace

WORKSPACE = 0
"""The user's own crates."""
DEPENDENCY = 1
"""Third-party crates."""
STD = 2
"""The standard library (std, alloc, core and what they vendor) and dhat."""
FOREIGN = 3
"""Named code of no Rust crate: C libraries (``getdelim``), unresolved short names."""
PLUMBING = 4
"""Allocator entry points, runtime start-up, unnamed frames: never a key."""

KIND_NAMES = ("workspace", "dependency", "std", "foreign", "plumbing")

_ALLOCATOR_NAMES = frozenset(
    {
        "malloc",
        "calloc",
        "realloc",
        "reallocarray",
        "free",
        "memalign",
        "posix_memalign",
        "aligned_alloc",
        "valloc",
        "pvalloc",
        "operator new",
        "operator new[]",
        "operator new(unsigned long)",
        "operator new[](unsigned long)",
        "_Znwm",
        "_Znam",
        "UnknownInlinedFun",
        "_start",
        "__libc_start_main",
        "__libc_start_main_impl",
        "__libc_start_call_main",
        "start_thread",
        "clone",
        "clone3",
        "main",
    }
)
_PLUMBING_PREFIXES = (
    "__rust_",
    "__rg_",
    "__rdl_",
    "__rustc::",
    "__GI_",
    "_dl_",
    "dl_",
    "heaptrack",
    "<dhat::",
    "dhat::",
    "<alloc::alloc::Global",
    "alloc::alloc::",
)
# Crates that only ever come with the toolchain (or are dhat itself).
_STD_CRATES = frozenset(
    {
        "alloc",
        "core",
        "std",
        "dhat",
        "compiler_builtins",
        "std_detect",
        "panic_unwind",
        "panic_abort",
        "proc_macro",
    }
)
# Crates std vendors: std's own copy when the path does not say otherwise.
_STD_VENDORED = frozenset(
    {"hashbrown", "backtrace", "gimli", "addr2line", "miniz_oxide", "rustc_demangle"}
)
_PRIMITIVES = frozenset(
    [
        "u8",
        "u16",
        "u32",
        "u64",
        "u128",
        "usize",
        "i8",
        "i16",
        "i32",
        "i64",
        "i128",
        "isize",
        "f32",
        "f64",
        "bool",
        "char",
        "str",
        "!",
        "()",
    ]
)

# Source paths, by what they say about the crate.
_STD_PATH_RE = re.compile(
    r"(?:^|/)(?:rustc/[0-9a-f]+/|lib/rustlib/src/rust/)?library/"
    r"(?P<rest>(?:alloc|core|std|proc_macro|panic_unwind|portable-simd|stdarch|backtrace"
    r"|std_detect|vendor/[^/]+)/.*)$"
    r"|^(?P<short>(?:alloc|core|std)/src/.*)$"
)
_DEP_PATH_RES: tuple[re.Pattern[str], ...] = (
    # cargo's registry, Debian's, and a vendored directory: name-version/...
    re.compile(r"/\.cargo/registry/src/[^/]+/(?P<rest>(?P<crate>[A-Za-z0-9_.-]+?)-\d[^/]*/.*)$"),
    re.compile(r"/cargo/registry/(?P<rest>(?P<crate>[A-Za-z0-9_.-]+?)-\d[^/]*/.*)$"),
    re.compile(r"/\.cargo/git/checkouts/(?P<crate>[A-Za-z0-9_.-]+?)-[0-9a-f]+/[^/]+/(?P<rest>.*)$"),
    re.compile(r"(?:^|/)vendor/(?P<rest>(?P<crate>[A-Za-z0-9_.-]+?)(?:-\d[^/]*)?/.*)$"),
    # std's own dependencies as the toolchain's build recorded them
    re.compile(r"^/rust/deps/(?P<rest>(?P<crate>[A-Za-z0-9_.-]+?)-\d[^/]*/.*)$"),
)
# dhat-rs keeps the last three path components: regex-1.7.1/src/lib.rs
_TRIMMED_RE = re.compile(
    r"^(?P<rest>(?P<crate>[A-Za-z][A-Za-z0-9_-]*?)-\d+\.\d+\.\d+[^/]*/src/.*)$"
)
_DEP_PATH_RES = (*_DEP_PATH_RES, _TRIMMED_RE)
_C_PATH_RE = re.compile(
    r"^\./(?:nptl|elf|malloc|csu|libio|stdio-common|string|misc|posix)/|^\.\./sysdeps/"
)
_CLOSURE_RE = re.compile(r"\{\{closure\}\}|\{closure#\d+\}")
# A `{...}` path segment: a closure, an impl block, a constant, a shim.
_BRACE_SEGMENT_RE = re.compile(r"::\{[^{}:]*\}")


def _matching(text: str, start: int) -> int:
    depth = 0
    i = start
    while i < len(text):
        c = text[i]
        if c == "<":
            depth += 1
        elif c == ">" and text[i - 1 : i] != "-":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(text) - 1


def strip_generics(name: str) -> str:
    """Drops generic arguments: ``Vec<T>::push::<u8>`` → ``Vec::push``; a ``<``
    that opens a qualified path (``<X as Trait>::f``) is kept, its generics dropped."""
    if "<" not in name:
        return name
    out: list[str] = []
    i = 0
    n = len(name)
    while i < n:
        j = name.find("<", i)
        if j < 0:
            out.append(name[i:])
            break
        out.append(name[i:j])
        prev = name[j - 1] if j else ""
        turbofish = name.endswith("::", 0, j)
        if turbofish or (prev and (prev.isalnum() or prev in "_>}]")):
            if turbofish and out and out[-1].endswith("::"):
                out[-1] = out[-1][:-2]
            i = _matching(name, j) + 1
        else:
            out.append("<")
            i = j + 1
    return "".join(out)


def normalize_function(name: str) -> str:
    """The stable spelling of a function name: no hash, no generics, one closure form."""
    name = SYMBOL_HASH_RE.sub("", name.strip())
    name = _CLOSURE_RE.sub("{closure}", name)
    if "<" in name:
        name = strip_generics(name)
    return name


def enclosing_function(name: str) -> str:
    """Closures, impl blocks and other ``{…}`` segments fold under the function
    that holds them: ``run::{closure}::{closure}`` → ``run``."""
    m = _BRACE_SEGMENT_RE.search(name)
    if m is None or m.start() == 0:
        return name
    return name[: m.start()]


def name_crate(name: str) -> str | None:
    """The crate a normalized qualified name belongs to, judged by its self type."""
    if name.startswith("<"):
        end = _matching(name, 0)
        inner = name[1:end]
        self_type, _, trait = inner.partition(" as ")
        self_type = self_type.lstrip("&*").removeprefix("mut ").removeprefix("dyn ").strip()
        root = re.split(r"::|<|\[|\(| ", self_type, maxsplit=1)[0]
        generic_param = len(root) <= 2 and root[:1].isupper()
        if not root or root in _PRIMITIVES or generic_param or self_type[:1] in "[(":
            # Methods of primitives are std's; a trait impl for one belongs to
            # the trait's crate.
            return (name_crate(trait.strip()) if trait else None) or "core"
        return root
    if "::" not in name:
        return None
    head = re.split(r"::|<", name, maxsplit=1)[0]
    return head or None


@dataclass(frozen=True, slots=True)
class FrameFacts:
    """What the fold needs to know about one frame."""

    kind: int
    name: str
    """The key spelling: normalized, closures folded into their function."""
    resolved: bool
    """False for a short name whose full path is unknown (shown as printed)."""


class Classifier:
    """Classifies frames for one workspace; pure, so results can be cached per frame."""

    def __init__(self, workspace: Workspace | None, skip: re.Pattern[str] | None = None) -> None:
        self.workspace = workspace
        self.crates = workspace.crates if workspace is not None else frozenset()
        self.skip = skip
        self._kinds: dict[str, int | None] = {}
        self._paths: dict[str, str] = {}
        root = workspace.root if workspace is not None else None
        self.root = (str(root).rstrip("/") + "/") if root is not None else None
        self.root_name = root.name if root is not None else None
        # dhat-rs trims paths to three components: scan-core/src/lib.rs.
        self.member_dirs: dict[str, str] = {}
        if workspace is not None:
            for member in workspace.members:
                if member not in (".", ""):
                    self.member_dirs[member.rsplit("/", 1)[-1]] = member

    def facts(self, frame: Frame) -> FrameFacts:
        raw = frame.function
        name = normalize_function(raw)
        kind = self.path_kind(frame.file)
        if (
            not name
            or name in ("???", "UnknownInlinedFun")
            or name.startswith(("0x", *_PLUMBING_PREFIXES))
            # `clone` or `main` in a Rust source file is a Rust function, not libc's.
            or (kind in (None, FOREIGN) and (raw in _ALLOCATOR_NAMES or name in _ALLOCATOR_NAMES))
        ):
            return FrameFacts(PLUMBING, name, False)
        if self.skip is not None and (self.skip.search(name) or self.skip.search(raw)):
            return FrameFacts(PLUMBING, name, False)
        qualified = name.startswith("<") or "::" in name
        crate = name_crate(name) if qualified else None
        if kind is None:
            if crate is None:
                kind = FOREIGN
            elif crate in self.crates:
                kind = WORKSPACE
            elif crate in _STD_CRATES or crate in _STD_VENDORED:
                kind = STD
            else:
                kind = DEPENDENCY
        if kind in (WORKSPACE, DEPENDENCY):
            name = enclosing_function(name)
        return FrameFacts(kind, name, qualified)

    def path_kind(self, file: str | None) -> int | None:
        """WORKSPACE, DEPENDENCY or STD when the path alone says so, else None."""
        if not file:
            return None
        # Many frames share a file: each is judged once.
        try:
            return self._kinds[file]
        except KeyError:
            kind = self._kinds[file] = self._path_kind(file)
            return kind

    def _path_kind(self, file: str) -> int | None:
        if _STD_PATH_RE.search(file):
            return STD
        if file.startswith("/rust/deps/"):
            # The crates std itself depends on, as the toolchain's build records them.
            return STD
        if "registry/" in file or "vendor/" in file or "checkouts/" in file or "-" in file:
            for regex in _DEP_PATH_RES:
                m = regex.search(file)
                if m is not None:
                    # dhat-rs's three components cannot tell std's hashbrown
                    # from the user's; std's is by far the more common.
                    if regex is _TRIMMED_RE and m.group("crate").replace("-", "_") in _STD_VENDORED:
                        return STD
                    return DEPENDENCY
        if self.root is not None and file.startswith(self.root):
            rest = file[len(self.root) :]
            if not rest.startswith(("target/", "vendor/")):
                return WORKSPACE
        if _C_PATH_RE.search(file):
            return FOREIGN
        return None

    def location(self, frame: Frame) -> str | None:
        """``file:line`` without machine prefixes: workspace-relative for the
        user's code, ``std/src/…`` and ``regex-1.7.1/src/…`` for the rest."""
        if not frame.file:
            return None
        return self.path(frame.file) + (f":{frame.line}" if frame.line else "")

    def path(self, file: str) -> str:
        found = self._paths.get(file)
        if found is None:
            found = self._paths[file] = self._path(file)
        return found

    def _path(self, file: str) -> str:
        m = _STD_PATH_RE.search(file)
        if m is not None:
            rest = m.group("rest") or m.group("short")
            return rest.removeprefix("vendor/")
        for regex in _DEP_PATH_RES:
            m = regex.search(file)
            if m is not None:
                return m.group("rest")
        if self.root is not None and file.startswith(self.root):
            return file[len(self.root) :]
        if not file.startswith("/"):
            head, _, rest = file.partition("/")
            member = self.member_dirs.get(head)
            if member is not None and rest.startswith("src/"):
                return f"{member}/{rest}"
            if head == self.root_name and rest.startswith("src/"):
                return rest
        return file


def describe(frame: Frame, classifier: Classifier) -> str:
    """One frame for people: its name as printed (no hash), and where."""
    name = SYMBOL_HASH_RE.sub("", frame.function)
    where = classifier.location(frame)
    if where:
        return f"{name} ({where})"
    if frame.object:
        return f"{name} (in {frame.object.rsplit('/', 1)[-1]})"
    return name
