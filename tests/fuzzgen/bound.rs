//! How far an f32 evaluation of a graph may fall from its f64 value: a
//! running error bound (Wilkinson's running error analysis) carried node by
//! node next to the interpreter's f64 values.
//!
//! Each node's bound is what its operands' bounds can move it by, plus the
//! rounding of its own result. Element-wise ops are moved by perturbing one
//! operand at a time by ± its bound through [`Op::eval_scalar`] (so
//! saturation, cancellation, poles and comparisons that may flip all show
//! up without a rule per op); tensor ops use their textbook bounds (sums
//! `n·u·Σ|x|`, products `k·u·Σ|a||b|`, softmax `exp(2E)`). The bound is
//! the f64 value's own conditioning under f32 rounding: where `tanh`
//! saturates, `1 - t²` of a `t` good to one f32 ulp is good to no digit,
//! and the bound says so, where a fixed relative tolerance either misses
//! real errors or excuses them everywhere.

use slope::graph::eval::Tensor;
use slope::graph::{Graph, NodeId, Op};
use std::collections::{HashMap, HashSet};

/// An element type's rounding: unit roundoff, the absolute part of a
/// rounding error, and the largest finite value.
#[derive(Clone, Copy)]
pub struct Unit {
    u: f64,
    tiny: f64,
    max: f64,
}

/// f32: unit roundoff 2⁻²⁴; the absolute part is f32's smallest normal
/// number, as the kernels promise ulps of normal numbers only (`exp` clamps
/// its argument, `sigmoid(-100)` is 2.7e-39 instead of 3.7e-44).
pub const F32: Unit = Unit {
    u: 5.960_464_477_539_063e-8,
    tiny: f32::MIN_POSITIVE as f64,
    max: f32::MAX as f64,
};

/// f64: what the f64 JIT and the interpreter may differ by where the f64
/// value itself is ill-conditioned (`sin` of 1e33 computed in another order).
pub const F64: Unit = Unit {
    u: 1.110_223_024_625_156_5e-16,
    tiny: f64::MIN_POSITIVE,
    max: f64::MAX,
};

/// Roundings an op's result may carry beyond its exact value of the
/// rounded operands, in unit roundoffs of the result. Library functions get
/// a few ulps; a power, one per multiplication of its repeated squaring.
fn ulps(op: Op, args: &[f64]) -> f64 {
    match op {
        Op::Const(_) | Op::BatchSize | Op::Leaf(_) => 1.0,
        Op::Neg | Op::Abs | Op::Relu | Op::Max | Op::Min | Op::Where => 0.0,
        Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq => 0.0,
        Op::Recip | Op::Sqrt => 1.0,
        // n-ary: one rounding per operand; sums are handled apart (below).
        Op::Add | Op::Mul => args.len() as f64,
        Op::Exp | Op::Log | Op::Sin | Op::Cos | Op::Tanh => 4.0,
        Op::Sigmoid | Op::Softplus => 8.0,
        Op::Pow => 8.0 + 2.0 * args.get(1).map_or(0.0, |k| k.abs().min(64.0)),
        Op::MatMul
        | Op::Transpose
        | Op::Broadcast(_)
        | Op::Sum(_)
        | Op::Softmax
        | Op::LogSumExp
        | Op::OneHot(_)
        | Op::ArgMax
        | Op::Window(..)
        | Op::Flatten
        | Op::Unflatten(_) => 0.0,
    }
}

/// The rounding error of a result `v` rounded `k` times (or `inf` when f32
/// cannot hold it).
fn rounding(t: Unit, k: f64, v: f64) -> f64 {
    if v.abs() > t.max {
        f64::INFINITY
    } else {
        k * (t.u * v.abs() + t.tiny)
    }
}

