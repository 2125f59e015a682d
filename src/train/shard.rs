//! Training steps on several threads: the batch is split by rows into one
//! *share* per thread, each share's loss and gradients run in parallel
//! (compiled code, one thread each), and one compiled update combines them
//! (`Σⱼ wⱼ·gⱼ`, wⱼ = the share's rows over the batch's, summed in share
//! order) and applies the optimizer. Which thread runs which share never
//! matters, so the same seed and thread count give the same bits.
//!
//! The split pays when a step has enough arithmetic to hide the cost of
//! the handoff to the helper threads (`helpers`) and of the update's extra
//! pass over the gradients;
//! below [`MIN_SHARE_FLOP`] a step runs fused on one thread (its large
//! products may still use several, see `codegen::gemm`).

use super::helpers::Helpers;
use super::layout::{Builder, Entry, Feed, Role};
use super::optim::{self, Updates};
use crate::check::model::Optimizer;
use crate::codegen::{CallError, CodegenError, Compiled, Jit};
use std::ops::Range;

/// The least arithmetic (flop, counted as 6·rows·multiply-adds per row)
/// one share must have for the split to pay: handing a share to a spinning
/// helper thread and combining the gradients cost about a µs per step.
/// Measured with `slope bench benches/peers/w1.nn --threads 2 --batch B`
/// against `--threads 1` (the 64-32-10 network, 2,368 multiply-adds per
/// row; a quiet AMD EPYC Zen 3, both cores): batch 16 (0.23 MFLOP) 7.89
/// µs split against 7.95 fused, batch 32 11.05 against 13.38, batch 64
/// 16.1 against 23.1, batch 128 26.1 against 44.1.
pub const MIN_SHARE_FLOP: usize = 150_000;

/// The fewest parameters (elements) per update group: below, the whole
/// update runs on one thread (it reads and writes about 16 bytes per
/// element, 1 MB here, some tens of µs; a fork costs a few).
pub const MIN_GROUP: usize = 65_536;

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

/// One share: its rows, its compiled loss and gradients, its outputs and
/// how its last call went.
struct Share {
    rows: Range<usize>,
    f: Compiled<f32>,
    outs: Vec<Vec<f32>>,
    status: Result<(), CallError>,
}

/// One group of parameters of the combined update: its compiled update,
/// its entry, its outputs (checks) and how its last call went.
struct Group {
    f: Compiled<f32>,
    entry: Entry,
    outs: Vec<Vec<f32>>,
    status: Result<(), CallError>,
}

/// A training step split over threads (see the module docs).
pub struct ShardedStep {
    helpers: Helpers,
    shares: Vec<Share>,
    share_entry: Entry,
    groups: Vec<Group>,
    /// For each state of the step (parameters, then optimizer states): its
    /// group and its place among the group's updated buffers.
    owner: Vec<(usize, usize)>,
    weights: Vec<[f32; 1]>,
    batch: usize,
}

/// `n` contiguous ranges of the parameters whose element counts `lens`
/// are about equal (fewer when there are fewer parameters): the update
/// groups, one per thread.
fn groups(lens: &[usize], n: usize) -> Vec<Range<usize>> {
    let total: usize = lens.iter().sum();
    let mut out = Vec::new();
    let (mut start, mut sum) = (0, 0);
    for (i, &l) in lens.iter().enumerate() {
        sum += l;
        let cut = (out.len() + 1) * total / n;
        if sum >= cut && out.len() + 1 < n && i + 1 < lens.len() {
            out.push(start..i + 1);
            start = i + 1;
        }
    }
    out.push(start..lens.len());
    out
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
    /// The helper threads could not start.
    Threads(String),
    /// The update groups do not cover the step's states once each.
    Layout(String),
}

impl std::fmt::Display for ShardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardError::Codegen(e) => write!(f, "{e}"),
            ShardError::Threads(e) => write!(f, "starting helper threads: {e}"),
            ShardError::Layout(e) => write!(f, "split step: {e}"),
        }
    }
}

impl std::error::Error for ShardError {}

