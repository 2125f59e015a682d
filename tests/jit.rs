//! The JIT against the f64 interpreter (`graph::eval`) for every op and for
//! whole networks, and JIT gradients against central finite differences.

use slope::codegen::{CallError, Element, Jit, Signature};
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
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.next()
    }
}

/// Random values for every leaf of `g`: positive where `positive` says.
fn leaves(g: &Graph, batch: usize, rng: &mut Rng, lo: f64, hi: f64) -> Env {
    let mut env = Env::new();
    for l in &g.leaves {
        let shape = concrete(&l.shape, batch);
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.range(lo, hi)).collect();
        env.insert(
            l.name.clone(),
            Tensor::new(shape, data).expect("length matches shape"),
        );
    }
    env
}

/// Runs `outputs` of `g` through the JIT in `T`, with every leaf as input.
fn run<T: Element>(g: &Graph, outputs: &[NodeId], env: &Env, batch: usize) -> Vec<Vec<f64>> {
    let inputs: Vec<NodeId> = g
        .topo_order(outputs)
        .into_iter()
        .filter(|&n| matches!(g.node(n).op, Op::Leaf(_)))
        .collect();
    let sig = Signature {
        inputs: inputs.clone(),
        outputs: outputs.to_vec(),
        updates: vec![],
    };
    let mut jit = Jit::new(1).expect("host JIT");
    let mut f = jit.compile::<T>(g, &sig, batch).expect("compiles");
    let data: Vec<Vec<T>> = inputs
        .iter()
        .map(|&n| {
            let Op::Leaf(id) = g.node(n).op else {
                unreachable!("inputs are leaves")
            };
            env[&g.leaf_info(id).name]
                .data
                .iter()
                .map(|&v| T::from_f64(v))
                .collect()
        })
        .collect();
    let ins: Vec<&[T]> = data.iter().map(|d| d.as_slice()).collect();
    let mut outs: Vec<Vec<T>> = f
        .output_lens()
        .iter()
        .map(|&n| vec![T::default(); n])
        .collect();
    let mut out_refs: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.call(&ins, &mut [], &mut out_refs).expect("buffers fit");
    outs.into_iter()
        .map(|o| o.into_iter().map(T::to_f64).collect())
        .collect()
}

/// Checks the f32 and f64 JIT against the interpreter.
fn check(what: &str, g: &Graph, outputs: &[NodeId], env: &Env, batch: usize) {
    let want = eval(g, outputs, env, batch).expect("interpreter evaluates");
    for (tol, got) in [
        (2e-5, run::<f32>(g, outputs, env, batch)),
        (1e-12, run::<f64>(g, outputs, env, batch)),
    ] {
        for (w, o) in want.iter().zip(&got) {
            assert_eq!(w.data.len(), o.len(), "{what}: length");
            for (i, (a, b)) in w.data.iter().zip(o).enumerate() {
                let ok = (a - b).abs() <= tol * (1.0 + a.abs()) || (a.is_nan() && b.is_nan());
                assert!(
                    ok,
                    "{what} (tol {tol}): element {i}: interpreter {a}, JIT {b}"
                );
            }
        }
    }
}

fn shapes(rng: &mut Rng) -> Vec<Shape> {
    let mut n = || Dim::Fixed(1 + (rng.next() * 19.0) as usize);
    vec![
        Shape(vec![]),
        Shape(vec![n()]),
        Shape(vec![Dim::Batch, n()]),
        Shape(vec![n(), n()]),
        Shape(vec![Dim::Batch, Dim::Fixed(37)]),
    ]
}

