"""allocgate: a CI gate for heap-allocation regressions in Rust programs."""

__version__ = "0.1.0"
