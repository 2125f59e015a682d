//! `slope fmt`: canonical form, idempotence, and meaning preserved
//! (`parse(fmt(f)) == parse(f)` up to spans and redundant parentheses).

use proptest::prelude::*;
use slope::diag::Span;
use slope::syntax::ast::{BinOp, Expr, ExprKind, Ident};
use slope::syntax::{self, fmt, sexp};

fn format_src(src: &str) -> String {
    let (file, diags) = syntax::parse(src);
    assert!(diags.is_empty(), "{src:?}: {diags:#?}");
    fmt::format(&file, src)
}

/// Formats, then checks idempotence and that the meaning is unchanged.
fn check_file(src: &str) -> String {
    let once = format_src(src);
    let twice = format_src(&once);
    assert_eq!(once, twice, "not idempotent on {src:?}");
    let (a, _) = syntax::parse(src);
    let (b, _) = syntax::parse(&once);
    assert_eq!(
        sexp::file_bare(&a),
        sexp::file_bare(&b),
        "meaning changed: {src:?} -> {once:?}"
    );
    let texts = |f: &syntax::ast::File| {
        f.comments
            .iter()
            .map(|c| c.text.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(texts(&a), texts(&b), "comments lost or reordered");
    once
}

#[test]
fn canonical_layout() {
    let src = "# head\nactivation g(x)=((x+1))*(x - (1 - x)) - -x^2 + (-x)^2 +2^-x^2 # t\nloss l(y,t) = (y-t)^2\nmodel m {  # h\n  input 2 ;dense 4 tanh    init=he  # four\n\n\n  # own\n  loss bce\n}\ntrain { data \"a\\\"b\" target=[ y,z ] }\n# end\n";
    let expected = "# head\nactivation g(x) = (x + 1)*(x - (1 - x)) - -x^2 + (-x)^2 + 2^-x^2 # t\n\nloss l(y, t) = (y - t)^2\n\nmodel m { # h\n    input 2\n    dense 4 tanh init=he # four\n\n    # own\n    loss bce\n}\n\ntrain {\n    data \"a\\\"b\" target=[y, z]\n}\n\n# end\n";
    assert_eq!(check_file(src), expected);
}

#[test]
fn minimal_parentheses_keep_the_tree() {
    let cases = [
        ("(a < b) < c", "(a < b) < c"),
        ("a < (b < c)", "a < (b < c)"),
        ("(a^b)^c", "(a^b)^c"),
        ("a^(b^c)", "a^b^c"),
        ("(-a)^2", "(-a)^2"),
        ("-(a^2)", "-a^2"),
        ("a - (b + c)", "a - (b + c)"),
        ("(a - b) + c", "a - b + c"),
        ("a / (b * c)", "a/(b*c)"),
        ("-(a * b)", "-(a*b)"),
        ("2^(-x)", "2^-x"),
        ("2^(x+1)", "2^(x + 1)"),
        ("f((x), (y + 1))", "f(x, y + 1)"),
        ("- - x", "--x"),
        ("a * -b", "a*-b"),
        ("(x)", "x"),
    ];
    for (src, want) in cases {
        let e = syntax::parse_expr(src).expect("valid");
        assert_eq!(fmt::expr(&e), want, "{src}");
        let back = syntax::parse_expr(want).expect("formatted output parses");
        assert_eq!(
            sexp::expr_with(&back, false),
            sexp::expr_with(&e, false),
            "{src}"
        );
    }
}

#[test]
fn spec_and_example_files_are_stable() {
    for path in std::fs::read_dir("tests/cases")
        .expect("tests/cases exists")
        .flatten()
    {
        let path = path.path();
        if path.extension().is_some_and(|e| e == "nn") {
            let src = std::fs::read_to_string(&path).expect("readable");
            if syntax::parse(&src).1.is_empty() {
                check_file(&src);
            }
        }
    }
}

fn leaf() -> impl Strategy<Value = Expr> {
    let span = Span::default();
    prop_oneof![
        prop::sample::select(vec!["0", "2", "0.5", ".5", "1e-3", "2.5E+4"]).prop_map(move |t| {
            Expr {
                kind: ExprKind::Number {
                    value: t.parse().expect("valid literal"),
                    text: t.to_string(),
                },
                span,
            }
        }),
        prop::sample::select(vec!["x", "y", "e", "pi", "model"]).prop_map(move |n| Expr {
            kind: ExprKind::Var(n.to_string()),
            span,
        }),
    ]
}

/// Random expression trees, including trees no parser would build
/// (e.g. a comparison directly under a comparison) and explicit `Paren`s.
fn expr_tree() -> impl Strategy<Value = Expr> {
    let span = Span::default();
    leaf().prop_recursive(6, 64, 3, move |inner| {
        let ops = vec![
            BinOp::Lt,
            BinOp::Gt,
            BinOp::Le,
            BinOp::Ge,
            BinOp::Add,
            BinOp::Sub,
            BinOp::Mul,
            BinOp::Div,
            BinOp::Pow,
        ];
        prop_oneof![
            (prop::sample::select(ops), inner.clone(), inner.clone()).prop_map(
                move |(op, l, r)| Expr {
                    kind: ExprKind::Binary {
                        op,
                        lhs: Box::new(l),
                        rhs: Box::new(r)
                    },
                    span,
                }
            ),
            inner.clone().prop_map(move |e| Expr {
                kind: ExprKind::Neg(Box::new(e)),
                span
            }),
            inner.clone().prop_map(move |e| Expr {
                kind: ExprKind::Paren(Box::new(e)),
                span
            }),
            (
                prop::sample::select(vec!["f", "exp", "where"]),
                prop::collection::vec(inner, 0..3)
            )
                .prop_map(move |(name, args)| Expr {
                    kind: ExprKind::Call {
                        func: Ident {
                            name: name.to_string(),
                            span
                        },
                        args
                    },
                    span,
                }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn formatted_expressions_parse_back_to_the_same_tree(e in expr_tree()) {
        let text = fmt::expr(&e);
        let back = syntax::parse_expr(&text).map_err(|d| TestCaseError::fail(format!("{text}: {d:?}")))?;
        prop_assert_eq!(sexp::expr_with(&back, false), sexp::expr_with(&e, false), "{}", text);
        prop_assert_eq!(fmt::expr(&back), text);
    }

    #[test]
    fn formatting_files_is_idempotent_and_keeps_meaning(
        e in expr_tree(),
        layout in prop::collection::vec(prop::sample::select(vec![
            " ", "\n", "\n\n", " # c\n", "\n# own\n", ";",
        ]), 8),
    ) {
        let g = |k: usize| layout[k % layout.len()];
        let body = fmt::expr(&e);
        let nl = |s: &str| if s.contains('\n') { s.to_string() } else { format!("{s}\n") };
        let src = format!(
            "#top\nactivation a(x) = {body}{}model m {{{}input 2{}dense 4 tanh init=he{}}}{}train {{{}data \"d.csv\" target=[y]{}}}",
            nl(g(0).trim_start_matches(';')), g(1), g(2), g(3), nl(g(4)), g(5), g(6),
        );
        if syntax::parse(&src).1.is_empty() {
            check_file(&src);
        }
    }
}

/// The loss and gradients of a file's model as the graph prints them
/// (constants to the last digit).
fn graph_text(src: &str) -> Vec<String> {
    let (file, _) = syntax::parse(src);
    let (program, diags) = slope::check::check(&file);
    assert!(diags.is_empty(), "{src}: {diags:?}");
    let (net, _) = slope::pipeline::compile(&program, &program.models[0]).expect("compiles");
    std::iter::once(net.loss)
        .chain(net.grads.iter().copied())
        .map(|r| slope::graph::print::text(&net.graph, r))
        .collect()
}

/// fmt drops the parentheses of a left operand of the same precedence, so
/// `(a*b*…)/d*e` and `a*b*…/d*e` must be one graph, to the last bit. Found
/// by the compile_models fuzzer: the long parenthesised product lowered to
/// an n-ary product nested in a short one, and the gradient's folded
/// constant came out one ulp off the reformatted file's
/// (15.457155522420264 against …265).
#[test]
fn dropped_parentheses_do_not_change_the_graph() {
    let model = "\nmodel m {\n    input 1\n    dense 1 tanh\n    loss custom\n}\n";
    for loss in [
        "((2/pi/t*y/t*t*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*t*t/t/e/t/y)/(t*1)*(y + y + y)*y)",
        "((1e-1*y - t + y + y + y + y + y + y + y + y + y + y + y + y + y + y + y) - t + 3*y)",
        "(((y*e*y*pi*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y*y) * 3) * 0.7)",
    ] {
        let src = format!("loss custom(y, t) = {loss}{model}");
        let printed = check_file(&src);
        assert_eq!(graph_text(&src), graph_text(&printed), "{src}");
    }
}
