//! `slope compare`: one model with the activation of every layer but the
//! last replaced, and the init each replaced layer then gets.

use crate::check::model::{Activation, Builtin, Init, LayerKind, Model, Program};

/// Which init the replaced layers get.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitChoice {
    /// Each layer's default for its new activation (`he` for the relu
    /// family, else `glorot`).
    Auto,
    /// This init for every replaced layer.
    Fixed(Init),
}

/// Why an activation cannot be compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompareError {
    /// No built-in or `activation` item has this name.
    Unknown(String),
    /// It is not element-wise (`softmax`).
    NotElementwise(String),
}

impl std::fmt::Display for CompareError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CompareError::Unknown(n) => write!(f, "unknown activation `{n}`"),
            CompareError::NotElementwise(n) => write!(
                f,
                "`{n}` is not element-wise: compare replaces the hidden layers' activations, which act on each unit alone"
            ),
        }
    }
}

impl std::error::Error for CompareError {}

/// The activation called `name`: a built-in or an `activation` item of
/// `program`; `softmax` is refused.
pub fn activation(program: &Program, name: &str) -> Result<Activation, CompareError> {
    if name == "softmax" {
        return Err(CompareError::NotElementwise(name.to_string()));
    }
    if let Some(b) = Builtin::from_name(name) {
        return Ok(Activation::Builtin(b));
    }
    match program.activation(name) {
        Some(_) => Ok(Activation::Custom(name.to_string())),
        None => Err(CompareError::Unknown(name.to_string())),
    }
}

/// `model` with every layer but the last computing `act`, initialised as
/// `init` says.
pub fn with_activation(model: &Model, act: &Activation, init: InitChoice) -> Model {
    let mut m = model.clone();
    let hidden = m.layers.len().saturating_sub(1);
    for layer in &mut m.layers[..hidden] {
        // Conv layers have an activation and an init too; pooling and
        // flatten have neither and stay as they are.
        let (activation, layer_init) = match &mut layer.kind {
            LayerKind::Dense {
                activation, init, ..
            }
            | LayerKind::Conv {
                activation, init, ..
            } => (activation, init),
            LayerKind::Pool { .. } | LayerKind::Flatten => continue,
        };
        *activation = act.clone();
        *layer_init = match (init, act) {
            (InitChoice::Fixed(i), _) => i,
            (InitChoice::Auto, Activation::Builtin(b)) => b.default_init(),
            (InitChoice::Auto, Activation::Softmax | Activation::Custom(_)) => Init::Glorot,
        };
    }
    m
}
