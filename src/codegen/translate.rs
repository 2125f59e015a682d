//! The translator: one Cranelift function per kernel. This file holds the
//! shared loop helpers and the fused element-wise loop, whose expression
//! translator has one arm per [`Op`].

use super::math::Vx;
use super::plan::{Fused, Index, Plan};
use super::schedule::broadcast_index;
use super::strides::{Merged, merge, strides};
use crate::graph::{Graph, NodeId, Op};
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::{InstBuilder, MemFlagsData, Value, types};
use std::collections::{HashMap, HashSet};

/// Memory flags for tensor loads and stores: cannot trap (buffer lengths
/// are checked before the call), not necessarily aligned.
pub(crate) fn mem() -> MemFlagsData {
    let mut f = MemFlagsData::new();
    f.set_notrap();
    f
}

/// Emits `for i in (0..end).step_by(step) { body(i) }` with `end > 0`
/// known at compile time (so the test sits at the bottom).
pub(crate) fn for_range(
    vx: &mut Vx,
    end: usize,
    step: usize,
    mut body: impl FnMut(&mut Vx, Value),
) {
    if end == 0 {
        return;
    }
    if end <= step {
        let zero = vx.b.ins().iconst(types::I64, 0);
        body(vx, zero);
        return;
    }
    let var = vx.b.declare_var(types::I64);
    let zero = vx.b.ins().iconst(types::I64, 0);
    vx.b.def_var(var, zero);
    let head = vx.b.create_block();
    let exit = vx.b.create_block();
    vx.b.ins().jump(head, &[]);
    vx.b.switch_to_block(head);
    let i = vx.b.use_var(var);
    body(vx, i);
    let i = vx.b.use_var(var);
    let next = vx.b.ins().iadd_imm_s(i, step as i64);
    vx.b.def_var(var, next);
    let more =
        vx.b.ins()
            .icmp_imm_s(IntCC::SignedLessThan, next, end as i64);
    vx.b.ins().brif(more, head, &[], exit, &[]);
    vx.b.switch_to_block(exit);
}

/// Whether a value covers a whole vector or only lane 0 (the scalar tail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Width {
    /// All lanes are loaded and stored.
    Vector,
    /// Lane 0 is loaded (splat) and stored; used for tails.
    Lane0,
}

/// Loads `width` elements at `addr + off` as a vector.
pub(crate) fn load(vx: &mut Vx, addr: Value, off: i32, width: Width) -> Value {
    match width {
        Width::Vector => vx.b.ins().load(vx.vt, mem(), addr, off),
        Width::Lane0 => {
            let s = vx.b.ins().load(vx.st, mem(), addr, off);
            vx.b.ins().splat(vx.vt, s)
        }
    }
}

/// Stores `width` elements of `v` at `addr + off`.
pub(crate) fn store(vx: &mut Vx, v: Value, addr: Value, off: i32, width: Width) {
    match width {
        Width::Vector => {
            vx.b.ins().store(mem(), v, addr, off);
        }
        Width::Lane0 => {
            let s = vx.b.ins().extractlane(v, 0);
            vx.b.ins().store(mem(), s, addr, off);
        }
    }
}

/// Vectors per iteration of a fused loop's main body: independent chains
/// hide latency (worth 1.3–4× per the notes), more would spill.
fn unroll(lanes: u8) -> usize {
    if lanes == 4 { 4 } else { 2 }
}

/// Emits the loops of `sweep` over `cols` elements: `body(c, width, k)`
/// handles `k` vectors at element `c` (a main loop of `k = unroll`, then
/// single vectors, then lane-0 tails).
pub(crate) fn sweep(
    vx: &mut Vx,
    cols: usize,
    unrolled: usize,
    mut body: impl FnMut(&mut Vx, Value, Width, usize),
) {
    let lanes = vx.lanes() as usize;
    let group = lanes * unrolled;
    let main = cols / group * group;
    for_range(vx, main, group, |vx, c| {
        body(vx, c, Width::Vector, unrolled)
    });
    let mut c = main;
    while c + lanes <= cols {
        let cv = vx.b.ins().iconst(types::I64, c as i64);
        body(vx, cv, Width::Vector, 1);
        c += lanes;
    }
    while c < cols {
        let cv = vx.b.ins().iconst(types::I64, c as i64);
        body(vx, cv, Width::Lane0, 1);
        c += 1;
    }
}

/// Everything the fused-loop translator needs.
pub(crate) struct FusedCtx<'a> {
    pub graph: &'a Graph,
    pub plan: &'a Plan,
    /// Base pointer of each buffer the kernel touches.
    pub ptrs: &'a HashMap<usize, Value>,
}