#[test]
fn every_elementwise_op_matches_the_interpreter() {
    let mut rng = Rng(7);
    let unary = [
        Op::Neg,
        Op::Recip,
        Op::Exp,
        Op::Log,
        Op::Sqrt,
        Op::Abs,
        Op::Sin,
        Op::Cos,
        Op::Tanh,
        Op::Sigmoid,
        Op::Relu,
        Op::Softplus,
    ];
    let binary = [
        Op::Add,
        Op::Mul,
        Op::Pow,
        Op::Max,
        Op::Min,
        Op::Lt,
        Op::Le,
        Op::Gt,
        Op::Ge,
        Op::Eq,
    ];
    for batch in [1, 3, 6] {
        for shape in shapes(&mut rng) {
            for op in unary {
                let mut g = Graph::new();
                let a = g.leaf("a", LeafKind::Input, shape.clone());
                let y = g.add(op, &[a]).expect("unary");
                let (lo, hi) = if matches!(op, Op::Log | Op::Sqrt | Op::Recip) {
                    (0.1, 5.0)
                } else {
                    (-6.0, 6.0)
                };
                let env = leaves(&g, batch, &mut rng, lo, hi);
                check(
                    &format!("{op:?} {shape:?} B={batch}"),
                    &g,
                    &[y],
                    &env,
                    batch,
                );
            }
            for op in binary {
                let mut g = Graph::new();
                let a = g.leaf("a", LeafKind::Input, shape.clone());
                let b = g.leaf("b", LeafKind::Input, shape.clone());
                let y = g.add(op, &[a, b]).expect("binary");
                let mut env = leaves(&g, batch, &mut rng, 0.2, 3.0);
                if matches!(op, Op::Eq | Op::Le | Op::Ge) {
                    // Equal elements exercise the boundary.
                    let a = env["a"].clone();
                    env.insert("b".into(), a);
                }
                check(
                    &format!("{op:?} {shape:?} B={batch}"),
                    &g,
                    &[y],
                    &env,
                    batch,
                );
            }
            // Three operands, a where with zeros, constants, batch size, integer powers.
            let mut g = Graph::new();
            let a = g.leaf("a", LeafKind::Input, shape.clone());
            let b = g.leaf("b", LeafKind::Input, shape.clone());
            let c = g.leaf("c", LeafKind::Input, shape.clone());
            let add3 = g.add(Op::Add, &[a, b, c]).expect("add");
            let mul3 = g.add(Op::Mul, &[a, b, c]).expect("mul");
            let gt = g.add(Op::Gt, &[a, b]).expect("gt");
            let wh = g.add(Op::Where, &[gt, b, c]).expect("where");
            let mut pows = vec![];
            for k in [-3.0, -1.0, 0.0, 1.0, 2.0, 3.0, 7.0, 0.5, 1.7] {
                let kc = g.constant(k);
                let kb = if shape.0.is_empty() {
                    kc
                } else {
                    g.broadcast(kc, Axes((1 << shape.0.len()) - 1), shape.clone())
                        .expect("bcast")
                };
                pows.push(g.add(Op::Pow, &[a, kb]).expect("pow"));
            }
            let bs = g.add(Op::BatchSize, &[]).expect("batch size");
            let bsb = if shape.0.is_empty() {
                bs
            } else {
                g.broadcast(bs, Axes((1 << shape.0.len()) - 1), shape.clone())
                    .expect("bcast")
            };
            let scaled = g.add(Op::Mul, &[a, bsb]).expect("mul");
            let mut outs = vec![add3, mul3, wh, scaled];
            outs.extend(pows);
            let env = leaves(&g, batch, &mut rng, 0.3, 2.0);
            check(
                &format!("mixed {shape:?} B={batch}"),
                &g,
                &outs,
                &env,
                batch,
            );
        }
    }
}

/// Constant-only sub-expressions are folded in f64 before code generation:
/// in f32, `pi` rounds up and `sin(pi)` is -8.7e-8, so `log(sin(pi))` would
/// be NaN where f64 (and the interpreter) give -36.6. Found by the
/// `compile_models` fuzz target in an activation's constant term.
#[test]
fn constant_subexpressions_are_folded_in_f64() {
    let mut rng = Rng(13);
    for batch in [1, 4] {
        let mut g = Graph::new();
        let full = Shape(vec![Dim::Batch, Dim::Fixed(3)]);
        let x = g.leaf("x", LeafKind::Input, full.clone());
        let pi = g.constant(std::f64::consts::PI);
        let s = g.add(Op::Sin, &[pi]).expect("sin");
        let l = g.add(Op::Log, &[s]).expect("log");
        let lb = g.broadcast(l, Axes(0b11), full.clone()).expect("bcast");
        // Used twice, as an output, inside a sum and as an exponent.
        let y = g.add(Op::Add, &[x, lb]).expect("add");
        let two = g.constant(2.0);
        let k = g.add(Op::Add, &[two, s]).expect("2 + sin(pi)");
        let kb = g.broadcast(k, Axes(0b11), full.clone()).expect("bcast");
        let sq = g.add(Op::Mul, &[x, x]).expect("x*x");
        let p = g.add(Op::Pow, &[sq, kb]).expect("pow");
        let bs = g.add(Op::BatchSize, &[]).expect("batch size");
        let per_row = g.add(Op::Mul, &[l, bs]).expect("mul");
        let env = leaves(&g, batch, &mut rng, 0.5, 2.0);
        let want = eval(&g, &[l], &env, batch).expect("evaluates");
        assert!((want[0].data[0] - (1.2246e-16f64).ln()).abs() < 1e-3);
        check(
            &format!("log(sin(pi)) B={batch}"),
            &g,
            &[y, l, lb, p, per_row],
            &env,
            batch,
        );
    }
}

