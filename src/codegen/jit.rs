//! The long-lived JIT: one Cranelift module and its contexts, reused for
//! every function (as in cranelift-jit-demo).
//!
//! Compiling a signature goes:
//! 1. schedule the graph into kernels over buffers (`schedule.rs`);
//! 2. translate each kernel into its own small Cranelift function (small
//!    functions keep register allocation fast);
//! 3. emit one entry function that calls the kernels in order;
//! 4. finalize, and wrap the entry point in a [`Compiled`].

use super::kernels;
use super::math::{Libm, Vx};
use super::plan::{Fused, Kernel, Plan};
use super::rows;
use super::runtime::{self, Compiled};
use super::schedule;
use super::translate::{self, FusedCtx};
use super::window;
use super::{CodegenError, Element, Signature};
use crate::graph::Graph;
use crate::graph::Op;
use cranelift_codegen::Context;
use cranelift_codegen::ir::{AbiParam, FuncRef, Function, InstBuilder, MemFlagsData, Value, types};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;

/// Calls in one driver function of the entry's tree (see `define_entry`).
const CALLS_PER_DRIVER: usize = 64;

/// The JIT compiler: host ISA, one module, reusable contexts.
pub struct Jit {
    module: JITModule,
    ctx: Context,
    fctx: FunctionBuilderContext,
    fma: bool,
    threads: usize,
    /// Functions defined so far, for unique names.
    count: usize,
}

impl std::fmt::Debug for Jit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jit")
            .field("fma", &self.fma)
            .field("threads", &self.threads)
            .finish()
    }
}

/// Names and addresses of the host functions JIT code may call.
fn host_symbols() -> Vec<(&'static str, *const u8)> {
    vec![
        ("slope_sgemm", runtime::sgemm_shim as *const u8),
        ("slope_dgemm", runtime::dgemm_shim as *const u8),
        ("slope_softmax_lse_f32", rows::softmax_lse_f32 as *const u8),
        ("slope_tanh_f32", rows::tanh_f32 as *const u8),
        ("slope_argmax_f32", rows::argmax_f32 as *const u8),
        ("slope_sum_f32", rows::sum_f32 as *const u8),
        ("slope_window_f32", window::window_f32 as *const u8),
        ("slope_window_f64", window::window_f64 as *const u8),
        ("slope_expf", runtime::expf as *const u8),
        ("slope_logf", runtime::logf as *const u8),
        ("slope_log1pf", runtime::log1pf as *const u8),
        ("slope_tanhf", runtime::tanhf as *const u8),
        ("slope_sinf", runtime::sinf as *const u8),
        ("slope_cosf", runtime::cosf as *const u8),
        ("slope_powf", runtime::powf as *const u8),
        ("slope_exp", runtime::exp as *const u8),
        ("slope_log", runtime::log as *const u8),
        ("slope_log1p", runtime::log1p as *const u8),
        ("slope_tanh", runtime::tanh as *const u8),
        ("slope_sin", runtime::sin as *const u8),
        ("slope_cos", runtime::cos as *const u8),
        ("slope_pow", runtime::pow as *const u8),
    ]
}

