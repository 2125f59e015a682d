//! The checked model: what a `.nn` file means once names are resolved,
//! ranges checked and defaults filled in. Built by [`super::check`];
//! lowered into a graph by `lower`.

use crate::diag::Span;
use crate::syntax::ast;
use std::fmt;

/// Everything a file defines, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// `activation` items, in source order.
    pub activations: Vec<Function>,
    /// `loss` items, in source order.
    pub losses: Vec<Function>,
    /// `model` blocks, in source order.
    pub models: Vec<Model>,
    /// The `train` block, if any.
    pub train: Option<TrainConfig>,
}

impl Program {
    /// The custom activation called `name`.
    pub fn activation(&self, name: &str) -> Option<&Function> {
        self.activations.iter().find(|f| f.name == name)
    }

    /// The custom loss called `name`.
    pub fn loss(&self, name: &str) -> Option<&Function> {
        self.losses.iter().find(|f| f.name == name)
    }
}

/// A user-defined formula (`activation` or `loss` item) whose names all
/// resolve to parameters, constants, built-ins or other acyclic activations.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Its name.
    pub name: String,
    /// Parameter names (one for an activation, `y` and `t` style pair for a loss).
    pub params: Vec<String>,
    /// The formula, as parsed.
    pub body: ast::Expr,
    /// The item's span.
    pub span: Span,
}

/// A checked `model` block.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// The model's name.
    pub name: String,
    /// The shape of one input example: `N` features or `C x H x W`
    /// (each dimension and the product at least 1).
    pub input: FeatureShape,
    /// The layers, first to last (at least one).
    pub layers: Vec<Layer>,
    /// The loss.
    pub loss: Loss,
    /// The `model NAME {...}` item span.
    pub span: Span,
    /// The `input` statement's span, where feature-count problems are reported.
    pub input_span: Span,
    /// The value of the `loss NAME` statement, where loss/data mismatches are reported.
    pub loss_span: Span,
}

impl Model {
    /// The width of the last layer: the number of outputs K.
    pub fn output_width(&self) -> usize {
        self.layers
            .last()
            .map_or(self.input.features(), Layer::width)
    }

    /// The number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.layers.iter().map(Layer::parameter_count).sum()
    }

    /// Classification (cross_entropy, bce) has an accuracy; regression does not.
    pub fn is_classification(&self) -> bool {
        matches!(self.loss, Loss::CrossEntropy | Loss::Bce)
    }
}

/// The shape of one example as it flows between layers, batch excluded:
/// `[F]` features, or `[C, H, W]` for an image (spec §5).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeatureShape {
    dims: Vec<usize>,
}

impl FeatureShape {
    /// `F` plain features.
    pub fn flat(features: usize) -> FeatureShape {
        FeatureShape {
            dims: vec![features],
        }
    }

    /// `C` channels of `H`×`W`.
    pub fn image(channels: usize, height: usize, width: usize) -> FeatureShape {
        FeatureShape {
            dims: vec![channels, height, width],
        }
    }

    /// The dimensions, outermost first.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The number of scalars per example: the product of the dimensions
    /// (C·H·W for an image; a dense layer reads them flattened).
    pub fn features(&self) -> usize {
        self.dims.iter().product()
    }

    /// True for a `C x H x W` shape.
    pub fn is_image(&self) -> bool {
        self.dims.len() > 1
    }
}

/// As a size is written in `.nn` files: `64`, `1x8x8`.
impl fmt::Display for FeatureShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.dims.iter().map(usize::to_string).collect();
        f.write_str(&parts.join("x"))
    }
}

/// A checked layer of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// `densek` or the `name=` given; unique in the model.
    pub name: String,
    /// What the layer computes, with its settings.
    pub kind: LayerKind,
    /// The shape it receives: the previous layer's output or the model's `input`.
    pub input: FeatureShape,
    /// The statement's span.
    pub span: Span,
    /// The activation name's span, or the statement's when it is left out.
    pub activation_span: Span,
}

