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

#[test]
fn ast_snapshots_of_cases() {
    insta::glob!("cases/*.nn", |path| {
        let src = std::fs::read_to_string(path).expect("case files are readable");
        insta::assert_snapshot!(f(&src));
    });
}

#[test]
fn diagnostic_snapshots_of_errors() {
    insta::glob!("errors/*.nn", |path| {
        let src = std::fs::read_to_string(path).expect("error files are readable");
        let (_, diags) = syntax::parse(&src);
        assert!(!diags.is_empty(), "{path:?} should have errors");
        let mut sources = slope::diag::SourceMap::new();
        let name = path.file_name().expect("a file").to_string_lossy();
        sources.add(name.to_string(), src.clone());
        insta::assert_snapshot!(slope::diag::render(&diags, &sources));
    });
}

/// The ``` blocks of a markdown text.
fn code_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        if line.trim_start().starts_with("```") {
            match current.take() {
                Some(block) => blocks.push(block),
                None => current = Some(String::new()),
            }
        } else if let Some(block) = &mut current {
            block.push_str(line);
            block.push('\n');
        }
    }
    blocks
}

#[test]
fn every_code_block_of_the_spec_parses() {
    let spec = std::fs::read_to_string("grammar/spec.md")
        .expect("grammar/spec.md is the product contract");
    let blocks = code_blocks(&spec);
    assert!(!blocks.is_empty());
    for block in &blocks {
        let out = f(block);
        assert!(!out.is_empty());
    }
    // The first block is kept as a case file too; they must agree.
    let case = std::fs::read_to_string("tests/cases/spec_xor.nn").expect("case exists");
    assert_eq!(blocks[0], case);
}

#[test]
fn inline_code_of_the_spec_parses() {
    let spec = std::fs::read_to_string("grammar/spec.md")
        .expect("grammar/spec.md is the product contract");
    let files = ["model m { input 2; dense 1 }"];
    let exprs = [
        ("-x^2", "(neg (^ x 2))"),
        ("-(x^2)", "(neg (paren (^ x 2)))"),
        ("2^3^2", "(^ 2 (^ 3 2))"),
        ("2^(3^2)", "(^ 2 (paren (^ 3 2)))"),
        ("2^-x", "(^ 2 (neg x))"),
        ("2^(-x)", "(^ 2 (paren (neg x)))"),
        ("where(c, a, b)", "(call where c a b)"),
        ("sigmoid*(1 - sigmoid)", "(* sigmoid (paren (- 1 sigmoid)))"),
        ("1 - tanh^2", "(- 1 (^ tanh 2))"),
        ("where(x > 0, 1, 0)", "(call where (> x 0) 1 0)"),
        ("1/x", "(/ 1 x)"),
        ("1/(2*sqrt)", "(/ 1 (paren (* 2 sqrt)))"),
        (
            "where(x > 0, 1, where(x < 0, -1, 0))",
            "(call where (> x 0) 1 (call where (< x 0) (neg 1) 0))",
        ),
        ("where(a > b, a', b')", ""),
        (
            "where(x > 0, x, 0.01*x)",
            "(call where (> x 0) x (* 0.01 x))",
        ),
        (
            "where(x > 0, x, exp(x) - 1)",
            "(call where (> x 0) x (- (call exp x) 1))",
        ),
        ("x*sigmoid(x)", "(* x (call sigmoid x))"),
        (
            "0.5*x*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))",
            "(* (* 0.5 x) (paren (+ 1 (call tanh (* (call sqrt (/ 2 pi)) (paren (+ x (* 0.044715 (^ x 3)))))))))",
        ),
        ("(y - t)^2", "(^ (paren (- y t)) 2)"),
        (
            "-(t*log(y) + (1 - t)*log(1 - y))",
            "(neg (paren (+ (* t (call log y)) (* (paren (- 1 t)) (call log (- 1 y))))))",
        ),
        ("sqrt(2/pi)", "(call sqrt (/ 2 pi))"),
        ("x^3 / 3", "(/ (^ x 3) 3)"),
    ];
    for src in files {
        assert!(
            spec.contains(&format!("`{src}`")),
            "{src} is quoted in the spec"
        );
        f(src);
    }
    for (src, want) in exprs {
        assert!(spec.contains(src), "{src} appears in the spec");
        if want.is_empty() {
            // `a'` is the derivative notation of the prose, not the language.
            assert!(syntax::parse_expr(src).is_err());
        } else {
            assert_eq!(e(src), want, "{src}");
        }
    }
}

#[test]
fn every_example_parses() {
    let Ok(dir) = std::fs::read_dir("examples") else {
        // No examples on this branch yet; the spec and case files still run.
        return;
    };
    let mut paths: Vec<_> = dir
        .flatten()
        .map(|d| d.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    paths.sort();
    for path in paths {
        let src = std::fs::read_to_string(&path).expect("readable example");
        let (_, diags) = syntax::parse(&src);
        assert!(diags.is_empty(), "{path:?}: {diags:#?}");
    }
}

#[test]
fn grammar_rules_are_parser_functions() {
    let grammar = std::fs::read_to_string("grammar/nn.ebnf").expect("grammar exists");
    let mut sources = String::new();
    for file in ["mod.rs", "expr.rs", "items.rs", "lex.rs"] {
        sources +=
            &std::fs::read_to_string(format!("src/syntax/parser/{file}")).expect("parser source");
    }
    // Lexical helper rules that are parts of other functions.
    let folded = [
        "statement_end",
        "number_value",
        "digits",
        "newline",
        "comment",
    ];
    for line in grammar.lines() {
        let Some((name, _)) = line.split_once("::=") else {
            continue;
        };
        let name = name.trim();
        if folded.contains(&name) {
            continue;
        }
        let has_fn = sources.contains(&format!("fn {name}("))
            || sources.contains(&format!("fn {name}_text("));
        assert!(has_fn, "grammar rule '{name}' has no parser function");
    }
}
