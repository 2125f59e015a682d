//! Tensors of rank 3 and 4 (images `[B, C, H, W]`): fused element-wise
//! loops, broadcasts along any axes, sums over any axis set and row ops,
//! JIT (f32 and f64) against the f64 interpreter; gradients of a conv-bias
//! shaped graph; and the clear errors for what stays rank 2.

use slope::codegen::{Element, Jit, Signature};
use slope::graph::eval::{Env, Tensor, concrete, eval};
use slope::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Random values in [-2, 2) for every leaf of `g`.
fn leaves(g: &Graph, batch: usize, rng: &mut Rng) -> Env {
    let mut env = Env::new();
    for l in &g.leaves {
        let shape = concrete(&l.shape, batch);
        let n = shape.iter().product();
        let data = (0..n).map(|_| 4.0 * rng.next() - 2.0).collect();
        env.insert(l.name.clone(), Tensor::new(shape, data).expect("fits"));
    }
    env
}

/// The signature reading every leaf `outputs` depend on.
fn signature(g: &Graph, outputs: &[NodeId]) -> Signature {
    let inputs = g
        .topo_order(outputs)
        .into_iter()
        .filter(|&n| matches!(g.node(n).op, Op::Leaf(_)))
        .collect();
    Signature {
        inputs,
        outputs: outputs.to_vec(),
        updates: vec![],
    }
}

/// Runs `outputs` of `g` through the JIT in `T`.
fn run<T: Element>(g: &Graph, outputs: &[NodeId], env: &Env, batch: usize) -> Vec<Vec<f64>> {
    let sig = signature(g, outputs);
    let mut jit = Jit::new(1).expect("host JIT");
    let mut f = jit.compile::<T>(g, &sig, batch).expect("compiles");
    let data: Vec<Vec<T>> = sig
        .inputs
        .iter()
        .map(|&n| {
            let Op::Leaf(id) = g.node(n).op else {
                unreachable!("inputs are leaves")
            };
            let t = &env[&g.leaf_info(id).name];
            t.data.iter().map(|&v| T::from_f64(v)).collect()
        })
        .collect();
    let ins: Vec<&[T]> = data.iter().map(|d| d.as_slice()).collect();
    let mut outs: Vec<Vec<T>> = f
        .output_lens()
        .iter()
        .map(|&n| vec![T::default(); n])
        .collect();
    let mut refs: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.call(&ins, &mut [], &mut refs).expect("buffers fit");
    outs.into_iter()
        .map(|o| o.into_iter().map(T::to_f64).collect())
        .collect()
}

/// Checks the f32 and f64 JIT against the interpreter.
fn check(what: &str, g: &Graph, outputs: &[NodeId], batch: usize, rng: &mut Rng) {
    let env = leaves(g, batch, rng);
    let want = eval(g, outputs, &env, batch).expect("interpreter evaluates");
    for (tol, got) in [
        (5e-5, run::<f32>(g, outputs, &env, batch)),
        (1e-12, run::<f64>(g, outputs, &env, batch)),
    ] {
        for (k, (w, o)) in want.iter().zip(&got).enumerate() {
            assert_eq!(w.data.len(), o.len(), "{what}: output {k} length");
            for (i, (a, b)) in w.data.iter().zip(o).enumerate() {
                let ok = (a - b).abs() <= tol * (1.0 + a.abs());
                assert!(ok, "{what} (tol {tol}) output {k}[{i}]: want {a}, JIT {b}");
            }
        }
    }
}

fn fixed(d: &[usize]) -> Vec<Dim> {
    d.iter().map(|&n| Dim::Fixed(n)).collect()
}

/// `[B, rest...]`.
fn batched(rest: &[usize]) -> Shape {
    let mut v = vec![Dim::Batch];
    v.extend(fixed(rest));
    Shape(v)
}

/// The shape `to` with the axes in `axes` removed.
fn without(to: &Shape, axes: u8) -> Shape {
    Shape(
        to.0.iter()
            .enumerate()
            .filter(|(i, _)| axes & (1 << i) == 0)
            .map(|(_, d)| *d)
            .collect(),
    )
}

/// Image shapes, with tails that are no multiple of 4 (f32) or 2 (f64).
const IMAGES: &[&[usize]] = &[&[3, 5, 7], &[2, 1, 9], &[4, 3, 3], &[1, 6, 1], &[5, 2, 13]];

