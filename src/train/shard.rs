//! Training steps on several threads: the batch is split by rows into one
//! *share* per thread, each share's loss and gradients run in parallel
//! (compiled code, one thread each), and one compiled update combines them
//! (`Σⱼ wⱼ·gⱼ`, wⱼ = the share's rows over the batch's, summed in share
//! order) and applies the optimizer. Which thread runs which share never
//! matters, so the same seed and thread count give the same bits.
//!
//! The split pays when a step has enough arithmetic to hide the cost of
//! waking the threads and of the update's extra pass over the gradients;
//! below [`MIN_SHARE_FLOP`] a step runs fused on one thread (its large
//! products may still use several, see `codegen::gemm`).

use super::layout::{Builder, Entry, Feed, Role};
use super::optim;
use crate::check::model::Optimizer;
use crate::codegen::{CallError, CodegenError, Compiled, Jit};
use rayon::prelude::*;
use std::ops::Range;

/// The least arithmetic (flop, counted as 6·rows·multiply-adds per row)
/// one share must have for the split to pay. Below it, waking a second
/// thread (about 20 µs per step through rayon's latch) costs more than
/// the share saves.
pub const MIN_SHARE_FLOP: usize = 4_000_000;

/// How many shares a batch of `rows` rows gets on `threads` threads when
/// one row's forward pass has `macs` multiply-adds: as many as threads,
/// each with at least one row and [`MIN_SHARE_FLOP`] of work; 1 means the
/// fused single-thread step.
pub fn shares(threads: usize, rows: usize, macs: usize) -> usize {
    let flop = 6usize.saturating_mul(rows).saturating_mul(macs);
    let by_work = flop / MIN_SHARE_FLOP;
    threads.min(rows).min(by_work).max(1)
}

/// The rows of share `j` of `n` over `rows` rows: contiguous, the first
/// `rows % n` shares one row longer.
fn range(rows: usize, n: usize, j: usize) -> Range<usize> {
    let (base, extra) = (rows / n, rows % n);
    let start = j * base + j.min(extra);
    start..start + base + usize::from(j < extra)
}

/// One share: its rows, its compiled loss and gradients, its outputs.
struct Share {
    rows: Range<usize>,
    f: Compiled<f32>,
    outs: Vec<Vec<f32>>,
}

/// A training step split over threads (see the module docs).
pub struct ShardedStep {
    pool: rayon::ThreadPool,
    shares: Vec<Share>,
    share_entry: Entry,
    update: Compiled<f32>,
    update_entry: Entry,
    weights: Vec<[f32; 1]>,
    update_outs: Vec<Vec<f32>>,
    batch: usize,
}

impl std::fmt::Debug for ShardedStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShardedStep")
            .field("shares", &self.shares.len())
            .field("batch", &self.batch)
            .finish()
    }
}

/// Why a sharded step could not be built.
#[derive(Debug)]
pub enum ShardError {
    /// Code generation failed.
    Codegen(CodegenError),
    /// The thread pool could not start.
    Pool(String),
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardError::Codegen(e) => write!(f, "{e}"),
            ShardError::Pool(e) => write!(f, "starting the thread pool: {e}"),
        }
    }
}

impl std::error::Error for ShardError {}

