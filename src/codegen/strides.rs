//! Row-major strides for tensors of any rank, and the simplification that
//! lets most of them run as the rank ≤ 2 loops and kernels.
//!
//! A fused loop or a reduction over a rank-N tensor reads buffers that drop
//! some of its axes (a broadcast operand, a reduction's result): each such
//! buffer has a stride per loop axis, 0 on the dropped ones. Axes of size 1
//! change no address, and two neighbouring axes that every buffer keeps or
//! drops alike behave as one axis of their product; after both
//! simplifications a conv bias `[C]` over `[B, C, H, W]` is a loop over
//! `[B, C, H·W]`, and `[B, 8]` over `[B, 8, 1, 1]` is plain rank 2.

/// Loop sizes after [`merge`], and each mask renumbered onto them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Merged {
    /// The size of each merged axis (size-1 axes dropped).
    pub dims: Vec<usize>,
    /// The masks given to [`merge`], in order, over the merged axes.
    pub masks: Vec<u8>,
}

/// Drops the size-1 axes of `dims` and merges neighbouring axes on which
/// every mask of `masks` (bit `i` = axis `i` dropped) agrees.
pub(crate) fn merge(dims: &[usize], masks: &[u8]) -> Merged {
    let mut out = Merged {
        dims: Vec::new(),
        masks: vec![0; masks.len()],
    };
    let mut last: Option<Vec<bool>> = None;
    for (axis, &size) in dims.iter().enumerate() {
        if size == 1 {
            continue;
        }
        let dropped: Vec<bool> = masks.iter().map(|m| m & (1 << axis) != 0).collect();
        if last.as_ref() == Some(&dropped)
            && let Some(d) = out.dims.last_mut()
        {
            *d *= size;
            continue;
        }
        let new = out.dims.len();
        out.dims.push(size);
        for (m, &d) in out.masks.iter_mut().zip(&dropped) {
            if d {
                *m |= 1 << new;
            }
        }
        last = Some(dropped);
    }
    out
}

/// The element stride along each axis of `dims` of a row-major buffer that
/// holds the tensor with the axes in `dropped` removed (0 on those axes).
pub(crate) fn strides(dims: &[usize], dropped: u8) -> Vec<usize> {
    let mut out = vec![0; dims.len()];
    let mut step = 1;
    for axis in (0..dims.len()).rev() {
        if dropped & (1 << axis) == 0 {
            out[axis] = step;
            step *= dims[axis];
        }
    }
    out
}

/// How a sum over some axes of a rank ≥ 3 tensor is computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reduction {
    /// Nothing is summed (every summed axis has size 1): a copy of `len`.
    Copy(usize),
    /// A rank-2 sum of `[rows, cols]`, the same kernel as for matrices.
    Matrix {
        rows: usize,
        cols: usize,
        over_rows: bool,
        over_cols: bool,
    },
    /// Three or more merged axes, alternately kept and summed.
    Strided {
        /// Merged sizes.
        dims: Vec<usize>,
        /// Summed merged axes.
        over: u8,
    },
}

/// The reduction that sums `dims` over the axes in `axes`.
pub(crate) fn reduction(dims: &[usize], axes: u8) -> Reduction {
    let m = merge(dims, &[axes]);
    let over = m.masks[0];
    match m.dims[..] {
        [] => Reduction::Copy(1),
        [n] if over == 0 => Reduction::Copy(n),
        [n] => Reduction::Matrix {
            rows: 1,
            cols: n,
            over_rows: false,
            over_cols: true,
        },
        [rows, cols] => Reduction::Matrix {
            rows,
            cols,
            over_rows: over & 1 != 0,
            over_cols: over & 2 != 0,
        },
        [_, _, _, ..] => Reduction::Strided { dims: m.dims, over },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conv_bias_merges_its_spatial_axes() {
        let m = merge(&[4, 3, 5, 6], &[0b1101, 0]);
        assert_eq!(m.dims, vec![4, 3, 30]);
        assert_eq!(m.masks, vec![0b101, 0]);
    }

    #[test]
    fn size_one_axes_vanish() {
        let m = merge(&[4, 8, 1, 1], &[0b1101]);
        assert_eq!(m.dims, vec![4, 8]);
        assert_eq!(m.masks, vec![0b01]);
        assert_eq!(merge(&[1, 1], &[0b11]).dims, Vec::<usize>::new());
    }

    #[test]
    fn strides_skip_dropped_axes() {
        assert_eq!(strides(&[4, 3, 5], 0), vec![15, 5, 1]);
        assert_eq!(strides(&[4, 3, 5], 0b101), vec![0, 1, 0]);
        assert_eq!(strides(&[4, 3, 5], 0b010), vec![5, 0, 1]);
    }

    #[test]
    fn reductions_fall_back_to_matrices_when_they_can() {
        assert_eq!(
            reduction(&[2, 3, 4, 5], 0b1100),
            Reduction::Matrix {
                rows: 6,
                cols: 20,
                over_rows: false,
                over_cols: true
            }
        );
        assert_eq!(reduction(&[2, 3, 1], 0b100), Reduction::Copy(6));
        assert_eq!(
            reduction(&[2, 3, 4, 5], 0b1101),
            Reduction::Strided {
                dims: vec![2, 3, 20],
                over: 0b101
            }
        );
    }
}
