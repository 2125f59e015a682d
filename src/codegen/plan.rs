//! The schedule's data: the buffers of the pointer table, the kernels that
//! fill them, and how a fused loop reads each buffer it loads. The planner
//! (`schedule.rs`) builds it; the translators read it.

use super::window::Geom;
use crate::graph::{NodeId, WindowOp};
use std::collections::HashMap;

/// Where a buffer's memory comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BufKind {
    /// `call`'s `inputs[i]`.
    Input(usize),
    /// `call`'s `states[i]` (an updated leaf).
    State(usize),
    /// `call`'s `outputs[i]`.
    Output(usize),
    /// Workspace owned by the compiled function.
    Work,
}

/// One buffer of the pointer table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Buf {
    pub kind: BufKind,
    pub len: usize,
}

/// How a fused loop at row `r`, column `c` reads a buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Index {
    /// Element `r*cols + c`: same shape as the loop.
    Identity,
    /// Element `c`: a row vector broadcast down the rows.
    Col,
    /// Element `r`: a column broadcast across the columns.
    Row,
    /// Element 0: a scalar broadcast everywhere.
    Scalar,
    /// The element at the loop position with the axes in the set dropped:
    /// a broadcast along axes of a rank ≥ 3 loop that are none of the
    /// above (strides 0 on those axes; see `strides.rs`).
    Axes(u8),
}

/// A fused element-wise loop over `dims` (as `rows × cols` when its
/// rank is at most 2 or it reads no buffer by [`Index::Axes`]).
#[derive(Clone, Debug)]
pub(crate) struct Fused {
    /// Rows of a rank-2 loop, else 1.
    pub rows: usize,
    /// Columns of a rank-2 loop, else every element.
    pub cols: usize,
    pub rank: usize,
    /// The loop's shape (batch substituted), any rank.
    pub dims: Vec<usize>,
    /// Nodes computed and stored, with their buffers.
    pub sinks: Vec<(NodeId, usize)>,
    /// Buffers read, and how (sinks of this loop excluded).
    pub loads: Vec<(usize, Index)>,
}

/// A matrix operand: a buffer, read transposed or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub buf: usize,
    pub transposed: bool,
}

/// One step of the compiled function.
#[derive(Clone, Debug)]
pub(crate) enum Kernel {
    /// Element-wise loop.
    Fused(Fused),
    /// `c[m,n] = a[m,k] · b[k,n]`.
    MatMul {
        a: View,
        b: View,
        c: usize,
        m: usize,
        k: usize,
        n: usize,
    },
    /// `dst[cols,rows] = src[rows,cols]ᵀ`.
    Transpose {
        src: usize,
        dst: usize,
        rows: usize,
        cols: usize,
    },
    /// Sum of `src[rows,cols]` over rows and/or columns.
    Sum {
        src: usize,
        dst: usize,
        rows: usize,
        cols: usize,
        over_rows: bool,
        over_cols: bool,
    },
    /// Sum of `src` of the (merged) sizes `dims` over the axes in `over`,
    /// which alternate with kept axes (three or more of them in all).
    SumStrided {
        src: usize,
        dst: usize,
        dims: Vec<usize>,
        over: u8,
    },
    /// Softmax of each row.
    Softmax {
        src: usize,
        dst: usize,
        rows: usize,
        cols: usize,
    },
    /// `log Σ exp` of each row.
    LogSumExp {
        src: usize,
        dst: usize,
        rows: usize,
        cols: usize,
    },
    /// Softmax and log-sum-exp of the same rows, in one pass.
    SoftmaxLse {
        src: usize,
        sm: usize,
        lse: usize,
        rows: usize,
        cols: usize,
    },
    /// Index of the first largest element of each row.
    ArgMax {
        src: usize,
        dst: usize,
        rows: usize,
        cols: usize,
    },
    /// Class indices to one-hot rows.
    OneHot {
        src: usize,
        dst: usize,
        rows: usize,
        k: usize,
    },
    /// `dst = src`.
    Copy { src: usize, dst: usize, len: usize },
    /// A convolution or pooling op through the host kernels of `window.rs`.
    Window {
        op: WindowOp,
        geom: Geom,
        /// The operands' buffers (one or two).
        srcs: Vec<usize>,
        dst: usize,
        /// Im2col workspace (convolutions only).
        scratch: Option<usize>,
        /// The scratch's column matrix already holds `srcs[0]`'s im2col
        /// (written by an earlier convolution of the same input).
        cols_ready: bool,
    },
}

impl Kernel {
    /// Buffers this kernel reads.
    pub fn reads(&self) -> Vec<(usize, Index)> {
        match self {
            Kernel::Fused(f) => f.loads.clone(),
            Kernel::MatMul { a, b, .. } => vec![(a.buf, Index::Identity), (b.buf, Index::Identity)],
            Kernel::Transpose { src, .. }
            | Kernel::Sum { src, .. }
            | Kernel::SumStrided { src, .. }
            | Kernel::Softmax { src, .. }
            | Kernel::LogSumExp { src, .. }
            | Kernel::SoftmaxLse { src, .. }
            | Kernel::ArgMax { src, .. }
            | Kernel::OneHot { src, .. }
            | Kernel::Copy { src, .. } => vec![(*src, Index::Identity)],
            Kernel::Window { srcs, .. } => srcs.iter().map(|&b| (b, Index::Identity)).collect(),
        }
    }

    /// Buffers this kernel writes.
    pub fn writes(&self) -> Vec<usize> {
        match self {
            Kernel::Fused(f) => f.sinks.iter().map(|s| s.1).collect(),
            Kernel::MatMul { c, .. } => vec![*c],
            Kernel::SoftmaxLse { sm, lse, .. } => vec![*sm, *lse],
            Kernel::Window { dst, scratch, .. } => {
                [Some(*dst), *scratch].into_iter().flatten().collect()
            }
            Kernel::Transpose { dst, .. }
            | Kernel::Sum { dst, .. }
            | Kernel::SumStrided { dst, .. }
            | Kernel::Softmax { dst, .. }
            | Kernel::LogSumExp { dst, .. }
            | Kernel::ArgMax { dst, .. }
            | Kernel::OneHot { dst, .. }
            | Kernel::Copy { dst, .. } => vec![*dst],
        }
    }
}

/// The whole schedule.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub bufs: Vec<Buf>,
    pub kernels: Vec<Kernel>,
    /// The buffer holding each materialized node (lookups only; never iterated).
    pub buf_of: HashMap<NodeId, usize>,
    pub batch: usize,
    /// Nodes of one value everywhere, known at compile time, folded in f64
    /// (`consts.rs`): code splats them instead of computing them.
    pub consts: HashMap<NodeId, f64>,
}
