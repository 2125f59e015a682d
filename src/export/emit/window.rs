//! Window ops (convolution, pooling and their derivatives) and the image
//! reshapes as ONNX nodes, each exact, not an approximation:
//!
//! - `conv` is `Conv` (with its bias as `B` when `conv + broadcast(b)` is
//!   fused); the pads are the window's, top/left then bottom/right.
//! - `conv_back_input` is `ConvTranspose` of δ with the same kernel; its
//!   `output_padding` restores the rows and columns no window reached
//!   (`(H + pads − K) mod S`), so the result is exactly `[B, C, H, W]`.
//! - `conv_back_kernel` is a `Conv` of the transposed operands: the input
//!   `[C, B, H, W]` correlated with δ `[N, B, H', W']` as the kernel, dilated
//!   by the stride, gives `[C, N, K, K]`, transposed back. The bottom/right
//!   pad shrinks by what no window reached (the input is sliced where the
//!   pad is smaller), so the result is exactly `K×K`.
//! - `maxpool(s, v)` is `MaxPool` when `s` and `v` are one node; otherwise
//!   `v` is gathered at `MaxPool`'s `Indices` output of `s`.
//!   `maxpool_back(s, δ)` adds δ at those indices into zeros
//!   (`ScatterElements`, `reduction="add"`). ONNX Runtime's indices are
//!   flat row-major positions and it keeps the first maximum of a window
//!   in row-major order, slope's tie rule (checked on ties at zero in
//!   `tests/export_onnx.rs`).
//! - `avgpool` is `AveragePool` counting the pads (slope divides by K²);
//!   `avgpool_back` is a depthwise `ConvTranspose` (`group = C`) with the
//!   constant kernel 1/K².
//! - `flatten` is `Flatten(axis=1)`; `unflatten` a `Reshape` to `[0, C, H, W]`
//!   (0 keeps the batch).

use super::{Attr, Emitter, ExportError};
use crate::export::proto::{TensorProto, data_type};
use crate::graph::{Axes, Dim, NodeId, Op, Window, WindowOp};

/// `[top, left, bottom, right]`, ONNX's order for two spatial axes.
fn pads(w: Window) -> Vec<i64> {
    let [t, l] = w.pad_before.map(i64::from);
    let [b, r] = w.pad_after.map(i64::from);
    vec![t, l, b, r]
}

/// The rows and columns past the last window: `(H + pads − K) mod S`.
fn uncovered(w: Window) -> [i64; 2] {
    [0, 1].map(|i| {
        let n = i64::from(w.input[i] + w.pad_before[i] + w.pad_after[i]);
        (n - i64::from(w.kernel)) % i64::from(w.stride)
    })
}

/// `kernel_shape`, `strides` and `pads` of a window.
fn geometry(w: Window) -> Vec<(&'static str, Attr)> {
    let (k, s) = (i64::from(w.kernel), i64::from(w.stride));
    vec![
        ("kernel_shape", Attr::Ints(vec![k, k])),
        ("strides", Attr::Ints(vec![s, s])),
        ("pads", Attr::Ints(pads(w))),
    ]
}

/// The permutation that swaps the two leading axes of an image.
fn swap_leading() -> Attr {
    Attr::Ints(vec![1, 0, 2, 3])
}

