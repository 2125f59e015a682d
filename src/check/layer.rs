//! Layer kinds: the one place that knows, for each kind of layer, its
//! parameters (names, shapes, fan-in and fan-out for init) and the shape of
//! its output (spec §5). Weights files, lowering, the summary, `grad`'s
//! legend and `bench`'s flop count all ask a [`Layer`] rather than repeat
//! the `NAME.weight [out, in]` convention.
//!
//! The types ([`Layer`], [`LayerKind`], [`FeatureShape`]) are plain data in
//! `model`, with the rest of the checked program; the facts about them are
//! here. A new kind (`conv`, `maxpool`, `flatten`) is a new [`LayerKind`]
//! variant; every match here is exhaustive, so it does not compile until
//! each fact about it is written down.

use super::model::{Activation, FeatureShape, Init, Layer, LayerKind, Model};
use crate::diag::Span;

/// Whether a parameter is a layer's weight or its bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ParamRole {
    /// `NAME.weight`
    Weight,
    /// `NAME.bias`
    Bias,
}

/// One trainable tensor of a layer, as weights files and graphs name it.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    /// `NAME.weight` or `NAME.bias`.
    pub name: String,
    /// `[out, in]` for a dense weight (PyTorch's `Linear`), `[out]` for a bias.
    pub shape: Vec<usize>,
    /// Inputs feeding each output (`in` for dense), for init.
    pub fan_in: usize,
    /// Outputs each input feeds (`out` for dense), for init.
    pub fan_out: usize,
    /// How it starts: the layer's init for a weight, zeros for a bias.
    pub init: Init,
    /// Weight or bias.
    pub role: ParamRole,
}

impl ParamSpec {
    /// The number of scalars: the product of the shape.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True when the tensor has no scalars (never for a checked model).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Layer {
    /// A dense layer; the spans are left empty (for models built in code).
    pub fn dense(
        name: &str,
        input: FeatureShape,
        width: usize,
        activation: Activation,
        init: Init,
        bias: bool,
    ) -> Layer {
        Layer {
            name: name.to_string(),
            kind: LayerKind::Dense {
                width,
                activation,
                init,
                bias,
            },
            input,
            span: Span::default(),
            activation_span: Span::default(),
        }
    }

    /// The statement keyword of its kind: `dense`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            LayerKind::Dense { .. } => "dense",
        }
    }

    /// Its parameters in the model's parameter order: the weight, then the
    /// bias when there is one.
    pub fn params(&self) -> Vec<ParamSpec> {
        match &self.kind {
            LayerKind::Dense {
                width, init, bias, ..
            } => {
                let (out, inp) = (*width, self.input.features());
                let mut specs = vec![ParamSpec {
                    name: format!("{}.weight", self.name),
                    shape: vec![out, inp],
                    fan_in: inp,
                    fan_out: out,
                    init: *init,
                    role: ParamRole::Weight,
                }];
                if *bias {
                    specs.push(ParamSpec {
                        name: format!("{}.bias", self.name),
                        shape: vec![out],
                        fan_in: inp,
                        fan_out: out,
                        init: Init::Zeros,
                        role: ParamRole::Bias,
                    });
                }
                specs
            }
        }
    }

    /// The shape of one example after this layer.
    pub fn output_shape(&self) -> FeatureShape {
        match &self.kind {
            LayerKind::Dense { width, .. } => FeatureShape::flat(*width),
        }
    }

    /// The number of trainable scalars: `out·in` weights plus `out` biases
    /// when present, for dense.
    pub fn parameter_count(&self) -> usize {
        self.params().iter().map(ParamSpec::len).sum()
    }

    /// The multiply-adds of one example's forward pass: `out·in` for dense.
    pub fn forward_macs(&self) -> usize {
        match &self.kind {
            LayerKind::Dense { width, .. } => width * self.input.features(),
        }
    }

    /// The activation applied to the layer's output.
    pub fn activation(&self) -> &Activation {
        match &self.kind {
            LayerKind::Dense { activation, .. } => activation,
        }
    }

    /// The number of output features (the flattened [`Layer::output_shape`]).
    pub fn width(&self) -> usize {
        self.output_shape().features()
    }

    /// Whether the layer adds a bias.
    pub fn has_bias(&self) -> bool {
        self.params().iter().any(|p| p.role == ParamRole::Bias)
    }
}

impl Model {
    /// Every parameter, layer by layer (each layer's weight before its
    /// bias): the order of weights files, training buffers and gradients.
    pub fn params(&self) -> Vec<ParamSpec> {
        self.layers.iter().flat_map(Layer::params).collect()
    }
}