/// The kinds of layers, with what each one's statement sets.
#[derive(Clone, Debug, PartialEq)]
pub enum LayerKind {
    /// `dense N [ACT] [init=...] [bias=...]`: `a = ACT(W·x + b)` on the
    /// flattened input.
    Dense {
        /// Output width N (≥ 1).
        width: usize,
        /// The activation applied to `W·x + b`.
        activation: Activation,
        /// How the weight is initialised (biases start at zero).
        init: Init,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `conv N KxK [ACT] [stride=S] [padding=valid|same] [init=...] [bias=...]`:
    /// a 2-D cross-correlation of N filters over an image (spec §5).
    Conv {
        /// Output channels N (≥ 1).
        filters: usize,
        /// The square kernel's side K.
        kernel: usize,
        /// The stride S (≥ 1) along both axes.
        stride: usize,
        /// `valid` or `same`.
        padding: Padding,
        /// The activation applied to the correlation plus bias.
        activation: Activation,
        /// How the kernel is initialised (biases start at zero).
        init: Init,
        /// Whether the layer has a bias.
        bias: bool,
    },
    /// `maxpool KxK [stride=S]` or `avgpool KxK [stride=S]`: no padding.
    Pool {
        /// The largest or the mean of each window.
        mode: PoolMode,
        /// The square window's side K.
        kernel: usize,
        /// The stride S (≥ 1; K when not given).
        stride: usize,
    },
    /// `flatten`: [C, H, W] to C·H·W features in (C, H, W) order.
    Flatten,
}

/// A convolution's padding (spec §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Padding {
    /// No padding: H' = floor((H − K)/S) + 1.
    Valid,
    /// H' = ceil(H/S), zeros split as TensorFlow does (the odd one after).
    Same,
}

impl Padding {
    /// The name as written in `padding=`.
    pub fn name(self) -> &'static str {
        match self {
            Padding::Valid => "valid",
            Padding::Same => "same",
        }
    }
}

/// What a pooling layer keeps of each window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PoolMode {
    /// `maxpool`: the largest element (the first one on ties).
    Max,
    /// `avgpool`: the mean.
    Avg,
}

impl PoolMode {
    /// The statement keyword: `maxpool` or `avgpool`.
    pub fn keyword(self) -> &'static str {
        match self {
            PoolMode::Max => "maxpool",
            PoolMode::Avg => "avgpool",
        }
    }
}

/// A layer activation.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Activation {
    /// A built-in element-wise activation.
    Builtin(Builtin),
    /// `softmax` across the last layer's outputs.
    Softmax,
    /// An `activation` item of the file, by name.
    Custom(String),
}

pub use super::builtins::Builtin;

/// Weight initialisation schemes (spec §5), in terms of a parameter's
/// fan_in and fan_out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Init {
    /// Uniform on ±sqrt(6/(fan_in + fan_out)).
    Glorot,
    /// Normal with standard deviation sqrt(2/fan_in).
    He,
    /// Uniform on ±1/sqrt(fan_in), the classic init Glorot & Bengio compare against.
    Standard,
    /// All zero.
    Zeros,
}

impl Init {
    /// Every init, in the spec's order.
    pub const ALL: [Init; 4] = [Init::Glorot, Init::He, Init::Standard, Init::Zeros];

    /// The name as written in `init=`.
    pub fn name(self) -> &'static str {
        match self {
            Init::Glorot => "glorot",
            Init::He => "he",
            Init::Standard => "standard",
            Init::Zeros => "zeros",
        }
    }

    /// The init called `name`.
    pub fn from_name(name: &str) -> Option<Init> {
        Init::ALL.into_iter().find(|i| i.name() == name)
    }
}

/// The network loss.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Mean of `(y - t)^2` over all B·K elements.
    Mse,
    /// Binary cross-entropy on a sigmoid output, computed from the logits.
    Bce,
    /// `-log(softmax(z)[class])` averaged over the batch; targets are class indices.
    CrossEntropy,
    /// A `loss` item of the file, by name, averaged over all B·K elements.
    Custom(String),
}

/// A value that was either written in the file or filled in from the spec's default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting<T> {
    /// The value in effect.
    pub value: T,
    /// True when the file did not say and the default applies.
    pub is_default: bool,
}

impl<T> Setting<T> {
    /// A value the file gave.
    pub fn given(value: T) -> Setting<T> {
        Setting {
            value,
            is_default: false,
        }
    }

    /// A value filled in from the default.
    pub fn default(value: T) -> Setting<T> {
        Setting {
            value,
            is_default: true,
        }
    }
}

