//! JIT matrix products on every operand layout the schedule produces, at
//! shapes with row and column tails, against the interpreter.

use slope::codegen::{Jit, Signature};
use slope::graph::eval::{Env, Tensor, eval};
use slope::graph::{Dim, Graph, LeafKind, Op, Shape};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

#[test]
fn jit_products_with_tails_match_the_interpreter() {
    // x·wᵀ, (x·wᵀ)ᵀ·x and (x·wᵀ)·w at batches with row tails and widths
    // with column tails.
    for &(batch, inp, out) in &[
        (1, 3, 5),
        (5, 17, 10),
        (33, 64, 32),
        (7, 9, 19),
        (130, 70, 40),
    ] {
        let mut g = Graph::new();
        let x = g.leaf(
            "x",
            LeafKind::Input,
            Shape(vec![Dim::Batch, Dim::Fixed(inp)]),
        );
        let w = g.leaf(
            "w",
            LeafKind::Param,
            Shape(vec![Dim::Fixed(out), Dim::Fixed(inp)]),
        );
        let wt = g.add(Op::Transpose, &[w]).expect("wᵀ");
        let z = g.add(Op::MatMul, &[x, wt]).expect("x·wᵀ");
        let zt = g.add(Op::Transpose, &[z]).expect("zᵀ");
        let gw = g.add(Op::MatMul, &[zt, x]).expect("zᵀ·x");
        let back = g.add(Op::MatMul, &[z, w]).expect("z·w");
        let outputs = vec![z, gw, back];
        let mut env = Env::new();
        let xs = values(batch * inp, 1);
        let ws = values(out * inp, 2);
        env.insert(
            "x".into(),
            Tensor::new(vec![batch, inp], xs.iter().map(|&v| f64::from(v)).collect())
                .expect("shape"),
        );
        env.insert(
            "w".into(),
            Tensor::new(vec![out, inp], ws.iter().map(|&v| f64::from(v)).collect()).expect("shape"),
        );
        let want = eval(&g, &outputs, &env, batch).expect("interpreter");
        let sig = Signature {
            inputs: vec![x, w],
            outputs: outputs.clone(),
            updates: vec![],
        };
        let mut jit = Jit::new(1).expect("host JIT");
        let mut f = jit.compile::<f32>(&g, &sig, batch).expect("compiles");
        let mut outs: Vec<Vec<f32>> = f.output_lens().iter().map(|&n| vec![0.0; n]).collect();
        {
            let mut refs: Vec<&mut [f32]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
            f.call(&[&xs, &ws], &mut [], &mut refs)
                .expect("buffers fit");
        }
        for (o, (w, got)) in want.iter().zip(&outs).enumerate() {
            assert_eq!(w.data.len(), got.len());
            let scale = w.data.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (i, (a, b)) in w.data.iter().zip(got).enumerate() {
                assert!(
                    (a - f64::from(*b)).abs() <= 2e-5 * scale,
                    "batch {batch} {inp}->{out}, output {o}, element {i}: interpreter {a}, JIT {b}"
                );
            }
        }
    }
}
