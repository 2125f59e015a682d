//! Stage 2: the AST resolved into a checked [`model::Program`]: names,
//! arities, cycles, widths, options and their ranges, defaults filled in.
//!
//! [`check`] reports every problem of a file at once, in source order. The
//! work is split by item kind:
//!
//! - `items`: `activation` and `loss` items, the names in their formulas,
//!   and cycles among activations;
//! - `model_block`: `model` blocks (the input shape, layers, names, the
//!   loss and its output);
//! - `image`: the `conv`, `maxpool`, `avgpool` and `flatten` statements and
//!   the walk that infers image shapes through the layers;
//! - `layer`: each layer kind's parameters and output shape;
//! - `train_block`: the `train` block and its defaults;
//! - `values`: the statement-value helpers both blocks share.
//!
//! Decisions the spec leaves open, made here:
//! - An item may not reuse a built-in's name (`activation 'tanh' is already
//!   a built-in`); an activation and a loss may share a name, since the
//!   places that name them never overlap.
//! - `softmax` on the last layer is allowed with any loss except `bce`
//!   (which needs `sigmoid`); `cross_entropy` requires it and needs at least
//!   2 outputs.
//! - Statements may come in any order after `input`.
//! - `target=` accepts names or quoted strings, so a column header with a
//!   space can be a target.

mod builtins;
mod expand;
mod image;
mod items;
pub mod layer;
pub mod model;
mod model_block;
mod train_block;
mod values;

pub use expand::{
    MAX_EXPANDED_DEPTH, MAX_EXPANDED_SIZE, MAX_EXPRESSION_SIZE, NESTED_CHAIN, check_expression,
};
pub use model_block::{MAX_PARAMETERS, MAX_WIDTH};

use crate::diag::Diagnostic;
use crate::syntax::ast::{self, Item};
use std::collections::HashMap;

pub use builtins::{Builtin, BuiltinFunction};

/// The built-in functions a formula may call, with their argument counts:
/// [`BuiltinFunction::ALL`] as names.
pub const BUILTIN_FUNCTIONS: [(&str, usize); BuiltinFunction::ALL.len()] = {
    let mut out = [("", 0); BuiltinFunction::ALL.len()];
    let mut i = 0;
    while i < out.len() {
        out[i] = (
            BuiltinFunction::ALL[i].name(),
            BuiltinFunction::ALL[i].arity(),
        );
        i += 1;
    }
    out
};

/// The named constants of formulas.
pub const CONSTANTS: [&str; 2] = ["e", "pi"];

/// The built-in losses.
pub const BUILTIN_LOSSES: [&str; 3] = ["mse", "bce", "cross_entropy"];

/// The statements of a `train` block.
pub const TRAIN_STATEMENTS: [&str; 7] = [
    "data",
    "validation",
    "optimizer",
    "epochs",
    "batch",
    "shuffle",
    "seed",
];

/// The number of arguments of built-in function `name`.
pub fn builtin_arity(name: &str) -> Option<usize> {
    BuiltinFunction::from_name(name).map(BuiltinFunction::arity)
}

/// Checks a parsed file. Returns what could be checked and every problem
/// found, sorted by position. The program is only meaningful when the
/// diagnostics are empty: a model with an error is left out of it.
pub fn check(file: &ast::File) -> (model::Program, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let items = items::check_items(file, &mut diags);
    let activations: Vec<&str> = items.activations.iter().map(|f| f.name.as_str()).collect();
    let losses: Vec<&str> = items.losses.iter().map(|f| f.name.as_str()).collect();
    let names = model_block::ItemNames {
        activation_set: activations.iter().copied().collect(),
        loss_set: losses.iter().copied().collect(),
        activations,
        losses,
    };
    let mut models: Vec<model::Model> = Vec::new();
    let mut model_names: HashMap<&str, &ast::Ident> = HashMap::new();
    let mut train: Option<model::TrainConfig> = None;
    let mut first_train: Option<&ast::Block> = None;
    for item in &file.items {
        match item {
            Item::Model(block) => {
                if let Some(name) = &block.name {
                    if let Some(first) = model_names.get(name.name.as_str()) {
                        diags.push(
                            Diagnostic::error(
                                format!("model '{}' is defined twice", name.name),
                                name.span,
                            )
                            .with_label("defined again here")
                            .with_secondary(first.span, "first defined here")
                            .with_help("give each model its own name"),
                        );
                    } else {
                        model_names.insert(name.name.as_str(), name);
                    }
                }
                if let Some(m) = model_block::check_model(block, &names, &mut diags) {
                    models.push(m);
                }
            }
            Item::Train(block) => {
                let config = train_block::check_train(block, &mut diags);
                if let Some(first) = first_train {
                    diags.push(
                        Diagnostic::error(
                            "a file may have only one 'train' block",
                            block.keyword.span,
                        )
                        .with_label("second train block")
                        .with_secondary(first.keyword.span, "first train block")
                        .with_help("merge the two blocks into one"),
                    );
                } else {
                    first_train = Some(block);
                    train = Some(config);
                }
            }
            Item::Activation(_) | Item::Loss(_) => {}
        }
    }
    diags.sort_by_key(Diagnostic::sort_key);
    let program = model::Program {
        activations: items.activations,
        losses: items.losses,
        models,
        train,
    };
    (program, diags)
}

#[cfg(test)]
mod tests;