/// The optimizer and its hyper-parameters (spec §6).
///
/// Every fact about an optimizer's options (names, defaults, ranges, hints)
/// is an exhaustive `match` in this `impl`; its update is one arm of
/// `train::optim::build_updates`. A new optimizer touches those two files.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// `v = M*v + g; w -= lr*v`
    Sgd {
        /// Learning rate (> 0).
        lr: Setting<f64>,
        /// Momentum in [0, 1).
        momentum: Setting<f64>,
    },
    /// Adam with bias correction; the step count continues across epochs.
    Adam {
        /// Learning rate (> 0).
        lr: Setting<f64>,
        /// First-moment decay in [0, 1).
        beta1: Setting<f64>,
        /// Second-moment decay in [0, 1).
        beta2: Setting<f64>,
        /// Denominator guard (> 0).
        eps: Setting<f64>,
    },
    /// Adam plus decoupled weight decay on weights (not biases):
    /// `w -= lr*D*w` before the Adam update.
    AdamW {
        /// Learning rate (> 0).
        lr: Setting<f64>,
        /// First-moment decay in [0, 1).
        beta1: Setting<f64>,
        /// Second-moment decay in [0, 1).
        beta2: Setting<f64>,
        /// Denominator guard (> 0).
        eps: Setting<f64>,
        /// Weight decay `D` (>= 0).
        weight_decay: Setting<f64>,
    },
    /// `v = R*v + (1-R)*g^2; w -= lr*g/(sqrt(v) + E)`.
    RmsProp {
        /// Learning rate (> 0).
        lr: Setting<f64>,
        /// Decay of the mean square in [0, 1).
        rho: Setting<f64>,
        /// Denominator guard (> 0).
        eps: Setting<f64>,
    },
}

impl Default for Optimizer {
    /// The spec's default: `optimizer sgd` with its default options.
    fn default() -> Optimizer {
        Optimizer::Sgd {
            lr: Setting::default(0.01),
            momentum: Setting::default(0.0),
        }
    }
}

/// The range an optimizer option (or another real setting) may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bound {
    /// `x > 0` (learning rates, eps).
    Positive,
    /// `0 <= x < 1` (momentum, betas, rho, validation).
    UnitOpen,
    /// `x >= 0` (weight decay).
    NonNegative,
}

