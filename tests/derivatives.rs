//! The derivative table: each row reads like the math (`"x^3" => "3*x^2"`,
//! d/dx), is checked against central finite differences in f64, and its
//! printed derivative is parsed back and must give the same values.

use proptest::prelude::*;
use slope::graph::eval::eval_scalar;
use slope::graph::print::text;
use slope::graph::{Graph, LeafKind, NodeId, Shape};
use slope::{diff, lower, simplify, syntax};

/// The variables any test expression may use; `x` is differentiated by.
const VARS: &[&str] = &["x", "y", "n"];

/// Points (x, y, n) away from every kink of the table's expressions.
const POINTS: &[(f64, f64, f64)] = &[(0.37, 0.7, 2.5), (1.3, -0.4, 3.0), (2.1, 1.9, -1.5)];

/// Parses and lowers `src` into `g`, with a scalar leaf for each of [`VARS`].
fn build(g: &mut Graph, src: &str) -> NodeId {
    let expr = syntax::parse_expr(src).unwrap_or_else(|d| panic!("{src}: {d:?}"));
    let leaves: Vec<NodeId> = VARS
        .iter()
        .map(|v| g.leaf(v, LeafKind::Scalar, Shape(vec![])))
        .collect();
    let mut var = |name: &str| {
        let i = VARS
            .iter()
            .position(|v| *v == name)
            .expect("test expressions use x, y, n only");
        leaves[i]
    };
    lower::lower_scalar(g, &expr, None, &mut var).unwrap_or_else(|d| panic!("{src}: {d:?}"))
}

/// d/dx of `src`: the graph, the expression, and the simplified derivative.
fn derive(src: &str) -> (Graph, NodeId, NodeId) {
    let mut g = Graph::new();
    let f = build(&mut g, src);
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let d = diff::grad(&mut g, f, &[x]).grads[0];
    let d = simplify::simplify(&mut g, &[d]).roots[0];
    (g, f, d)
}

fn at(g: &Graph, id: NodeId, (x, y, n): (f64, f64, f64)) -> f64 {
    eval_scalar(g, id, &[("x", x), ("y", y), ("n", n)]).expect("all leaves are bound")
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
}