/// The bound of every node of `order` (operands first), element by element,
/// given the f64 values of every node. Constant-only nodes are folded in f64
/// by the code generator: they carry one rounding only.
pub fn bounds(
    t: Unit,
    g: &Graph,
    order: &[NodeId],
    values: &HashMap<NodeId, &Tensor>,
) -> HashMap<NodeId, Vec<f64>> {
    let mut out: HashMap<NodeId, Vec<f64>> = HashMap::new();
    let mut constant: HashSet<NodeId> = HashSet::new();
    for &n in order {
        let node = g.node(n);
        let v = values[&n];
        let folded = match node.op {
            Op::Leaf(_) => false,
            Op::BatchSize | Op::Const(_) => true,
            op => {
                (op.is_elementwise() || matches!(op, Op::Broadcast(_)))
                    && node.args.iter().all(|a| constant.contains(a))
            }
        };
        let e = if folded {
            constant.insert(n);
            v.data.iter().map(|&x| rounding(t, 1.0, x)).collect()
        } else {
            let args: Vec<(&Tensor, &[f64])> = node
                .args
                .iter()
                .map(|a| (values[a], out[a].as_slice()))
                .collect();
            node_bound(t, node.op, v, &args)
        };
        // NaN bounds come from NaN values a `where` later drops: unknown.
        let e = e
            .into_iter()
            .map(|x| if x.is_nan() { f64::INFINITY } else { x })
            .collect();
        out.insert(n, e);
    }
    out
}

/// One node's bound from its value `v` and its operands' values and bounds.
fn node_bound(t: Unit, op: Op, v: &Tensor, args: &[(&Tensor, &[f64])]) -> Vec<f64> {
    match op {
        Op::Leaf(_) | Op::Const(_) | Op::BatchSize => {
            v.data.iter().map(|&x| rounding(t, 1.0, x)).collect()
        }
        Op::Add => sum_like(t, v, args),
        Op::Mul => product(t, v, args),
        Op::Neg
        | Op::Recip
        | Op::Exp
        | Op::Log
        | Op::Sqrt
        | Op::Abs
        | Op::Sin
        | Op::Cos
        | Op::Tanh
        | Op::Sigmoid
        | Op::Relu
        | Op::Softplus
        | Op::Pow
        | Op::Max
        | Op::Min
        | Op::Lt
        | Op::Le
        | Op::Gt
        | Op::Ge
        | Op::Eq
        | Op::Where => elementwise(t, op, v, args),
        Op::Broadcast(axes) => (0..v.len())
            .map(|i| args[0].1[reduced_index(i, &v.shape, axes.0)])
            .collect(),
        Op::Transpose => {
            let (m, n) = (args[0].0.shape[0], args[0].0.shape[1]);
            (0..m * n).map(|f| args[0].1[(f % m) * n + f / m]).collect()
        }
        Op::Flatten | Op::Unflatten(_) => args[0].1.to_vec(),
        Op::Sum(axes) => {
            let (a, e) = args[0];
            let n = (a.len() / v.len().max(1)) as f64;
            let mut out = vec![0.0; v.len()];
            for (f, (&x, &ex)) in a.data.iter().zip(e).enumerate() {
                out[reduced_index(f, &a.shape, axes.0)] += ex + n * t.u * x.abs();
            }
            out
        }
        Op::MatMul => matmul(t, args),
        Op::Softmax | Op::LogSumExp | Op::ArgMax => rows(t, op, v, args[0]),
        // Class indices are exact unless their error reaches a half.
        Op::OneHot(_) => {
            let worst = args[0].1.iter().copied().fold(0.0, f64::max);
            vec![if worst < 0.5 { 0.0 } else { 1.0 }; v.len()]
        }
        // Not generated (dense models only): nothing is known.
        Op::Window(..) => vec![f64::INFINITY; v.len()],
    }
}

/// An n-ary sum: operand errors add up; each partial sum is rounded, and
/// partial sums are at most the sum of magnitudes.
fn sum_like(t: Unit, v: &Tensor, args: &[(&Tensor, &[f64])]) -> Vec<f64> {
    let k = args.len() as f64;
    (0..v.len())
        .map(|i| {
            let moved: f64 = args.iter().map(|(_, e)| e[i]).sum();
            let mags: f64 = args.iter().map(|(a, _)| a.data[i].abs()).sum();
            moved + rounding(t, k, mags) + rounding(t, 0.0, v.data[i])
        })
        .collect()
}

