//! Kernels that are not element-wise: matrix products (a call into
//! the GEMM of `gemm.rs` through a registered symbol), transposes, reductions in
//! stable form (sum, softmax, log-sum-exp, arg-max), one-hot and copies.

use super::math::Vx;
use super::plan::View;
use super::strides::strides;
use super::translate::{Width, for_range, load, mem, nest, offset, store, sweep};
use cranelift_codegen::ir::condcodes::FloatCC;
use cranelift_codegen::ir::{FuncRef, InstBuilder, Value, types};

fn bytes(vx: &Vx) -> i64 {
    vx.st.bytes() as i64
}

/// `base + i * scale` in bytes.
fn at(vx: &mut Vx, base: Value, i: Value, scale: i64) -> Value {
    let off = vx.b.ins().imul_imm_s(i, scale);
    vx.b.ins().iadd(base, off)
}

/// The sum of a vector's lanes.
fn hsum(vx: &mut Vx, v: Value) -> Value {
    let mut s = vx.b.ins().extractlane(v, 0);
    for lane in 1..vx.lanes() {
        let x = vx.b.ins().extractlane(v, lane);
        s = vx.b.ins().fadd(s, x);
    }
    s
}

/// The largest of a vector's lanes. Branch-free: every lane is broadcast
/// and combined with vector max (`maxps`); a scalar `select` on floats
/// lowers to a conditional jump on x86-64, which mispredicts on data.
fn hmax(vx: &mut Vx, v: Value) -> Value {
    let mut m = v;
    for lane in 1..vx.lanes() {
        let x = vx.b.ins().extractlane(v, lane);
        let x = vx.b.ins().splat(vx.vt, x);
        m = vx.max(m, x);
    }
    vx.b.ins().extractlane(m, 0)
}

/// `c = a · b` through the registered GEMM shim, strides folding transposes,
/// on up to `threads` threads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    vx: &mut Vx,
    (gemm, threads): (FuncRef, usize),
    a: (Value, View),
    b: (Value, View),
    c: Value,
    m: usize,
    k: usize,
    n: usize,
) {
    // A is logically [m,k]; stored transposed it is [k,m] row-major.
    let (rsa, csa) = if a.1.transposed { (1, m) } else { (k, 1) };
    let (rsb, csb) = if b.1.transposed { (1, k) } else { (n, 1) };
    let i = |vx: &mut Vx, v: usize| vx.b.ins().iconst(types::I64, v as i64);
    let args = [
        i(vx, m),
        i(vx, k),
        i(vx, n),
        a.0,
        i(vx, rsa),
        i(vx, csa),
        b.0,
        i(vx, rsb),
        i(vx, csb),
        c,
        i(vx, n),
        i(vx, 1),
        i(vx, threads),
    ];
    vx.b.ins().call(gemm, &args);
}

/// `dst[j, i] = src[i, j]` for `src` of `rows × cols`.
pub(crate) fn transpose(vx: &mut Vx, src: Value, dst: Value, rows: usize, cols: usize) {
    let e = bytes(vx);
    for_range(vx, rows, 1, |vx, i| {
        let srow = at(vx, src, i, cols as i64 * e);
        let dcol = at(vx, dst, i, e);
        for_range(vx, cols, 1, |vx, j| {
            let s = at(vx, srow, j, e);
            let x = vx.b.ins().load(vx.st, mem(), s, 0);
            let d = at(vx, dcol, j, rows as i64 * e);
            vx.b.ins().store(mem(), x, d, 0);
        });
    });
}

/// `dst = src` over `len` elements.
pub(crate) fn copy(vx: &mut Vx, src: Value, dst: Value, len: usize) {
    let e = bytes(vx);
    sweep(vx, len, 1, |vx, c, width, _| {
        let s = at(vx, src, c, e);
        let d = at(vx, dst, c, e);
        let x = load(vx, s, 0, width);
        store(vx, x, d, 0, width);
    });
}

/// Applies `f` to the `cols` elements of a row, folding into a vector
/// accumulator (lane-0 tails fold into a scalar one); returns the vector
/// and scalar accumulators' combination by `combine`.
fn fold_row(
    vx: &mut Vx,
    row: Value,
    cols: usize,
    init: f64,
    mut f: impl FnMut(&mut Vx, Value, Width) -> Value,
    mut combine: impl FnMut(&mut Vx, Value, Value) -> Value,
) -> (Value, Option<Value>) {
    let e = bytes(vx);
    let acc = vx.b.declare_var(vx.vt);
    let tail = vx.b.declare_var(vx.vt);
    let i = vx.splat(init);
    vx.b.def_var(acc, i);
    vx.b.def_var(tail, i);
    let mut has_tail = false;
    sweep(vx, cols, 1, |vx, c, width, _| {
        let p = at(vx, row, c, e);
        let x = load(vx, p, 0, width);
        let y = f(vx, x, width);
        let var = if width == Width::Vector { acc } else { tail };
        has_tail |= width == Width::Lane0;
        let old = vx.b.use_var(var);
        let new = combine(vx, old, y);
        vx.b.def_var(var, new);
    });
    let a = vx.b.use_var(acc);
    let t = vx.b.use_var(tail);
    (a, has_tail.then(|| vx.b.ins().extractlane(t, 0)))
}

