//! Stage 2: the AST resolved into a checked [`model::Program`]: names,
//! arities, cycles, widths, options and their ranges, defaults filled in.

pub mod model;
