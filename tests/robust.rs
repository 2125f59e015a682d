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
    let (file, diags) = syntax::parse(src);
    check_spans(src, &diags);
    if diags.is_empty() {
        // Whatever parses also formats, idempotently, to the same meaning.
        let once = syntax::fmt::format(&file, src);
        let (again, again_diags) = syntax::parse(&once);
        assert!(
            again_diags.is_empty(),
            "{src:?} formats to {once:?}: {again_diags:?}"
        );
        assert_eq!(
            syntax::sexp::file_bare(&again),
            syntax::sexp::file_bare(&file),
            "{src:?}"
        );
        assert_eq!(
            syntax::fmt::format(&again, &once),
            once,
            "fmt not idempotent on {src:?}"
        );
    }
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

/// The example and case files, the seeds of the mutation test.
fn seed_files() -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["examples", "tests/cases", "tests/errors"] {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for p in paths
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        {
            out.push(std::fs::read_to_string(p).expect("seed file is text"));
        }
    }
    assert!(!out.is_empty());
    out
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
    for chain in ["x^", "-", "f(", "[", "x<"] {
        let src = format!("activation f(x) = {}x\n", chain.repeat(100_000));
        let m = messages(&src);
        assert!(!m.is_empty(), "{chain}");
    }
    // A flat sum or product is not nesting: it parses and checks at any length.
    for chain in ["x+", "x*", "x-", "x/"] {
        let src = format!("activation f(x) = {}x\n", chain.repeat(100_000));
        assert_eq!(messages(&src), Vec::<String>::new(), "{chain}");
    }
    let sum = format!("activation f(x) = x{}\n", "+x".repeat(1_000_000));
    let (file, diags) = syntax::parse(&sum);
    assert!(diags.is_empty());
    let (_, diags) = slope::check::check(&file);
    assert!(diags.is_empty(), "{:?}", diags.first());
    // Real nesting inside a long chain is still counted.
    let deep = format!(
        "activation f(x) = x + {}x{} + x\n",
        "(".repeat(300),
        ")".repeat(300)
    );
    assert_eq!(messages(&deep), [TOO_DEEP]);
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
    fn mutated_case_files_never_panic(
        pick in 0usize..1000,
        edits in prop::collection::vec((0usize..100_000, 0u8..3, prop::char::any()), 1..8),
    ) {
        let seeds = seed_files();
        let mut chars: Vec<char> = seeds[pick % seeds.len()].chars().collect();
        for (at, kind, c) in edits {
            let at = if chars.is_empty() { 0 } else { at % (chars.len() + 1) };
            match kind {
                0 => chars.insert(at, c),
                1 if at < chars.len() => { chars.remove(at); }
                _ if at < chars.len() => chars[at] = c,
                _ => chars.push(c),
            }
        }
        parse_ok(&chars.into_iter().collect::<String>());
    }

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

mod cli {
    use assert_cmd::Command;
    use std::path::PathBuf;

    fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("slope-robust-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write temp file");
        path
    }

    fn fmt(path: &PathBuf) -> (i32, String, String) {
        let out = Command::cargo_bin("slope")
            .expect("binary")
            .arg("fmt")
            .arg(path)
            .output()
            .expect("runs");
        (
            out.status.code().expect("exited"),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    #[test]
    fn nul_byte_is_reported_with_line_and_column() {
        let path = temp_file("nul.nn", b"model m {\n    input\x002\n}\n");
        let (code, stdout, stderr) = fmt(&path);
        assert_eq!(code, 1);
        assert!(stdout.is_empty());
        assert!(stderr.contains("NUL byte"), "{stderr}");
        assert!(stderr.contains("nul.nn:2:10"), "{stderr}");
    }

    #[test]
    fn invalid_utf8_is_reported_with_offset_and_line() {
        let path = temp_file("latin1.nn", b"# caf\xe9\nmodel m { input 2 }\n");
        let (code, stdout, stderr) = fmt(&path);
        assert_eq!(code, 1);
        assert!(stdout.is_empty());
        assert!(stderr.contains("not valid UTF-8"), "{stderr}");
        assert!(stderr.contains("latin1.nn:1:6"), "{stderr}");
        assert!(stderr.contains("offset 5"), "{stderr}");
    }

    #[test]
    fn empty_file_formats_to_nothing() {
        let path = temp_file("empty.nn", b"");
        assert_eq!(fmt(&path), (0, String::new(), String::new()));
    }

    #[test]
    fn missing_file_is_exit_1() {
        let (code, _, stderr) = fmt(&PathBuf::from("/nonexistent/x.nn"));
        assert_eq!(code, 1);
        assert!(stderr.contains("cannot read"), "{stderr}");
    }

    #[test]
    fn syntax_errors_print_diagnostics_and_no_file() {
        let path = temp_file("bad.nn", b"modle m {\n}\nmodel m { input 2 }\n");
        let (code, stdout, stderr) = fmt(&path);
        assert_eq!(code, 1);
        assert!(stdout.is_empty(), "no partial file: {stdout}");
        assert!(stderr.contains("bad.nn:1:1"), "{stderr}");
        assert!(stderr.contains("did you mean 'model'?"), "{stderr}");
    }

    #[test]
    fn deep_nesting_through_the_cli() {
        let n = 100_000;
        let src = format!("activation f(x) = {}x{}\n", "(".repeat(n), ")".repeat(n));
        let path = temp_file("deep.nn", src.as_bytes());
        let (code, _, stderr) = fmt(&path);
        assert_eq!(code, 1);
        assert!(stderr.contains("nested too deeply"), "{stderr}");
    }

    #[test]
    fn check_mode_exit_codes() {
        let canonical = temp_file("ok.nn", b"model m {\n    input 2\n    dense 1\n}\n");
        let out = Command::cargo_bin("slope")
            .expect("binary")
            .args(["fmt", "--check"])
            .arg(&canonical)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(0));
        assert!(out.stdout.is_empty() && out.stderr.is_empty());
        let messy = temp_file("messy.nn", b"model m { input 2; dense 1 }\n");
        let out = Command::cargo_bin("slope")
            .expect("binary")
            .args(["fmt", "--check"])
            .arg(&messy)
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("messy.nn:1: not in canonical form"),
            "{stderr}"
        );
        let out = Command::cargo_bin("slope")
            .expect("binary")
            .arg("fmt")
            .arg(&messy)
            .output()
            .expect("runs");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "model m {\n    input 2\n    dense 1\n}\n"
        );
    }
}

/// An in-process fuzz loop (cargo-fuzz needs nightly): random mutations of
/// the seed files, each checked like the proptests. Runs 2,000 inputs by
/// default; `SLOPE_STRESS_SECS=600` runs for ten minutes and prints the count.
#[test]
fn stress_mutations() {
    let seconds: u64 = std::env::var("SLOPE_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    let seeds = seed_files();
    let alphabet: Vec<char> = "()[]{}=,;#\"\\\n -+*/^<>.0123456789eExmodelatrinsvu_\u{0}é"
        .chars()
        .collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: usize| {
        // xorshift64*: deterministic, dependency-free.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n.max(1)
    };
    let mut runs = 0u64;
    while runs < 2_000 || std::time::Instant::now() < deadline {
        let mut chars: Vec<char> = seeds[next(seeds.len())].chars().collect();
        for _ in 0..1 + next(6) {
            let at = next(chars.len() + 1);
            let c = alphabet[next(alphabet.len())];
            match next(4) {
                0 => chars.insert(at, c),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                2 if at < chars.len() => chars[at] = c,
                _ => {
                    // Duplicate a slice: grows nesting and repetition.
                    let end = (at + next(40)).min(chars.len());
                    let piece: Vec<char> = chars[at..end].to_vec();
                    chars.splice(at..at, piece);
                }
            }
        }
        parse_ok(&chars.into_iter().collect::<String>());
        runs += 1;
    }
    println!("stress_mutations: {runs} inputs, no failure");
}
