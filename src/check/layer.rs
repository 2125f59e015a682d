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

use super::model::{Activation, Builtin, FeatureShape, Init, Layer, LayerKind, Model, Padding};
use crate::diag::Span;

/// The activation of layers that have none (pooling, flatten): the identity.
static IDENTITY: Activation = Activation::Builtin(Builtin::Identity);

/// Where a conv or pooling window goes over an image: the spec's output
/// sizes and padding (§5), worked out once for the checker, lowering and
/// the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Geometry {
    /// The window's side K.
    pub kernel: usize,
    /// The stride S along both axes.
    pub stride: usize,
    /// Output height and width.
    pub out: [usize; 2],
    /// Zero rows and columns added before (top, left) the input.
    pub pad_before: [usize; 2],
    /// Zero rows and columns added after (bottom, right) the input.
    pub pad_after: [usize; 2],
}

/// One axis of a window of `k` with stride `s` over `n` elements:
/// `(out, before, after)`, or `None` when no window fits (spec §5:
/// `valid` gives floor((n − k)/s) + 1; `same` gives ceil(n/s) with
/// TensorFlow's padding, the odd element after).
pub fn extent(n: usize, k: usize, s: usize, padding: Padding) -> Option<(usize, usize, usize)> {
    if s == 0 || k == 0 || n == 0 {
        return None;
    }
    match padding {
        Padding::Valid => (n >= k).then(|| ((n - k) / s + 1, 0, 0)),
        Padding::Same => {
            let out = n.div_ceil(s);
            let total = ((out - 1) * s + k).saturating_sub(n);
            Some((out, total / 2, total - total / 2))
        }
    }
}

/// The geometry of a `k`×`k` window with stride `s` over an `h`×`w` image.
pub fn geometry(h: usize, w: usize, k: usize, s: usize, padding: Padding) -> Option<Geometry> {
    let (oh, top, bottom) = extent(h, k, s, padding)?;
    let (ow, left, right) = extent(w, k, s, padding)?;
    Some(Geometry {
        kernel: k,
        stride: s,
        out: [oh, ow],
        pad_before: [top, left],
        pad_after: [bottom, right],
    })
}

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

    /// The statement keyword of its kind: `dense`, `conv`, `maxpool`, ...
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            LayerKind::Dense { .. } => "dense",
            LayerKind::Conv { .. } => "conv",
            LayerKind::Pool { mode, .. } => mode.keyword(),
            LayerKind::Flatten => "flatten",
        }
    }

    /// The window's geometry over the layer's input for conv and pooling
    /// layers; `None` for the others, and for a window that does not fit
    /// (which the checker reports, so never for a checked model).
    pub fn geometry(&self) -> Option<Geometry> {
        let &[_, h, w] = self.input.dims() else {
            return None;
        };
        match self.kind {
            LayerKind::Conv {
                kernel,
                stride,
                padding,
                ..
            } => geometry(h, w, kernel, stride, padding),
            LayerKind::Pool { kernel, stride, .. } => {
                geometry(h, w, kernel, stride, Padding::Valid)
            }
            LayerKind::Dense { .. } | LayerKind::Flatten => None,
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
            LayerKind::Conv {
                filters,
                kernel,
                init,
                bias,
                ..
            } => {
                let channels = self.input.dims().first().copied().unwrap_or(0);
                let (out, k2) = (*filters, kernel * kernel);
                let (fan_in, fan_out) = (channels * k2, out * k2);
                let mut specs = vec![ParamSpec {
                    name: format!("{}.weight", self.name),
                    shape: vec![out, channels, *kernel, *kernel],
                    fan_in,
                    fan_out,
                    init: *init,
                    role: ParamRole::Weight,
                }];
                if *bias {
                    specs.push(ParamSpec {
                        name: format!("{}.bias", self.name),
                        shape: vec![out],
                        fan_in,
                        fan_out,
                        init: Init::Zeros,
                        role: ParamRole::Bias,
                    });
                }
                specs
            }
            LayerKind::Pool { .. } | LayerKind::Flatten => Vec::new(),
        }
    }

    /// The shape of one example after this layer.
    pub fn output_shape(&self) -> FeatureShape {
        match &self.kind {
            LayerKind::Dense { width, .. } => FeatureShape::flat(*width),
            LayerKind::Conv { filters, .. } => {
                let [h, w] = self.geometry().map_or([0, 0], |g| g.out);
                FeatureShape::image(*filters, h, w)
            }
            LayerKind::Pool { .. } => {
                let c = self.input.dims().first().copied().unwrap_or(0);
                let [h, w] = self.geometry().map_or([0, 0], |g| g.out);
                FeatureShape::image(c, h, w)
            }
            LayerKind::Flatten => FeatureShape::flat(self.input.features()),
        }
    }

    /// The number of trainable scalars: the product of each parameter's shape.
    pub fn parameter_count(&self) -> usize {
        self.params().iter().map(ParamSpec::len).sum()
    }

    /// The multiply-adds of one example's forward pass: `out·in` for dense,
    /// `N·H'·W'·C·K·K` for conv, none for pooling and flatten.
    pub fn forward_macs(&self) -> usize {
        match &self.kind {
            LayerKind::Dense { width, .. } => width * self.input.features(),
            // Each output element is a dot product over C·K·K inputs.
            LayerKind::Conv { .. } => {
                let k: usize = self
                    .params()
                    .first()
                    .map_or(0, |w| w.shape[1..].iter().product());
                self.output_shape().features() * k
            }
            LayerKind::Pool { .. } | LayerKind::Flatten => 0,
        }
    }

    /// The activation applied to the layer's output.
    pub fn activation(&self) -> &Activation {
        match &self.kind {
            LayerKind::Dense { activation, .. } | LayerKind::Conv { activation, .. } => activation,
            LayerKind::Pool { .. } | LayerKind::Flatten => &IDENTITY,
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