impl Emitter<'_> {
    /// Writes the window op `op` over `w` at node `id`.
    pub(super) fn window(
        &mut self,
        id: NodeId,
        op: WindowOp,
        w: Window,
    ) -> Result<(), ExportError> {
        match op {
            WindowOp::Conv => self.simple(id, "Conv", geometry(w)),
            WindowOp::ConvBackInput => {
                let mut attrs = geometry(w);
                attrs.push(("output_padding", Attr::Ints(uncovered(w).to_vec())));
                self.simple(id, "ConvTranspose", attrs)
            }
            WindowOp::ConvBackKernel => self.conv_back_kernel(id, w),
            WindowOp::MaxPool => self.max_pool(id, w),
            WindowOp::MaxPoolBack => self.max_pool_back(id, w),
            WindowOp::AvgPool => {
                let mut attrs = geometry(w);
                attrs.push(("count_include_pad", Attr::Int(1)));
                self.simple(id, "AveragePool", attrs)
            }
            WindowOp::AvgPoolBack => self.avg_pool_back(id, w),
        }
    }

    /// For `conv(x, W) + broadcast(b)` (either order) with `b` one value per
    /// channel: the conv and broadcast nodes.
    pub(super) fn conv_parts(&self, add: NodeId) -> Option<(NodeId, NodeId)> {
        let args = &self.g.node(add).args;
        let is_bias = |id: NodeId| {
            let n = self.g.node(id);
            n.op == Op::Broadcast(Axes(0b1101)) && self.g.node(n.args[0]).shape.0.len() == 1
        };
        let is_conv = |id: NodeId| matches!(self.g.node(id).op, Op::Window(WindowOp::Conv, _));
        match (args[0], args[1]) {
            (c, b) if is_conv(c) && is_bias(b) => Some((c, b)),
            (b, c) if is_conv(c) && is_bias(b) => Some((c, b)),
            _ => None,
        }
    }

    /// `conv(x, W) + broadcast(b)` as one `Conv(x, W, b)`.
    pub(super) fn conv_bias(&mut self, id: NodeId) -> Result<(), ExportError> {
        let (conv, bias) = self
            .conv_parts(id)
            .ok_or_else(|| ExportError::Internal("a fused conv lost its parts".into()))?;
        let Op::Window(_, w) = self.g.node(conv).op else {
            return Err(ExportError::Internal("a fused conv is not a conv".into()));
        };
        let args = self.g.node(conv).args.clone();
        let (x, k) = (self.float(args[0])?, self.float(args[1])?);
        let b = self.float(self.g.node(bias).args[0])?;
        let out = self.name_for(id);
        self.node("Conv", &[&x, &k, &b], &[&out], geometry(w));
        self.bind(id, &out, super::Elem::Float);
        Ok(())
    }

    /// `∂(x ⋆ W)/∂W` applied to δ (see the module docs).
    fn conv_back_kernel(&mut self, id: NodeId, w: Window) -> Result<(), ExportError> {
        let args = self.g.node(id).args.clone();
        let (mut x, delta) = (self.float(args[0])?, self.float(args[1])?);
        let r = uncovered(w);
        let after = w.pad_after.map(i64::from);
        let cut = [0, 1].map(|i| (r[i] - after[i]).max(0));
        if cut != [0, 0] {
            let [h, wd] = w.input.map(i64::from);
            let starts = self.ints("starts", &[0, 0]);
            let ends = self.ints("ends", &[h - cut[0], wd - cut[1]]);
            let axes = self.ints("axes", &[2, 3]);
            x = self.op("covered", "Slice", &[&x, &starts, &ends, &axes], vec![]);
        }
        let xt = self.op("x_t", "Transpose", &[&x], vec![("perm", swap_leading())]);
        let dt = self.op(
            "delta_t",
            "Transpose",
            &[&delta],
            vec![("perm", swap_leading())],
        );
        let [pt, pl] = w.pad_before.map(i64::from);
        let pads = vec![pt, pl, (after[0] - r[0]).max(0), (after[1] - r[1]).max(0)];
        let s = i64::from(w.stride);
        let attrs = vec![
            ("dilations", Attr::Ints(vec![s, s])),
            ("pads", Attr::Ints(pads)),
            ("strides", Attr::Ints(vec![1, 1])),
        ];
        let g = self.op("kernel_grad_t", "Conv", &[&xt, &dt], attrs);
        let out = self.name_for(id);
        self.node("Transpose", &[&g], &[&out], vec![("perm", swap_leading())]);
        self.bind(id, &out, super::Elem::Float);
        Ok(())
    }

    /// `MaxPool`'s `Indices` of `s` over `w`, written once per pair.
    fn max_indices(&mut self, s: NodeId, w: Window) -> Result<String, ExportError> {
        if let Some(i) = self.indices.get(&(s, w)) {
            return Ok(i.clone());
        }
        let x = self.float(s)?;
        let (pooled, idx) = (self.fresh("pooled"), self.fresh("argmax_indices"));
        self.node("MaxPool", &[&x], &[&pooled, &idx], geometry(w));
        self.indices.insert((s, w), idx.clone());
        Ok(idx)
    }

    /// `maxpool(s, v)`: `MaxPool` of `s`, or `v` gathered at its arg-max.
    fn max_pool(&mut self, id: NodeId, w: Window) -> Result<(), ExportError> {
        let args = self.g.node(id).args.clone();
        if args[0] == args[1] {
            let x = self.float(args[0])?;
            let out = self.name_for(id);
            self.node("MaxPool", &[&x], &[&out], geometry(w));
            self.bind(id, &out, super::Elem::Float);
            return Ok(());
        }
        let idx = self.max_indices(args[0], w)?;
        let v = self.float(args[1])?;
        let flat = self.ints("flat", &[-1]);
        let vf = self.op("values", "Reshape", &[&v, &flat], vec![]);
        let out = self.name_for(id);
        self.node(
            "Gather",
            &[&vf, &idx],
            &[&out],
            vec![("axis", Attr::Int(0))],
        );
        self.bind(id, &out, super::Elem::Float);
        Ok(())
    }

    /// `maxpool_back(s, δ)`: δ added into zeros shaped like `s` at the arg-max.
    fn max_pool_back(&mut self, id: NodeId, w: Window) -> Result<(), ExportError> {
        let args = self.g.node(id).args.clone();
        let idx = self.max_indices(args[0], w)?;
        let (s, delta) = (self.float(args[0])?, self.float(args[1])?);
        let shape = self.op("shape", "Shape", &[&s], vec![]);
        let zero = TensorProto {
            dims: vec![1],
            data_type: Some(data_type::FLOAT),
            float_data: vec![0.0],
            ..Default::default()
        };
        let zeros = self.op(
            "zeros",
            "ConstantOfShape",
            &[&shape],
            vec![("value", Attr::Tensor(zero))],
        );
        let flat = self.ints("flat", &[-1]);
        let zf = self.op("zeros", "Reshape", &[&zeros, &flat], vec![]);
        let idf = self.op("indices", "Reshape", &[&idx, &flat], vec![]);
        let df = self.op("delta", "Reshape", &[&delta, &flat], vec![]);
        let attrs = vec![("axis", Attr::Int(0)), ("reduction", Attr::Str("add"))];
        let routed = self.op("routed", "ScatterElements", &[&zf, &idf, &df], attrs);
        let out = self.name_for(id);
        self.node("Reshape", &[&routed, &shape], &[&out], vec![]);
        self.bind(id, &out, super::Elem::Float);
        Ok(())
    }

    /// `avgpool_back(δ)`: a depthwise `ConvTranspose` with kernel 1/K².
    fn avg_pool_back(&mut self, id: NodeId, w: Window) -> Result<(), ExportError> {
        let Dim::Fixed(c) = self.g.node(id).shape.0[1] else {
            return Err(ExportError::Internal(
                "avgpool_back with a batch-sized channel axis".into(),
            ));
        };
        let k = w.kernel as usize;
        let kernel = TensorProto {
            dims: vec![c as i64, 1, k as i64, k as i64],
            data_type: Some(data_type::FLOAT),
            float_data: vec![(1.0 / (k * k) as f64) as f32; c * k * k],
            ..Default::default()
        };
        let spread = self.op(
            "spread",
            "Constant",
            &[],
            vec![("value", Attr::Tensor(kernel))],
        );
        let delta = self.float(self.g.node(id).args[0])?;
        let mut attrs = geometry(w);
        attrs.push(("output_padding", Attr::Ints(uncovered(w).to_vec())));
        attrs.push(("group", Attr::Int(c as i64)));
        let out = self.name_for(id);
        self.node("ConvTranspose", &[&delta, &spread], &[&out], attrs);
        self.bind(id, &out, super::Elem::Float);
        Ok(())
    }

    /// `[B, C·H·W]` rows as `[B, C, H, W]` images.
    pub(super) fn unflatten(&mut self, id: NodeId, chw: [u32; 3]) -> Result<(), ExportError> {
        let arg = self.g.node(id).args[0];
        if let Some((rows, image, dims)) = self.image_input.clone()
            && rows == arg
            && dims == chw
        {
            // The rows were flattened from this very image input.
            self.bind(id, &image, super::Elem::Float);
            return Ok(());
        }
        let a = self.float(arg)?;
        let [c, h, w] = chw.map(i64::from);
        let shape = self.ints("image_shape", &[0, c, h, w]);
        let out = self.name_for(id);
        self.node("Reshape", &[&a, &shape], &[&out], vec![]);
        self.bind(id, &out, super::Elem::Float);
        Ok(())
    }
}
