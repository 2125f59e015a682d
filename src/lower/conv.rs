//! Lowering of image layers: a conv layer's correlation plus bias, and
//! pooling, as window ops of the graph (`graph::conv`), with the geometry
//! `check::layer` computed.

use super::ParamNode;
use crate::check::layer::{Geometry, ParamRole};
use crate::check::model::{Layer, LayerKind, PoolMode};
use crate::graph::{Axes, Dim, Graph, LeafKind, NodeId, Op, Shape, Window, WindowOp};

/// The graph's window for a layer's geometry over an `h`×`w` input.
fn window(g: &Geometry, h: usize, w: usize) -> Window {
    let u = |v: usize| v as u32;
    Window {
        input: [u(h), u(w)],
        kernel: u(g.kernel),
        stride: u(g.stride),
        pad_before: g.pad_before.map(u),
        pad_after: g.pad_after.map(u),
    }
}

/// `z = x ⋆ W + b` for a conv layer, `maxpool(x)` or `avgpool(x)` for a
/// pooling one, over the image `x` `[B, C, H, W]`. Parameter leaves are
/// made in the order weight, its use, bias, its use (as for dense).
pub(super) fn window_z(
    g: &mut Graph,
    layer: &Layer,
    i: usize,
    x: NodeId,
    params: &mut Vec<ParamNode>,
) -> NodeId {
    let &[_, h, w] = layer.input.dims() else {
        unreachable!("the checker gives conv and pooling layers image inputs")
    };
    let geom = layer
        .geometry()
        .expect("the checker rejects windows that do not fit");
    let win = window(&geom, h, w);
    match &layer.kind {
        LayerKind::Pool { mode, .. } => match mode {
            PoolMode::Max => g.maxpool(x, win),
            PoolMode::Avg => g.make(Op::Window(WindowOp::AvgPool, win), &[x]),
        },
        LayerKind::Conv { .. } => {
            let mut z = x;
            for spec in layer.params() {
                let shape = Shape(spec.shape.iter().map(|&d| Dim::Fixed(d)).collect());
                let node = g.leaf(&spec.name, LeafKind::Param, shape);
                params.push(ParamNode {
                    name: spec.name.clone(),
                    node,
                    shape: spec.shape.clone(),
                    layer: i,
                    role: spec.role,
                });
                z = match spec.role {
                    ParamRole::Weight => g.make(Op::Window(WindowOp::Conv, win), &[x, node]),
                    ParamRole::Bias => {
                        // One bias per channel, repeated over batch, height and width.
                        let zshape = g.node(z).shape.clone();
                        let bb = g.broadcast_to(node, Axes(0b1101), &zshape);
                        g.make(Op::Add, &[z, bb])
                    }
                };
            }
            z
        }
        LayerKind::Dense { .. } | LayerKind::Flatten => {
            unreachable!("window_z is called for conv and pooling layers")
        }
    }
}
