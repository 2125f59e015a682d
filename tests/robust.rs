//! Robustness: no input makes the parser panic, overflow the stack or hang,
//! and every diagnostic has a valid span.

use proptest::prelude::*;
use slope::diag::Diagnostic;
use slope::syntax;

/// Checks the invariants every parse result must satisfy on `src`.
fn check_spans(src: &str, diags: &[Diagnostic]) {
    for d in diags {
        for label in d.primary.iter().chain(&d.secondary) {
            let (s, e) = (label.span.start, label.span.end);
            assert!(
                s <= e && e <= src.len(),
                "bad span {s}..{e} in {src:?}: {d:?}"
            );
            assert!(
                src.is_char_boundary(s) && src.is_char_boundary(e),
                "span off char boundary"
            );
        }
    }
    let mut sorted = diags.to_vec();
    sorted.sort_by_key(|d| d.sort_key());
    assert_eq!(sorted, diags, "diagnostics in source order");
}

fn parse_ok(src: &str) {
    let (_, diags) = syntax::parse(src);
    check_spans(src, &diags);
    if let Err(diags) = syntax::parse_expr(src) {
        check_spans(src, &diags);
    }
}

fn messages(src: &str) -> Vec<String> {
    syntax::parse(src)
        .1
        .into_iter()
        .map(|d| d.message)
        .collect()
}

const TOO_DEEP: &str = "expression nested too deeply (more than 256 levels)";

#[test]
fn hundred_thousand_parentheses() {
    let n = 100_000;
    let src = format!("activation f(x) = {}x{}\n", "(".repeat(n), ")".repeat(n));
    assert_eq!(messages(&src), [TOO_DEEP]);
    let expr = format!("{}x{}", "(".repeat(n), ")".repeat(n));
    let diags = syntax::parse_expr(&expr).expect_err("too deep");
    assert_eq!(diags[0].message, TOO_DEEP);
}

#[test]
fn deep_but_allowed_nesting_parses() {
    // 250 levels of every kind parse on a test thread's small stack.
    let n = 250;
    for (open, close) in [("(", ")"), ("f(", ")"), ("-", ""), ("x^", "")] {
        let src = format!("{}x{}", open.repeat(n), close.repeat(n));
        syntax::parse_expr(&src).unwrap_or_else(|d| panic!("{open}: {d:?}"));
    }
    let list = format!("train {{ data {}1{} }}", "[".repeat(n), "]".repeat(n));
    assert_eq!(messages(&list), Vec::<String>::new());
}

#[test]
fn long_chains_do_not_overflow() {
    for chain in ["x^", "-", "f(", "x+", "x*", "[", "x<"] {
        let src = format!("activation f(x) = {}x\n", chain.repeat(100_000));
        let m = messages(&src);
        assert!(!m.is_empty(), "{chain}");
    }
    let sum = format!("activation f(x) = x{}\n", "+x".repeat(1_000_000));
    assert_eq!(messages(&sum), [TOO_DEEP]);
    let list = format!("train {{ data {} }}", "[".repeat(100_000));
    assert_eq!(messages(&list), [TOO_DEEP]);
}

#[test]
fn nul_and_odd_characters_are_diagnostics() {
    assert_eq!(
        messages("model m {\0}"),
        ["expected a statement, found '\\0'"]
    );
    parse_ok("\u{feff}model m { input 2 }");
    parse_ok("é\u{300}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_text_never_panics(src in "\\PC{0,80}") {
        parse_ok(&src);
    }

    #[test]
    fn random_tokens_never_panic(parts in prop::collection::vec(prop::sample::select(vec![
        "model", "train", "activation", "loss", "m", "x", "(", ")", "{", "}", "[", "]", "=", ",",
        ";", "\n", " ", "#c\n", "\"s\"", "\"", "\\", "1", ".5", "1e", "-", "+", "*", "/", "^", "<", ">=",
    ]), 0..60)) {
        parse_ok(&parts.concat());
    }
}