#[test]
fn elementwise_chains_of_rank_3_and_4() {
    let mut rng = Rng(3);
    for (batch, rest) in [(2, &[5, 7][..]), (3, &[1, 9]), (1, &[13, 3])] {
        let shape = batched(rest);
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, shape.clone());
        let y = g.leaf("y", LeafKind::Param, shape.clone());
        let xy = g.add(Op::Mul, &[x, y]).expect("mul");
        let nx = g.add(Op::Neg, &[x]).expect("neg");
        let e = g.add(Op::Exp, &[nx]).expect("exp");
        let s = g.add(Op::Add, &[xy, e]).expect("add");
        let t = g.add(Op::Tanh, &[s]).expect("tanh");
        let m = g.add(Op::Max, &[t, y]).expect("max");
        check(&format!("rank 3 {rest:?}"), &g, &[t, m], batch, &mut rng);
    }
    for rest in IMAGES {
        let shape = batched(rest);
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, shape.clone());
        let r = g.add(Op::Relu, &[x]).expect("relu");
        let sp = g.add(Op::Softplus, &[x]).expect("softplus");
        let p = g.add(Op::Mul, &[r, sp]).expect("mul");
        let sg = g.add(Op::Sigmoid, &[p]).expect("sigmoid");
        check(&format!("rank 4 {rest:?}"), &g, &[sg, p], 3, &mut rng);
    }
}

#[test]
fn broadcasts_along_any_axes_of_rank_4() {
    let mut rng = Rng(7);
    // Every proper, non-empty axis set of a rank-4 loop, one at a time.
    for rest in IMAGES {
        let full = batched(rest);
        for axes in 1u8..15 {
            let mut g = Graph::new();
            let x = g.leaf("x", LeafKind::Input, full.clone());
            let b = g.leaf("b", LeafKind::Param, without(&full, axes));
            let bb = g.broadcast(b, Axes(axes), full.clone()).expect("broadcast");
            let s = g.add(Op::Add, &[x, bb]).expect("add");
            let t = g.add(Op::Tanh, &[s]).expect("tanh");
            let what = format!("{rest:?} broadcast over {}", Axes(axes));
            check(&what, &g, &[t], 2, &mut rng);
        }
    }
}

#[test]
fn several_broadcasts_share_one_loop() {
    let mut rng = Rng(11);
    for (batch, rest) in [(2, &[3, 5, 7][..]), (3, &[4, 1, 6]), (1, &[2, 3, 9])] {
        let full = batched(rest);
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, full.clone());
        // A conv bias [C], a per-sample scale [B], a spatial mask [H, W],
        // a per-sample-and-channel shift [B, C] and a scalar.
        let mut terms = vec![x];
        for (name, axes) in [("c", 0b1101), ("b", 0b1110), ("hw", 0b0011), ("bc", 0b1100)] {
            let l = g.leaf(name, LeafKind::Param, without(&full, axes));
            terms.push(g.broadcast(l, Axes(axes), full.clone()).expect(name));
        }
        let s = g.leaf("s", LeafKind::Scalar, Shape(vec![]));
        let sb = g.broadcast(s, Axes(0b1111), full.clone()).expect("scalar");
        let sum = g.add(Op::Add, &terms).expect("add");
        let prod = g.add(Op::Mul, &[sum, sb, terms[1]]).expect("mul");
        let out = g.add(Op::Sin, &[prod]).expect("sin");
        // The broadcast `c` as an output is materialized on its own.
        check(
            &format!("{rest:?} mixed"),
            &g,
            &[out, terms[1]],
            batch,
            &mut rng,
        );
    }
}

#[test]
fn sums_over_any_axis_set() {
    let mut rng = Rng(13);
    for rest in IMAGES {
        let full = batched(rest);
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, full.clone());
        // A computed operand, so the sum reads a materialized buffer.
        let t = g.add(Op::Tanh, &[x]).expect("tanh");
        let outs: Vec<NodeId> = (0u8..16)
            .map(|axes| g.add(Op::Sum(Axes(axes)), &[t]).expect("sum"))
            .collect();
        check(&format!("sums of {rest:?}"), &g, &outs, 3, &mut rng);
    }
    // Rank 3 with the batch in the middle, and a sum feeding a fused loop.
    let shape = Shape(vec![Dim::Fixed(4), Dim::Batch, Dim::Fixed(6)]);
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, shape.clone());
    let s = g.add(Op::Sum(Axes(0b101)), &[x]).expect("sum");
    let e = g.add(Op::Exp, &[s]).expect("exp");
    let back = g.broadcast(e, Axes(0b101), shape).expect("broadcast");
    let y = g.add(Op::Mul, &[x, back]).expect("mul");
    let s2 = g.add(Op::Sum(Axes(0b010)), &[y]).expect("sum");
    check("rank 3 [4, B, 6]", &g, &[e, y, s2], 5, &mut rng);
}