impl Optimizer {
    /// Every optimizer, as `optimizer NAME` spells it.
    pub const NAMES: [&'static str; 4] = ["sgd", "adam", "adamw", "rmsprop"];

    /// The optimizer called `name`, every option at its default.
    pub fn default_of(name: &str) -> Option<Optimizer> {
        let d = Setting::default;
        Some(match name {
            "sgd" => Optimizer::default(),
            "adam" => Optimizer::Adam {
                lr: d(0.001),
                beta1: d(0.9),
                beta2: d(0.999),
                eps: d(1e-8),
            },
            "adamw" => Optimizer::AdamW {
                lr: d(0.001),
                beta1: d(0.9),
                beta2: d(0.999),
                eps: d(1e-8),
                weight_decay: d(0.01),
            },
            "rmsprop" => Optimizer::RmsProp {
                lr: d(0.001),
                rho: d(0.9),
                eps: d(1e-8),
            },
            _ => return None,
        })
    }

    /// The name, as `optimizer NAME` spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Optimizer::Sgd { .. } => "sgd",
            Optimizer::Adam { .. } => "adam",
            Optimizer::AdamW { .. } => "adamw",
            Optimizer::RmsProp { .. } => "rmsprop",
        }
    }

    /// Every option with its value, in the order `slope check` prints them.
    pub fn settings(&self) -> Vec<(&'static str, Setting<f64>)> {
        match *self {
            Optimizer::Sgd { lr, momentum } => vec![("lr", lr), ("momentum", momentum)],
            Optimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => vec![("lr", lr), ("beta1", beta1), ("beta2", beta2), ("eps", eps)],
            Optimizer::AdamW {
                lr,
                beta1,
                beta2,
                eps,
                weight_decay,
            } => vec![
                ("lr", lr),
                ("beta1", beta1),
                ("beta2", beta2),
                ("eps", eps),
                ("weight_decay", weight_decay),
            ],
            Optimizer::RmsProp { lr, rho, eps } => vec![("lr", lr), ("rho", rho), ("eps", eps)],
        }
    }

    /// The option `key` of this optimizer, to set it; `None` when it has none.
    pub fn setting_mut(&mut self, key: &str) -> Option<&mut Setting<f64>> {
        match (self, key) {
            (
                Optimizer::Sgd { lr, .. }
                | Optimizer::Adam { lr, .. }
                | Optimizer::AdamW { lr, .. }
                | Optimizer::RmsProp { lr, .. },
                "lr",
            ) => Some(lr),
            (Optimizer::Sgd { momentum, .. }, "momentum") => Some(momentum),
            (Optimizer::Adam { beta1, .. } | Optimizer::AdamW { beta1, .. }, "beta1") => {
                Some(beta1)
            }
            (Optimizer::Adam { beta2, .. } | Optimizer::AdamW { beta2, .. }, "beta2") => {
                Some(beta2)
            }
            (
                Optimizer::Adam { eps, .. }
                | Optimizer::AdamW { eps, .. }
                | Optimizer::RmsProp { eps, .. },
                "eps",
            ) => Some(eps),
            (Optimizer::AdamW { weight_decay, .. }, "weight_decay") => Some(weight_decay),
            (Optimizer::RmsProp { rho, .. }, "rho") => Some(rho),
            _ => None,
        }
    }

    /// Every option key of every optimizer.
    pub const ALL_OPTIONS: [&'static str; 7] = [
        "lr",
        "momentum",
        "beta1",
        "beta2",
        "eps",
        "weight_decay",
        "rho",
    ];

    /// What diagnostics call option `key`, and its range; `None` for a key
    /// no optimizer has.
    pub fn option_bound(key: &str) -> Option<(&'static str, Bound)> {
        Some(match key {
            "lr" => ("learning rate", Bound::Positive),
            "momentum" => ("momentum", Bound::UnitOpen),
            "beta1" => ("beta1", Bound::UnitOpen),
            "beta2" => ("beta2", Bound::UnitOpen),
            "eps" => ("eps", Bound::Positive),
            "weight_decay" => ("weight decay", Bound::NonNegative),
            "rho" => ("rho", Bound::UnitOpen),
            _ => return None,
        })
    }

    /// A note for option `key`, which belongs to another optimizer than this one.
    pub fn foreign_option_note(&self, key: &str) -> Option<&'static str> {
        match (self, key) {
            (Optimizer::Sgd { .. }, "beta1" | "beta2" | "eps") => {
                Some("'beta1', 'beta2' and 'eps' are options of adam: optimizer adam ...")
            }
            (Optimizer::Adam { .. } | Optimizer::AdamW { .. }, "momentum") => {
                Some("'momentum' is an option of sgd; adam keeps its own moment estimates (beta1)")
            }
            (Optimizer::RmsProp { .. }, "momentum") => {
                Some("'momentum' is an option of sgd; rmsprop keeps a mean square (rho)")
            }
            (Optimizer::RmsProp { .. }, "beta1" | "beta2") => {
                Some("'beta1' and 'beta2' are options of adam and adamw; rmsprop's decay is rho")
            }
            (_, "weight_decay") => {
                Some("'weight_decay' is an option of adamw: optimizer adamw ...")
            }
            (_, "rho") => Some("'rho' is an option of rmsprop: optimizer rmsprop ..."),
            _ => None,
        }
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.settings()[0].1.value
    }
}

/// The `data` statement: where the CSV is and which columns are targets.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSpec {
    /// The path as written (relative to the `.nn` file).
    pub path: String,
    /// Target column names, in the order paired with the outputs.
    pub targets: Vec<String>,
    /// The statement's span, where data-file problems are reported.
    pub span: Span,
    /// The path string's span.
    pub path_span: Span,
    /// The span of each target column name, parallel to `targets`.
    pub target_spans: Vec<Span>,
}

/// A checked `train` block with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// The data set (required for training; `None` only when the block lacks it
    /// and a diagnostic has been emitted).
    pub data: Option<DataSpec>,
    /// Fraction of rows held out at the end, in [0, 1).
    pub validation: Setting<f64>,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// Number of epochs (≥ 1).
    pub epochs: Setting<usize>,
    /// Batch size (≥ 1).
    pub batch: Setting<usize>,
    /// Shuffle rows each epoch with the seed.
    pub shuffle: Setting<bool>,
    /// The random seed (init and shuffling).
    pub seed: Setting<u64>,
    /// The block's span.
    pub span: Span,
}
