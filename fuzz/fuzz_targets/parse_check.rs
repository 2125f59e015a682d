//! `cargo fuzz run parse_check`: any bytes through the parser and checker (and,
//! when parsing succeeds, the formatter round trip). Crashes are panics, overflows, hangs,
//! or a diagnostic span outside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use slope::syntax;

fuzz_target!(|data: &[u8]| {
    // Invalid UTF-8 is rejected before parsing (cli::source::read_source).
    let Ok(src) = std::str::from_utf8(data) else { return };
    let (file, diags) = syntax::parse(src);
    for d in &diags {
        for label in d.primary.iter().chain(&d.secondary) {
            assert!(label.span.start <= label.span.end && label.span.end <= src.len());
            assert!(src.is_char_boundary(label.span.start) && src.is_char_boundary(label.span.end));
        }
    }
    if diags.is_empty() {
        let once = syntax::fmt::format(&file, src);
        let (again, again_diags) = syntax::parse(&once);
        assert!(again_diags.is_empty());
        assert_eq!(syntax::sexp::file_bare(&again), syntax::sexp::file_bare(&file));
        assert_eq!(syntax::fmt::format(&again, &once), once);
    }
    let _ = syntax::parse_expr(src);
    // The checker must not panic on anything the parser accepts.
    let _ = slope::check::check(&file);
});