#[rustfmt::skip]
const TABLE: &[(&str, &str)] = &[
    ("5",                         "0"),
    ("x",                         "1"),
    ("y",                         "0"),
    ("x + y",                     "1"),
    ("x - 3",                     "1"),
    ("3*x",                       "3"),
    ("x*y",                       "y"),
    ("x/y",                       "1/y"),
    ("y/x",                       "-y/x^2"),
    ("1/x",                       "-1/x^2"),
    ("x^2",                       "2*x"),
    ("x^3",                       "3*x^2"),
    ("x^-1",                      "-1/x^2"),
    ("x^0.5",                     "1/(2*x^0.5)"),
    ("x^n",                       "n*x^(n - 1)"),
    ("2^x",                       "log(2)*2^x"),
    ("x^x",                       "(log(x) + 1)*x^x"),
    ("x^y",                       "y*x^(y - 1)"),
    ("e^x",                       "e^x"),
    ("pi*x",                      "pi"),
    ("e",                         "0"),
    ("(x + 1)^2",                 "2*(x + 1)"),
    ("(2*x + 1)^3",               "6*(2*x + 1)^2"),
    ("exp(x)",                    "exp(x)"),
    ("exp(-x)",                   "-exp(-x)"),
    ("exp(x^2)",                  "2*x*exp(x^2)"),
    ("log(x)",                    "1/x"),
    ("log(2*x)",                  "1/x"),
    ("log(x^2 + 1)",              "2*x/(x^2 + 1)"),
    ("sqrt(x)",                   "1/(2*sqrt(x))"),
    ("sqrt(1 + x^2)",             "x/sqrt(x^2 + 1)"),
    ("abs(x)",                    "where(x > 0, 1, where(x < 0, -1, 0))"),
    ("sin(x)",                    "cos(x)"),
    ("cos(x)",                    "-sin(x)"),
    ("sin(2*x)",                  "2*cos(2*x)"),
    ("cos(x^2)",                  "-2*x*sin(x^2)"),
    ("sin(x)*cos(x)",             "cos(x)^2 - sin(x)^2"),
    ("tanh(x)",                   "1 - tanh(x)^2"),
    ("tanh(2*x)",                 "2*(1 - tanh(2*x)^2)"),
    ("sigmoid(x)",                "sigmoid(x)*(1 - sigmoid(x))"),
    ("sigmoid(-x)",               "-sigmoid(-x)*(1 - sigmoid(-x))"),
    ("relu(x)",                   "where(x > 0, 1, 0)"),
    ("softplus(x)",               "sigmoid(x)"),
    ("identity(x)",               "1"),
    ("leaky_relu(x)",             "where(x > 0, 1, 0.01)"),
    ("elu(x)",                    "where(x > 0, 1, exp(x))"),
    ("swish(x)",                  "sigmoid(x)*(x*(1 - sigmoid(x)) + 1)"),
    ("softsign(x)",               "1/(abs(x) + 1) - abs(x)/(abs(x) + 1)^2"),
    ("mish(x)",                   "tanh(softplus(x)) + x*sigmoid(x)*(1 - tanh(softplus(x))^2)"),
    ("gelu(x)",                   "(tanh(sqrt(2/pi)*(x + 0.044715*x^3)) + 1)/2 + (1 - tanh(sqrt(2/pi)*(x + 0.044715*x^3))^2)*(0.134145*x^3/sqrt(2*pi) + x/sqrt(2*pi))"),
    ("max(x, 0)",                 "where(x > 0, 1, 0)"),
    ("max(x, y)",                 "where(x > y, 1, 0)"),
    ("min(x, 1)",                 "where(x < 1, 1, 0)"),
    ("min(x, x^2)",               "where(x < x^2, 1, 2*x)"),
    ("where(x > 0, x^2, -x)",     "where(x > 0, 2*x, -1)"),
    ("where(x < y, x, y)",        "where(x < y, 1, 0)"),
    ("x > 0",                     "0"),
    ("x <= y",                    "0"),
    ("x*(x > 0)",                 "x > 0"),
    ("x*exp(x)",                  "exp(x)*(x + 1)"),
    ("x^2*sin(x)",                "cos(x)*x^2 + 2*x*sin(x)"),
    ("exp(x)/x",                  "exp(x)*(1/x - 1/x^2)"),
    ("sin(x)/cos(x)",             "sin(x)^2/cos(x)^2 + 1"),
    ("log(sigmoid(x))",           "1 - sigmoid(x)"),
    ("log(1 - sigmoid(x))",       "-sigmoid(x)"),
    ("exp(log(x))",               "1"),
    ("log(exp(x))",               "1"),
    ("x*log(x) - x",              "log(x)"),
    ("1/(1 + exp(-x))",           "exp(-x)/(exp(-x) + 1)^2"),
    ("(x - 1)/(x + 1)",           "1/(x + 1) - (x - 1)/(x + 1)^2"),
    ("sqrt(x)*sqrt(x)",           "1"),
    ("-x^2",                      "-2*x"),
    ("2*x^3 - 4*x + 7",           "6*x^2 - 4"),
    ("x^2 + x^2",                 "4*x"),
    ("sin(cos(x))",               "-sin(x)*cos(cos(x))"),
    ("exp(sin(x^2))",             "2*x*exp(sin(x^2))*cos(x^2)"),
    ("tanh(x)^2",                 "2*tanh(x)*(1 - tanh(x)^2)"),
    ("y*x^2",                     "2*x*y"),
    ("sqrt(2/pi)*x",              "sqrt(2/pi)"),
    ("x/sqrt(2*pi)",              "1/sqrt(2*pi)"),
    ("x^2/sqrt(2)",               "2*x/sqrt(2)"),
    ("0.7071067811865476*x^2",    "sqrt(2)*x"),
    ("x/3 + 1",                   "1/3"),
    ("x^3/9",                     "x^2/3"),
    ("x - y + 1",                 "1"),
    ("x*log(x)",                  "log(x) + 1"),
    ("x^2/2 - y*x + 3*x",         "x - y + 3"),
    ("3*x - x^2/2",               "3 - x"),
    ("-x^2/2 - x",                "-x - 1"),
];

