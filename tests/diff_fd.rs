//! Symbolic derivatives against central finite differences in f64, on random
//! scalar expressions of depth up to 6 built directly as graphs.

use proptest::prelude::*;
use slope::diff::grad;
use slope::graph::eval::eval_scalar;
use slope::graph::verify::verify;
use slope::graph::{Graph, LeafKind, NodeId, Op, Shape};

/// A random scalar expression of `x` and `y`. Ops with a restricted domain
/// get operands that keep them inside it (`log(u^2 + 0.5)`).
#[derive(Clone, Debug)]
enum E {
    X,
    Y,
    C(f64),
    Un(Op, Box<E>),
    Bin(Op, Box<E>, Box<E>),
    Nary(Op, Vec<E>),
    PowN(Box<E>, f64),
    PowPos(Box<E>, Box<E>),
    Where(Box<E>, Box<E>, Box<E>),
}

fn expr() -> impl Strategy<Value = E> {
    let leaf = prop_oneof![
        Just(E::X),
        Just(E::Y),
        (-3.0..3.0f64).prop_map(|c| E::C((c * 4.0).round() / 4.0)),
    ];
    leaf.prop_recursive(6, 48, 3, |inner| {
        let unary = prop_oneof![
            Just(Op::Neg),
            Just(Op::Recip),
            Just(Op::Exp),
            Just(Op::Log),
            Just(Op::Sqrt),
            Just(Op::Abs),
            Just(Op::Sin),
            Just(Op::Cos),
            Just(Op::Tanh),
            Just(Op::Sigmoid),
            Just(Op::Relu),
            Just(Op::Softplus),
        ];
        let binary = prop_oneof![
            Just(Op::Max),
            Just(Op::Min),
            Just(Op::Lt),
            Just(Op::Le),
            Just(Op::Gt),
            Just(Op::Ge),
        ];
        prop_oneof![
            (unary, inner.clone()).prop_map(|(op, a)| E::Un(op, Box::new(a))),
            (binary, inner.clone(), inner.clone()).prop_map(|(op, a, b)| E::Bin(
                op,
                Box::new(a),
                Box::new(b)
            )),
            (
                prop_oneof![Just(Op::Add), Just(Op::Mul)],
                prop::collection::vec(inner.clone(), 2..4)
            )
                .prop_map(|(op, v)| E::Nary(op, v)),
            (
                inner.clone(),
                prop_oneof![Just(2.0), Just(3.0), Just(-1.0), Just(0.5), Just(-2.0)]
            )
                .prop_map(|(a, n)| E::PowN(Box::new(a), n)),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| E::PowPos(Box::new(a), Box::new(b))),
            (inner.clone(), inner.clone(), inner).prop_map(|(c, a, b)| E::Where(
                Box::new(c),
                Box::new(a),
                Box::new(b)
            )),
        ]
    })
}

/// `u^2 + 0.5`, positive for every `u`.
fn positive(g: &mut Graph, u: NodeId) -> NodeId {
    let two = g.constant(2.0);
    let half = g.constant(0.5);
    let sq = g.make(Op::Pow, &[u, two]);
    g.make(Op::Add, &[sq, half])
}

/// Builds the expression with raw ops (no folding), so every rule is exercised
/// on the form it was written for.
fn build(g: &mut Graph, e: &E) -> NodeId {
    match e {
        E::X => g.leaf("x", LeafKind::Scalar, Shape(vec![])),
        E::Y => g.leaf("y", LeafKind::Scalar, Shape(vec![])),
        E::C(c) => g.constant(*c),
        E::Un(op, a) => {
            let a = build(g, a);
            let a = match op {
                Op::Log | Op::Sqrt | Op::Recip => positive(g, a),
                _ => a,
            };
            g.make(*op, &[a])
        }
        E::Bin(op, a, b) => {
            let (a, b) = (build(g, a), build(g, b));
            g.make(*op, &[a, b])
        }
        E::Nary(op, v) => {
            let args: Vec<NodeId> = v.iter().map(|e| build(g, e)).collect();
            g.make(*op, &args)
        }
        E::PowN(a, n) => {
            let a = build(g, a);
            let a = if n.fract() != 0.0 || *n < 0.0 {
                positive(g, a)
            } else {
                a
            };
            let n = g.constant(*n);
            g.make(Op::Pow, &[a, n])
        }
        E::PowPos(a, b) => {
            let a = build(g, a);
            let a = positive(g, a);
            let b = build(g, b);
            g.make(Op::Pow, &[a, b])
        }
        E::Where(c, a, b) => {
            let (c, a, b) = (build(g, c), build(g, a), build(g, b));
            g.make(Op::Where, &[c, a, b])
        }
    }
}

