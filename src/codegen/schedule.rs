//! The schedule: which nodes get a buffer, and the ordered list of kernels
//! that fill them.
//!
//! Matrix products, transposes that cannot be folded into a product, and
//! reductions split the graph. Every element-wise node between them is
//! computed inside a fused loop; a node is *materialized* (given a buffer)
//! only when something outside its loop reads it: a non-element-wise user,
//! a broadcast, a second user, or the signature. Materialized element-wise
//! nodes ("sinks") of one shape share a loop when nothing they read is
//! produced later. Updates of leaves run last and write in place when no
//! later kernel reads the old value; otherwise they go through scratch.
//!
//! Tensors may have any rank. Element-wise loops and sums of rank ≤ 2 keep
//! their matrix forms; higher ranks merge axes (`strides.rs`) and read
//! broadcast operands by strides ([`Index::Axes`]). Matrix products,
//! transposes and one-hot stay rank 2 (the shape rules enforce it; the
//! planner re-checks and answers [`CodegenError::Unsupported`]); softmax,
//! log-sum-exp and arg-max run along the last axis of any rank.

use super::consts;
use super::plan::{Buf, BufKind, Fused, Index, Kernel, Plan, View};
use super::window::Geom;
use super::{CodegenError, Signature};
use crate::graph::{Graph, LeafKind, NodeId, Op, Window, WindowOp};
use std::collections::{HashMap, HashSet};

mod shapes;
pub(crate) use shapes::{broadcast_index, dims, unsupported};
use shapes::{last_axis_rows, rows_cols, sum_kernel, window_geom};

/// Sinks one fused loop takes at most. A deep network's parameter updates
/// all have a few shapes; one loop over thousands of buffers made register
/// allocation superlinear (every pointer live across the loop).
const MAX_SINKS: usize = 16;

struct Planner<'g> {
    graph: &'g Graph,
    batch: usize,
    /// The nodes of the same known value everywhere (`consts.rs`).
    consts: HashMap<NodeId, f64>,
    users: HashMap<NodeId, Vec<NodeId>>,
    roots: HashSet<NodeId>,
    bufs: Vec<Buf>,
    buf_of: HashMap<NodeId, usize>,
    kernels: Vec<Option<Kernel>>,
    /// The kernel that writes each buffer.
    producer: HashMap<usize, usize>,
    /// The kernel of each fused sink.
    kernel_of: HashMap<NodeId, usize>,
    /// Nodes already computed by a kernel scheduled for another node.
    done: HashSet<NodeId>,
    /// Each fused loop's loads and their buffers, as sets.
    fused_loads: HashMap<usize, FusedLoads>,
    /// The scratch of each convolution scheduled so far, by its input's
    /// buffer and geometry: its column matrix holds that input's im2col.
    cols: HashMap<(usize, Geom), usize>,
    /// Likewise the arg-maxes of each max pooling that records them.
    argmaxes: HashMap<(usize, Geom), usize>,
}

/// A fused loop's `(buffer, index)` loads and the buffers among them.
type FusedLoads = (HashSet<(usize, Index)>, HashSet<usize>);

/// Every node of the signature is in the graph, and every input and updated
/// state is a distinct leaf.
fn check_signature(graph: &Graph, sig: &Signature) -> Result<(), CodegenError> {
    let bad = |m: String| Err(CodegenError::Signature(m));
    let all: Vec<NodeId> = sig
        .inputs
        .iter()
        .chain(&sig.outputs)
        .chain(sig.updates.iter().flat_map(|(l, v)| [l, v]))
        .copied()
        .collect();
    if let Some(n) = all.iter().find(|n| !graph.dag.contains_node(**n)) {
        return bad(format!("node {n:?} is not in the graph"));
    }
    let leaf_name = |n: NodeId| match graph.node(n).op {
        Op::Leaf(id) => Some(graph.leaf_info(id).name.clone()),
        _ => None,
    };
    let mut seen = HashSet::new();
    for &n in sig.inputs.iter().chain(sig.updates.iter().map(|(l, _)| l)) {
        let Some(name) = leaf_name(n) else {
            return bad(format!(
                "{:?} ({}) is not a leaf",
                n,
                graph.node(n).op.name()
            ));
        };
        if !seen.insert(n) {
            return bad(format!(
                "leaf `{name}` is given twice (as input or updated state)"
            ));
        }
    }
    Ok(())
}