/// Constants that print as formulas (`sqrt(2/pi)`, `1/3`) read back to the
/// very same `f64`, and those that are not exactly a formula keep their digits.
#[test]
fn named_constants_read_back_bit_exact() {
    use std::f64::consts::{E, FRAC_1_SQRT_2, PI};
    let cases: &[(f64, &str)] = &[
        (PI, "pi"),
        (E, "e"),
        ((2.0 / PI).sqrt(), "sqrt(2/pi)"),
        (1.0 / (2.0 * PI).sqrt(), "1/sqrt(2*pi)"),
        (2f64.sqrt(), "sqrt(2)"),
        (1.0 / 2f64.sqrt(), "1/sqrt(2)"),
        (FRAC_1_SQRT_2, "sqrt(2)/2"),
        (2f64.ln(), "log(2)"),
        (1.0 / 3.0, "1/3"),
        (2.0 / 3.0, "2/3"),
        (2.0 * PI, "2*pi"),
        (PI / 2.0, "pi/2"),
        (0.5, "0.5"),
        (0.1, "0.1"),
        (0.044715, "0.044715"),
        (0.6666666666666667, "0.6666666666666667"),
        (-(2.0 / PI).sqrt(), "-sqrt(2/pi)"),
    ];
    for &(v, want) in cases {
        let mut g = Graph::new();
        let c = g.constant(v);
        assert_eq!(text(&g, c), want, "{v:?}");
        let mut back = Graph::new();
        let r = build(&mut back, want);
        let again = at(&back, r, POINTS[0]);
        assert_eq!(
            again.to_bits(),
            v.to_bits(),
            "{want} reads back as {again:?}, not {v:?}"
        );
    }
}

#[test]
fn derivative_table() {
    assert!(TABLE.len() >= 60);
    for &(src, want) in TABLE {
        let (g, f, d) = derive(src);
        assert_eq!(text(&g, d), want, "d/dx {src}");
        let mut back = Graph::new();
        let reparsed = build(&mut back, want);
        for &p in POINTS {
            let value = at(&g, d, p);
            let h = 1e-6;
            let fd = (at(&g, f, (p.0 + h, p.1, p.2)) - at(&g, f, (p.0 - h, p.1, p.2))) / (2.0 * h);
            if value.is_finite() && fd.is_finite() {
                assert!(
                    close(value, fd, 1e-5),
                    "d/dx {src} at {p:?}: {value} vs finite difference {fd}"
                );
            }
            let again = at(&back, reparsed, p);
            assert!(
                close(value, again, 1e-12) || (value.is_nan() && again.is_nan()),
                "{want} read back gives {again}, not {value}"
            );
        }
    }
}

/// Random `.nn` expressions in x and y, up to 6 levels deep.
fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("x".to_string()),
        Just("y".to_string()),
        prop::sample::select(vec!["2", "0.5", "3", "e", "pi"]).prop_map(str::to_string),
    ];
    leaf.prop_recursive(6, 40, 2, |inner| {
        let f = prop::sample::select(vec![
            "exp", "log", "sqrt", "abs", "sin", "cos", "tanh", "sigmoid", "relu", "softplus",
            "swish", "elu",
        ]);
        let op = prop::sample::select(vec!["+", "-", "*", "/", "^"]);
        prop_oneof![
            (f, inner.clone()).prop_map(|(f, a)| format!("{f}({a})")),
            inner.clone().prop_map(|a| format!("-{a}")),
            (inner.clone(), op, inner.clone()).prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("max({a}, {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, a, b)| format!("where({c} > 1, {a}, {b})")),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The printed derivative parses back to the same values.
    #[test]
    fn printed_derivative_reads_back(src in expr(), x in 0.1f64..3.0, y in -2.0f64..2.0) {
        let (g, _, d) = derive(&src);
        let printed = text(&g, d);
        let mut back = Graph::new();
        let reparsed = build(&mut back, &printed);
        let p = (x, y, 1.0);
        let (a, b) = (at(&g, d, p), at(&back, reparsed, p));
        if a.is_finite() && a.abs() < 1e6 {
            prop_assert!(close(a, b, 1e-9), "d/dx {} = {} gives {}, read back {}", src, printed, a, b);
        }
    }
}
