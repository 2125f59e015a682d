//! `cargo fuzz run compile_models`: differential fuzzing of the whole
//! compiler. The bytes choose a well-formed model (`tests/fuzzgen`: custom
//! activations from the full expression language, random widths, every
//! loss); each is compiled and its f64 JIT gradient checked against the
//! interpreter and central differences, the f32 gradient against the f64
//! one, and printing → re-parsing → compiling against the same values.
//! Crashes are disagreements, panics, overflows and hangs (libFuzzer's
//! `-timeout`).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/fuzzgen/mod.rs"]
mod fuzzgen;

fuzz_target!(|data: &[u8]| {
    let _ = fuzzgen::run(&fuzzgen::case(data));
});
