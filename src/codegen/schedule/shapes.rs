//! The planner's shape arithmetic: a shape's sizes at a batch, broadcast
//! indexing, the row/column split of row ops, the kernel of a sum and the
//! geometry of a window op. Pure functions of shapes, apart from the
//! planner's walk over the graph.

use crate::codegen::CodegenError;
use crate::codegen::plan::{Index, Kernel};
use crate::codegen::strides::{Reduction, reduction};
use crate::codegen::window::Geom;
use crate::graph::{Axes, Dim, Op, Shape, Window, WindowOp};

/// The sizes of a shape with the batch substituted.
pub(crate) fn dims(shape: &Shape, batch: usize) -> Vec<usize> {
    shape
        .0
        .iter()
        .map(|d| match d {
            Dim::Batch => batch,
            Dim::Fixed(n) => *n,
        })
        .collect()
}

/// How a broadcast along `axes` into a loop of `rank` reads its operand.
/// Rank ≤ 2 loops get one of the four fixed patterns; the other broadcasts
/// of a rank ≥ 3 loop read by strides ([`Index::Axes`]).
pub(crate) fn broadcast_index(axes: u8, rank: usize) -> Index {
    let all = ((1u32 << rank.min(8)) - 1) as u8;
    if axes == 0 {
        Index::Identity
    } else if axes == all {
        Index::Scalar
    } else if rank == 2 && axes == 0b01 {
        Index::Col
    } else if rank == 2 && axes == 0b10 {
        Index::Row
    } else {
        Index::Axes(axes)
    }
}

/// Rows and columns of a fused loop over a tensor of these sizes: a rank ≥ 3
/// loop is one row of every element (its broadcasts, if any, read by
/// [`Fused::dims`] instead).
pub(super) fn rows_cols(d: &[usize]) -> (usize, usize) {
    match d {
        [] => (1, 1),
        [n] => (1, *n),
        [r, c] => (*r, *c),
        [_, _, _, ..] => (1, d.iter().product()),
    }
}

/// Rows and columns of a row op (softmax, log-sum-exp, arg-max along the
/// last axis) over a tensor of these sizes: every axis but the last is a row.
pub(super) fn last_axis_rows(
    op: Op,
    shape: &Shape,
    d: &[usize],
) -> Result<(usize, usize), CodegenError> {
    match d.split_last() {
        Some((&cols, outer)) => Ok((outer.iter().product(), cols)),
        None => Err(unsupported(op, &[shape], "it needs at least one axis")),
    }
}

/// The error for an op and operand shapes the code generator cannot compile.
pub(crate) fn unsupported(op: Op, shapes: &[&Shape], why: &str) -> CodegenError {
    let shapes: Vec<String> = shapes.iter().map(|s| s.to_string()).collect();
    CodegenError::Unsupported(format!("{} of {}: {why}", op.name(), shapes.join(" and ")))
}

/// The kernel summing `src` of sizes `d` over `axes` into `dst`. Ranks 0–2
/// keep their matrix kernels as they always were; higher ranks merge their
/// axes first (see `strides.rs`) and fall back to the matrix kernels when
/// they can.
pub(super) fn sum_kernel(src: usize, dst: usize, d: &[usize], axes: Axes) -> Kernel {
    match *d {
        [] => Kernel::Copy { src, dst, len: 1 },
        [n] => Kernel::Sum {
            src,
            dst,
            rows: 1,
            cols: n,
            over_rows: false,
            over_cols: axes.0 & 1 != 0,
        },
        [rows, cols] => Kernel::Sum {
            src,
            dst,
            rows,
            cols,
            over_rows: axes.0 & 1 != 0,
            over_cols: axes.0 & 2 != 0,
        },
        [_, _, _, ..] => match reduction(d, axes.0) {
            Reduction::Copy(len) => Kernel::Copy { src, dst, len },
            Reduction::Matrix {
                rows,
                cols,
                over_rows,
                over_cols,
            } => Kernel::Sum {
                src,
                dst,
                rows,
                cols,
                over_rows,
                over_cols,
            },
            Reduction::Strided { dims, over } => Kernel::SumStrided {
                src,
                dst,
                dims,
                over,
            },
        },
    }
}

/// The sizes a window kernel runs over, from its first operand's and its
/// result's sizes (both `[B, C, H, W]`, except a kernel gradient's result).
pub(super) fn window_geom(op: WindowOp, win: Window, first: &[usize], result: &[usize]) -> Geom {
    let (cin, cout) = match op {
        // x [B,C,H,W] → y [B,N,H',W']
        WindowOp::Conv => (first[1], result[1]),
        // δ [B,N,H',W'] → dx [B,C,H,W]
        WindowOp::ConvBackInput => (result[1], first[1]),
        // x [B,C,H,W] → dW [N,C,K,K]
        WindowOp::ConvBackKernel => (first[1], result[0]),
        WindowOp::MaxPool | WindowOp::MaxPoolBack | WindowOp::AvgPool | WindowOp::AvgPoolBack => {
            (first[1], first[1])
        }
    };
    let [ih, iw] = win.input.map(|d| d as usize);
    Geom {
        batch: first[0],
        cin,
        cout,
        input: [ih, iw],
        kernel: win.kernel as usize,
        stride: win.stride as usize,
        pad: win.pad_before.map(|d| d as usize),
        out: win.output(),
    }
}