/// Central difference of `f` at `p` along the variable `var`, with step `h`.
fn central(g: &Graph, root: NodeId, p: (f64, f64), var: usize, h: f64) -> f64 {
    let at = |d: f64| {
        let (x, y) = if var == 0 {
            (p.0 + d, p.1)
        } else {
            (p.0, p.1 + d)
        };
        eval_scalar(g, root, &[("x", x), ("y", y)]).expect("both leaves are bound")
    };
    (at(h) - at(-h)) / (2.0 * h)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn derivative_matches_finite_differences(e in expr(), x in -2.0..2.0f64, y in -2.0..2.0f64) {
        let mut g = Graph::new();
        let root = build(&mut g, &e);
        let vx = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
        let vy = g.leaf("y", LeafKind::Scalar, Shape(vec![]));
        let f = eval_scalar(&g, root, &[("x", x), ("y", y)]).unwrap();
        prop_assume!(f.is_finite() && f.abs() < 1e6);
        let grads = grad(&mut g, root, &[vx, vy]);
        prop_assert!(verify(&g).is_ok(), "{:?}", verify(&g));
        for (var, &d) in grads.grads.iter().enumerate() {
            let sym = eval_scalar(&g, d, &[("x", x), ("y", y)]).unwrap();
            let fd = central(&g, root, (x, y), var, 1e-5);
            let fd_half = central(&g, root, (x, y), var, 5e-6);
            // Near a kink or a jump the two differences disagree: not a smooth point.
            prop_assume!(fd.is_finite() && (fd - fd_half).abs() <= 1e-6 * (1.0 + fd.abs()));
            prop_assume!(sym.abs() < 1e6);
            prop_assert!(
                (sym - fd).abs() <= 1e-5 * (1.0 + fd.abs()),
                "d/d{} of {:?} at ({}, {}): symbolic {} vs finite difference {}",
                if var == 0 { "x" } else { "y" }, e, x, y, sym, fd
            );
        }
    }
}

/// Reads like the math: `d/dx f` at `x` against a hand-derived value.
fn check(build_f: impl Fn(&mut Graph, NodeId) -> NodeId, x: f64, want: f64) {
    let mut g = Graph::new();
    let vx = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let f = build_f(&mut g, vx);
    let d = grad(&mut g, f, &[vx]).grads[0];
    let got = eval_scalar(&g, d, &[("x", x)]).unwrap();
    assert!(
        (got - want).abs() <= 1e-12 * (1.0 + want.abs()),
        "got {got}, want {want}"
    );
}

#[test]
fn kinks_take_the_rules_values() {
    // relu'(0) = 0, abs'(0) = 0.
    check(|g, x| g.make(Op::Relu, &[x]), 0.0, 0.0);
    check(|g, x| g.make(Op::Abs, &[x]), 0.0, 0.0);
    // max(x, 1)' at x = 1: where(x > 1, 1, 0) = 0; min(x, 1)' at 1: 0 too.
    check(
        |g, x| {
            let c = g.constant(1.0);
            g.make(Op::Max, &[x, c])
        },
        1.0,
        0.0,
    );
    check(
        |g, x| {
            let c = g.constant(1.0);
            g.make(Op::Min, &[x, c])
        },
        1.0,
        0.0,
    );
    // max(x, x^2)' at x = 2: x^2 wins, so 2x = 4.
    check(
        |g, x| {
            let s = g.pow_const(x, 2.0);
            g.make(Op::Max, &[x, s])
        },
        2.0,
        4.0,
    );
}

