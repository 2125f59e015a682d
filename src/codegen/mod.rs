//! Stage 6: Cranelift code generation (interface agreed between stages; the
//! implementation lives in the submodules).
//!
//! **Architecture Invariant:** `codegen` imports only `graph` (and `diag`).
//!
//! The contract every caller relies on:
//!
//! * [`Jit::new`] makes one long-lived JIT (host ISA, FMA asserted).
//! * [`Jit::compile`] turns a graph [`Signature`] into a [`Compiled`] function
//!   specialised for one batch size, in f32 or f64 (`T`).
//! * [`Compiled::call`] checks every buffer's length against the shapes and
//!   runs native code; it never allocates.
//!
//! A signature names the leaves read (`inputs`), the nodes written to fresh
//! output buffers (`outputs`), and `updates`: pairs `(leaf, value)` whose
//! value is written back into the leaf's own buffer after every read of the
//! old value (a training step's parameter and optimizer-state updates).

use crate::graph::NodeId;

/// What a compiled function reads and writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Signature {
    /// Leaf nodes read, in the order of `call`'s `inputs`.
    pub inputs: Vec<NodeId>,
    /// Nodes computed into `call`'s `outputs`, in order.
    pub outputs: Vec<NodeId>,
    /// `(leaf, value)`: `value` overwrites the leaf's buffer, in the order of `call`'s `states`.
    pub updates: Vec<(NodeId, NodeId)>,
}

mod consts;
mod element;
#[doc(hidden)]
pub mod gemm;
mod jit;
mod kernels;
pub mod math;
mod plan;
mod rows;
mod runtime;
mod schedule;
mod strides;
mod translate;
mod window;

pub use element::Element;
pub use jit::Jit;
pub use runtime::{CallError, Compiled};

/// Why a graph could not be compiled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CodegenError {
    /// The signature does not fit the graph (a leaf read but not given,
    /// an input that is not a leaf, an update of a non-leaf, ...).
    Signature(String),
    /// The batch size is zero.
    ZeroBatch,
    /// The host CPU lacks a feature the kernels need.
    Host(String),
    /// Cranelift rejected the generated code (a bug in slope).
    Cranelift(String),
    /// An op at operand shapes the code generator does not support; the
    /// message names the op and the shapes.
    Unsupported(String),
}

impl std::fmt::Display for CodegenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CodegenError::Signature(m) => write!(f, "cannot compile this signature: {m}"),
            CodegenError::ZeroBatch => f.write_str("cannot compile for a batch of 0 rows"),
            CodegenError::Host(m) => write!(f, "unsupported host: {m}"),
            CodegenError::Cranelift(m) => write!(f, "code generation failed (a bug in slope): {m}"),
            CodegenError::Unsupported(m) => write!(f, "the code generator does not support {m}"),
        }
    }
}

impl std::error::Error for CodegenError {}
