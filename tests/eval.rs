//! The f64 reference interpreter against values derived by hand.

use slope::graph::eval::{Env, Tensor, eval, eval_scalar};
use slope::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape};

fn fixed(dims: &[usize]) -> Shape {
    Shape(dims.iter().map(|&d| Dim::Fixed(d)).collect())
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 * (1.0 + b.abs())
}

/// Evaluates `op(x)` for a scalar `x`.
fn unary(op: Op, x: f64) -> f64 {
    let mut g = Graph::new();
    let v = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let n = g.add(op, &[v]).unwrap();
    eval_scalar(&g, n, &[("x", x)]).unwrap()
}

/// Evaluates `op(a, b)` for scalars.
fn binary(op: Op, a: f64, b: f64) -> f64 {
    let mut g = Graph::new();
    let x = g.leaf("a", LeafKind::Scalar, Shape(vec![]));
    let y = g.leaf("b", LeafKind::Scalar, Shape(vec![]));
    let n = g.add(op, &[x, y]).unwrap();
    eval_scalar(&g, n, &[("a", a), ("b", b)]).unwrap()
}

#[test]
fn elementwise_scalars() {
    assert_eq!(unary(Op::Neg, 2.0), -2.0);
    assert_eq!(unary(Op::Recip, 4.0), 0.25);
    assert!(close(unary(Op::Exp, 1.0), std::f64::consts::E));
    assert!(close(unary(Op::Log, std::f64::consts::E), 1.0));
    assert_eq!(unary(Op::Sqrt, 9.0), 3.0);
    assert_eq!(unary(Op::Abs, -3.5), 3.5);
    assert!(close(unary(Op::Sin, std::f64::consts::FRAC_PI_2), 1.0));
    assert!(close(unary(Op::Cos, std::f64::consts::PI), -1.0));
    // tanh(ln 2) = (2 - 1/2)/(2 + 1/2) = 3/5.
    assert!(close(unary(Op::Tanh, 2f64.ln()), 0.6));
    // sigmoid(ln 3) = 1/(1 + 1/3) = 3/4.
    assert!(close(unary(Op::Sigmoid, 3f64.ln()), 0.75));
    assert_eq!(unary(Op::Relu, -1.0), 0.0);
    assert_eq!(unary(Op::Relu, 2.0), 2.0);
    // softplus(ln 3) = ln(1 + 3) = ln 4.
    assert!(close(unary(Op::Softplus, 3f64.ln()), 4f64.ln()));
    assert_eq!(binary(Op::Add, 2.0, 3.0), 5.0);
    assert_eq!(binary(Op::Mul, 2.0, 3.0), 6.0);
    assert_eq!(binary(Op::Pow, 2.0, 10.0), 1024.0);
    // An integer power of a negative base is real: (-2)^3 = -8.
    assert_eq!(binary(Op::Pow, -2.0, 3.0), -8.0);
    assert_eq!(binary(Op::Max, 2.0, 3.0), 3.0);
    assert_eq!(binary(Op::Min, 2.0, 3.0), 2.0);
    assert_eq!(binary(Op::Lt, 2.0, 3.0), 1.0);
    assert_eq!(binary(Op::Le, 3.0, 3.0), 1.0);
    assert_eq!(binary(Op::Gt, 2.0, 3.0), 0.0);
    assert_eq!(binary(Op::Ge, 2.0, 3.0), 0.0);
    assert_eq!(binary(Op::Eq, 3.0, 3.0), 1.0);
}

#[test]
fn stable_forms_never_overflow() {
    // sigmoid(±1000): exp(1000) overflows, the stable form does not.
    assert_eq!(unary(Op::Sigmoid, -1000.0), 0.0);
    assert_eq!(unary(Op::Sigmoid, 1000.0), 1.0);
    // softplus(1000) = 1000 + log1p(exp(-1000)) = 1000; softplus(-1000) = exp(-1000) ≈ 0.
    assert_eq!(unary(Op::Softplus, 1000.0), 1000.0);
    assert_eq!(unary(Op::Softplus, -1000.0), 0.0);
    // softplus(-40) ≈ exp(-40), kept to full relative precision by log1p.
    assert!(close(unary(Op::Softplus, -40.0), (-40f64).exp()));
}

#[test]
fn where_and_nary() {
    let mut g = Graph::new();
    let c = g.leaf("c", LeafKind::Scalar, Shape(vec![]));
    let a = g.leaf("a", LeafKind::Scalar, Shape(vec![]));
    let b = g.leaf("b", LeafKind::Scalar, Shape(vec![]));
    let w = g.add(Op::Where, &[c, a, b]).unwrap();
    assert_eq!(
        eval_scalar(&g, w, &[("c", 1.0), ("a", 2.0), ("b", 3.0)]).unwrap(),
        2.0
    );
    assert_eq!(
        eval_scalar(&g, w, &[("c", 0.0), ("a", 2.0), ("b", 3.0)]).unwrap(),
        3.0
    );
    let s = g.add(Op::Add, &[a, b, c]).unwrap();
    let p = g.add(Op::Mul, &[a, b, c]).unwrap();
    let vars = [("a", 2.0), ("b", 3.0), ("c", 4.0)];
    assert_eq!(eval_scalar(&g, s, &vars).unwrap(), 9.0);
    assert_eq!(eval_scalar(&g, p, &vars).unwrap(), 24.0);
}