#[test]
fn textbook_derivatives() {
    // d/dx x^3/3 = x^2: 4 at x = 2.
    check(
        |g, x| {
            let c = g.pow_const(x, 3.0);
            let t = g.constant(3.0);
            g.div(c, t)
        },
        2.0,
        4.0,
    );
    // d/dx sigmoid(x) at 0 = 1/4.
    check(|g, x| g.make(Op::Sigmoid, &[x]), 0.0, 0.25);
    // d/dx tanh(x) at 0 = 1.
    check(|g, x| g.make(Op::Tanh, &[x]), 0.0, 1.0);
    // d/dx softplus(x) at 0 = sigmoid(0) = 1/2.
    check(|g, x| g.make(Op::Softplus, &[x]), 0.0, 0.5);
    // d/dx x^x = x^x (log x + 1): at e, e^e * 2.
    let e = std::f64::consts::E;
    check(|g, x| g.make(Op::Pow, &[x, x]), e, 2.0 * e.powf(e));
    // (-x)^3 has a negative base with an integer power: d/dx = -3x^2 = -12 at 2.
    check(
        |g, x| {
            let n = g.neg(x);
            g.pow_const(n, 3.0)
        },
        2.0,
        -12.0,
    );
    // d/dx 1/x = -1/x^2 = -1/4 at 2.
    check(|g, x| g.recip(x), 2.0, -0.25);
}

#[test]
fn activation_rules_reuse_the_forward_node() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    for op in [Op::Sigmoid, Op::Tanh, Op::Exp, Op::Sqrt] {
        let f = g.make(op, &[x]);
        let d = grad(&mut g, f, &[x]).grads[0];
        let uses = g.topo_order(&[d]);
        assert!(uses.contains(&f), "{op:?}' does not use the {op:?} node");
    }
    // softplus' is sigmoid(x): the same node as a sigmoid built directly.
    let sp = g.make(Op::Softplus, &[x]);
    let d = grad(&mut g, sp, &[x]).grads[0];
    let s = g.make(Op::Sigmoid, &[x]);
    assert_eq!(d, s);
}

#[test]
fn steps_name_the_rules() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let s = g.make(Op::Sin, &[x]);
    let f = g.pow_const(s, 2.0);
    let grads = grad(&mut g, f, &[x]);
    let names: Vec<&str> = grads.steps.iter().map(|s| s.rule.name()).collect();
    assert_eq!(names, ["power rule", "sin rule"]);
    assert_eq!(grads.adjoint(s), Some(grads.steps[0].produced));
}

#[test]
fn unreachable_variable_gets_zero() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let y = g.leaf("y", LeafKind::Scalar, Shape(vec![]));
    let f = g.make(Op::Exp, &[x]);
    let grads = grad(&mut g, f, &[y]);
    assert_eq!(g.const_value(grads.grads[0]), Some(0.0));
}

/// Formulas as users write them, through the parser and lowering: the
/// derivative by `x` against central differences at points away from kinks.
#[test]
fn parsed_formulas_match_finite_differences() {
    let formulas = [
        "x^3 / 3",
        "-x^2",
        "2^-x",
        "x^x",
        "e^x * pi",
        "sigmoid(x) * tanh(x)",
        "relu(x) + softplus(x)",
        "identity(x) + leaky_relu(x) + elu(x) + swish(x) + gelu(x)",
        "softsign(x) + mish(x) + softsign(2*x)*mish(-x)",
        "exp(sin(x)) / (1 + cos(x)^2)",
        "log(1 + x^2) + sqrt(1 + x^2)",
        "abs(x) * max(x, 0.5) + min(x, -0.5)",
        "where(x > 0, x^2, -x) + (x < 1)",
        "1 / (1 + exp(-x))",
        "(x - 1) * (x + 2) / (x^2 + 1)",
    ];
    for src in formulas {
        let expr = slope::syntax::parse_expr(src).unwrap_or_else(|d| panic!("{src}: {d:?}"));
        let mut g = Graph::new();
        let root = slope::lower::lower_formula(&mut g, &expr, None).unwrap();
        let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
        let d = grad(&mut g, root, &[x]).grads[0];
        verify(&g).unwrap();
        for p in [-1.7, -0.3, 0.2, 0.9, 1.6] {
            let f = |v: f64| eval_scalar(&g, root, &[("x", v)]).unwrap();
            let h = 1e-6;
            let fd = (f(p + h) - f(p - h)) / (2.0 * h);
            let sym = eval_scalar(&g, d, &[("x", p)]).unwrap();
            if src == "x^x" && p < 0.0 {
                continue;
            }
            assert!(
                (sym - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                "d/dx {src} at {p}: symbolic {sym} vs finite difference {fd}"
            );
        }
    }
}