/// Builds the schedule of `sig` over `graph` for `batch` rows.
pub(crate) fn plan(graph: &Graph, sig: &Signature, batch: usize) -> Result<Plan, CodegenError> {
    if batch == 0 {
        return Err(CodegenError::ZeroBatch);
    }
    check_signature(graph, sig)?;
    let bad = |m: String| Err(CodegenError::Signature(m));
    let mut roots_list: Vec<NodeId> = sig.outputs.clone();
    roots_list.extend(sig.updates.iter().map(|u| u.1));
    let order = graph.topo_order(&roots_list);
    let mut p = Planner {
        graph,
        batch,
        consts: consts::fold(graph, &order, batch),
        users: HashMap::new(),
        roots: roots_list.iter().copied().collect(),
        bufs: Vec::new(),
        buf_of: HashMap::new(),
        kernels: Vec::new(),
        producer: HashMap::new(),
        kernel_of: HashMap::new(),
        done: HashSet::new(),
        fused_loads: HashMap::new(),
        cols: HashMap::new(),
        argmaxes: HashMap::new(),
    };
    for &n in &order {
        let mut args = graph.node(n).args.clone();
        args.dedup();
        for a in args {
            let us = p.users.entry(a).or_default();
            // `n` is pushed only in this iteration, so a repeat is the last
            // entry (a scan of `us` was quadratic for a constant every
            // layer reads).
            if us.last() != Some(&n) {
                us.push(n);
            }
        }
    }
    // Buffers of the signature, in the pointer table's order.
    let len_of = |n: NodeId| dims(&graph.node(n).shape, batch).iter().product::<usize>();
    for (i, &n) in sig.inputs.iter().enumerate() {
        p.new_buf(n, BufKind::Input(i), len_of(n));
    }
    for (i, (l, _)) in sig.updates.iter().enumerate() {
        p.new_buf(*l, BufKind::State(i), len_of(*l));
    }
    for &n in &order {
        if let Op::Leaf(id) = graph.node(n).op
            && !p.buf_of.contains_key(&n)
        {
            let leaf = graph.leaf_info(id);
            let hint = match leaf.kind {
                LeafKind::Param | LeafKind::State => "pass it as an input or update it",
                LeafKind::Input | LeafKind::Target | LeafKind::Scalar | LeafKind::Grad => {
                    "pass it as an input"
                }
            };
            return bad(format!(
                "leaf `{}` is read but not given; {hint}",
                leaf.name
            ));
        }
    }
    let mut late_copies = Vec::new();
    let mut early_copies = Vec::new();
    for (i, &n) in sig.outputs.iter().enumerate() {
        let len = len_of(n);
        let b = p.push_buf(BufKind::Output(i), len);
        match p.buf_of.get(&n) {
            Some(&src) if matches!(graph.node(n).op, Op::Leaf(_)) => {
                early_copies.push(Kernel::Copy { src, dst: b, len })
            }
            Some(&src) => late_copies.push(Kernel::Copy { src, dst: b, len }),
            None => {
                p.buf_of.insert(n, b);
            }
        }
    }
    for k in early_copies {
        p.push_kernel(k);
    }
    // Updates and everything computed from them run after the rest.
    let updates: HashSet<NodeId> = sig.updates.iter().map(|u| u.1).collect();
    let mut deferred: HashSet<NodeId> = HashSet::new();
    for &n in &order {
        if updates.contains(&n) || graph.node(n).args.iter().any(|a| deferred.contains(a)) {
            deferred.insert(n);
        }
    }
    let phase2_start_marker = usize::MAX;
    let mut phase2_start = phase2_start_marker;
    for pass in 0..2 {
        if pass == 1 {
            phase2_start = p.kernels.len();
        }
        for &n in &order {
            if deferred.contains(&n) != (pass == 1) || !p.materialized(n) {
                continue;
            }
            if matches!(graph.node(n).op, Op::Leaf(_)) {
                continue;
            }
            if !p.buf_of.contains_key(&n) {
                p.new_buf(n, BufKind::Work, len_of(n));
            }
            let floor = if pass == 1 { phase2_start } else { 0 };
            p.schedule(n, floor)?;
        }
    }
    for k in late_copies {
        p.push_kernel(k);
    }
    let mut update_copies = Vec::new();
    for (l, v) in &sig.updates {
        if l != v {
            let dst = p.buf_of[l];
            let src = p.buf_of[v];
            update_copies.push((p.kernels.len(), *l, *v));
            p.push_kernel(Kernel::Copy {
                src,
                dst,
                len: len_of(*l),
            });
        }
    }
    // The kernels reading each buffer, so that each update asks about its
    // own two buffers instead of scanning every later kernel.
    let mut readers: HashMap<usize, Vec<usize>> = HashMap::new();
    for (j, k) in p.kernels.iter().enumerate() {
        for (b, _) in k.iter().flat_map(Kernel::reads) {
            readers.entry(b).or_default().push(j);
        }
    }
    for (copy_idx, l, v) in update_copies {
        p.try_in_place(copy_idx, l, v, &mut readers);
    }
    Ok(Plan {
        bufs: p.bufs,
        kernels: p.kernels.into_iter().flatten().collect(),
        buf_of: p.buf_of,
        batch,
        consts: p.consts,
    })
}