fn t(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(shape.to_vec(), data.to_vec()).unwrap()
}

/// A graph with leaf `a` of the given shape, and the environment binding it.
fn with_leaf(shape: &[usize], data: &[f64]) -> (Graph, NodeId, Env) {
    let mut g = Graph::new();
    let a = g.leaf("a", LeafKind::Input, fixed(shape));
    let env = Env::from([("a".to_string(), t(shape, data))]);
    (g, a, env)
}

#[test]
fn matmul_and_transpose() {
    let mut g = Graph::new();
    let a = g.leaf("a", LeafKind::Input, fixed(&[2, 3]));
    let b = g.leaf("b", LeafKind::Input, fixed(&[3, 2]));
    let m = g.add(Op::MatMul, &[a, b]).unwrap();
    let at = g.add(Op::Transpose, &[a]).unwrap();
    let env = Env::from([
        ("a".to_string(), t(&[2, 3], &[1., 2., 3., 4., 5., 6.])),
        ("b".to_string(), t(&[3, 2], &[7., 8., 9., 10., 11., 12.])),
    ]);
    let out = eval(&g, &[m, at], &env, 1).unwrap();
    // [1 2 3; 4 5 6]·[7 8; 9 10; 11 12] = [58 64; 139 154].
    assert_eq!(out[0], t(&[2, 2], &[58., 64., 139., 154.]));
    assert_eq!(out[1], t(&[3, 2], &[1., 4., 2., 5., 3., 6.]));
}

#[test]
fn broadcast_and_sum() {
    let (mut g, a, env) = with_leaf(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let rows = g.add(Op::Sum(Axes(0b10)), &[a]).unwrap();
    let cols = g.add(Op::Sum(Axes(0b01)), &[a]).unwrap();
    let all = g.add(Op::Sum(Axes(0b11)), &[a]).unwrap();
    let back = g.broadcast(rows, Axes(0b10), fixed(&[2, 3])).unwrap();
    let colsb = g.broadcast(cols, Axes(0b01), fixed(&[2, 3])).unwrap();
    let out = eval(&g, &[rows, cols, all, back, colsb], &env, 1).unwrap();
    assert_eq!(out[0], t(&[2], &[6., 15.]));
    assert_eq!(out[1], t(&[3], &[5., 7., 9.]));
    assert_eq!(out[2], Tensor::scalar(21.0));
    assert_eq!(out[3], t(&[2, 3], &[6., 6., 6., 15., 15., 15.]));
    assert_eq!(out[4], t(&[2, 3], &[5., 7., 9., 5., 7., 9.]));
}

#[test]
fn softmax_logsumexp_argmax_onehot() {
    let l3 = 3f64.ln();
    let (mut g, a, env) = with_leaf(&[2, 2], &[0.0, l3, 1000.0, 1000.0]);
    let sm = g.add(Op::Softmax, &[a]).unwrap();
    let lse = g.add(Op::LogSumExp, &[a]).unwrap();
    let am = g.add(Op::ArgMax, &[a]).unwrap();
    let oh = g.add(Op::OneHot(3), &[am]).unwrap();
    let out = eval(&g, &[sm, lse, am, oh], &env, 1).unwrap();
    // softmax(0, ln 3) = (1, 3)/4; softmax(1000, 1000) = (1/2, 1/2) without overflow.
    let want = [0.25, 0.75, 0.5, 0.5];
    assert!(out[0].data.iter().zip(want).all(|(&a, b)| close(a, b)));
    // logsumexp(0, ln 3) = ln 4; logsumexp(1000, 1000) = 1000 + ln 2.
    assert!(close(out[1].data[0], 4f64.ln()));
    assert!(close(out[1].data[1], 1000.0 + 2f64.ln()));
    // The first maximum wins ties.
    assert_eq!(out[2], t(&[2], &[1.0, 0.0]));
    assert_eq!(out[3], t(&[2, 3], &[0., 1., 0., 1., 0., 0.]));
}

#[test]
fn onehot_out_of_range_is_a_zero_row() {
    let (mut g, a, env) = with_leaf(&[3], &[2.0, 5.0, -1.0]);
    let oh = g.add(Op::OneHot(3), &[a]).unwrap();
    let out = eval(&g, &[oh], &env, 1).unwrap();
    assert_eq!(out[0], t(&[3, 3], &[0., 0., 1., 0., 0., 0., 0., 0., 0.]));
}

#[test]
fn batch_dimension_and_batch_size() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, Shape(vec![Dim::Batch, Dim::Fixed(2)]));
    let s = g.add(Op::Sum(Axes(0b11)), &[x]).unwrap();
    let b = g.add(Op::BatchSize, &[]).unwrap();
    let r = g.add(Op::Recip, &[b]).unwrap();
    let mean = g.add(Op::Mul, &[s, r]).unwrap();
    let env = Env::from([("x".to_string(), t(&[3, 2], &[1., 2., 3., 4., 5., 6.]))]);
    // (1 + ... + 6)/3 = 7.
    assert_eq!(eval(&g, &[mean], &env, 3).unwrap()[0], Tensor::scalar(7.0));
    // The same environment with the wrong batch size is an error, not a panic.
    assert!(eval(&g, &[mean], &env, 4).is_err());
}

#[test]
fn missing_leaf_is_an_error() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    let err = eval(&g, &[x], &Env::new(), 1).unwrap_err();
    assert!(err.0.contains("`x`"), "{err}");
}