impl Jit {
    /// A JIT for the host CPU. `threads` is the number of threads the code
    /// it generates may use for large matrix products and convolutions.
    pub fn new(threads: usize) -> Result<Jit, CodegenError> {
        let threads = threads.max(1);
        let mut flags = settings::builder();
        let set = |f: &mut settings::Builder, k: &str, v: &str| {
            f.set(k, v)
                .map_err(|e| CodegenError::Host(format!("setting {k}={v}: {e}")))
        };
        set(&mut flags, "opt_level", "speed")?;
        set(&mut flags, "regalloc_algorithm", "backtracking")?;
        set(&mut flags, "is_pic", "false")?;
        set(&mut flags, "use_colocated_libcalls", "false")?;
        set(
            &mut flags,
            "enable_verifier",
            if cfg!(debug_assertions) {
                "true"
            } else {
                "false"
            },
        )?;
        let isa_builder =
            cranelift_native::builder().map_err(|e| CodegenError::Host(e.to_string()))?;
        let isa = isa_builder
            .finish(settings::Flags::new(flags))
            .map_err(|e| CodegenError::Host(e.to_string()))?;
        let fma = isa
            .isa_flags()
            .iter()
            .any(|v| v.name == "has_fma" && v.as_bool() == Some(true));
        let mut jb = JITBuilder::with_isa(isa, cranelift_module::default_libcall_names());
        for (name, ptr) in host_symbols() {
            jb.symbol(name, ptr);
        }
        let module = JITModule::new(jb);
        Ok(Jit {
            ctx: module.make_context(),
            module,
            fctx: FunctionBuilderContext::new(),
            fma,
            threads,
            count: 0,
        })
    }

    /// True when the host has FMA (kernels fall back to multiply-add otherwise).
    pub fn has_fma(&self) -> bool {
        self.fma
    }

    /// Compiles `sig` over `graph` for exactly `batch` rows, in `T`.
    pub fn compile<T: Element>(
        &mut self,
        graph: &Graph,
        sig: &Signature,
        batch: usize,
    ) -> Result<Compiled<T>, CodegenError> {
        let plan = schedule::plan(graph, sig, batch)?;
        let mut ids = Vec::new();
        for (i, k) in plan.kernels.iter().enumerate() {
            ids.push(self.define_kernel::<T>(graph, &plan, k, i, false)?.0);
        }
        let entry = self.define_entry(&ids)?;
        self.module
            .finalize_definitions()
            .map_err(|e| CodegenError::Cranelift(e.to_string()))?;
        let ptr = self.module.get_finalized_function(entry);
        Ok(Compiled::new(ptr, &plan.bufs, batch))
    }

    /// The Cranelift IR of every kernel of `sig`, as text (for snapshots and
    /// for people curious about the generated code). Nothing is finalized.
    pub fn clif<T: Element>(
        &mut self,
        graph: &Graph,
        sig: &Signature,
        batch: usize,
    ) -> Result<Vec<String>, CodegenError> {
        let plan = schedule::plan(graph, sig, batch)?;
        let mut out = Vec::new();
        for (i, k) in plan.kernels.iter().enumerate() {
            out.push(self.define_kernel::<T>(graph, &plan, k, i, true)?.1);
        }
        Ok(out)
    }

    fn table_sig(&self) -> cranelift_codegen::ir::Signature {
        let mut sig = self.module.make_signature();
        sig.params.push(AbiParam::new(types::I64));
        sig
    }

    fn import(
        &mut self,
        name: &str,
        params: &[types::Type],
        ret: Option<types::Type>,
        func: &mut Function,
    ) -> Result<FuncRef, CodegenError> {
        let mut sig = self.module.make_signature();
        sig.params.extend(params.iter().map(|&t| AbiParam::new(t)));
        sig.returns.extend(ret.map(AbiParam::new));
        let id = self
            .module
            .declare_function(name, Linkage::Import, &sig)
            .map_err(|e| CodegenError::Cranelift(e.to_string()))?;
        Ok(self.module.declare_func_in_func(id, func))
    }

    fn libm<T: Element>(&mut self, func: &mut Function) -> Result<Libm, CodegenError> {
        let st = T::scalar_type();
        let sfx = if T::BYTES == 4 { "f" } else { "" };
        let mut one = |name: &str, n: usize| {
            self.import(&format!("slope_{name}{sfx}"), &vec![st; n], Some(st), func)
        };
        Ok(Libm {
            exp: one("exp", 1)?,
            log: one("log", 1)?,
            log1p: one("log1p", 1)?,
            tanh: one("tanh", 1)?,
            sin: one("sin", 1)?,
            cos: one("cos", 1)?,
            pow: one("pow", 2)?,
        })
    }

