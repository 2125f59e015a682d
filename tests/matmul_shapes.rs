//! The unpacked small-product kernels (`codegen::gemm`) against an f64
//! triple loop on every layout and on row, column and k tails; and JIT
//! matrix products on every operand layout the schedule produces, at shapes
//! with tails, against the interpreter.

use slope::codegen::gemm::Simd;
use slope::codegen::{Jit, Signature, gemm};
use slope::graph::eval::{Env, Tensor, eval};
use slope::graph::{Dim, Graph, LeafKind, Op, Shape};

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.5) - 1.0)
        .collect()
}

/// `a·b` in f64 with the same strides.
#[allow(clippy::too_many_arguments)]
fn reference(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    (rsa, csa): (usize, usize),
    b: &[f32],
    (rsb, csb): (usize, usize),
) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| f64::from(a[i * rsa + p * csa]) * f64::from(b[p * rsb + j * csb]))
                .sum();
        }
    }
    c
}

#[test]
fn small_kernels_match_f64_on_every_layout_and_tail() {
    let sizes = [1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 32, 33, 47];
    for &m in &sizes {
        for &k in &[1, 3, 15, 16, 17, 37, 64] {
            for &n in &sizes {
                for (at, bt) in [(false, false), (true, false), (false, true), (true, true)] {
                    let a = values(m * k, m + k);
                    let b = values(k * n, k + n);
                    let sa = if at { (1, m) } else { (k, 1) };
                    let sb = if bt { (1, k) } else { (n, 1) };
                    // A canary past the end of every row of c checks that
                    // tail stores stay inside the row.
                    let rsc = n + 3;
                    let mut c = vec![f32::NAN; m * rsc];
                    // SAFETY: the buffers have exactly the sizes and strides given.
                    let done = unsafe {
                        gemm::sgemm(
                            m,
                            k,
                            n,
                            a.as_ptr(),
                            sa.0 as isize,
                            sa.1 as isize,
                            b.as_ptr(),
                            sb.0 as isize,
                            sb.1 as isize,
                            c.as_mut_ptr(),
                            rsc as isize,
                        )
                    };
                    // B with unit column stride (broadcast kernel); B with
                    // unit row stride, copied into a panel from
                    // PACK_MIN_ROWS rows of A on (with AVX2 for short sums
                    // only), or else read by the AVX-512 dot kernel, which
                    // needs A's rows contiguous.
                    let panel = sb.0 == 1 && m >= gemm::PACK_MIN_ROWS;
                    let supported = match gemm::small_kernels() {
                        Some(Simd::Avx512) => sb.1 == 1 || panel || (sb.0 == 1 && sa.1 == 1),
                        Some(Simd::Avx2) => sb.1 == 1 || (panel && k < gemm::AVX2_PANEL_MAX_K),
                        None => false,
                    };
                    assert_eq!(done, supported, "m={m} k={k} n={n} at={at} bt={bt}");
                    if !done {
                        continue;
                    }
                    let want = reference(m, k, n, &a, sa, &b, sb);
                    for i in 0..m {
                        for j in 0..n {
                            let (w, g) = (want[i * n + j], f64::from(c[i * rsc + j]));
                            assert!(
                                (w - g).abs() <= 1e-6 * k as f64 * (1.0 + w.abs()),
                                "m={m} k={k} n={n} at={at} bt={bt}: c[{i},{j}] = {g}, want {w}"
                            );
                        }
                        for j in n..rsc {
                            assert!(c[i * rsc + j].is_nan(), "m={m} n={n}: wrote past the row");
                        }
                    }
                }
            }
        }
    }
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