impl ShardedStep {
    /// Compiles `share` (from [`Builder::share`]) for each share's row
    /// count of a `batch`-row batch split `n` ways, and `update` (from
    /// [`Builder::combine`] with `n` shares), with `jit` (whose code should
    /// run on one thread: the shares are the parallelism).
    pub fn new(
        jit: &mut Jit,
        builder: &Builder,
        (share_entry, update_entry): (&Entry, &Entry),
        batch: usize,
        n: usize,
    ) -> Result<ShardedStep, ShardError> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| ShardError::Pool(e.to_string()))?;
        let mut compiled: Vec<(usize, Compiled<f32>)> = Vec::new();
        let mut shares = Vec::with_capacity(n);
        for j in 0..n {
            let rows = range(batch, n, j);
            let f = match compiled.iter().find(|(r, _)| *r == rows.len()) {
                // A fresh copy: its own work buffers, the same code.
                Some((_, f)) => f.clone(),
                None => {
                    let f = builder
                        .compile::<f32>(jit, share_entry, rows.len())
                        .map_err(ShardError::Codegen)?;
                    compiled.push((rows.len(), f.clone()));
                    f
                }
            };
            let outs = f.output_lens().iter().map(|&l| vec![0.0; l]).collect();
            shares.push(Share { rows, f, outs });
        }
        let update = builder
            .compile::<f32>(jit, update_entry, batch)
            .map_err(ShardError::Codegen)?;
        let update_outs = update.output_lens().iter().map(|&l| vec![0.0; l]).collect();
        let weights = (0..n)
            .map(|j| [range(batch, n, j).len() as f32 / batch as f32])
            .collect();
        Ok(ShardedStep {
            pool,
            shares,
            share_entry: share_entry.clone(),
            update,
            update_entry: update_entry.clone(),
            weights,
            update_outs,
            batch,
        })
    }

    /// The rows of the batch this step was compiled for.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs the step on `x` and `t` (the batch's rows, row-major): the
    /// shares in parallel, then the update on this thread, updating
    /// `states` (parameters, then optimizer states) in place. Writes the
    /// batch's loss, correct count and checks into `outs` by the roles of
    /// `step` (the fused step's entry), as the fused step would.
    pub fn call(
        &mut self,
        (x, t): (&[f32], &[f32]),
        scalars: &[[f32; 1]],
        states: &mut [&mut [f32]],
        (step, outs): (&Entry, &mut [&mut [f32]]),
    ) -> Result<(), CallError> {
        let (xw, tw) = (x.len() / self.batch, t.len() / self.batch);
        {
            let params: Vec<&[f32]> = states.iter().map(|s| &**s).collect();
            let entry = &self.share_entry;
            let shares = &mut self.shares;
            self.pool.install(|| {
                shares.par_iter_mut().try_for_each(|s| {
                    let (r, ins) = (s.rows.clone(), &entry.inputs);
                    let ins: Vec<&[f32]> = (ins.iter())
                        .map(|role| match *role {
                            Role::Input => &x[r.start * xw..r.end * xw],
                            Role::Target => &t[r.start * tw..r.end * tw],
                            Role::Param(i) => params[i],
                            _ => &[],
                        })
                        .collect();
                    let mut o: Vec<&mut [f32]> = s.outs.iter_mut().map(|v| &mut v[..]).collect();
                    s.f.call(&ins, &mut [], &mut o)
                })
            })?;
        }
        self.run_update(scalars, states)?;
        self.report(step, outs);
        Ok(())
    }

    /// The combined update, on this thread.
    fn run_update(
        &mut self,
        scalars: &[[f32; 1]],
        states: &mut [&mut [f32]],
    ) -> Result<(), CallError> {
        let grad = |role| self.share_entry.output(role);
        let ins: Vec<&[f32]> = (self.update_entry.inputs.iter())
            .map(|role| match *role {
                Role::ShareWeight(j) => &self.weights[j][..],
                Role::ShareGrad(i, j) => {
                    grad(Role::Grad(i)).map_or(&[][..], |slot| &self.shares[j].outs[slot][..])
                }
                Role::Scalar(i) => scalars.get(i).map_or(&[][..], |s| &s[..]),
                _ => &[],
            })
            .collect();
        let mut o: Vec<&mut [f32]> = self.update_outs.iter_mut().map(|v| &mut v[..]).collect();
        self.update.call(&ins, states, &mut o)
    }

    /// The batch's loss (`Σⱼ wⱼ·lossⱼ`), correct count and the update's
    /// checks, into `outs` by `step`'s roles.
    fn report(&self, step: &Entry, outs: &mut [&mut [f32]]) {
        let share_out = |s: &Share, role| self.share_entry.output(role).map(|k| s.outs[k][0]);
        for (slot, role) in step.outputs.iter().enumerate() {
            let value = match *role {
                Role::Loss => (self.shares.iter().zip(&self.weights))
                    .map(|(s, w)| {
                        f64::from(w[0]) * f64::from(share_out(s, Role::Loss).unwrap_or(0.0))
                    })
                    .sum::<f64>() as f32,
                Role::Correct => (self.shares.iter())
                    .map(|s| share_out(s, Role::Correct).unwrap_or(0.0))
                    .sum(),
                Role::Check(i) => match self.update_entry.output(Role::Check(i)) {
                    Some(k) => self.update_outs[k][0],
                    None => continue,
                },
                _ => continue,
            };
            outs[slot][0] = value;
        }
    }
}

/// The training step of `rows` rows whose fused entry is `step` (from
/// [`Builder::step`] with `opt`): split into shares when [`shares`] says
/// so for `threads` threads and `macs` multiply-adds per row (compiled
/// with a one-thread JIT of its own), else fused, compiled with `jit`.
#[allow(clippy::too_many_arguments)]
pub fn compile(
    builder: &mut Builder,
    step: &Entry,
    opt: &Optimizer,
    rows: usize,
    (threads, macs): (usize, usize),
    jit: &mut Jit,
) -> Result<Step, ShardError> {
    let n = shares(threads, rows, macs);
    if n == 1 {
        let f = builder.compile(jit, step, rows);
        return Ok(Step::Fused(f.map_err(ShardError::Codegen)?));
    }
    let shape = |e: crate::graph::ShapeError| ShardError::Codegen(CodegenError::Host(e.0));
    let share = builder.share().map_err(shape)?;
    let (combine, _) = builder.combine(opt, n).map_err(shape)?;
    // Shares run on one thread each: their products must not split again.
    let mut one = Jit::new(1).map_err(ShardError::Codegen)?;
    let s = ShardedStep::new(&mut one, builder, (&share, &combine), rows, n)?;
    Ok(Step::Sharded(Box::new(s)))
}

/// A compiled training step: fused on one thread, or split into shares.
pub enum Step {
    /// Forward, loss, gradients, checks and update in one function.
    Fused(Compiled<f32>),
    /// Shares in parallel, then the combined update.
    Sharded(Box<ShardedStep>),
}

impl Step {
    /// Runs the step whose fused entry is `entry` on the batch and
    /// scalars of `feed`, updating `states` in place and writing `entry`'s
    /// outputs (loss, correct count, checks) into `outs`.
    pub fn call(
        &mut self,
        entry: &Entry,
        feed: &Feed<'_, f32>,
        states: &mut [&mut [f32]],
        outs: &mut [&mut [f32]],
    ) -> Result<(), CallError> {
        match self {
            Step::Fused(f) => {
                // Inputs by role in a fixed-size array: no allocation per step.
                let mut ins: [&[f32]; 2 + optim::MAX_SCALARS] = [&[]; 2 + optim::MAX_SCALARS];
                entry.fill_inputs(feed, &mut ins);
                f.call(&ins[..entry.inputs.len()], states, outs)
            }
            Step::Sharded(s) => s.call((feed.x, feed.t), feed.scalars, states, (entry, outs)),
        }
    }
}