    /// Translates one kernel into a function `fn(table)`; returns its id
    /// and (when `text`) its IR. Without `text` the function is defined.
    fn define_kernel<T: Element>(
        &mut self,
        graph: &Graph,
        plan: &Plan,
        kernel: &Kernel,
        index: usize,
        text: bool,
    ) -> Result<(FuncId, String), CodegenError> {
        self.count += 1;
        let name = format!("slope_k{}_{index}", self.count);
        let sig = self.table_sig();
        let id = self
            .module
            .declare_function(&name, Linkage::Local, &sig)
            .map_err(|e| CodegenError::Cranelift(e.to_string()))?;
        let mut func = Function::with_name_signature(Default::default(), sig);
        let libm = self.libm::<T>(&mut func)?;
        let gemm_name = if T::BYTES == 4 {
            "slope_sgemm"
        } else {
            "slope_dgemm"
        };
        let gemm = self.import(gemm_name, &[types::I64; 13], None, &mut func)?;
        let window = match kernel {
            Kernel::Window { .. } => {
                let name = if T::BYTES == 4 {
                    "slope_window_f32"
                } else {
                    "slope_window_f64"
                };
                Some(self.import(name, &[types::I64; 18], None, &mut func)?)
            }
            _ => None,
        };
        // f32 row work goes to the AVX-512 host kernels of `rows.rs` when
        // the host has AVX-512F (checked here, at compile time).
        let host = if T::BYTES == 4 && super::gemm::has_avx512() {
            match kernel {
                Kernel::Softmax { .. } | Kernel::LogSumExp { .. } | Kernel::SoftmaxLse { .. } => {
                    let f =
                        self.import("slope_softmax_lse_f32", &[types::I64; 5], None, &mut func)?;
                    Some(f)
                }
                Kernel::Sum {
                    over_rows,
                    over_cols,
                    ..
                } if *over_rows || *over_cols => {
                    Some(self.import("slope_sum_f32", &[types::I64; 6], None, &mut func)?)
                }
                Kernel::ArgMax { .. } => {
                    Some(self.import("slope_argmax_f32", &[types::I64; 4], None, &mut func)?)
                }
                Kernel::Fused(f) if all_tanh(graph, f) => {
                    Some(self.import("slope_tanh_f32", &[types::I64; 2], None, &mut func)?)
                }
                _ => None,
            }
        } else {
            None
        };
        {
            let mut b = FunctionBuilder::new(&mut func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let table = b.block_params(entry)[0];
            let mut bufs: Vec<usize> = kernel
                .reads()
                .iter()
                .map(|r| r.0)
                .chain(kernel.writes())
                .collect();
            bufs.sort_unstable();
            bufs.dedup();
            let mut ptrs = HashMap::new();
            for &buf in &bufs {
                let p = b
                    .ins()
                    .load(types::I64, MemFlagsData::trusted(), table, (buf * 8) as i32);
                ptrs.insert(buf, p);
            }
            let mut vx = Vx {
                b: &mut b,
                vt: T::vector_type(),
                st: T::scalar_type(),
                it: T::int_vector_type(),
                fma: self.fma,
                libm,
            };
            match host {
                Some(f) => emit_host(&mut vx, graph, plan, kernel, &ptrs, f),
                None => {
                    let calls = Calls {
                        gemm,
                        window,
                        threads: self.threads,
                    };
                    emit(&mut vx, graph, plan, kernel, &ptrs, calls)
                }
            }
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        let clif = if text {
            func.display().to_string()
        } else {
            String::new()
        };
        if !text {
            self.ctx.func = func;
            let r = self.module.define_function(id, &mut self.ctx);
            self.module.clear_context(&mut self.ctx);
            r.map_err(|e| CodegenError::Cranelift(format!("{e:?}")))?;
        }
        Ok((id, clif))
    }

    /// The entry function: calls every kernel in order with the table,
    /// through a tree of drivers of at most [`CALLS_PER_DRIVER`] calls each.
    /// (One flat driver of thousands of calls made register allocation
    /// quadratic: the table pointer lives across every call.)
    fn define_entry(&mut self, kernels: &[FuncId]) -> Result<FuncId, CodegenError> {
        let mut level = kernels.to_vec();
        let mut depth = 0;
        while level.len() > CALLS_PER_DRIVER {
            let mut next = Vec::with_capacity(level.len().div_ceil(CALLS_PER_DRIVER));
            for (i, group) in level.chunks(CALLS_PER_DRIVER).enumerate() {
                let name = format!("slope_drive{}_{depth}_{i}", self.count);
                next.push(self.define_driver(&name, Linkage::Local, group)?);
            }
            level = next;
            depth += 1;
        }
        let name = format!("slope_entry{}", self.count);
        self.define_driver(&name, Linkage::Export, &level)
    }

    /// A function `name(table)` that calls each of `kernels` with the table.
    fn define_driver(
        &mut self,
        name: &str,
        linkage: Linkage,
        kernels: &[FuncId],
    ) -> Result<FuncId, CodegenError> {
        let sig = self.table_sig();
        let id = self
            .module
            .declare_function(name, linkage, &sig)
            .map_err(|e| CodegenError::Cranelift(e.to_string()))?;
        let mut func = Function::with_name_signature(Default::default(), sig);
        let refs: Vec<FuncRef> = kernels
            .iter()
            .map(|&k| self.module.declare_func_in_func(k, &mut func))
            .collect();
        {
            let mut b = FunctionBuilder::new(&mut func, &mut self.fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let table: Value = b.block_params(entry)[0];
            for r in refs {
                b.ins().call(r, &[table]);
            }
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(self.module.target_config());
        }
        self.ctx.func = func;
        let r = self.module.define_function(id, &mut self.ctx);
        self.module.clear_context(&mut self.ctx);
        r.map_err(|e| CodegenError::Cranelift(format!("{e:?}")))?;
        Ok(id)
    }
}

/// The host functions a kernel may call, and their thread count.
struct Calls {
    gemm: FuncRef,
    window: Option<FuncRef>,
    threads: usize,
}

/// Emits the body of one kernel: one arm per kernel kind.
fn emit(
    vx: &mut Vx,
    graph: &Graph,
    plan: &Plan,
    kernel: &Kernel,
    ptrs: &HashMap<usize, Value>,
    calls: Calls,
) {
    let p = |b: &usize| ptrs[b];
    match kernel {
        Kernel::Fused(f) => translate::emit_fused(vx, &FusedCtx { graph, plan, ptrs }, f, false),
        Kernel::MatMul { a, b, c, m, k, n } => {
            let gemm = (calls.gemm, calls.threads);
            kernels::matmul(vx, gemm, (p(&a.buf), *a), (p(&b.buf), *b), p(c), *m, *k, *n)
        }
        Kernel::Transpose {
            src,
            dst,
            rows,
            cols,
        } => kernels::transpose(vx, p(src), p(dst), *rows, *cols),
        Kernel::Sum {
            src,
            dst,
            rows,
            cols,
            over_rows,
            over_cols,
        } => kernels::sum(vx, p(src), p(dst), *rows, *cols, *over_rows, *over_cols),
        Kernel::SumStrided {
            src,
            dst,
            dims,
            over,
        } => kernels::sum_strided(vx, p(src), p(dst), dims, *over),
        Kernel::Softmax {
            src,
            dst,
            rows,
            cols,
        } => kernels::softmax(vx, p(src), p(dst), *rows, *cols),
        Kernel::LogSumExp {
            src,
            dst,
            rows,
            cols,
        } => kernels::logsumexp(vx, p(src), p(dst), *rows, *cols),
        Kernel::SoftmaxLse {
            src,
            sm,
            lse,
            rows,
            cols,
        } => kernels::softmax_lse(vx, p(src), Some(p(sm)), Some(p(lse)), *rows, *cols),
        Kernel::ArgMax {
            src,
            dst,
            rows,
            cols,
        } => kernels::argmax(vx, p(src), p(dst), *rows, *cols),
        Kernel::OneHot { src, dst, rows, k } => kernels::onehot(vx, p(src), p(dst), *rows, *k),
        Kernel::Copy { src, dst, len } => kernels::copy(vx, p(src), p(dst), *len),
        Kernel::Window {
            op,
            geom,
            srcs,
            dst,
            scratch,
            cols_ready,
        } => {
            let f = calls
                .window
                .expect("window kernels import their host function");
            let code = window::OPS
                .iter()
                .position(|o| o == op)
                .expect("OPS lists every window op");
            let mut i = |v: usize| vx.b.ins().iconst(types::I64, v as i64);
            let zero = i(0);
            let b = srcs.get(1).map_or(zero, p);
            let s = scratch.as_ref().map_or(zero, p);
            let g = geom;
            let args = [
                i(code),
                p(&srcs[0]),
                b,
                p(dst),
                s,
                i(g.batch),
                i(g.cin),
                i(g.cout),
                i(g.input[0]),
                i(g.input[1]),
                i(g.kernel),
                i(g.stride),
                i(g.pad[0]),
                i(g.pad[1]),
                i(g.out[0]),
                i(g.out[1]),
                i(calls.threads),
                i(usize::from(*cols_ready)),
            ];
            vx.b.ins().call(f, &args);
        }
    }
}

/// True when a fused loop stores exactly one node and it is a `tanh` (an
/// activation after its bias add): the loop then stores the argument and
/// `slope_tanh_f32` finishes the buffer in place.
fn all_tanh(graph: &Graph, f: &Fused) -> bool {
    f.sinks.len() == 1 && f.sinks.iter().all(|s| graph.node(s.0).op == Op::Tanh)
}

/// Emits a kernel that calls an AVX-512 host kernel of `rows.rs`.
fn emit_host(
    vx: &mut Vx,
    graph: &Graph,
    plan: &Plan,
    kernel: &Kernel,
    ptrs: &HashMap<usize, Value>,
    f: FuncRef,
) {
    let p = |b: &usize| ptrs[b];
    let mut i = |v: usize| vx.b.ins().iconst(types::I64, v as i64);
    let (src, sm, lse, rows, cols) = match kernel {
        Kernel::Softmax {
            src,
            dst,
            rows,
            cols,
        } => (p(src), p(dst), i(0), *rows, *cols),
        Kernel::LogSumExp {
            src,
            dst,
            rows,
            cols,
        } => (p(src), i(0), p(dst), *rows, *cols),
        Kernel::SoftmaxLse {
            src,
            sm,
            lse,
            rows,
            cols,
        } => (p(src), p(sm), p(lse), *rows, *cols),
        Kernel::Sum {
            src,
            dst,
            rows,
            cols,
            over_rows,
            over_cols,
        } => {
            let args = [
                p(src),
                p(dst),
                i(*rows),
                i(*cols),
                i(usize::from(*over_rows)),
                i(usize::from(*over_cols)),
            ];
            vx.b.ins().call(f, &args);
            return;
        }
        Kernel::ArgMax {
            src,
            dst,
            rows,
            cols,
        } => {
            let (r, c) = (i(*rows), i(*cols));
            vx.b.ins().call(f, &[p(src), p(dst), r, c]);
            return;
        }
        Kernel::Fused(fu) => {
            translate::emit_fused(vx, &FusedCtx { graph, plan, ptrs }, fu, true);
            let len = vx.b.ins().iconst(types::I64, (fu.rows * fu.cols) as i64);
            for s in &fu.sinks {
                vx.b.ins().call(f, &[p(&s.1), len]);
            }
            return;
        }
        _ => unreachable!("emit_host is called only for row kernels and tanh loops"),
    };
    let (r, c) = (i(rows), i(cols));
    vx.b.ins().call(f, &[src, sm, lse, r, c]);
}
