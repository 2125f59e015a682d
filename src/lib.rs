//! slope: a compiler for neural networks written as `.nn` files.
//!
//! The pipeline, one module per stage; imports only follow it:
//!
//! ```text
//! .nn text ─syntax─▶ AST ─check─▶ Program ─lower─▶ Graph ─diff─▶ gradients ─simplify─▶ Graph
//!                                                                                       │
//!        weights (safetensors) ◀─train─ native fns ◀─codegen (Cranelift)────────────────┘
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
pub mod simplify;
pub mod syntax;
pub mod train;
