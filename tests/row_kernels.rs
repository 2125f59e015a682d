//! Row kernels against the interpreter on rows with tails: softmax and
//! log-sum-exp of the same logits (scheduled as one fused kernel), each
//! alone, and one-hot rows (vectorised with a partial last vector).

use slope::codegen::{Element, Jit, Signature};
use slope::graph::eval::{Env, Tensor, eval};
use slope::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape};

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

/// `tanh(x + b)` with `b` broadcast down the rows is one fused loop whose
/// only sink is a `tanh`: on AVX-512 hosts the loop stores `x + b` and a
/// 16-lane host kernel applies `tanh` in place (masked tail), elsewhere
/// the 4-lane JIT code runs. Both must match the interpreter, across the
/// small/large cut at |x| = 0.625, saturation past 9, and NaN.
#[test]
fn tanh_after_a_bias_add_matches_the_interpreter_with_tails() {
    for &cols in &[1, 3, 10, 16, 17, 32, 37] {
        for &batch in &[1, 2, 5, 32] {
            let mut g = Graph::new();
            let x = g.leaf(
                "x",
                LeafKind::Input,
                Shape(vec![Dim::Batch, Dim::Fixed(cols)]),
            );
            let b = g.leaf("b", LeafKind::Param, Shape(vec![Dim::Fixed(cols)]));
            let bb = g
                .broadcast(b, Axes(0b01), Shape(vec![Dim::Batch, Dim::Fixed(cols)]))
                .expect("broadcast down the rows");
            let z = g.add(Op::Add, &[x, bb]).expect("bias add");
            let y = g.add(Op::Tanh, &[z]).expect("tanh");
            let mut xs: Vec<f64> = logits(batch * cols, cols * 3 + batch)
                .into_iter()
                .map(|v| v * 0.2)
                .collect();
            if xs.len() > 3 {
                xs[1] = 0.6249;
                xs[2] = -20.0;
                xs[3] = f64::NAN;
            }
            let bs: Vec<f64> = (0..cols).map(|j| j as f64 * 0.01 - 0.05).collect();
            let mut env = Env::new();
            env.insert(
                "x".into(),
                Tensor::new(vec![batch, cols], xs.clone()).expect("shape"),
            );
            env.insert(
                "b".into(),
                Tensor::new(vec![cols], bs.clone()).expect("shape"),
            );
            let want = eval(&g, &[y], &env, batch).expect("interpreter");
            for (tol, got) in [
                (2e-6, run::<f32>(&g, &[(x, &xs), (b, &bs)], &[y], batch)),
                (1e-12, run::<f64>(&g, &[(x, &xs), (b, &bs)], &[y], batch)),
            ] {
                for (i, (a, o)) in want[0].data.iter().zip(&got[0]).enumerate() {
                    let ok = if a.is_nan() {
                        o.is_nan()
                    } else {
                        (a - o).abs() <= tol * (1.0 + a.abs())
                    };
                    assert!(
                        ok,
                        "cols {cols} batch {batch} (tol {tol}) element {i}: interpreter {a}, JIT {o}"
                    );
                }
            }
        }
    }
}

/// The first largest element's index, as the JIT's scalar loop defines it:
/// a NaN first element gives 0, later NaNs never win.
fn first_argmax(row: &[f64]) -> f64 {
    let mut best = row[0];
    let mut idx = 0;
    for (j, &x) in row.iter().enumerate().skip(1) {
        if x > best {
            best = x;
            idx = j;
        }
    }
    idx as f64
}

/// Arg-max rows with tails (on AVX-512 hosts a 16-lane host kernel, else
/// the JIT's scalar loop): ties go to the first, NaNs never win, -inf rows
/// give 0; NaN-free rows also match the interpreter.
#[test]
fn argmax_rows_with_tails_ties_and_nans() {
    for &cols in &[1, 2, 5, 10, 16, 17, 33, 37] {
        let batch = 7;
        let mut g = Graph::new();
        let x = g.leaf(
            "x",
            LeafKind::Input,
            Shape(vec![Dim::Batch, Dim::Fixed(cols)]),
        );
        let am = g.add(Op::ArgMax, &[x]).expect("argmax");
        // Small integers make ties common.
        let mut xs: Vec<f64> = logits(batch * cols, cols)
            .into_iter()
            .map(|v| (v * 0.3).round())
            .collect();
        let last = cols - 1;
        xs[cols..2 * cols].fill(f64::NEG_INFINITY);
        xs[2 * cols] = f64::NAN;
        xs[3 * cols + last] = f64::NAN;
        xs[4 * cols + last] = 100.0;
        xs[5 * cols..6 * cols].fill(2.0);
        let mut env = Env::new();
        env.insert(
            "x".into(),
            Tensor::new(vec![batch, cols], xs.clone()).expect("shape"),
        );
        let want = eval(&g, &[am], &env, batch).expect("interpreter");
        for got in [
            run::<f32>(&g, &[(x, &xs)], &[am], batch),
            run::<f64>(&g, &[(x, &xs)], &[am], batch),
        ] {
            for r in 0..batch {
                let row = &xs[r * cols..(r + 1) * cols];
                assert_eq!(got[0][r], first_argmax(row), "cols {cols} row {r}: {row:?}");
                if row.iter().all(|v| !v.is_nan()) {
                    assert_eq!(got[0][r], want[0].data[r], "cols {cols} row {r}");
                }
            }
        }
    }
}
