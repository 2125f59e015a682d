//! The smart constructors' local folds, and the verifier catching broken graphs.

use slope::graph::verify::verify;
use slope::graph::{Axes, Dim, Graph, LeafKind, Node, Op, Shape};

fn scalar_x() -> (Graph, slope::graph::NodeId) {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Scalar, Shape(vec![]));
    (g, x)
}

#[test]
fn trivial_cases_fold() {
    let (mut g, x) = scalar_x();
    let (zero, one, two, three) = (
        g.constant(0.0),
        g.constant(1.0),
        g.constant(2.0),
        g.constant(3.0),
    );
    assert_eq!(g.mul2(x, one), x); // x*1 = x
    assert_eq!(g.add2(x, zero), x); // x+0 = x
    assert_eq!(g.mul2(zero, x), zero); // 0*x = 0
    assert_eq!(g.mul_n(&[two, x, three]), {
        let six = g.constant(6.0);
        g.make(Op::Mul, &[six, x])
    }); // 2*x*3 = 6*x
    let nx = g.neg(x);
    assert_eq!(g.neg(nx), x); // -(-x) = x
    assert_eq!(g.pow_const(x, 1.0), x);
    assert_eq!(g.pow_const(x, 0.0), one);
    assert_eq!(g.pow_const(three, 2.0), g.constant(9.0));
    let r = g.recip(x);
    assert_eq!(g.recip(r), x); // 1/(1/x) = x
    assert_eq!(g.recip(two), g.constant(0.5)); // exact
    let r3 = g.recip(three);
    assert_eq!(g.node(r3).op, Op::Recip); // 1/3 kept symbolic
    assert_eq!(g.select(one, x, two), x);
    assert_eq!(g.select(zero, x, two), two);
}

#[test]
fn canonical_forms() {
    let (mut g, x) = scalar_x();
    let y = g.leaf("y", LeafKind::Scalar, Shape(vec![]));
    // x - y is x + (-1)*y; x/y is x * recip(y).
    let d = g.sub(x, y);
    let m1 = g.constant(-1.0);
    let ny = g.make(Op::Mul, &[m1, y]);
    assert_eq!(d, g.make(Op::Add, &[x, ny]));
    let q = g.div(x, y);
    let ry = g.make(Op::Recip, &[y]);
    assert_eq!(q, g.make(Op::Mul, &[x, ry]));
}

#[test]
fn scalars_broadcast_to_tensors() {
    let mut g = Graph::new();
    let shape = Shape(vec![Dim::Batch, Dim::Fixed(3)]);
    let a = g.leaf("a", LeafKind::Input, shape.clone());
    let two = g.constant(2.0);
    let m = g.mul2(two, a);
    assert_eq!(g.node(m).shape, shape);
    let b2 = g.node(m).args[0];
    assert_eq!(g.node(b2).op, Op::Broadcast(Axes(0b11)));
    // Repeated scalars combine before broadcasting: 2 * (1/B) * a.
    let bs = g.make(Op::BatchSize, &[]);
    let rb = g.recip(bs);
    let rbb = g.splat(rb, &shape);
    let q = g.mul_n(&[b2, rbb, a]);
    let s = g.node(q).args[0];
    assert_eq!(g.node(s).op, Op::Broadcast(Axes(0b11)));
    assert_eq!(g.node(g.node(s).args[0]).op, Op::Mul);
    // (xᵀ)ᵀ = x and (p·q)ᵀ = qᵀ·pᵀ.
    let w = g.leaf(
        "w",
        LeafKind::Param,
        Shape(vec![Dim::Fixed(2), Dim::Fixed(3)]),
    );
    let wt = g.transpose(w);
    assert_eq!(g.transpose(wt), w);
    let aw = g.make(Op::MatMul, &[a, wt]);
    let t = g.transpose(aw);
    let at = g.make(Op::Transpose, &[a]);
    assert_eq!(t, g.make(Op::MatMul, &[w, at]));
    verify(&g).unwrap();
}

#[test]
fn verify_catches_broken_graphs() {
    let (mut g, x) = scalar_x();
    let e = g.make(Op::Exp, &[x]);
    verify(&g).unwrap();
    // A node whose stored shape disagrees with its operands.
    let mut bad = g.clone();
    bad.dag[e].shape = Shape(vec![Dim::Fixed(2)]);
    assert!(verify(&bad).unwrap_err().contains("shape"));
    // A node whose operand list disagrees with its edges.
    let mut bad = g.clone();
    bad.dag[e].args.push(x);
    assert!(verify(&bad).is_err());
    // Wrong arity.
    let mut bad = g.clone();
    bad.dag.add_node(Node {
        op: Op::Add,
        args: vec![],
        shape: Shape(vec![]),
    });
    assert!(verify(&bad).unwrap_err().contains("operands"));
    // A cycle.
    let mut bad = g.clone();
    bad.dag.add_edge(e, x, 0);
    assert!(verify(&bad).is_err());
}
