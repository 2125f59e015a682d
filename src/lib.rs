//! slope: a compiler for neural networks written as `.nn` files.
//!
//! The pipeline, one module per stage; imports only follow it:
//!
//! ```text
//! .nn text ─syntax─▶ AST ─check─▶ Program ─lower─▶ Graph ─diff─▶ gradients ─simplify─▶ Graph
//!                                                                                       │
//!        weights (safetensors) ◀─train─ native fns ◀─codegen (Cranelift)────────────────┘
//! ```
//!
//! | module | stage | entry point |
//! | --- | --- | --- |
//! | [`diag`] | shared | [`diag::Diagnostic`], [`diag::render`] |
//! | [`syntax`] | 1: text to a spanned AST | [`syntax::parse`], [`syntax::parse_expr`] |
//! | [`check`] | 2: names, ranges, defaults | [`check::check`] |
//! | [`data`] | 2: CSV text to a checked data set | [`data::load`] |
//! | [`graph`] | 3: the one IR, its op table and f64 interpreter | [`graph::Graph`], [`graph::Op`] |
//! | [`lower`] | 3: checked model to graph | [`lower::lower_model`], [`lower::lower_formula`] |
//! | [`diff`] | 4: reverse-mode symbolic differentiation | [`diff::grad`] |
//! | [`simplify`] | 5: named rewrite rules to a fixed point | [`simplify::simplify`] |
//! | [`codegen`] | 6: Cranelift JIT | [`codegen::Jit`], [`codegen::Compiled`] |
//! | [`train`] | 7: training loop, optimizers, weights files | [`train::train`] |
//! | [`cli`] | 8: the `slope` command line | [`cli::main`] |
//!
//! **Architecture Invariant:** a stage imports only earlier stages and
//! `diag`; nothing imports `cli`, the only module that prints or reads files
//! (`tests/layering.rs` checks this). So `graph`, `diff`, `simplify` and
//! `codegen` can be tested from graphs built by hand.
//!
//! **Architecture Invariant:** every fact about an op (name, arity, shape,
//! f64 evaluation, derivative) is one exhaustive `match` in `graph/op.rs`,
//! and the code generator has one arm per op; a new op does not compile
//! until all of them exist.
//!
//! **Architecture Invariant:** the f64 interpreter (`graph::eval`) is a test
//! oracle only; `train`, `predict` and `grad --weights` always run
//! JIT-compiled code.
//!
//! **Architecture Invariant:** no input makes slope panic: user input gets a
//! [`diag::Diagnostic`]; panics are for broken internal invariants only.
//!
//! The first example of the language, as the spec writes it:
//!
//! ```text
#![doc = include_str!("../examples/xor.nn")]
//! ```

#![warn(missing_docs)]

pub mod check;
pub mod cli;
pub mod codegen;
pub mod data;
pub mod diag;
pub mod diff;
pub mod graph;
pub mod lower;
pub mod pipeline;
pub mod simplify;
pub mod syntax;
pub mod train;
