//! Row kernels against the interpreter on rows with tails: softmax and
//! log-sum-exp of the same logits (scheduled as one fused kernel), each
//! alone, and one-hot rows (vectorised with a partial last vector).

use slope::codegen::{Element, Jit, Signature};
use slope::graph::eval::{Env, Tensor, eval};
use slope::graph::{Dim, Graph, LeafKind, NodeId, Op, Shape};

/// Runs `outputs` with leaves `x` (and `t`) through the JIT in `T`.
fn run<T: Element>(
    g: &Graph,
    ins: &[(NodeId, &[f64])],
    outputs: &[NodeId],
    batch: usize,
) -> Vec<Vec<f64>> {
    let sig = Signature {
        inputs: ins.iter().map(|i| i.0).collect(),
        outputs: outputs.to_vec(),
        updates: vec![],
    };
    let mut jit = Jit::new(1).expect("host JIT");
    let mut f = jit.compile::<T>(g, &sig, batch).expect("compiles");
    let data: Vec<Vec<T>> = ins
        .iter()
        .map(|i| i.1.iter().map(|&v| T::from_f64(v)).collect())
        .collect();
    let refs: Vec<&[T]> = data.iter().map(Vec::as_slice).collect();
    let mut outs: Vec<Vec<T>> = f
        .output_lens()
        .iter()
        .map(|&n| vec![T::default(); n])
        .collect();
    {
        let mut o: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        f.call(&refs, &mut [], &mut o).expect("buffers fit");
    }
    outs.into_iter()
        .map(|o| o.into_iter().map(T::to_f64).collect())
        .collect()
}

fn logits(n: usize, seed: usize) -> Vec<f64> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f64 / 100.0) - 10.0)
        .collect()
}

#[test]
fn softmax_and_logsumexp_together_and_alone_match_the_interpreter() {
    for &cols in &[1, 2, 3, 4, 5, 7, 8, 10, 13, 17, 37] {
        for &batch in &[1, 3, 32] {
            for which in 0..3 {
                let mut g = Graph::new();
                let x = g.leaf(
                    "x",
                    LeafKind::Input,
                    Shape(vec![Dim::Batch, Dim::Fixed(cols)]),
                );
                let sm = g.add(Op::Softmax, &[x]).expect("softmax");
                let lse = g.add(Op::LogSumExp, &[x]).expect("lse");
                let outputs = match which {
                    0 => vec![sm, lse],
                    1 => vec![sm],
                    _ => vec![lse],
                };
                let xs = logits(batch * cols, cols + batch);
                let mut env = Env::new();
                env.insert(
                    "x".into(),
                    Tensor::new(vec![batch, cols], xs.clone()).expect("shape"),
                );
                let want = eval(&g, &outputs, &env, batch).expect("interpreter");
                for (tol, got) in [
                    (2e-6, run::<f32>(&g, &[(x, &xs)], &outputs, batch)),
                    (1e-12, run::<f64>(&g, &[(x, &xs)], &outputs, batch)),
                ] {
                    for (w, o) in want.iter().zip(&got) {
                        assert_eq!(w.data.len(), o.len());
                        for (i, (a, b)) in w.data.iter().zip(o).enumerate() {
                            assert!(
                                (a - b).abs() <= tol * (1.0 + a.abs()),
                                "cols {cols} batch {batch} case {which} (tol {tol}) element {i}: interpreter {a}, JIT {b}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn onehot_rows_with_tails_match_the_interpreter() {
    for &k in &[1, 2, 3, 4, 5, 9, 10, 17] {
        let batch = 7;
        let mut g = Graph::new();
        let t = g.leaf("t", LeafKind::Target, Shape(vec![Dim::Batch]));
        let oh = g.add(Op::OneHot(k as u32), &[t]).expect("onehot");
        // Classes in range, one past the end, negative and fractional.
        let ts: Vec<f64> = (0..batch)
            .map(|i| match i {
                5 => k as f64,
                6 => -1.0,
                4 => 0.5,
                _ => (i % k) as f64,
            })
            .collect();
        let mut env = Env::new();
        env.insert(
            "t".into(),
            Tensor::new(vec![batch], ts.clone()).expect("shape"),
        );
        let want = eval(&g, &[oh], &env, batch).expect("interpreter");
        for got in [
            run::<f32>(&g, &[(t, &ts)], &[oh], batch),
            run::<f64>(&g, &[(t, &ts)], &[oh], batch),
        ] {
            assert_eq!(want[0].data, got[0], "k = {k}");
        }
    }
}
