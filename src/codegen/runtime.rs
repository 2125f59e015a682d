//! The safe face of generated code: [`Compiled::call`] checks every buffer
//! and then runs the native function. This file holds the crate's one
//! fn-pointer cast, and the host functions that JIT code calls (GEMM and
//! libm shims), whose raw-pointer bodies are the only other `unsafe` code.

use super::Element;
use super::plan::{Buf, BufKind};

/// The native entry point: one argument, the table of buffer pointers.
type Entry = extern "C" fn(*const usize);

/// A compiled function over preallocated buffers, specialised to one batch size.
///
/// Created by [`super::Jit::compile`]. The machine code stays valid for
/// the life of the process (the JIT module never frees finalized code).
#[derive(Clone)]
pub struct Compiled<T: Element> {
    entry: Entry,
    /// Pointer table handed to the entry point, refilled on every call.
    table: Vec<usize>,
    /// Where each table slot points, by kind.
    slots: Vec<BufKind>,
    /// Offsets of workspace buffers in `work` (usize::MAX for others).
    work_off: Vec<usize>,
    work: Vec<T>,
    input_lens: Vec<usize>,
    state_lens: Vec<usize>,
    output_lens: Vec<usize>,
    batch: usize,
}

/// A call with buffers that do not fit the compiled signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    /// Wrong number of buffers of one kind (`what` is `inputs`, `states` or `outputs`).
    Count {
        /// Which argument.
        what: &'static str,
        /// Buffers the signature has.
        expected: usize,
        /// Buffers given.
        got: usize,
    },
    /// A buffer of the wrong length.
    Length {
        /// Which argument.
        what: &'static str,
        /// Its position in that argument.
        index: usize,
        /// Elements the shape needs (batch substituted).
        expected: usize,
        /// Elements given.
        got: usize,
    },
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Count {
                what,
                expected,
                got,
            } => {
                write!(f, "expected {expected} {what} buffers, got {got}")
            }
            CallError::Length {
                what,
                index,
                expected,
                got,
            } => {
                write!(
                    f,
                    "{what}[{index}] has {got} elements, the compiled shape needs {expected}"
                )
            }
        }
    }
}

impl std::error::Error for CallError {}

impl<T: Element> Compiled<T> {
    /// Wraps a finalized entry point whose code reads and writes exactly
    /// the buffers `bufs` describe, through the pointer table.
    pub(crate) fn new(ptr: *const u8, bufs: &[Buf], batch: usize) -> Compiled<T> {
        // SAFETY: `ptr` is a function finalized by the JIT module (never
        // freed) with the signature `fn(i64)` under the host's default call
        // convention, which is `extern "C"`. Its only argument is the
        // pointer table; the function touches no memory but the buffers in
        // that table, within the lengths of `bufs`. The table is private
        // and `call` fills it only with buffers of those lengths, so calling
        // the function through a safe pointer type cannot misbehave.
        let entry = unsafe { std::mem::transmute::<*const u8, Entry>(ptr) };
        let mut work_len = 0;
        let mut work_off = Vec::new();
        let (mut input_lens, mut state_lens, mut output_lens) =
            (Vec::new(), Vec::new(), Vec::new());
        for b in bufs {
            match b.kind {
                BufKind::Work => {
                    work_off.push(work_len);
                    // 16-element alignment keeps buffers on separate cache lines.
                    work_len += b.len.div_ceil(16) * 16;
                }
                BufKind::Input(_) => {
                    work_off.push(usize::MAX);
                    input_lens.push(b.len);
                }
                BufKind::State(_) => {
                    work_off.push(usize::MAX);
                    state_lens.push(b.len);
                }
                BufKind::Output(_) => {
                    work_off.push(usize::MAX);
                    output_lens.push(b.len);
                }
            }
        }
        Compiled {
            entry,
            table: vec![0; bufs.len()],
            slots: bufs.iter().map(|b| b.kind).collect(),
            work_off,
            work: vec![T::default(); work_len.max(1)],
            input_lens,
            state_lens,
            output_lens,
            batch,
        }
    }

    /// The batch size this function was compiled for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Element counts of the inputs, in order.
    pub fn input_lens(&self) -> &[usize] {
        &self.input_lens
    }