#[test]
fn broadcasts_index_without_copies() {
    let mut rng = Rng(11);
    for (batch, n) in [(1, 1), (3, 5), (5, 4), (7, 13), (2, 37)] {
        let mut g = Graph::new();
        let full = Shape(vec![Dim::Batch, Dim::Fixed(n)]);
        let x = g.leaf("x", LeafKind::Input, full.clone());
        let row = g.leaf("row", LeafKind::Param, Shape(vec![Dim::Fixed(n)]));
        let col = g.leaf("col", LeafKind::Input, Shape(vec![Dim::Batch]));
        let s = g.leaf("s", LeafKind::Scalar, Shape(vec![]));
        let rb = g.broadcast(row, Axes(0b01), full.clone()).expect("rows");
        let cb = g.broadcast(col, Axes(0b10), full.clone()).expect("cols");
        let sb = g.broadcast(s, Axes(0b11), full.clone()).expect("scalar");
        let sum = g.add(Op::Add, &[x, rb, cb]).expect("add");
        let prod = g.add(Op::Mul, &[sum, sb]).expect("mul");
        let t = g.add(Op::Tanh, &[prod]).expect("tanh");
        // A broadcast that is itself an output is materialized.
        let env = leaves(&g, batch, &mut rng, -2.0, 2.0);
        check(
            &format!("broadcast B={batch} n={n}"),
            &g,
            &[t, rb, cb],
            &env,
            batch,
        );
    }
}

#[test]
fn matmul_transpose_and_reductions_match_the_interpreter() {
    let mut rng = Rng(5);
    for (batch, k, n) in [(1, 1, 1), (3, 5, 7), (4, 64, 32), (9, 3, 10), (33, 17, 2)] {
        let mut g = Graph::new();
        let x = g.leaf("x", LeafKind::Input, Shape(vec![Dim::Batch, Dim::Fixed(k)]));
        let w = g.leaf(
            "w",
            LeafKind::Param,
            Shape(vec![Dim::Fixed(n), Dim::Fixed(k)]),
        );
        let wt = g.add(Op::Transpose, &[w]).expect("transpose");
        let z = g.add(Op::MatMul, &[x, wt]).expect("x·wᵀ");
        let zt = g.add(Op::Transpose, &[z]).expect("zᵀ");
        let gw = g.add(Op::MatMul, &[zt, x]).expect("zᵀ·x");
        let xt = g.add(Op::Transpose, &[x]).expect("xᵀ");
        let xtt = g.add(Op::Transpose, &[xt]).expect("xᵀᵀ");
        let zz = g.add(Op::MatMul, &[xtt, wt]).expect("(xᵀ)ᵀ·wᵀ");
        let mut outs = vec![z, gw, xt, zz];
        for axes in [0b00, 0b01, 0b10, 0b11] {
            outs.push(g.add(Op::Sum(Axes(axes)), &[z]).expect("sum"));
        }
        let zrow = g.add(Op::Sum(Axes(0b01)), &[z]).expect("sum rows");
        outs.push(g.add(Op::Sum(Axes(0b1)), &[zrow]).expect("sum vector"));
        outs.push(g.add(Op::Softmax, &[z]).expect("softmax"));
        outs.push(g.add(Op::LogSumExp, &[z]).expect("lse"));
        outs.push(g.add(Op::ArgMax, &[z]).expect("argmax"));
        outs.push(g.add(Op::Softmax, &[zrow]).expect("softmax of a vector"));
        outs.push(g.add(Op::LogSumExp, &[zrow]).expect("lse of a vector"));
        let env = leaves(&g, batch, &mut rng, -3.0, 3.0);
        check(
            &format!("matmul B={batch} k={k} n={n}"),
            &g,
            &outs,
            &env,
            batch,
        );
    }
}

#[test]
fn onehot_and_argmax_handle_edges() {
    let mut g = Graph::new();
    let t = g.leaf("t", LeafKind::Target, Shape(vec![Dim::Batch]));
    let oh = g.add(Op::OneHot(4), &[t]).expect("onehot");
    let am = g.add(Op::ArgMax, &[oh]).expect("argmax");
    let mut env = Env::new();
    env.insert(
        "t".into(),
        Tensor::new(vec![6], vec![0.0, 3.0, 4.0, -1.0, 1.5, 2.0]).expect("6 rows"),
    );
    check("onehot", &g, &[oh, am], &env, 6);
}

