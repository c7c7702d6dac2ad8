"""Tests for allocgate.profilers.demangle against real symbols from the heaptrack samples."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from allocgate.profilers.demangle import demangle, strip_hash

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "fixtures" / "samples" / "heaptrack"
V0_TABLE = ROOT / "fixtures" / "heaptrack" / "rust-v0-symbols.tsv"


def _v0_table() -> dict[str, str]:
    rows: dict[str, str] = {}
    for line in V0_TABLE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            symbol, expected = line.split("\t")
            rows[symbol] = expected
    return rows


def _sample_strings() -> set[str]:
    """Every string a heaptrack sample names: interned `s` records and the text output."""
    strings: set[str] = set()
    for path in sorted(SAMPLES.glob("*.zst")):
        text = subprocess.run(
            ["zstd", "-dc", str(path)], check=True, capture_output=True
        ).stdout.decode()
        for line in text.splitlines():
            if line.startswith("s "):
                strings.add(line.split(" ", 2)[2])
    for path in sorted(SAMPLES.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            strings.update(re.findall(r"_R[0-9A-Za-z_]+", line))
    return strings


@pytest.fixture(scope="module")
def sample_strings() -> set[str]:
    return _sample_strings()


# Real names from the samples; the expected text is what rustc-demangle's `{:#}`
# prints (checked against libiberty for v0, by the escape rules for legacy).
REAL_SYMBOLS = [
    # v0, precompiled std
    ("_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc", "alloc::alloc::alloc"),
    ("_RNvNtCslNYArtu3iFV_5alloc5alloc7realloc", "alloc::alloc::realloc"),
    (
        "_RNvMNtCslNYArtu3iFV_5alloc5allocNtB2_6Global18alloc_impl_runtime",
        "<alloc::alloc::Global>::alloc_impl_runtime",
    ),
    (
        "_RNvXs_NtCslNYArtu3iFV_5alloc5allocNtB4_6GlobalNtNtCsgEmfK2I1SDS_4core5alloc9Allocator8allocate",
        "<alloc::alloc::Global as core::alloc::Allocator>::allocate",
    ),
    (
        "_RNvMs4_NtCslNYArtu3iFV_5alloc7raw_vecNtB5_11RawVecInner15try_allocate_inCsjrHSEGnQ3l9_3std",
        "<alloc::raw_vec::RawVecInner>::try_allocate_in",
    ),
    (
        "_RINvXs_NvMNtCslNYArtu3iFV_5alloc5sliceSp9to_vec_inhNtB5_10ConvertVec6to_vecNtNtBa_5alloc6GlobalECsjrHSEGnQ3l9_3std",
        "<u8 as <[_]>::to_vec_in::ConvertVec>::to_vec::<alloc::alloc::Global>",
    ),
    (
        "_RINvMNtCslNYArtu3iFV_5alloc5sliceSh9to_vec_inNtNtB5_5alloc6GlobalEB5_",
        "<[u8]>::to_vec_in::<alloc::alloc::Global>",
    ),
    (
        "_RNCNvNtCsjrHSEGnQ3l9_3std2rt19lang_start_internal0B5_",
        "std::rt::lang_start_internal::{closure#0}",
    ),
    (
        "_RINvNtCsjrHSEGnQ3l9_3std9panicking12catch_unwindiNCNvNtB4_2rt19lang_start_internal0EB4_",
        "std::panicking::catch_unwind::<isize, std::rt::lang_start_internal::{closure#0}>",
    ),
    (
        "_RINvNtCsjrHSEGnQ3l9_3std5panic12catch_unwindRDINtNtNtCsgEmfK2I1SDS_4core3ops8function2FnuEp6OutputlNtNtBP_6marker4SyncNtNtNtBP_5panic11unwind_safe13RefUnwindSafeEL_lEB4_",
        "std::panic::catch_unwind::<&dyn core::ops::function::Fn<(), Output = i32>"
        " + core::marker::Sync + core::panic::unwind_safe::RefUnwindSafe, i32>",
    ),
    (
        "_RINvNvMs2_NtCslNYArtu3iFV_5alloc7raw_vecINtB8_11RawVecInnerpE7reserve21do_reserve_and_handleNtNtBa_5alloc6GlobalEBa_",
        "<alloc::raw_vec::RawVecInner<_>>::reserve::do_reserve_and_handle::<alloc::alloc::Global>",
    ),
    (
        "_RINvMNtCsgEmfK2I1SDS_4core6optionINtB3_6OptionReE3mapINtNtCslNYArtu3iFV_5alloc5boxed3BoxeENvYBP_INtNtB5_7convert4FromBI_E4fromECsjrHSEGnQ3l9_3std",
        "<core::option::Option<&str>>::map::<alloc::boxed::Box<str>,"
        " <alloc::boxed::Box<str> as core::convert::From<&str>>::from>",
    ),
    (
        "_RINvMs8_NtNtNtCslNYArtu3iFV_5alloc11collections5btree4nodeINtB6_7NodeRefNtNtB6_6marker5OwnedjNtNtNtNtNtNtCsjrHSEGnQ3l9_3std3sys3pal4unix14stack_overflow11thread_info10ThreadInfoNtB1a_4LeafE8new_leafNtNtBc_5alloc6GlobalEB1F_",
        "<alloc::collections::btree::node::NodeRef<alloc::collections::btree::node::marker::Owned,"
        " usize, std::sys::pal::unix::stack_overflow::thread_info::ThreadInfo,"
        " alloc::collections::btree::node::marker::Leaf>>::new_leaf::<alloc::alloc::Global>",
    ),
    # legacy, as heaptrack prints it (C++-demangled, hash and escapes kept)
    ("reqctx::main::h4ea3e6cbe49eb36c", "reqctx::main"),
    ("reqctx::split_fields::h4c0de524d3f2546d", "reqctx::split_fields"),
    (
        "_$LT$alloc..vec..Vec$LT$T$GT$$u20$as$u20$alloc..vec..spec_from_iter..SpecFromIter$LT$T$C$I$GT$$GT$::from_iter::h196cc5aec16b7408",
        "<alloc::vec::Vec<T> as alloc::vec::spec_from_iter::SpecFromIter<T,I>>::from_iter",
    ),
    (
        "std::rt::lang_start::_$u7b$$u7b$closure$u7d$$u7d$::h0d308b4c1d434c2c",
        "std::rt::lang_start::{{closure}}",
    ),
    (
        "alloc::slice::_$LT$impl$u20$$u5b$T$u5d$$GT$::to_vec_in::hbd6b44ab714ab426",
        "alloc::slice::<impl [T]>::to_vec_in",
    ),
    (
        "core::ops::function::impls::_$LT$impl$u20$core..ops..function..FnOnce$LT$A$GT$$u20$for$u20$$RF$mut$u20$F$GT$::call_once::h6d1131b7cca44a18",
        "core::ops::function::impls::<impl core::ops::function::FnOnce<A> for &mut F>::call_once",
    ),
    (
        "_$LT$$LP$$RP$$u20$as$u20$std..sys..thread_local..native..lazy..DestroyedState$GT$::register_dtor::hf1fb0a662cd04c9c",
        "<() as std::sys::thread_local::native::lazy::DestroyedState>::register_dtor",
    ),
    (
        "std::collections::hash::map::HashMap$LT$K$C$V$C$S$C$A$GT$::entry::hcf42420632a25ec1",
        "std::collections::hash::map::HashMap<K,V,S,A>::entry",
    ),
    # legacy, raw
    ("_ZN6reqctx4main17h4ea3e6cbe49eb36cE", "reqctx::main"),
    (
        "_ZN5alloc5slice29_$LT$impl$u20$$u5b$T$u5d$$GT$9to_vec_in17hbd6b44ab714ab426E",
        "alloc::slice::<impl [T]>::to_vec_in",
    ),
]


@pytest.mark.parametrize(("symbol", "expected"), REAL_SYMBOLS)
def test_real_symbols(symbol: str, expected: str) -> None:
    assert demangle(symbol) == expected


def test_every_v0_symbol_of_the_samples_is_in_the_table(sample_strings: set[str]) -> None:
    table = _v0_table()
    found = {s for s in sample_strings if s.startswith("_R")}
    assert len(found) > 100
    assert found <= set(table), sorted(found - set(table))[:5]


def test_every_v0_symbol_of_the_samples_demangles() -> None:
    for symbol, expected in _v0_table().items():
        result = demangle(symbol)
        assert result == expected, symbol
        assert not re.search(r"\[[0-9a-f]+\]", result)


def test_every_legacy_name_of_the_samples_loses_hash_and_escapes(
    sample_strings: set[str],
) -> None:
    legacy = [s for s in sample_strings if re.search(r"::h[0-9a-f]{16}$", s)]
    assert len(legacy) > 100
    for name in legacy:
        result = demangle(name)
        assert not re.search(r"::h[0-9a-f]{16}|\$[A-Za-z0-9]+\$|\.\.", result), (name, result)
        assert result == strip_hash(result)


@pytest.mark.parametrize(
    ("symbol", "expected"),
    [
        # closures and shims in nested paths
        ("_RNCNCNgCs6DXkGYLi8lr_2cc5spawn00B5_", "cc::spawn::{closure#0}::{closure#0}"),
        ("_RNSNvC3foo3bar0", "foo::bar::{shim#0}"),
        ("_RNSNvC3foo3bars_6vtable", "foo::bar::{shim:vtable#1}"),
        # crate disambiguator with a leading digit in the name
        ("_RNvC6_123foo3bar", "123foo::bar"),
        # dyn with an associated-type binding
        (
            "_RINbNbCskIICzLVDPPb_5alloc5alloc8box_freeDINbNiB4_5boxed5FnBoxuEp6OutputuEL_ECs1iopQbuBiw2_3std",
            "alloc::alloc::box_free::<dyn alloc::boxed::FnBox<(), Output = ()>>",
        ),
        # const generics, `{:#}` style: no type suffix
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_8UnsignedKhb_E", "<const_generic::Unsigned<11>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_6SignedKanb_E", "<const_generic::Signed<-11>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_4BoolKb1_E", "<const_generic::Bool<true>>"),
        ("_RMCs4fqI2P2rA04_13const_genericINtB0_4CharKc2202_E", "<const_generic::Char<'∂'>>"),
        (
            "_RNvNvMCs4fqI2P2rA04_13const_genericINtB4_3FooKpE3foo3FOO",
            "<const_generic::Foo<_>>::foo::FOO",
        ),
        ("_RNvMC0INtC8arrayvec8ArrayVechKj7b_E3new", "<arrayvec::ArrayVec<u8, 123>>::new"),
        ("_RINvC3foo3barKRe616263_E", 'foo::bar::<"abc">'),
        ("_RINvC3foo3barKAjb_jc_EE", "foo::bar::<{[11, 12]}>"),
        ("_RINvC3foo3barKTjb_EE", "foo::bar::<{(11,)}>"),
        ("_RINvC3foo3barKVNtC3foo3BarS1xjb_EE", "foo::bar::<{foo::Bar { x: 11 }}>"),
        # types
        ("_RINvNtC3std3mem8align_ofjE", "std::mem::align_of::<usize>"),
        ("_RINvC3foo3barAhj4_E", "foo::bar::<[u8; 4]>"),
        ("_RINvC3foo3barTlEE", "foo::bar::<(i32,)>"),
        ("_RINvC3foo3barTlhEE", "foo::bar::<(i32, u8)>"),
        ("_RINvC3foo3barPhOhQhE", "foo::bar::<*const u8, *mut u8, &mut u8>"),
        ("_RINvC3foo3barFUKCjEuE", 'foo::bar::<unsafe extern "C" fn(usize)>'),
        ("_RINvC3foo3barFK6sysv64jEhE", 'foo::bar::<extern "sysv64" fn(usize) -> u8>'),
        ("_RINvC3foo3barFK8C_unwindEuE", 'foo::bar::<extern "C-unwind" fn()>'),
        ("_RINvC3foo3barFG_RL0_hEuE", "foo::bar::<for<'a> fn(&'a u8)>"),
        # punycode identifier
        (
            "_RNqCs4fqI2P2rA04_11utf8_identsu30____7hkackfecea1cbdathfdh9hlq6y",
            "utf8_idents::საჭმელად_გემრიელი_სადილი",
        ),
        # LLVM suffixes: `.llvm.<hex>` goes, other suffixes stay
        ("_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc.llvm.11731279540413658830", "alloc::alloc::alloc"),
        ("_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc.cold", "alloc::alloc::alloc.cold"),
        ("_ZN6reqctx4main17h4ea3e6cbe49eb36cE.llvm.9D1E22C6D3B1D9F6", "reqctx::main"),
        ("reqctx::main::h4ea3e6cbe49eb36c [clone .llvm.123]", "reqctx::main"),
        ("reqctx::main::h4ea3e6cbe49eb36c [clone .cold]", "reqctx::main.cold"),
    ],
)
def test_v0_grammar(symbol: str, expected: str) -> None:
    assert demangle(symbol) == expected


@pytest.mark.parametrize(
    "symbol",
    [
        "",
        "malloc",
        "main",
        "__libc_start_main_impl",
        "0x7fc49e8a57b9",
        "operator new(unsigned long)",
        "std::vector<int, std::allocator<int> >::push_back(int const&)",
        "_ZN3foo3barEv",  # C++ with a parameter list
        "_ZNSt6vectorIiSaIiEE9push_backERKi",
        "_R",
        "_Rx",
        "_RNvNtCslNYArtu3iFV_5alloc5alloc",  # truncated
        "_RNvNtCslNYArtu3iFV_5alloc5alloc5alloc garbage",
        "_RNvNtCslNYArtu3iFV_5alloc5alloc5allocXYZ",
        "_RNvB9_3foo",  # backref pointing forward
        "_RNvNtCs_5alloc5alloc99alloc",  # identifier longer than the symbol
        "_RNvC3fooé3bar",  # not ASCII
        "_RINvC3foo3barKb2_E",  # a bool that is neither 0 nor 1
        "_RINvC3foo3barFG_RL1_hEuE",  # lifetime bound outside any binder
        "_ZN6reqctx4main17h4ea3e6cbe49eb36c",  # no closing E
    ],
)
def test_anything_else_is_returned_unchanged(symbol: str) -> None:
    assert demangle(symbol) == symbol


def test_deep_nesting_gives_up_instead_of_overflowing_the_stack() -> None:
    symbol = "_RINvC3foo3bar" + "R" * 5000 + "hE"
    assert demangle(symbol) == symbol


def test_exponential_backrefs_stop_at_the_output_limit() -> None:
    inner = "INvC1a1b"
    positions = [len(inner)]
    inner += "u"
    for _ in range(40):
        ref = "B" + _base62(positions[-1])
        positions.append(len(inner))
        inner += "T" + ref + ref + "E"
    symbol = "_R" + inner + "E"
    start = time.perf_counter()
    assert demangle(symbol) == symbol
    assert time.perf_counter() - start < 2.0


def test_a_few_levels_of_backrefs_are_expanded() -> None:
    inner = "INvC1a1b"
    position = len(inner)
    inner += "u" + "T" + "B" + _base62(position) + "B" + _base62(position) + "E"
    assert demangle("_R" + inner + "E") == "a::b::<(), ((), ())>"


def _base62(position: int) -> str:
    # A backref to byte `position` of the symbol after `_R` is written as
    # base-62 of position - 1 followed by `_` ("_" alone for position 0).
    if position == 0:
        return "_"
    value = position - 1
    digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while True:
        text = digits[value % 62] + text
        value //= 62
        if not value:
            return text + "_"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("reqctx::main::h4ea3e6cbe49eb36c", "reqctx::main"),
        ("reqctx::main", "reqctx::main"),
        ("reqctx::h4ea3e6cbe49eb36", "reqctx::h4ea3e6cbe49eb36"),  # 15 digits: a name
        (
            "<T as alloc::string::ToString>::to_string::h786221d97a8e919c",
            "<T as alloc::string::ToString>::to_string",
        ),
    ],
)
def test_strip_hash(name: str, expected: str) -> None:
    assert strip_hash(name) == expected
