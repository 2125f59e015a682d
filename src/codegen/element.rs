//! The element types kernels are generated for: `f32` (training, prediction)
//! and `f64` (gradient checks).

use cranelift_codegen::ir::{InstBuilder, Type, Value, types};
use cranelift_frontend::FunctionBuilder;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point element type the JIT can generate kernels for.
///
/// Sealed: implemented for `f32` and `f64` only.
pub trait Element:
    Copy + Default + PartialEq + std::fmt::Debug + Send + Sync + 'static + sealed::Sealed
{
    /// Lanes in one 128-bit vector (Cranelift has no 256-bit vectors on x86-64).
    const LANES: usize;
    /// Bytes per element.
    const BYTES: usize;
    /// The value `v` rounded to this type.
    fn from_f64(v: f64) -> Self;
    /// The value widened to f64.
    fn to_f64(self) -> f64;
    #[doc(hidden)]
    /// The Cranelift scalar type.
    fn scalar_type() -> Type;
    #[doc(hidden)]
    /// The Cranelift vector type (`f32x4` or `f64x2`).
    fn vector_type() -> Type;
    #[doc(hidden)]
    /// The integer vector type of the same width (`i32x4` or `i64x2`).
    fn int_vector_type() -> Type;
    #[doc(hidden)]
    /// A scalar constant of this type.
    fn konst(b: &mut FunctionBuilder<'_>, v: f64) -> Value;
}

impl Element for f32 {
    const LANES: usize = 4;
    const BYTES: usize = 4;
    fn from_f64(v: f64) -> f32 {
        v as f32
    }
    fn to_f64(self) -> f64 {
        f64::from(self)
    }
    fn scalar_type() -> Type {
        types::F32
    }
    fn vector_type() -> Type {
        types::F32X4
    }
    fn int_vector_type() -> Type {
        types::I32X4
    }
    fn konst(b: &mut FunctionBuilder<'_>, v: f64) -> Value {
        b.ins().f32const(v as f32)
    }
}

impl Element for f64 {
    const LANES: usize = 2;
    const BYTES: usize = 8;
    fn from_f64(v: f64) -> f64 {
        v
    }
    fn to_f64(self) -> f64 {
        self
    }
    fn scalar_type() -> Type {
        types::F64
    }
    fn vector_type() -> Type {
        types::F64X2
    }
    fn int_vector_type() -> Type {
        types::I64X2
    }
    fn konst(b: &mut FunctionBuilder<'_>, v: f64) -> Value {
        b.ins().f64const(v)
    }
}