    /// Element counts of the states (updated leaves), in order.
    pub fn state_lens(&self) -> &[usize] {
        &self.state_lens
    }

    /// Element counts of the outputs, in order.
    pub fn output_lens(&self) -> &[usize] {
        &self.output_lens
    }

    /// Runs the function: reads `inputs`, overwrites `outputs`, and replaces
    /// each state with its updated value. Checks every count and length
    /// first; allocates nothing.
    pub fn call(
        &mut self,
        inputs: &[&[T]],
        states: &mut [&mut [T]],
        outputs: &mut [&mut [T]],
    ) -> Result<(), CallError> {
        check("inputs", &self.input_lens, inputs.iter().map(|b| b.len()))?;
        check("states", &self.state_lens, states.iter().map(|b| b.len()))?;
        check(
            "outputs",
            &self.output_lens,
            outputs.iter().map(|b| b.len()),
        )?;
        let work = self.work.as_mut_ptr() as usize;
        for (slot, (kind, off)) in self.slots.iter().zip(&self.work_off).enumerate() {
            self.table[slot] = match *kind {
                BufKind::Input(i) => inputs[i].as_ptr() as usize,
                BufKind::State(i) => states[i].as_mut_ptr() as usize,
                BufKind::Output(i) => outputs[i].as_mut_ptr() as usize,
                BufKind::Work => work + off * std::mem::size_of::<T>(),
            };
        }
        (self.entry)(self.table.as_ptr());
        Ok(())
    }
}

fn check(
    what: &'static str,
    lens: &[usize],
    got: impl ExactSizeIterator<Item = usize>,
) -> Result<(), CallError> {
    if got.len() != lens.len() {
        return Err(CallError::Count {
            what,
            expected: lens.len(),
            got: got.len(),
        });
    }
    for (index, (g, &e)) in got.zip(lens).enumerate() {
        if g != e {
            return Err(CallError::Length {
                what,
                index,
                expected: e,
                got: g,
            });
        }
    }
    Ok(())
}

// ---- host functions called from JIT code ----
//
// The GEMM shims take raw pointers and strides from generated code. The
// schedule derives them from the buffer shapes, whose lengths `call` has
// checked, so every access stays inside its buffer.

macro_rules! gemm_shims {
    ($($name:ident: $t:ty;)*) => {
        $(
            /// `c[m,n] = a[m,k] · b[k,n]` with element strides, on up to
            /// `threads` threads ([`super::gemm::product`]).
            #[allow(clippy::too_many_arguments)]
            pub(crate) extern "C" fn $name(
                m: usize,
                k: usize,
                n: usize,
                a: *const $t,
                rsa: isize,
                csa: isize,
                b: *const $t,
                rsb: isize,
                csb: isize,
                c: *mut $t,
                rsc: isize,
                csc: isize,
                threads: usize,
            ) {
                // SAFETY: see the comment above: the strides and sizes
                // describe buffers of checked length, and `c` does not
                // overlap `a` or `b` (a product always gets its own buffer).
                unsafe {
                    super::gemm::product(
                        m, k, n, a, (rsa, csa), b, (rsb, csb), c, (rsc, csc), threads,
                    )
                }
            }
        )*
    };
}

gemm_shims! {
    sgemm_shim: f32;
    dgemm_shim: f64;
}

macro_rules! libm_shims {
    ($($name:ident: $t:ty => |$($x:ident),+| $body:expr;)*) => {
        $(
            /// Host libm function called per lane from JIT code.
            pub(crate) extern "C" fn $name($($x: $t),+) -> $t { $body }
        )*
    };
}

libm_shims! {
    expf: f32 => |x| x.exp();
    logf: f32 => |x| x.ln();
    log1pf: f32 => |x| x.ln_1p();
    tanhf: f32 => |x| x.tanh();
    sinf: f32 => |x| x.sin();
    cosf: f32 => |x| x.cos();
    powf: f32 => |x, y| x.powf(y);
    exp: f64 => |x| x.exp();
    log: f64 => |x| x.ln();
    log1p: f64 => |x| x.ln_1p();
    tanh: f64 => |x| x.tanh();
    sin: f64 => |x| x.sin();
    cos: f64 => |x| x.cos();
    pow: f64 => |x, y| x.powf(y);
}