#[test]
fn call_checks_every_buffer() {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, Shape(vec![Dim::Batch, Dim::Fixed(3)]));
    let y = g.add(Op::Exp, &[x]).expect("exp");
    let sig = Signature {
        inputs: vec![x],
        outputs: vec![y],
        updates: vec![],
    };
    let mut f = Jit::new(1)
        .expect("jit")
        .compile::<f32>(&g, &sig, 4)
        .expect("compiles");
    let xs = vec![0.0f32; 12];
    let mut ys = vec![0.0f32; 11];
    assert_eq!(
        f.call(&[&xs], &mut [], &mut [&mut ys]),
        Err(CallError::Length {
            what: "outputs",
            index: 0,
            expected: 12,
            got: 11
        })
    );
    assert_eq!(
        f.call(&[], &mut [], &mut []),
        Err(CallError::Count {
            what: "inputs",
            expected: 1,
            got: 0
        })
    );
    let sig = Signature {
        inputs: vec![],
        outputs: vec![y],
        updates: vec![],
    };
    let err = Jit::new(1)
        .expect("jit")
        .compile::<f32>(&g, &sig, 4)
        .err()
        .expect("x is missing");
    assert!(
        err.to_string().contains("leaf `x` is read but not given"),
        "{err}"
    );
}

#[test]
fn updates_write_after_every_read() {
    // w := w - 0.5·(xᵀ·(x·wᵀ))ᵀ-like step, where the old w is read by a
    // product before the update; s := s + 1 updates a scalar in place.
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, Shape(vec![Dim::Batch, Dim::Fixed(3)]));
    let w = g.leaf(
        "w",
        LeafKind::Param,
        Shape(vec![Dim::Fixed(2), Dim::Fixed(3)]),
    );
    let s = g.leaf("s", LeafKind::Scalar, Shape(vec![]));
    let wt = g.add(Op::Transpose, &[w]).expect("wᵀ");
    let z = g.add(Op::MatMul, &[x, wt]).expect("z");
    let zt = g.add(Op::Transpose, &[z]).expect("zᵀ");
    let gw = g.add(Op::MatMul, &[zt, x]).expect("gw");
    let half = g.constant(-0.5);
    let full = Shape(vec![Dim::Fixed(2), Dim::Fixed(3)]);
    let hb = g.broadcast(half, Axes(0b11), full.clone()).expect("bcast");
    let step = g.add(Op::Mul, &[hb, gw]).expect("step");
    let w2 = g.add(Op::Add, &[w, step]).expect("w2");
    let one = g.constant(1.0);
    let s2 = g.add(Op::Add, &[s, one]).expect("s2");
    let loss = g.add(Op::Sum(Axes(0b11)), &[z]).expect("loss");
    let sig = Signature {
        inputs: vec![x],
        outputs: vec![loss],
        updates: vec![(w, w2), (s, s2)],
    };
    let mut rng = Rng(3);
    let env = leaves(&g, 4, &mut rng, -1.0, 1.0);
    let want = eval(&g, &[loss, w2, s2], &env, 4).expect("evaluates");
    let mut f = Jit::new(1)
        .expect("jit")
        .compile::<f64>(&g, &sig, 4)
        .expect("compiles");
    let mut wv = env["w"].data.clone();
    let mut sv = env["s"].data.clone();
    let mut lv = vec![0.0];
    f.call(&[&env["x"].data], &mut [&mut wv, &mut sv], &mut [&mut lv])
        .expect("fits");
    assert!((lv[0] - want[0].data[0]).abs() < 1e-12);
    for (a, b) in wv.iter().zip(&want[1].data) {
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }
    assert_eq!(sv[0], want[2].data[0]);
}

#[path = "jit/networks.rs"]
mod networks;

#[test]
fn clif_of_a_small_fused_kernel() {
    // relu(x + b) over [2, 5]: one row loop, one f32x4 vector and a
    // lane-0 tail per row, the bias read as a row vector (no copy).
    let mut g = Graph::new();
    let full = Shape(vec![Dim::Batch, Dim::Fixed(5)]);
    let x = g.leaf("x", LeafKind::Input, full.clone());
    let b = g.leaf("b", LeafKind::Param, Shape(vec![Dim::Fixed(5)]));
    let bb = g.broadcast(b, Axes(0b01), full).expect("bias");
    let z = g.add(Op::Add, &[x, bb]).expect("z");
    let y = g.add(Op::Relu, &[z]).expect("y");
    let sig = Signature {
        inputs: vec![x, b],
        outputs: vec![y],
        updates: vec![],
    };
    let clif = Jit::new(1)
        .expect("jit")
        .clif::<f32>(&g, &sig, 2)
        .expect("translates");
    assert_eq!(clif.len(), 1, "one fused kernel");
    insta::assert_snapshot!(clif[0]);
}