/// An n-ary product: `Π(|aᵢ| + eᵢ) - Π|aᵢ|` bounds how far all operands
/// moved together can move it. Moving one at a time misses `e_a·e_b`,
/// which is all there is when both `a` and `b` are 0 in f64 but are
/// cancellation noise in f32 (the derivative of `x/x·c` is 0 times 0).
fn product(t: Unit, v: &Tensor, args: &[(&Tensor, &[f64])]) -> Vec<f64> {
    let k = args.len() as f64;
    (0..v.len())
        .map(|i| {
            // The code multiplies left to right: a partial product outside
            // the type's normal range (`c·(1/z)¹³·z¹³` with z ≈ 1e3 is 0 in
            // f32) is unknown, whatever the whole product is.
            let mut partial = 1.0f64;
            for (a, _) in args {
                partial *= a.data[i].abs();
                if partial > t.max || (partial != 0.0 && partial < t.tiny) {
                    return f64::INFINITY;
                }
            }
            let exact: f64 = args.iter().map(|(a, _)| a.data[i].abs()).product();
            let moved: f64 = args.iter().map(|(a, e)| a.data[i].abs() + e[i]).product();
            (moved - exact) + rounding(t, k, v.data[i])
        })
        .collect()
}

/// Any other element-wise op: each operand moved by ± its bound, alone.
fn elementwise(t: Unit, op: Op, v: &Tensor, args: &[(&Tensor, &[f64])]) -> Vec<f64> {
    let mut at = Vec::with_capacity(args.len());
    (0..v.len())
        .map(|i| {
            let y = v.data[i];
            at.clear();
            at.extend(args.iter().map(|(a, _)| a.data[i]));
            // An operand outside f32's range (or NaN on the way) may be
            // NaN in f32, which no saturating op (sigmoid, relu, max) heals:
            // unknown. Comparisons still give 0 or 1, and a `where` takes
            // NaN only from the branch it selects (moved below).
            let unknown = args.iter().any(|(_, e)| e[i].is_infinite());
            match op {
                Op::Where => return select(t, y, &at, [args[0].1[i], args[1].1[i], args[2].1[i]]),
                // A comparison of an unknown operand (NaN in f64, finite in
                // f32, say) may come out either way.
                Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq if unknown => return 1.0,
                _ if unknown => return f64::INFINITY,
                _ => {}
            }
            let mut moved = 0.0;
            for (j, (_, e)) in args.iter().enumerate() {
                let x = at[j];
                // A comparison flips when the operands' errors together
                // reach their gap: move one operand by both.
                let ex = if matches!(op, Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq) {
                    2.0 * e[i]
                } else {
                    e[i]
                };
                if ex == 0.0 {
                    continue;
                }
                // A condition that may flip takes both truth values
                // (moved by ±2 from 1 it would stay non-zero, i.e. true).
                let sides = if op == Op::Where && j == 0 {
                    vec![0.0, 1.0]
                } else if crosses_pole(op, j, &at, x, ex) {
                    // Moved across a pole, the op takes any value.
                    moved = f64::INFINITY;
                    break;
                } else if ex.is_finite() && ex > 1e-6 * x.abs().max(1.0) {
                    // A move as large as this may pass an extremum
                    // (sin, a where's branch): look inside it too.
                    (0..=8).map(|k| x - ex + ex * f64::from(k) / 4.0).collect()
                } else {
                    vec![x - ex, x + ex]
                };
                let mut worst: f64 = 0.0;
                for side in sides {
                    at[j] = side;
                    let z = op.eval_scalar(&at).unwrap_or(f64::NAN);
                    let d = if y.is_nan() && z.is_nan() {
                        0.0
                    } else {
                        (z - y).abs()
                    };
                    worst = worst.max(if d.is_nan() { f64::INFINITY } else { d });
                }
                at[j] = x;
                moved += worst;
            }
            moved + rounding(t, ulps(op, &at), y)
        })
        .collect()
}

