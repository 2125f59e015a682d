//! The checked model: what a `.nn` file means once names are resolved,
//! ranges checked and defaults filled in. Built by [`super::check`];
//! lowered into a graph by `lower`.

use crate::diag::Span;
use crate::syntax::ast;

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
    /// Number of input features (≥ 1).
    pub input: usize,
    /// Dense layers, first to last (at least one).
    pub layers: Vec<Layer>,
    /// The loss.
    pub loss: Loss,
    /// The `model NAME {...}` item span.
    pub span: Span,
    /// The `input N` statement's span, where feature-count problems are reported.
    pub input_span: Span,
    /// The value of the `loss NAME` statement, where loss/data mismatches are reported.
    pub loss_span: Span,
}

impl Model {
    /// The width of the last layer: the number of outputs K.
    pub fn output_width(&self) -> usize {
        self.layers.last().map_or(self.input, |l| l.width)
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

/// A checked `dense` layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// `densek` or the `name=` given; unique in the model.
    pub name: String,
    /// Output width N (≥ 1).
    pub width: usize,
    /// Input width: the previous layer's width or the model's `input`.
    pub input_width: usize,
    /// The activation applied to `W·x + b`.
    pub activation: Activation,
    /// How the weight is initialised (biases start at zero).
    pub init: Init,
    /// Whether the layer has a bias.
    pub bias: bool,
    /// The statement's span.
    pub span: Span,
    /// The activation name's span, or the statement's when it is left out.
    pub activation_span: Span,
}

impl Layer {
    /// `width·input_width` weights plus `width` biases when present.
    pub fn parameter_count(&self) -> usize {
        self.width * self.input_width + if self.bias { self.width } else { 0 }
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

/// Weight initialisation schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Init {
    /// Uniform on ±sqrt(6/(in+out)).
    Glorot,
    /// Normal with standard deviation sqrt(2/in).
    He,
    /// All zero.
    Zeros,
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

/// The optimizer and its hyper-parameters.
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
}

impl Optimizer {
    /// The learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Optimizer::Sgd { lr, .. } | Optimizer::Adam { lr, .. } => lr.value,
        }
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