/// For each state of the step in its order (parameters, then optimizer
/// states): the group updating it and its place among that group's
/// updated buffers; an error unless the groups update each exactly once.
fn owners(groups: &[Group], params: usize) -> Result<Vec<(usize, usize)>, ShardError> {
    let total: usize = groups.iter().map(|g| g.entry.updated.len()).sum();
    let mut owner = vec![None; total];
    for (gi, g) in groups.iter().enumerate() {
        for (pos, role) in g.entry.updated.iter().enumerate() {
            let at = match *role {
                Role::Param(i) => Some(i),
                Role::State(k) => Some(params + k),
                _ => None,
            };
            match at.and_then(|a| owner.get_mut(a)) {
                Some(slot @ None) => *slot = Some((gi, pos)),
                _ => return Err(ShardError::Layout(format!("update of {role:?}"))),
            }
        }
    }
    owner
        .into_iter()
        .map(|o| o.ok_or_else(|| ShardError::Layout("a state no group updates".into())))
        .collect()
}

impl ShardedStep {
    /// Compiles `share` (from [`Builder::share`]) for each share's row
    /// count of a `batch`-row batch split `n` ways, and the `updates` (from
    /// [`Builder::combine`] with `n` shares, one per group of parameters,
    /// together covering every parameter and state of the step once), with
    /// `jit` (whose code should run on one thread: the shares are the
    /// parallelism); `helpers` run all shares and groups but the first,
    /// which run on the calling thread.
    pub fn new(
        jit: &mut Jit,
        builder: &Builder,
        (share_entry, updates): (&Entry, &[Entry]),
        batch: usize,
        (n, helpers): (usize, Helpers),
    ) -> Result<ShardedStep, ShardError> {
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
            shares.push(Share {
                rows,
                f,
                outs,
                status: Ok(()),
            });
        }
        let mut groups = Vec::with_capacity(updates.len());
        for entry in updates {
            let f = builder.compile::<f32>(jit, entry, batch);
            let f = f.map_err(ShardError::Codegen)?;
            let outs = f.output_lens().iter().map(|&l| vec![0.0; l]).collect();
            let (entry, status) = (entry.clone(), Ok(()));
            groups.push(Group {
                f,
                entry,
                outs,
                status,
            });
        }
        let owner = owners(&groups, builder.network().params.len())?;
        let weights = (0..n)
            .map(|j| [range(batch, n, j).len() as f32 / batch as f32])
            .collect();
        Ok(ShardedStep {
            helpers,
            shares,
            share_entry: share_entry.clone(),
            groups,
            owner,
            weights,
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
            let (entry, params) = (&self.share_entry, &params[..]);
            let run = move |s: &mut Share| {
                let (r, ins) = (s.rows.clone(), &entry.inputs);
                let ins: Vec<&[f32]> = (ins.iter())
                    .map(|role| match *role {
                        Role::Input => &x[r.start * xw..r.end * xw],
                        Role::Target => &t[r.start * tw..r.end * tw],
                        Role::Param(i) => params[i],
                        // A share's entry has no other inputs.
                        _ => &[],
                    })
                    .collect();
                let mut o: Vec<&mut [f32]> = s.outs.iter_mut().map(|v| &mut v[..]).collect();
                s.status = s.f.call(&ins, &mut [], &mut o);
            };
            // This thread runs the first share, the helpers the others.
            let (first, others) = self.shares.split_first_mut().expect("n ≥ 2 shares");
            let mut jobs: Vec<_> = (others.iter_mut()).map(|s| move || run(&mut *s)).collect();
            let ok = self.helpers.run(&mut jobs, || run(first));
            assert!(ok, "a share's thread panicked");
        }
        for s in &mut self.shares {
            std::mem::replace(&mut s.status, Ok(()))?;
        }
        self.run_update(scalars, states)?;
        self.report(step, outs);
        Ok(())
    }

