//! Stage 1: `.nn` text to a spanned AST, collecting every syntax error.
//!
//! Entry points: [`parse`] for a whole file and [`parse_expr`] for one scalar
//! expression (what `slope diff` takes). Neither can panic or overflow the
//! stack on any input; nesting deeper than [`MAX_DEPTH`] is a diagnostic.

pub mod ast;
pub mod fmt;
mod parser;
pub mod sexp;

use crate::diag::Diagnostic;

/// The deepest nesting of parentheses, calls, lists and unary minus accepted.
pub const MAX_DEPTH: usize = 256;

/// Parses a whole file. Returns the items that parsed (recovering at item
/// and statement boundaries) and every syntax error, in source order.
pub fn parse(src: &str) -> (ast::File, Vec<Diagnostic>) {
    parser::parse_file(src)
}

/// Parses one scalar expression (the whole input, surrounding blanks allowed).
pub fn parse_expr(src: &str) -> Result<ast::Expr, Vec<Diagnostic>> {
    parser::parse_expr_only(src)
}