impl Planner<'_> {
    fn push_buf(&mut self, kind: BufKind, len: usize) -> usize {
        self.bufs.push(Buf { kind, len });
        self.bufs.len() - 1
    }

    fn new_buf(&mut self, n: NodeId, kind: BufKind, len: usize) -> usize {
        let b = self.push_buf(kind, len);
        self.buf_of.insert(n, b);
        b
    }

    /// The scratch of a window kernel reading `src` first, and whether it
    /// already holds what the kernel would compute first. A kernel
    /// gradient reuses the scratch of the forward convolution of the same
    /// input (its im2col), a max-pooling gradient that of the forward
    /// pooling selecting by the same input (its arg-maxes, recorded when
    /// `backward` says a gradient will read them). The forward kernel is
    /// scheduled earlier, so runs earlier, and nothing else writes its
    /// scratch.
    fn window_scratch(
        &mut self,
        op: WindowOp,
        geom: Geom,
        src: usize,
        backward: bool,
    ) -> (Option<usize>, bool) {
        let fresh = |p: &mut Self, len| Some(p.push_buf(BufKind::Work, len));
        match op {
            WindowOp::Conv => {
                let s = self.push_buf(BufKind::Work, geom.scratch());
                self.cols.insert((src, geom), s);
                (Some(s), false)
            }
            WindowOp::ConvBackKernel => match self.cols.get(&(src, geom)) {
                Some(&s) => (Some(s), true),
                None => (fresh(self, geom.scratch()), false),
            },
            WindowOp::ConvBackInput => (fresh(self, geom.scratch()), false),
            WindowOp::MaxPool if backward => {
                let s = self.push_buf(BufKind::Work, geom.windows());
                self.argmaxes.insert((src, geom), s);
                (Some(s), false)
            }
            WindowOp::MaxPoolBack => match self.argmaxes.get(&(src, geom)) {
                Some(&s) => (Some(s), true),
                None => (None, false),
            },
            WindowOp::MaxPool | WindowOp::AvgPool | WindowOp::AvgPoolBack => (None, false),
        }
    }

    /// Whether a max-pooling gradient over `win` selecting by `s` is among
    /// the nodes being scheduled (then the forward pooling keeps its
    /// arg-maxes for it).
    fn has_max_pool_back(&self, s: NodeId, win: Window) -> bool {
        let back = Op::Window(WindowOp::MaxPoolBack, win);
        self.users(s).iter().any(|&u| {
            let node = self.graph.node(u);
            node.op == back && node.args.first() == Some(&s)
        })
    }

    fn push_kernel(&mut self, k: Kernel) -> usize {
        let i = self.kernels.len();
        for w in k.writes() {
            self.producer.insert(w, i);
        }
        self.kernels.push(Some(k));
        i
    }

    fn users(&self, n: NodeId) -> &[NodeId] {
        self.users.get(&n).map_or(&[], |v| v.as_slice())
    }

    /// True when `n` gets a buffer (see the module docs).
    fn materialized(&self, n: NodeId) -> bool {
        let op = self.graph.node(n).op;
        let root = self.roots.contains(&n);
        match op {
            Op::Leaf(_)
            | Op::MatMul
            | Op::Sum(_)
            | Op::Softmax
            | Op::LogSumExp
            | Op::OneHot(_)
            | Op::ArgMax
            | Op::Window(..)
            | Op::Flatten
            | Op::Unflatten(_) => true,
            Op::Transpose => {
                root || self
                    .users(n)
                    .iter()
                    .any(|&u| self.graph.node(u).op != Op::MatMul)
            }
            _ => {
                let constant = self.consts.contains_key(&n);
                let needed_by = |u: NodeId| {
                    let uop = self.graph.node(u).op;
                    match uop {
                        Op::Broadcast(_) => !constant,
                        _ => !uop.is_elementwise(),
                    }
                };
                root || self.users(n).iter().any(|&u| needed_by(u))
                    || (self.users(n).len() >= 2 && !constant && !matches!(op, Op::Broadcast(_)))
            }
        }
    }

    /// The buffer and orientation of a matrix operand, looking through
    /// transposes that were folded away.
    fn view(&self, mut n: NodeId) -> View {
        let mut transposed = false;
        while !self.buf_of.contains_key(&n) && self.graph.node(n).op == Op::Transpose {
            transposed = !transposed;
            n = self.graph.node(n).args[0];
        }
        View {
            buf: self.buf_of[&n],
            transposed,
        }
    }

    fn dims(&self, n: NodeId) -> Vec<usize> {
        dims(&self.graph.node(n).shape, self.batch)
    }

    /// Adds the kernel that computes the materialized node `n`.
    fn schedule(&mut self, n: NodeId, floor: usize) -> Result<(), CodegenError> {
        let node = self.graph.node(n);
        let dst = self.buf_of[&n];
        let arg = |i: usize| node.args[i];
        let shape = |i: usize| &self.graph.node(node.args[i]).shape;
        let kernel = match node.op {
            Op::MatMul => {
                let (a, b) = (self.view(arg(0)), self.view(arg(1)));
                let (ad, bd) = (self.dims(arg(0)), self.dims(arg(1)));
                if ad.len() != 2 || bd.len() != 2 {
                    let why = "only matrices are multiplied";
                    return Err(unsupported(node.op, &[shape(0), shape(1)], why));
                }
                Kernel::MatMul {
                    a,
                    b,
                    c: dst,
                    m: ad[0],
                    k: ad[1],
                    n: bd[1],
                }
            }
            Op::Transpose => {
                let v = self.view(arg(0));
                let d = self.dims(arg(0));
                if d.len() != 2 {
                    let why = "only matrices are transposed";
                    return Err(unsupported(node.op, &[shape(0)], why));
                }
                if v.transposed {
                    Kernel::Copy {
                        src: v.buf,
                        dst,
                        len: d.iter().product(),
                    }
                } else {
                    Kernel::Transpose {
                        src: v.buf,
                        dst,
                        rows: d[0],
                        cols: d[1],
                    }
                }
            }
            Op::Sum(axes) => sum_kernel(self.buf_of[&arg(0)], dst, &self.dims(arg(0)), axes),
            Op::Softmax | Op::LogSumExp => {
                let (rows, cols) = last_axis_rows(node.op, shape(0), &self.dims(arg(0)))?;
                self.schedule_softmax_lse(n, rows, cols);
                return Ok(());
            }
            Op::ArgMax => {
                let (rows, cols) = last_axis_rows(node.op, shape(0), &self.dims(arg(0)))?;
                Kernel::ArgMax {
                    src: self.buf_of[&arg(0)],
                    dst,
                    rows,
                    cols,
                }
            }
            Op::OneHot(k) => {
                let &[rows] = &self.dims(arg(0))[..] else {
                    let why = "class indices are a vector";
                    return Err(unsupported(node.op, &[shape(0)], why));
                };
                Kernel::OneHot {
                    src: self.buf_of[&arg(0)],
                    dst,
                    rows,
                    k: k as usize,
                }
            }
            Op::Window(op, win) => {
                let srcs: Vec<usize> = node.args.iter().map(|a| self.buf_of[a]).collect();
                let geom = window_geom(op, win, &self.dims(arg(0)), &self.dims(n));
                let backward = self.has_max_pool_back(arg(0), win);
                let (scratch, cols_ready) = self.window_scratch(op, geom, srcs[0], backward);
                Kernel::Window {
                    op,
                    geom,
                    srcs,
                    dst,
                    scratch,
                    cols_ready,
                }
            }
            // Row-major reshapes: the same elements in a buffer of their own.
            Op::Flatten | Op::Unflatten(_) => Kernel::Copy {
                src: self.buf_of[&arg(0)],
                dst,
                len: self.dims(n).iter().product(),
            },
            Op::Leaf(_) => return Ok(()),
            Op::Const(_)
            | Op::BatchSize
            | Op::Broadcast(_)
            | Op::Neg
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
            | Op::Add
            | Op::Mul
            | Op::Pow
            | Op::Max
            | Op::Min
            | Op::Lt
            | Op::Le
            | Op::Gt
            | Op::Ge
            | Op::Eq
            | Op::Where => {
                self.schedule_fused(n, dst, floor);
                return Ok(());
            }
        };
        self.push_kernel(kernel);
        Ok(())
    }

    /// Adds the kernel of a softmax or log-sum-exp node over `rows` rows of
    /// `cols`: one pass for both when the argument has the other one too.
    fn schedule_softmax_lse(&mut self, n: NodeId, rows: usize, cols: usize) {
        let node = self.graph.node(n);
        let (src, dst) = (self.buf_of[&node.args[0]], self.buf_of[&n]);
        if self.done.contains(&n) {
            return;
        }
        if let Some((sm, lse)) = self.softmax_lse_pair(n) {
            // Both are materialized; the later one may not have its
            // buffer yet.
            for x in [sm, lse] {
                if !self.buf_of.contains_key(&x) {
                    let len = self.dims(x).iter().product();
                    self.new_buf(x, BufKind::Work, len);
                }
                self.done.insert(x);
            }
            self.push_kernel(Kernel::SoftmaxLse {
                src,
                sm: self.buf_of[&sm],
                lse: self.buf_of[&lse],
                rows,
                cols,
            });
        } else if node.op == Op::Softmax {
            self.push_kernel(Kernel::Softmax {
                src,
                dst,
                rows,
                cols,
            });
        } else {
            self.push_kernel(Kernel::LogSumExp {
                src,
                dst,
                rows,
                cols,
            });
        }
    }

    /// For a softmax or log-sum-exp node whose argument also has the other
    /// one among its users: `(softmax, log-sum-exp)`.
    fn softmax_lse_pair(&self, n: NodeId) -> Option<(NodeId, NodeId)> {
        let op = self.graph.node(n).op;
        let other = match op {
            Op::Softmax => Op::LogSumExp,
            Op::LogSumExp => Op::Softmax,
            _ => return None,
        };
        let arg = self.graph.node(n).args[0];
        let sib = *self
            .users(arg)
            .iter()
            .find(|&&u| self.graph.node(u).op == other)?;
        Some(if op == Op::Softmax {
            (n, sib)
        } else {
            (sib, n)
        })
    }

    /// The buffers a fused sink reads (with how), walking through the
    /// element-wise nodes it computes inline.
    fn sink_loads(&self, sink: NodeId) -> Vec<(NodeId, usize, Index)> {
        let rank = self.graph.node(sink).shape.0.len();
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![sink];
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            if n != sink
                && let Some(&b) = self.buf_of.get(&n)
            {
                out.push((n, b, Index::Identity));
                continue;
            }
            // Folded constants are splatted, never loaded.
            if self.consts.contains_key(&n) {
                continue;
            }
            let node = self.graph.node(n);
            match node.op {
                Op::Broadcast(axes) => {
                    let a = node.args[0];
                    if !self.consts.contains_key(&a) {
                        out.push((a, self.buf_of[&a], broadcast_index(axes.0, rank)));
                    }
                }
                _ => stack.extend(node.args.iter().copied()),
            }
        }
        out.sort_by_key(|l| (l.1, l.2));
        out.dedup();
        out
    }

    /// Puts the sink `n` into the earliest compatible fused loop at or after
    /// `floor`, or into a new one at the end.
    fn schedule_fused(&mut self, n: NodeId, buf: usize, floor: usize) {
        let d = self.dims(n);
        let rank = d.len();
        let (rows, cols) = rows_cols(&d);
        let loads = self.sink_loads(n);
        // No kernel before the latest producer of a load can take `n` (it
        // would read the buffer before it is written): starting there, not
        // at `floor`, keeps a deep network's schedule linear in its size.
        let latest = loads
            .iter()
            .filter_map(|(_, b, _)| self.producer.get(b).copied())
            .max()
            .unwrap_or(0);
        let mut chosen = None;
        for (ki, k) in self.kernels.iter().enumerate().skip(floor.max(latest)) {
            let Some(Kernel::Fused(f)) = k else { continue };
            if f.dims != d || f.sinks.len() >= MAX_SINKS {
                continue;
            }
            let ok = loads
                .iter()
                .all(|&(node, b, index)| match self.producer.get(&b) {
                    None => true,
                    Some(&p) if p == ki => {
                        index == Index::Identity && self.kernel_of.get(&node) == Some(&ki)
                    }
                    Some(&p) => p < ki,
                });
            if ok {
                chosen = Some(ki);
                break;
            }
        }
        let ki = match chosen {
            Some(ki) => ki,
            None => self.push_kernel(Kernel::Fused(Fused {
                rows,
                cols,
                rank,
                dims: d,
                sinks: Vec::new(),
                loads: Vec::new(),
            })),
        };
        let Some(Kernel::Fused(f)) = &mut self.kernels[ki] else {
            unreachable!("kernel {ki} was chosen or created as a fused loop")
        };
        f.sinks.push((n, buf));
        self.producer.insert(buf, ki);
        // The kernel's loads as sets, so that a loop with many sinks is not
        // rebuilt per sink: a buffer this kernel writes is not a load.
        let (seen, load_bufs) = self.fused_loads.entry(ki).or_default();
        for (_, b, index) in loads {
            let own = self.producer.get(&b) == Some(&ki);
            if !own && seen.insert((b, index)) {
                load_bufs.insert(b);
                f.loads.push((b, index));
            }
        }
        if load_bufs.remove(&buf) {
            f.loads.retain(|&(b, _)| b != buf);
            seen.retain(|&(b, _)| b != buf);
        }
        self.kernel_of.insert(n, ki);
    }

    /// Makes the update `l := v` write straight into `l` when no later
    /// kernel reads the old value, dropping the copy at `copy_idx`.
    fn try_in_place(
        &mut self,
        copy_idx: usize,
        l: NodeId,
        v: NodeId,
        readers: &mut HashMap<usize, Vec<usize>>,
    ) {
        let (lb, vb) = (self.buf_of[&l], self.buf_of[&v]);
        if self.bufs[vb].kind != BufKind::Work || !self.users(v).is_empty() {
            return;
        }
        let Some(&ki) = self.kernel_of.get(&v) else {
            return;
        };
        let later_reads = [lb, vb].iter().any(|b| {
            readers
                .get(b)
                .is_some_and(|js| js.iter().any(|&j| j > ki && j != copy_idx))
        });
        let Some(Kernel::Fused(f)) = &self.kernels[ki] else {
            return;
        };
        let odd_reads = f
            .loads
            .iter()
            .any(|&(b, index)| b == lb && index != Index::Identity);
        if later_reads || odd_reads {
            return;
        }
        let Some(Kernel::Fused(f)) = &mut self.kernels[ki] else {
            return;
        };
        for s in &mut f.sinks {
            if s.0 == v {
                s.1 = lb;
            }
        }
        if let Some(copy) = self.kernels[copy_idx].take() {
            for (b, _) in copy.reads() {
                if let Some(js) = readers.get_mut(&b) {
                    js.retain(|&j| j != copy_idx);
                }
            }
        }
        self.buf_of.insert(v, lb);
    }
}