    /// The combined update: each group of parameters on its own thread,
    /// the first on this one; each group updates only its own states.
    fn run_update(
        &mut self,
        scalars: &[[f32; 1]],
        states: &mut [&mut [f32]],
    ) -> Result<(), CallError> {
        let mut mine: Vec<Vec<Option<&mut [f32]>>> = (self.groups.iter())
            .map(|g| (0..g.entry.updated.len()).map(|_| None).collect())
            .collect();
        for (st, &(g, pos)) in states.iter_mut().zip(&self.owner) {
            mine[g][pos] = Some(&mut **st);
        }
        let (shares, weights) = (&self.shares, &self.weights);
        let grad = |i| self.share_entry.output(Role::Grad(i));
        let run = move |g: &mut Group, st: Vec<Option<&mut [f32]>>| {
            let ins: Vec<&[f32]> = (g.entry.inputs.iter())
                .map(|role| match *role {
                    Role::ShareWeight(j) => &weights[j][..],
                    Role::ShareGrad(i, j) => grad(i).map_or(&[][..], |k| &shares[j].outs[k][..]),
                    Role::Scalar(i) => scalars.get(i).map_or(&[][..], |s| &s[..]),
                    // An update's entry has no other inputs.
                    _ => &[],
                })
                .collect();
            let mut st: Vec<&mut [f32]> = st.into_iter().flatten().collect();
            let mut o: Vec<&mut [f32]> = g.outs.iter_mut().map(|v| &mut v[..]).collect();
            g.status = g.f.call(&ins, &mut st, &mut o);
        };
        let mut work = self.groups.iter_mut().zip(mine);
        let (first, first_states) = work.next().expect("at least one group");
        let mut jobs: Vec<_> = work
            .map(|(g, st)| {
                let mut st = Some(st);
                move || {
                    if let Some(st) = st.take() {
                        run(&mut *g, st)
                    }
                }
            })
            .collect();
        let ok = self.helpers.run(&mut jobs, || run(first, first_states));
        assert!(ok, "an update group's thread panicked");
        for g in &mut self.groups {
            std::mem::replace(&mut g.status, Ok(()))?;
        }
        Ok(())
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
                Role::Check(i) => {
                    let mut found = self
                        .groups
                        .iter()
                        .filter_map(|g| (g.entry.output(Role::Check(i))).map(|k| g.outs[k][0]));
                    match found.next() {
                        Some(v) => v,
                        None => continue,
                    }
                }
                _ => continue,
            };
            outs[slot][0] = value;
        }
    }
}

/// The training step of `rows` rows whose fused entry is `step` (from
/// [`Builder::step`] with `opt`, which gave `updates`): split into shares when [`shares`] says
/// so for `threads` threads and `macs` multiply-adds per row (compiled
/// with a one-thread JIT of its own), else fused, compiled with `jit`.
#[allow(clippy::too_many_arguments)]
pub fn compile(
    builder: &mut Builder,
    (step, updates): (&Entry, &Updates),
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
    let lens: Vec<usize> = (builder.network().params.iter())
        .map(|p| p.shape.iter().product())
        .collect();
    // A small update is not worth a second fork per step.
    let total: usize = lens.iter().sum();
    let n_groups = n.min(total / MIN_GROUP + 1);
    let updates = (groups(&lens, n_groups).into_iter())
        .map(|params| builder.combine((opt, updates), n, params))
        .collect::<Result<Vec<_>, _>>()
        .map_err(shape)?;
    // Shares run on one thread each: their products must not split again.
    let mut one = Jit::new(1).map_err(ShardError::Codegen)?;
    // The calling thread runs one share: the helpers run the others.
    let helpers = Helpers::new(n - 1).map_err(|e| ShardError::Threads(e.0.to_string()))?;
    let s = ShardedStep::new(&mut one, builder, (&share, &updates), rows, (n, helpers))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_take_contiguous_rows_the_first_ones_longer() {
        let all: Vec<Range<usize>> = (0..3).map(|j| range(11, 3, j)).collect();
        assert_eq!(all, [0..4, 4..8, 8..11]);
        assert_eq!(range(4, 2, 1), 2..4);
    }

    #[test]
    fn update_groups_balance_elements_and_cover_every_parameter_once() {
        // 784·512, 512, 512·512, 512, 512·10, 10: the first weight alone,
        // then the rest.
        let lens = [401_408, 512, 262_144, 512, 5_120, 10];
        assert_eq!(groups(&lens, 2), [0..1, 1..6]);
        assert_eq!(groups(&[5, 5, 5, 5], 2), [0..2, 2..4]);
        assert_eq!(
            groups(&[7], 2),
            vec![(0..1)],
            "fewer parameters than threads"
        );
        for lens in [&[1, 1, 100][..], &[100, 1, 1], &[3; 7], &[0, 0, 5]] {
            for n in 1..5 {
                let g = groups(lens, n);
                assert!(g.len() <= n && g[0].start == 0 && g.last().unwrap().end == lens.len());
                assert!(
                    g.windows(2)
                        .all(|w| w[0].end == w[1].start && w[0].start < w[0].end)
                );
            }
        }
    }
}