/// The `count` (fewer than a vector's lanes) elements at `addr` in the low
/// lanes of a vector whose other lanes hold `fill`: a row's tail as one
/// vector, so a reduction spends one vector operation on it, not one per
/// element.
fn load_partial(vx: &mut Vx, addr: Value, count: usize, fill: f64) -> Value {
    let e = bytes(vx) as usize;
    let mut v = vx.splat(fill);
    for lane in 0..count {
        let s = vx.b.ins().load(vx.st, mem(), addr, (lane * e) as i32);
        v = vx.b.ins().insertlane(v, s, lane as u8);
    }
    v
}

/// Stores the low `count` lanes of `v` at `addr`.
fn store_partial(vx: &mut Vx, v: Value, addr: Value, count: usize) {
    let e = bytes(vx) as usize;
    for lane in 0..count {
        let s = vx.b.ins().extractlane(v, lane as u8);
        vx.b.ins().store(mem(), s, addr, (lane * e) as i32);
    }
}

/// Calls `body(vx, element, tail)` for each whole vector of a row of
/// `cols` elements (`tail` = 0), then once for the partial vector at the
/// end (`tail` = its element count), if any.
fn row_vectors(vx: &mut Vx, cols: usize, mut body: impl FnMut(&mut Vx, Value, usize)) {
    let lanes = vx.lanes() as usize;
    let whole = cols / lanes * lanes;
    if whole <= 4 * lanes {
        // Short rows (a classifier's logits) are emitted straight: a loop of
        // two trips costs more in branches than it saves, and straight code
        // lets the row's independent exponentials overlap.
        for c in (0..whole).step_by(lanes) {
            let cv = vx.b.ins().iconst(types::I64, c as i64);
            body(vx, cv, 0);
        }
    } else {
        for_range(vx, whole, lanes, |vx, c| body(vx, c, 0));
    }
    if whole < cols {
        let c = vx.b.ins().iconst(types::I64, whole as i64);
        body(vx, c, cols - whole);
    }
}

/// The largest element of a row (a scalar). The partial tail vector is
/// padded with -inf, which never wins.
fn row_max(vx: &mut Vx, row: Value, cols: usize) -> Value {
    let e = bytes(vx);
    let acc = vx.b.declare_var(vx.vt);
    let init = vx.splat(f64::NEG_INFINITY);
    vx.b.def_var(acc, init);
    row_vectors(vx, cols, |vx, c, tail| {
        let p = at(vx, row, c, e);
        let x = if tail == 0 {
            load(vx, p, 0, Width::Vector)
        } else {
            load_partial(vx, p, tail, f64::NEG_INFINITY)
        };
        let old = vx.b.use_var(acc);
        let new = vx.max(old, x);
        vx.b.def_var(acc, new);
    });
    let a = vx.b.use_var(acc);
    hmax(vx, a)
}

/// `Σ exp(x - m)` over a row, optionally storing each `exp(x - m)` in `out`.
/// The partial tail vector is padded with -inf, whose exp is exactly 0.
fn row_sum_exp(vx: &mut Vx, row: Value, out: Option<Value>, cols: usize, m: Value) -> Value {
    let e = bytes(vx);
    let mv = vx.b.ins().splat(vx.vt, m);
    let acc = vx.b.declare_var(vx.vt);
    let zero = vx.splat(0.0);
    vx.b.def_var(acc, zero);
    row_vectors(vx, cols, |vx, c, tail| {
        let p = at(vx, row, c, e);
        let x = if tail == 0 {
            load(vx, p, 0, Width::Vector)
        } else {
            load_partial(vx, p, tail, f64::NEG_INFINITY)
        };
        let d = vx.sub(x, mv);
        let y = vx.exp(d);
        if let Some(out) = out {
            let q = at(vx, out, c, e);
            if tail == 0 {
                store(vx, y, q, 0, Width::Vector);
            } else {
                store_partial(vx, y, q, tail);
            }
        }
        let old = vx.b.use_var(acc);
        let new = vx.add(old, y);
        vx.b.def_var(acc, new);
    });
    let a = vx.b.use_var(acc);
    hsum(vx, a)
}