#[test]
fn row_ops_run_along_the_last_axis_of_any_rank() {
    let mut rng = Rng(17);
    for rest in [&[3, 10][..], &[2, 3, 5]] {
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, batched(rest));
        let sm = g.add(Op::Softmax, &[x]).expect("softmax");
        let lse = g.add(Op::LogSumExp, &[x]).expect("logsumexp");
        let am = g.add(Op::ArgMax, &[x]).expect("argmax");
        let sm_alone = g.add(Op::Softmax, &[sm]).expect("softmax of softmax");
        check(
            &format!("row ops {rest:?}"),
            &g,
            &[sm, lse, am, sm_alone],
            3,
            &mut rng,
        );
    }
}

#[test]
fn gradients_of_a_conv_bias_match_the_interpreter() {
    let mut rng = Rng(19);
    let full = batched(&[3, 4, 5]);
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, full.clone());
    let bias = g.leaf("bias", LeafKind::Param, Shape(fixed(&[3])));
    let scale = g.leaf("scale", LeafKind::Param, Shape(fixed(&[4, 5])));
    let bb = g.broadcast(bias, Axes(0b1101), full.clone()).expect("bias");
    let sb = g
        .broadcast(scale, Axes(0b0011), full.clone())
        .expect("scale");
    let z = g.add(Op::Add, &[x, bb]).expect("add");
    let a = g.add(Op::Tanh, &[z]).expect("tanh");
    let y = g.add(Op::Mul, &[a, sb]).expect("mul");
    let sq = g.add(Op::Mul, &[y, y]).expect("square");
    let loss = g.add(Op::Sum(Axes(0b1111)), &[sq]).expect("loss");
    let grads = slope::diff::grad(&mut g, loss, &[bias, scale, x]);
    let mut outs = vec![loss];
    outs.extend(&grads.grads);
    check("conv bias gradients", &g, &outs, 2, &mut rng);
    let simple = slope::simplify::simplify(&mut g, &outs);
    let outs: Vec<NodeId> = outs.iter().map(|&o| simple.get(o)).collect();
    check("simplified conv bias gradients", &g, &outs, 2, &mut rng);
}

#[test]
fn a_rank_4_loop_that_is_a_matrix_compiles_to_the_matrix_code() {
    // [B, 8, 1, 1] plus a bias over {0, 2, 3} is [B, 8] plus a row bias.
    let clif = |shape: Shape, axes: u8| {
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, shape.clone());
        let b = g.leaf("b", LeafKind::Param, Shape(fixed(&[8])));
        let bb = g.broadcast(b, Axes(axes), shape).expect("broadcast");
        let s = g.add(Op::Add, &[x, bb]).expect("add");
        let t = g.add(Op::Relu, &[s]).expect("relu");
        let sig = signature(&g, &[t]);
        let mut jit = Jit::new(1).expect("host JIT");
        jit.clif::<f32>(&g, &sig, 3).expect("clif")
    };
    let matrix = clif(batched(&[8]), 0b01);
    let image = clif(batched(&[8, 1, 1]), 0b1101);
    assert_eq!(matrix, image);
}

#[test]
fn what_stays_rank_2_is_refused_with_the_op_and_shapes() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, batched(&[3, 4]));
    let w = g.leaf("w", LeafKind::Param, Shape(fixed(&[4, 2])));
    let t = g.leaf("t", LeafKind::Target, batched(&[2]));
    let err = |r: Result<NodeId, slope::graph::ShapeError>| r.expect_err("refused").to_string();
    assert_eq!(
        err(g.add(Op::Transpose, &[x])),
        "transpose needs a matrix, got [B, 3, 4]"
    );
    assert_eq!(
        err(g.add(Op::MatMul, &[x, w])),
        "matmul needs matrices [m, k] and [k, n], got [B, 3, 4] and [4, 2]"
    );
    assert_eq!(
        err(g.add(Op::OneHot(5), &[t])),
        "onehot needs a vector of class indices, got [B, 2]"
    );
    assert_eq!(
        err(g.add(Op::Add, &[x, t])),
        "add needs operands of equal shape, got [B, 3, 4] and [B, 2]"
    );
    assert_eq!(
        err(g.add(Op::Sum(Axes(0b1000)), &[x])),
        "sum over axes {3} of [B, 3, 4]: no such axis"
    );
    let to = batched(&[3, 4]);
    assert_eq!(
        g.broadcast(w, Axes(0b001), to)
            .expect_err("refused")
            .to_string(),
        "cannot broadcast [4, 2] along axes {0} to [B, 3, 4]"
    );
}