/// Emits nested loops over `dims` (outermost first), calling `body` with
/// the index of every axis.
pub(crate) fn nest(vx: &mut Vx, dims: &[usize], body: &mut dyn FnMut(&mut Vx, &[Value])) {
    fn go(
        vx: &mut Vx,
        dims: &[usize],
        idx: &mut Vec<Value>,
        body: &mut dyn FnMut(&mut Vx, &[Value]),
    ) {
        match dims.split_first() {
            None => body(vx, idx),
            Some((&n, rest)) => for_range(vx, n, 1, |vx, i| {
                idx.push(i);
                go(vx, rest, idx, body);
                idx.pop();
            }),
        }
    }
    go(vx, dims, &mut Vec::new(), body);
}

/// The byte offset `Σ idx[a] · strides[a]` of one loop position.
pub(crate) fn offset(vx: &mut Vx, idx: &[Value], strides: &[usize]) -> Value {
    let bytes = vx.st.bytes() as i64;
    let mut off = vx.b.ins().iconst(types::I64, 0);
    for (&i, &s) in idx.iter().zip(strides) {
        if s != 0 {
            let term = vx.b.ins().imul_imm_s(i, s as i64 * bytes);
            off = vx.b.ins().iadd(off, term);
        }
    }
    off
}

/// How [`Index::Axes`] loads of a rank ≥ 3 loop are addressed.
enum Lay<'a> {
    /// A rank ≤ 2 loop: there are none.
    Plain,
    /// The loop simplified to rank ≤ 2: each mask's pattern there.
    Merged(&'a HashMap<u8, Index>),
    /// Nested loops: each mask's byte offset at the current outer position,
    /// and whether it drops the innermost axis (then it is one scalar).
    Strided(&'a HashMap<u8, (Value, bool)>),
}

/// Emits a fused element-wise loop.
///
/// With `pre_tanh`, every sink must be a `tanh`, and its argument is stored
/// in its place (the caller then applies `tanh` to the buffer in place).
pub(crate) fn emit_fused(vx: &mut Vx, cx: &FusedCtx, f: &Fused, pre_tanh: bool) {
    let mut masks: Vec<u8> = f
        .loads
        .iter()
        .filter_map(|l| match l.1 {
            Index::Axes(m) => Some(m),
            Index::Identity | Index::Col | Index::Row | Index::Scalar => None,
        })
        .collect();
    masks.sort_unstable();
    masks.dedup();
    if masks.is_empty() {
        return emit_rows(vx, cx, f, pre_tanh, &Lay::Plain);
    }
    let merged = merge(&f.dims, &masks);
    let (rows, cols) = match merged.dims[..] {
        [] => (1, 1),
        [n] => (1, n),
        [r, c] => (r, c),
        [_, _, _, ..] => return emit_strided(vx, cx, f, pre_tanh, &masks, &merged),
    };
    let rank = merged.dims.len();
    let map: HashMap<u8, Index> = masks
        .iter()
        .zip(&merged.masks)
        .map(|(&m, &mm)| (m, broadcast_index(mm, rank)))
        .collect();
    let loads = f
        .loads
        .iter()
        .map(|&(b, i)| match i {
            Index::Axes(m) => (b, map[&m]),
            Index::Identity | Index::Col | Index::Row | Index::Scalar => (b, i),
        })
        .collect();
    let g = Fused {
        rows,
        cols,
        loads,
        ..f.clone()
    };
    emit_rows(vx, cx, &g, pre_tanh, &Lay::Merged(&map));
}

/// Emits a fused loop as `rows` rows of `cols` elements.
fn emit_rows(vx: &mut Vx, cx: &FusedCtx, f: &Fused, pre_tanh: bool, lay: &Lay) {
    let flat = f
        .loads
        .iter()
        .all(|l| matches!(l.1, Index::Identity | Index::Scalar));
    let (rows, cols) = if flat {
        (1, f.rows * f.cols)
    } else {
        (f.rows, f.cols)
    };
    let bytes = vx.st.bytes() as i64;
    for_range(vx, rows, 1, |vx, r| {
        let row_bytes = vx.b.ins().imul_imm_s(r, cols as i64 * bytes);
        sweep(vx, cols, unroll(vx.lanes()), |vx, c, width, k| {
            let col_bytes = vx.b.ins().imul_imm_s(c, bytes);
            let at = vx.b.ins().iadd(row_bytes, col_bytes);
            let pos = Pos { r, c, at, width };
            emit_vectors(vx, cx, f, pre_tanh, lay, pos, k);
        });
    });
}

/// Emits a fused loop of three or more merged axes as nested loops, the
/// innermost swept by vectors.
fn emit_strided(
    vx: &mut Vx,
    cx: &FusedCtx,
    f: &Fused,
    pre_tanh: bool,
    masks: &[u8],
    merged: &Merged,
) {
    let bytes = vx.st.bytes() as i64;
    let (outer, inner) = merged.dims.split_at(merged.dims.len() - 1);
    let last = 1u8 << outer.len();
    nest(vx, outer, &mut |vx, idx| {
        let own = offset(vx, idx, &strides(&merged.dims, 0));
        let mut offs = HashMap::new();
        for (&m, &mm) in masks.iter().zip(&merged.masks) {
            let off = offset(vx, idx, &strides(&merged.dims, mm));
            offs.insert(m, (off, mm & last != 0));
        }
        sweep(vx, inner[0], unroll(vx.lanes()), |vx, c, width, k| {
            let col_bytes = vx.b.ins().imul_imm_s(c, bytes);
            let at = vx.b.ins().iadd(own, col_bytes);
            // No load is by row in a strided loop; `r` is never read.
            let pos = Pos { r: c, c, at, width };
            emit_vectors(vx, cx, f, pre_tanh, &Lay::Strided(&offs), pos, k);
        });
    });
}

/// A loop position: row and column indices (i64), and the byte offset of
/// the element in a buffer of the loop's shape.
#[derive(Clone, Copy)]
struct Pos {
    r: Value,
    c: Value,
    at: Value,
    width: Width,
}

/// Computes every sink for the `k` vectors at `pos`, then stores them.
fn emit_vectors(
    vx: &mut Vx,
    cx: &FusedCtx,
    f: &Fused,
    pre_tanh: bool,
    lay: &Lay,
    pos: Pos,
    k: usize,
) {
    let bytes = vx.st.bytes() as i64;
    let lanes = vx.lanes() as usize;
    let sinks: HashSet<NodeId> = f.sinks.iter().map(|s| s.0).collect();
    for u in 0..k {
        let mut ev = Eval {
            cx,
            sinks: &sinks,
            rank: f.rank,
            lay,
            r: pos.r,
            c: pos.c,
            at: pos.at,
            off: (u * lanes) as i32 * bytes as i32,
            width: pos.width,
            cache: HashMap::new(),
        };
        // Every sink is computed before any is stored, so an update
        // written in place never feeds a read of the same element.
        let vals: Vec<Value> = f
            .sinks
            .iter()
            .map(|s| {
                let n = if pre_tanh {
                    cx.graph.node(s.0).args[0]
                } else {
                    s.0
                };
                ev.eval(vx, n)
            })
            .collect();
        for (s, v) in f.sinks.iter().zip(vals) {
            let base = cx.ptrs[&s.1];
            let addr = vx.b.ins().iadd(base, pos.at);
            store(vx, v, addr, ev.off, pos.width);
        }
    }
}

/// The translator of one vector's worth of a fused loop.
struct Eval<'a, 'c> {
    cx: &'a FusedCtx<'c>,
    sinks: &'a HashSet<NodeId>,
    /// The rank of the loop's nodes (broadcast masks are over its axes).
    rank: usize,
    lay: &'a Lay<'a>,
    /// Row index (i64).
    r: Value,
    /// Column index (i64).
    c: Value,
    /// Byte offset of element (r, c) in a buffer of the loop's shape.
    at: Value,
    /// Extra byte offset of this vector within the unrolled group.
    off: i32,
    width: Width,
    cache: HashMap<NodeId, Value>,
}

impl Eval<'_, '_> {
    /// Loads buffer `buf` at the loop position, read as `index` says.
    fn load(&mut self, vx: &mut Vx, buf: usize, index: Index) -> Value {
        let base = self.cx.ptrs[&buf];
        let bytes = vx.st.bytes() as i64;
        match index {
            Index::Identity => {
                let addr = vx.b.ins().iadd(base, self.at);
                load(vx, addr, self.off, self.width)
            }
            Index::Col => {
                let cb = vx.b.ins().imul_imm_s(self.c, bytes);
                let addr = vx.b.ins().iadd(base, cb);
                load(vx, addr, self.off, self.width)
            }
            Index::Row => {
                let rb = vx.b.ins().imul_imm_s(self.r, bytes);
                let addr = vx.b.ins().iadd(base, rb);
                load(vx, addr, 0, Width::Lane0)
            }
            Index::Scalar => load(vx, base, 0, Width::Lane0),
            Index::Axes(m) => match self.lay {
                Lay::Merged(map) => self.load(vx, buf, map[&m]),
                Lay::Strided(offs) => {
                    let (off, scalar) = offs[&m];
                    let addr = vx.b.ins().iadd(base, off);
                    if scalar {
                        load(vx, addr, 0, Width::Lane0)
                    } else {
                        let cb = vx.b.ins().imul_imm_s(self.c, bytes);
                        let addr = vx.b.ins().iadd(addr, cb);
                        load(vx, addr, self.off, self.width)
                    }
                }
                Lay::Plain => unreachable!("rank ≤ 2 loops read no buffer by axes"),
            },
        }
    }

    fn eval(&mut self, vx: &mut Vx, n: NodeId) -> Value {
        if let Some(&v) = self.cache.get(&n) {
            return v;
        }
        let v = match self.cx.plan.buf_of.get(&n) {
            Some(&b) if !self.sinks.contains(&n) => self.load(vx, b, Index::Identity),
            _ => self.compute(vx, n),
        };
        self.cache.insert(n, v);
        v
    }

    fn args(&mut self, vx: &mut Vx, n: NodeId) -> Vec<Value> {
        let args = self.cx.graph.node(n).args.clone();
        args.into_iter().map(|a| self.eval(vx, a)).collect()
    }

    fn compute(&mut self, vx: &mut Vx, n: NodeId) -> Value {
        // Constant-only sub-expressions were folded in f64 (`consts.rs`).
        if let Some(&v) = self.cx.plan.consts.get(&n) {
            return vx.splat(v);
        }
        let node = self.cx.graph.node(n);
        let batch = self.cx.plan.batch;
        let cmp = |vx: &mut Vx, cc: FloatCC, a: &[Value]| {
            let m = vx.cmp(cc, a[0], a[1]);
            vx.mask_to_one(m)
        };
        match node.op {
            Op::Const(c) => vx.splat(c.value()),
            Op::BatchSize => vx.splat(batch as f64),
            Op::Broadcast(axes) => {
                let a = node.args[0];
                match self.cx.plan.consts.get(&a).copied() {
                    Some(v) => vx.splat(v),
                    None => {
                        let b = self.cx.plan.buf_of[&a];
                        self.load(vx, b, broadcast_index(axes.0, self.rank))
                    }
                }
            }
            Op::Leaf(_)
            | Op::MatMul
            | Op::Transpose
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_) => {
                let b = *self
                    .cx
                    .plan
                    .buf_of
                    .get(&n)
                    .expect("non-element-wise nodes are always materialized");
                self.load(vx, b, Index::Identity)
            }
            Op::Neg => {
                let a = self.args(vx, n);
                vx.b.ins().fneg(a[0])
            }
            Op::Recip => {
                let a = self.args(vx, n);
                let one = vx.splat(1.0);
                vx.div(one, a[0])
            }
            Op::Exp => {
                let a = self.args(vx, n);
                vx.exp(a[0])
            }
            Op::Log => {
                let a = self.args(vx, n);
                vx.log(a[0])
            }
            Op::Sqrt => {
                let a = self.args(vx, n);
                vx.b.ins().sqrt(a[0])
            }
            Op::Abs => {
                let a = self.args(vx, n);
                vx.b.ins().fabs(a[0])
            }
            Op::Sin => {
                let a = self.args(vx, n);
                vx.sin(a[0])
            }
            Op::Cos => {
                let a = self.args(vx, n);
                vx.cos(a[0])
            }
            Op::Tanh => {
                let a = self.args(vx, n);
                vx.tanh(a[0])
            }
            Op::Sigmoid => {
                let a = self.args(vx, n);
                vx.sigmoid(a[0])
            }
            Op::Relu => {
                let a = self.args(vx, n);
                let zero = vx.splat(0.0);
                vx.max(a[0], zero)
            }
            Op::Softplus => {
                let a = self.args(vx, n);
                vx.softplus(a[0])
            }
            Op::Add => {
                let a = self.args(vx, n);
                a[1..].iter().fold(a[0], |acc, &x| vx.add(acc, x))
            }
            Op::Mul => {
                let a = self.args(vx, n);
                a[1..].iter().fold(a[0], |acc, &x| vx.mul(acc, x))
            }
            Op::Pow => {
                let a = self.args(vx, n);
                let k = self.cx.plan.consts.get(&node.args[1]).copied();
                vx.pow(a[0], a[1], k)
            }
            Op::Max => {
                let a = self.args(vx, n);
                vx.max(a[0], a[1])
            }
            Op::Min => {
                let a = self.args(vx, n);
                vx.min(a[0], a[1])
            }
            Op::Lt => {
                let a = self.args(vx, n);
                cmp(vx, FloatCC::LessThan, &a)
            }
            Op::Le => {
                let a = self.args(vx, n);
                cmp(vx, FloatCC::LessThanOrEqual, &a)
            }
            Op::Gt => {
                let a = self.args(vx, n);
                cmp(vx, FloatCC::GreaterThan, &a)
            }
            Op::Ge => {
                let a = self.args(vx, n);
                cmp(vx, FloatCC::GreaterThanOrEqual, &a)
            }
            Op::Eq => {
                let a = self.args(vx, n);
                cmp(vx, FloatCC::Equal, &a)
            }
            Op::Where => {
                let a = self.args(vx, n);
                let zero = vx.splat(0.0);
                let m = vx.cmp(FloatCC::NotEqual, a[0], zero);
                vx.select(m, a[1], a[2])
            }
        }
    }
}