/// Sums `src[rows, cols]` over rows and/or columns.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sum(
    vx: &mut Vx,
    src: Value,
    dst: Value,
    rows: usize,
    cols: usize,
    over_rows: bool,
    over_cols: bool,
) {
    let e = bytes(vx);
    match (over_rows, over_cols) {
        (false, false) => copy(vx, src, dst, rows * cols),
        (true, false) => {
            // Zero the output, then add each row into it (contiguous reads).
            sweep(vx, cols, 1, |vx, c, width, _| {
                let z = vx.splat(0.0);
                let d = at(vx, dst, c, e);
                store(vx, z, d, 0, width);
            });
            for_range(vx, rows, 1, |vx, r| {
                let row = at(vx, src, r, cols as i64 * e);
                sweep(vx, cols, 1, |vx, c, width, _| {
                    let s = at(vx, row, c, e);
                    let d = at(vx, dst, c, e);
                    let x = load(vx, s, 0, width);
                    let y = load(vx, d, 0, width);
                    let z = vx.add(x, y);
                    store(vx, z, d, 0, width);
                });
            });
        }
        (over_rows, true) => {
            // Summing everything is one long row.
            let (rows, cols) = if over_rows {
                (1, rows * cols)
            } else {
                (rows, cols)
            };
            for_range(vx, rows, 1, |vx, r| {
                let row = at(vx, src, r, cols as i64 * e);
                let (v, t) = fold_row(vx, row, cols, 0.0, |_, x, _| x, |vx, a, x| vx.add(a, x));
                let mut s = hsum(vx, v);
                if let Some(t) = t {
                    s = vx.b.ins().fadd(s, t);
                }
                let d = at(vx, dst, r, e);
                vx.b.ins().store(mem(), s, d, 0);
            });
        }
    }
}

/// Sums `src` of the sizes `dims` over the axes in `over`: the output is
/// zeroed, then nested loops over every axis but the last add each
/// innermost row into it — folded to one number when the last axis is
/// summed, element by element (contiguous vectors) when it is kept.
pub(crate) fn sum_strided(vx: &mut Vx, src: Value, dst: Value, dims: &[usize], over: u8) {
    let e = bytes(vx);
    let kept: usize = (0..dims.len())
        .filter(|a| over & (1 << a) == 0)
        .map(|a| dims[a])
        .product();
    sweep(vx, kept, 1, |vx, c, width, _| {
        let z = vx.splat(0.0);
        let d = at(vx, dst, c, e);
        store(vx, z, d, 0, width);
    });
    let (src_strides, dst_strides) = (strides(dims, 0), strides(dims, over));
    let Some((&inner, outer)) = dims.split_last() else {
        return;
    };
    let inner_summed = over & (1 << outer.len()) != 0;
    nest(vx, outer, &mut |vx, idx| {
        let so = offset(vx, idx, &src_strides);
        let row = vx.b.ins().iadd(src, so);
        let d_off = offset(vx, idx, &dst_strides);
        let out = vx.b.ins().iadd(dst, d_off);
        if inner_summed {
            let (v, t) = fold_row(vx, row, inner, 0.0, |_, x, _| x, |vx, a, x| vx.add(a, x));
            let mut s = hsum(vx, v);
            if let Some(t) = t {
                s = vx.b.ins().fadd(s, t);
            }
            let old = vx.b.ins().load(vx.st, mem(), out, 0);
            let new = vx.b.ins().fadd(old, s);
            vx.b.ins().store(mem(), new, out, 0);
        } else {
            sweep(vx, inner, 1, |vx, c, width, _| {
                let s = at(vx, row, c, e);
                let d = at(vx, out, c, e);
                let x = load(vx, s, 0, width);
                let y = load(vx, d, 0, width);
                let z = vx.add(x, y);
                store(vx, z, d, 0, width);
            });
        }
    });
}

/// Softmax of each row: `exp(x - max) / Σ exp(x - max)`.
pub(crate) fn softmax(vx: &mut Vx, src: Value, dst: Value, rows: usize, cols: usize) {
    softmax_lse(vx, src, Some(dst), None, rows, cols);
}

/// `max + log Σ exp(x - max)` of each row.
pub(crate) fn logsumexp(vx: &mut Vx, src: Value, dst: Value, rows: usize, cols: usize) {
    softmax_lse(vx, src, None, Some(dst), rows, cols);
}

