//! `cargo fuzz run compile_models`: differential fuzzing of the whole
//! compiler. The bytes choose a well-formed model (`tests/fuzzgen`: custom
//! activations from the full expression language, random widths, every
//! loss); each is compiled and its f64 JIT gradient checked against the
//! interpreter and central differences, the f32 gradient against the f64
//! one within a running rounding-error bound, and printing → re-parsing →
//! compiling against the same values.
//! Crashes are disagreements, panics, overflows and hangs (libFuzzer's
//! `-timeout`).
//!
//! Each execution compiles the model twice with Cranelift, which is most of
//! its time; build with coverage in slope only (`slope-coverage-only.sh`,
//! about twice the executions per second) and run on one core:
//!
//! ```text
//! cd fuzz
//! RUSTC_WRAPPER=$PWD/slope-coverage-only.sh RUSTC_BOOTSTRAP=1 \
//!   cargo fuzz build -O -s none --target-dir target-slope-cov compile_models
//! taskset -c 1 target-slope-cov/x86_64-unknown-linux-gnu/release/compile_models \
//!   corpus/compile_models -timeout=20 -runs=1000000 -print_final_stats=1
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzzgen/mod.rs"]
mod fuzzgen;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzgen::run(&fuzzgen::case(data));
});
