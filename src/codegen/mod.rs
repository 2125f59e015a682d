//! Stage 6: Cranelift code generation.