/// The softmax and/or the log-sum-exp of each row in one pass over it:
/// a cross-entropy loss needs both of the same logits (the loss and its
/// gradient), and they share the max and the exponentials.
///
/// Rows are emitted one at a time. Emitting four short rows per loop trip
/// (so the CPU overlaps their dependency chains) was measured: digits
/// loss+grad 5.57–5.73 µs against 5.63–6.03 µs, but compiling the step took
/// 3.8 ms instead of 2.5 ms, which a short training run never earns back.
pub(crate) fn softmax_lse(
    vx: &mut Vx,
    src: Value,
    sm: Option<Value>,
    lse: Option<Value>,
    rows: usize,
    cols: usize,
) {
    let e = bytes(vx);
    for_range(vx, rows, 1, |vx, r| {
        let row = at(vx, src, r, cols as i64 * e);
        let out = sm.map(|sm| at(vx, sm, r, cols as i64 * e));
        let m = row_max(vx, row, cols);
        let s = row_sum_exp(vx, row, out, cols, m);
        let sv = vx.b.ins().splat(vx.vt, s);
        if let Some(lse) = lse {
            let l = vx.log(sv);
            let l = vx.b.ins().extractlane(l, 0);
            let y = vx.b.ins().fadd(m, l);
            let d = at(vx, lse, r, e);
            vx.b.ins().store(mem(), y, d, 0);
        }
        if let Some(out) = out {
            let one = vx.splat(1.0);
            let inv = vx.div(one, sv);
            sweep(vx, cols, 1, |vx, c, width, _| {
                let q = at(vx, out, c, e);
                let y = load(vx, q, 0, width);
                let z = vx.mul(y, inv);
                store(vx, z, q, 0, width);
            });
        }
    });
}

/// The index (as a float) of the first largest element of each row.
pub(crate) fn argmax(vx: &mut Vx, src: Value, dst: Value, rows: usize, cols: usize) {
    let e = bytes(vx);
    for_range(vx, rows, 1, |vx, r| {
        let row = at(vx, src, r, cols as i64 * e);
        let best = vx.b.declare_var(vx.st);
        let idx = vx.b.declare_var(vx.st);
        let x0 = vx.b.ins().load(vx.st, mem(), row, 0);
        vx.b.def_var(best, x0);
        let z = vx.splat(0.0);
        let z = vx.b.ins().extractlane(z, 0);
        vx.b.def_var(idx, z);
        for_range(vx, cols - 1, 1, |vx, j| {
            let j1 = vx.b.ins().iadd_imm_s(j, 1);
            let p = at(vx, row, j1, e);
            let x = vx.b.ins().load(vx.st, mem(), p, 0);
            let b = vx.b.use_var(best);
            let i = vx.b.use_var(idx);
            let gt = vx.b.ins().fcmp(FloatCC::GreaterThan, x, b);
            let jf = vx.b.ins().fcvt_from_sint(vx.st, j1);
            let nb = vx.b.ins().select(gt, x, b);
            let ni = vx.b.ins().select(gt, jf, i);
            vx.b.def_var(best, nb);
            vx.b.def_var(idx, ni);
        });
        let i = vx.b.use_var(idx);
        let d = at(vx, dst, r, e);
        vx.b.ins().store(mem(), i, d, 0);
    });
}

/// `dst[r, j] = (src[r] == j)` as 1 or 0; out-of-range indices give a zero
/// row. Vectorised along the row: lane `l` of the vector at column `j`
/// compares against `j + l`.
pub(crate) fn onehot(vx: &mut Vx, src: Value, dst: Value, rows: usize, k: usize) {
    let e = bytes(vx);
    // [0, 1, 2, ...] as floats, built once outside the loops.
    let mut iota = vx.splat(0.0);
    for lane in 1..vx.lanes() {
        let c = vx.splat(f64::from(lane));
        let c = vx.b.ins().extractlane(c, 0);
        iota = vx.b.ins().insertlane(iota, c, lane);
    }
    for_range(vx, rows, 1, |vx, r| {
        let p = at(vx, src, r, e);
        let x = vx.b.ins().load(vx.st, mem(), p, 0);
        let xv = vx.b.ins().splat(vx.vt, x);
        let out = at(vx, dst, r, k as i64 * e);
        row_vectors(vx, k, |vx, c, tail| {
            // Column indices are small integers, exact in f32 and f64.
            let cf = vx.b.ins().fcvt_from_sint(vx.st, c);
            let cv = vx.b.ins().splat(vx.vt, cf);
            let js = vx.add(cv, iota);
            let m = vx.cmp(FloatCC::Equal, xv, js);
            let y = vx.mask_to_one(m);
            let q = at(vx, out, c, e);
            if tail == 0 {
                store(vx, y, q, 0, Width::Vector);
            } else {
                store_partial(vx, y, q, tail);
            }
        });
    });
}