/// `where(c, a, b)` at value `y` with bounds `e`: the selected branch's
/// bound, or, when the condition may flip, the farther branch moved by
/// its own bound too (a flip and a moved branch together: moving one
/// operand at a time saw 0 where both branches are 0 in f64 and the
/// condition flips in f32 beside a branch that is not 0 there).
fn select(t: Unit, y: f64, at: &[f64], e: [f64; 3]) -> f64 {
    // The condition is true when non-zero: it may flip when its bound
    // reaches its value.
    let moved = if e[0] > 0.0 && e[0] >= at[0].abs() {
        let far = |v: f64, ev: f64| {
            if v.is_nan() {
                f64::INFINITY
            } else {
                (v - y).abs() + ev
            }
        };
        far(at[1], e[1]).max(far(at[2], e[2]))
    } else if at[0] != 0.0 {
        e[1]
    } else {
        e[2]
    };
    moved + rounding(t, ulps(Op::Where, at), y)
}

/// Whether moving operand `j` (at `x`) by `±e` passes a pole of `op`:
/// `1/x` and negative powers at 0.
fn crosses_pole(op: Op, j: usize, at: &[f64], x: f64, e: f64) -> bool {
    let pole = match op {
        Op::Recip => true,
        Op::Pow => j == 0 && at.get(1).is_some_and(|&k| k < 0.0),
        _ => false,
    };
    pole && x - e <= 0.0 && 0.0 <= x + e
}

/// `a·b`: `|a|·e_b + e_a·|b| + e_a·e_b + k·u·|a|·|b|`, summed over `k`.
fn matmul(t: Unit, args: &[(&Tensor, &[f64])]) -> Vec<f64> {
    let ((a, ea), (b, eb)) = (args[0], args[1]);
    let (m, k, n) = (a.shape[0], a.shape[1], b.shape[1]);
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let (x, ex) = (a.data[i * k + p].abs(), ea[i * k + p]);
            for j in 0..n {
                let (y, ey) = (b.data[p * n + j].abs(), eb[p * n + j]);
                out[i * n + j] += x * ey + ex * y + ex * ey + k as f64 * (t.u * x * y + t.tiny);
            }
        }
    }
    out
}

/// Row ops along the last axis, with `E` the largest operand bound of a row:
/// softmax moves by at most a factor `exp(±2E)`, log-sum-exp by `E` (it is
/// 1-Lipschitz in the largest element), arg-max not at all unless the lead
/// is within `2E`.
fn rows(t: Unit, op: Op, v: &Tensor, (a, ea): (&Tensor, &[f64])) -> Vec<f64> {
    let width = *a.shape.last().expect("row ops have an axis");
    let mut out = Vec::with_capacity(v.len());
    for r in 0..a.len() / width.max(1) {
        let row = &a.data[r * width..(r + 1) * width];
        let big = ea[r * width..(r + 1) * width]
            .iter()
            .copied()
            .fold(0.0, f64::max);
        let ops = width as f64 + 8.0;
        match op {
            Op::Softmax => out.extend(
                v.data[r * width..(r + 1) * width]
                    .iter()
                    .map(|&s| s * (2.0 * big).exp_m1() + rounding(t, ops, s)),
            ),
            Op::LogSumExp => out.push(big + rounding(t, ops, v.data[r].abs() + 1.0)),
            _ => {
                let top = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let close = row.iter().filter(|&&x| top - x <= 2.0 * big).count();
                out.push(if close > 1 { width as f64 } else { 0.0 });
            }
        }
    }
    out
}

/// The flat index, in the shape with the bits of `axes` removed, of the
/// element at flat index `flat` of `shape` (as the interpreter reads it).
fn reduced_index(flat: usize, shape: &[usize], axes: u8) -> usize {
    let mut rest = flat;
    let mut index = 0;
    let mut stride = 1;
    for (axis, &size) in shape.iter().enumerate().rev() {
        let i = rest % size.max(1);
        rest /= size.max(1);
        if axes & (1 << axis) == 0 {
            index += i * stride;
            stride *= size;
        }
    }
    index
}
