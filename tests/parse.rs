//! Parser tests: precedence and spans by example, the spec's code blocks,
//! every `examples/*.nn`, and AST snapshots of `tests/cases/*.nn`.

use slope::syntax::{self, sexp};

/// Parses `src` as an expression and dumps it fully parenthesised.
fn e(src: &str) -> String {
    match syntax::parse_expr(src) {
        Ok(expr) => sexp::expr(&expr),
        Err(diags) => panic!("{src:?} should parse, got {diags:#?}"),
    }
}

/// Parses a file that must have no errors and dumps it.
fn f(src: &str) -> String {
    let (file, diags) = syntax::parse(src);
    assert!(diags.is_empty(), "{src:?} should parse, got {diags:#?}");
    sexp::file(&file)
}

/// The error messages of a file, in order.
fn errors(src: &str) -> Vec<String> {
    syntax::parse(src)
        .1
        .into_iter()
        .map(|d| d.message)
        .collect()
}

#[test]
fn precedence_as_in_spec_section_4() {
    assert_eq!(e("-x^2"), "(neg (^ x 2))");
    assert_eq!(e("2^3^2"), "(^ 2 (^ 3 2))");
    assert_eq!(e("2^-x"), "(^ 2 (neg x))");
    assert_eq!(e("2^-x^2"), "(^ 2 (neg (^ x 2)))");
    assert_eq!(e("a + b * c"), "(+ a (* b c))");
    assert_eq!(e("a - b - c"), "(- (- a b) c)");
    assert_eq!(e("a / b / c"), "(/ (/ a b) c)");
    assert_eq!(e("a*-b"), "(* a (neg b))");
    assert_eq!(e("--x"), "(neg (neg x))");
    assert_eq!(e("x < 1 + 2"), "(< x (+ 1 2))");
    assert_eq!(e("a+b >= c*d"), "(>= (+ a b) (* c d))");
    assert_eq!(e("(a + b) * c"), "(* (paren (+ a b)) c)");
    assert_eq!(
        e("where(x > 0, x, 0.01*x)"),
        "(call where (> x 0) x (* 0.01 x))"
    );
    assert_eq!(e("f()"), "(call f)");
    assert_eq!(e("x^3 / 3"), "(/ (^ x 3) 3)");
    assert_eq!(e(" .5 + 1e-3 + 2.5E+4 "), "(+ (+ .5 1e-3) 2.5E+4)");
    assert_eq!(e("-x^2"), "(neg (^ x 2))");
}

#[test]
fn expressions_may_span_lines_when_standalone() {
    assert_eq!(e("a +\n b"), "(+ a b)");
    assert_eq!(e("(a\n+ b)"), "(paren (+ a b))");
}

#[test]
fn spans_cover_the_text() {
    let expr = syntax::parse_expr("  -x^2 + f(a, b)").expect("valid");
    assert_eq!((expr.span.start, expr.span.end), (2, 16));
    let (file, _) = syntax::parse("model m { input 2; dense 1 }\n");
    let slope::syntax::ast::Item::Model(b) = &file.items[0] else {
        panic!("a model")
    };
    assert_eq!((b.span.start, b.span.end), (0, 28));
    assert_eq!((b.stmts[1].span.start, b.stmts[1].span.end), (19, 26));
}

#[test]
fn one_line_model() {
    assert_eq!(
        f("model m { input 2; dense 1 }"),
        "(model m\n  (input 2)\n  (dense 1))\n"
    );
}

#[test]
fn statements_values_and_options() {
    let out = f(
        "train {\n data \"a \\\"b\\\" \\\\.csv\" target=[c1, c2,]\n optimizer adam lr=-1e-3 ; shuffle false\n}",
    );
    assert_eq!(
        out,
        "(train\n  (data \"a \\\"b\\\" \\\\.csv\" (= target [c1 c2]))\n  (optimizer adam (= lr -1e-3))\n  (shuffle false))\n"
    );
}

#[test]
fn keywords_are_not_reserved_outside_item_start() {
    assert_eq!(e("model + train * loss"), "(+ model (* train loss))");
    assert_eq!(
        f("activation model(train) = train"),
        "(activation model (train) train)\n"
    );
}

#[test]
fn empty_file_is_an_empty_file() {
    assert_eq!(f(""), "");
    assert_eq!(
        f("\n\n# only a comment\n"),
        "(comment \" only a comment\")\n"
    );
}

#[test]
fn errors_are_reported_and_recovered() {
    assert_eq!(
        errors("modle xor {\n input 2\n}\nmodel m { input 2 }"),
        ["unknown item 'modle'"]
    );
    assert_eq!(
        errors("model m {\n dense 4 init=\n dense \"x\n input 2\n}\ntrain { seed @ }"),
        [
            "expected a value after '=', found end of line",
            "unterminated string",
            "expected a value (a number, name, string, true/false or list), found '@'",
        ]
    );
    assert_eq!(errors("model m {\n input 2\n"), ["unclosed '{'"]);
    assert_eq!(errors("}\nmodel m { input 2 }"), ["unexpected '}'"]);
    assert_eq!(
        errors("activation f(x) = (x + 1\n"),
        ["expected ')' to close '('"]
    );
    assert_eq!(
        errors("activation f(x) = a < b < c"),
        ["comparison operators cannot be chained"]
    );
    assert_eq!(
        errors("activation f(x) =\n  x"),
        ["expected an expression after '=', found end of line"]
    );
    assert_eq!(errors("activation f(x) = 2x"), ["invalid number '2x'"]);
    assert_eq!(
        errors("train { data \"a\\n\" }"),
        ["unknown escape '\\n' in string"]
    );
}
