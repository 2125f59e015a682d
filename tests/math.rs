//! Accuracy of the JIT's vectorised f32 math against f64, on dense grids
//! that include the tails and tiny values.

use slope::codegen::{Jit, Signature};
use slope::graph::{Dim, Graph, LeafKind, Op, Shape};

/// Runs `op` element-wise over `xs` through the f32 JIT.
fn jit_unary(op: Op, xs: &[f32]) -> Vec<f32> {
    let mut g = Graph::new();
    let x = g.leaf("x", LeafKind::Input, Shape(vec![Dim::Fixed(xs.len())]));
    let y = g.add(op, &[x]).expect("unary op on a vector");
    let sig = Signature {
        inputs: vec![x],
        outputs: vec![y],
        updates: vec![],
    };
    let mut jit = Jit::new(1).expect("host JIT");
    let mut f = jit.compile::<f32>(&g, &sig, 1).expect("compiles");
    let mut out = vec![0.0f32; xs.len()];
    f.call(&[xs], &mut [], &mut [&mut out])
        .expect("buffers fit");
    out
}

/// Evenly spaced points on [lo, hi] plus geometric points near 0 of both signs.
fn grid(lo: f64, hi: f64, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..=n)
        .map(|i| (lo + (hi - lo) * i as f64 / n as f64) as f32)
        .collect();
    let mut t = 1e-30f64;
    while t < 1.0 {
        if lo <= -t {
            v.push(-t as f32);
        }
        if t <= hi {
            v.push(t as f32);
        }
        t *= 1.37;
    }
    v.push(0.0);
    v
}

/// The worst relative error of `op` against `exact` (in f64, on the f32
/// inputs), over points whose exact result is a normal f32; results below
/// the normal range are compared absolutely against the smallest normal.
fn worst(op: Op, xs: &[f32], exact: impl Fn(f64) -> f64) -> (f64, f32) {
    let ys = jit_unary(op, xs);
    let mut worst = (0.0, 0.0);
    for (&x, &y) in xs.iter().zip(&ys) {
        let e = exact(f64::from(x));
        if e.abs() > f64::from(f32::MAX) {
            assert!(
                y.is_infinite() && (y > 0.0) == (e > 0.0),
                "{op:?}({x}) = {y}, want {e}"
            );
            continue;
        }
        let err = (f64::from(y) - e).abs() / e.abs().max(f64::from(f32::MIN_POSITIVE));
        if err > worst.0 || err.is_nan() {
            worst = (err, x);
        }
    }
    eprintln!("{op:?}: max rel err {:.3e} at x = {}", worst.0, worst.1);
    worst
}

const TOL: f64 = 2e-7;

#[test]
fn exp_is_accurate_over_the_whole_range() {
    let (err, at) = worst(Op::Exp, &grid(-110.0, 89.0, 400_000), f64::exp);
    assert!(err <= TOL, "exp: max rel err {err:e} at {at}");
}

#[test]
fn log_is_accurate_including_denormals() {
    let mut xs = grid(0.0, 1e6, 400_000);
    let mut t = f64::from(f32::from_bits(1));
    while t < 1e38 {
        xs.push(t as f32);
        xs.push((t * 1.000_001) as f32);
        t *= 1.09;
    }
    xs.push(f32::MAX);
    xs.retain(|&x| x > 0.0);
    let (err, at) = worst(Op::Log, &xs, f64::ln);
    assert!(err <= TOL, "log: max rel err {err:e} at {at}");
}

#[test]
fn log_special_values() {
    let ys = jit_unary(Op::Log, &[0.0, -1.0, f32::INFINITY, f32::NAN, 1.0]);
    assert_eq!(ys[0], f32::NEG_INFINITY);
    assert!(ys[1].is_nan());
    assert_eq!(ys[2], f32::INFINITY);
    assert!(ys[3].is_nan());
    assert_eq!(ys[4], 0.0);
}

#[test]
fn tanh_is_accurate() {
    let (err, at) = worst(Op::Tanh, &grid(-100.0, 100.0, 400_000), f64::tanh);
    assert!(err <= TOL, "tanh: max rel err {err:e} at {at}");
}

/// Found by the compiler stress loop: f32 tanh clamped its argument at 9,
/// where tanh is 0.99999994f, so it never reached 1.0 and `1 - t²` never
/// reached 0 (gradients of 1e16 through a saturated tanh, 0 in f64).
#[test]
fn tanh_saturates_to_one_where_it_rounds_to_one() {
    let xs: Vec<f32> = (0..2000).map(|k| 9.0 + k as f32 * 0.05).collect();
    let ys = jit_unary(Op::Tanh, &xs);
    for (&x, &y) in xs.iter().zip(&ys) {
        // The correctly rounded value, from f64; within one ulp where it
        // switches from 0.99999994 to 1.0 (exp's last bit decides), exact
        // beyond.
        let want = f64::from(x).tanh() as f32;
        let ulps = (y.to_bits() as i64 - want.to_bits() as i64).abs();
        assert!(ulps <= i64::from(x < 9.2), "tanh({x}) = {y}, want {want}");
    }
    let neg: Vec<f32> = xs.iter().map(|x| -x).collect();
    let ys = jit_unary(Op::Tanh, &neg);
    assert!(ys[1..].iter().all(|&y| y == -1.0), "{:?}", &ys[..4]);
}

#[test]
fn sigmoid_is_accurate() {
    let (err, at) = worst(Op::Sigmoid, &grid(-87.0, 100.0, 400_000), |x| {
        1.0 / (1.0 + (-x).exp())
    });
    assert!(err <= TOL, "sigmoid: max rel err {err:e} at {at}");
}

#[test]
fn softplus_is_accurate() {
    let exact = |x: f64| {
        if x > 0.0 {
            x + (-x).exp().ln_1p()
        } else {
            x.exp().ln_1p()
        }
    };
    let (err, at) = worst(Op::Softplus, &grid(-100.0, 100.0, 400_000), exact);
    assert!(err <= TOL, "softplus: max rel err {err:e} at {at}");
}

#[test]
fn nan_flows_through() {
    for op in [Op::Exp, Op::Tanh, Op::Sigmoid, Op::Softplus, Op::Log] {
        let ys = jit_unary(op, &[f32::NAN; 5]);
        assert!(ys.iter().all(|y| y.is_nan()), "{op:?} of NaN gave {ys:?}");
    }
}
