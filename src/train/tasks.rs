//! The compiled computations of `slope predict`, `slope grad --weights`,
//! `slope gradcheck` and `slope bench`, as library functions that return
//! data (the command line only formats it). Every number comes from
//! JIT-compiled code, never from the interpreter.

use super::layout::{Builder, Entry, Feed, Role};
use super::optim;
use super::shard::{self, Step};
use super::weights::{self, Weights};
use crate::check::model::{Loss, Model, Optimizer};
use crate::codegen::{Compiled, Element, Jit};
use crate::graph::NodeId;
use crate::pipeline::Network;

/// Why a compiled computation failed: a bug in slope, never bad input.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskError(pub String);

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TaskError {}

fn fail(e: impl std::fmt::Display) -> TaskError {
    TaskError(e.to_string())
}

/// The weights' values in `T`, in parameter order.
pub fn param_values<T: Element>(w: &Weights) -> Vec<Vec<T>> {
    w.tensors.iter().map(|t| widen(&t.data)).collect()
}

/// `v` converted to `T`.
pub fn widen<T: Element>(v: &[f32]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(f64::from(x))).collect()
}

/// The input list of `entry`, each slot filled by its role: `x`, `t` or a
/// parameter (an entry with per-step scalars needs [`TrainStep`]).
pub fn inputs<'a, T>(entry: &Entry, x: &'a [T], t: &'a [T], params: &'a [Vec<T>]) -> Vec<&'a [T]> {
    entry.inputs_from(&Feed {
        params,
        ..Feed::new(x, t)
    })
}

/// What `slope predict` prints: the outputs and the picked classes.
#[derive(Clone, Debug, PartialEq)]
pub struct Prediction {
    /// Outputs per row (`K` of them).
    pub width: usize,
    /// Row-major outputs, `rows × width`.
    pub outputs: Vec<f32>,
    /// Per row, the predicted class (cross-entropy: one; bce: one per
    /// output); empty for regression.
    pub classes: Vec<Vec<usize>>,
}

/// Runs the compiled forward pass of `net` on `rows` rows of `features`
/// and picks classes as the accuracy count does.
pub fn predict(
    net: &Network,
    model: &Model,
    w: &Weights,
    features: &[f32],
    rows: usize,
) -> Result<Prediction, TaskError> {
    let mut b = Builder::new(net);
    let entry = b.forward();
    let mut jit = Jit::new(1).map_err(fail)?;
    let mut f: Compiled<f32> = b.compile(&mut jit, &entry, rows).map_err(fail)?;
    let params = param_values::<f32>(w);
    let ins = inputs(&entry, features, &[], &params);
    let k = f.output_lens()[0] / rows.max(1);
    let mut y = vec![0.0f32; rows * k];
    f.call(&ins, &mut [], &mut [&mut y]).map_err(fail)?;
    let classes = y.chunks(k.max(1)).map(|row| classes(model, row)).collect();
    Ok(Prediction {
        width: k,
        outputs: y,
        classes,
    })
}

/// The classes of one output row.
fn classes(model: &Model, row: &[f32]) -> Vec<usize> {
    match model.loss {
        Loss::CrossEntropy => {
            // The first largest output, as the accuracy count does.
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b });
            vec![best]
        }
        Loss::Bce => row.iter().map(|&v| usize::from(v > 0.5)).collect(),
        Loss::Mse | Loss::Custom(_) => vec![],
    }
}

/// A compiled mean loss and/or gradients over a fixed set of rows.
pub struct LossGrad<T: Element> {
    /// The compiled function.
    pub f: Compiled<T>,
    /// Its layout.
    pub entry: Entry,
    /// The rows' inputs.
    pub x: Vec<T>,
    /// The rows' targets.
    pub t: Vec<T>,
}

impl<T: Element> LossGrad<T> {
    /// Compiles the loss (if `loss`) and the gradients (if `grads`) of `net`
    /// over all `rows` of `x` and `t`.
    pub fn new(
        jit: &mut Jit,
        net: &Network,
        (loss, grads): (bool, bool),
        rows: usize,
        x: Vec<T>,
        t: Vec<T>,
    ) -> Result<Self, TaskError> {
        let mut b = Builder::new(net);
        let entry = b.loss_grad(loss, grads);
        let f = b.compile::<T>(jit, &entry, rows).map_err(fail)?;
        Ok(LossGrad { f, entry, x, t })
    }

    /// Runs it at `params`, into `outs` (made by [`LossGrad::outputs`]).
    pub fn run(&mut self, params: &[Vec<T>], outs: &mut [Vec<T>]) -> Result<(), TaskError> {
        let ins = inputs(&self.entry, &self.x, &self.t, params);
        let mut refs: Vec<&mut [T]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
        self.f.call(&ins, &mut [], &mut refs).map_err(fail)
    }

    /// Output buffers of the right sizes.
    pub fn outputs(&self) -> Vec<Vec<T>> {
        let lens = self.f.output_lens();
        lens.iter().map(|&n| vec![T::default(); n]).collect()
    }
}

/// The f32 gradient of the mean loss over all `rows` of `x`/`t` at `w`,
/// as weights (`slope grad --weights`).
pub fn gradient(
    net: &Network,
    w: &Weights,
    x: Vec<f32>,
    t: Vec<f32>,
    rows: usize,
) -> Result<Weights, TaskError> {
    let mut jit = Jit::new(1).map_err(fail)?;
    let mut lg = LossGrad::<f32>::new(&mut jit, net, (false, true), rows, x, t)?;
    let mut outs = lg.outputs();
    lg.run(&param_values(w), &mut outs)?;
    let mut g = w.clone();
    let slots = lg.entry.output_slots();
    for (i, tensor) in g.tensors.iter_mut().enumerate() {
        let slot = *slots
            .get(&Role::Grad(i))
            .ok_or_else(|| fail("no gradient"))?;
        tensor.data = std::mem::take(&mut outs[slot]);
    }
    Ok(g)
}

/// Relative error beyond which `gradcheck` fails.
pub const GRADCHECK_TOL: f64 = 1e-4;
/// Gradients smaller than this are compared by absolute error.
pub const GRADCHECK_FLOOR: f64 = 1e-4;
/// Rows used by `gradcheck` at most (finite differences cost two losses per scalar).
pub const GRADCHECK_ROWS: usize = 64;
/// Elements checked per tensor at most: evenly spaced, first and last
/// included, so a large model is checked in seconds rather than hours.
pub const GRADCHECK_ELEMENTS: usize = 256;
/// Elements checked across the whole network at most. Each costs two
/// losses, and a loss costs time proportional to the network, so a budget
/// per network (not per tensor) keeps `gradcheck` linear in the network's
/// size; 4096 = 16 tensors of [`GRADCHECK_ELEMENTS`].
pub const GRADCHECK_BUDGET: usize = 4096;

/// How many elements `gradcheck` compares in each tensor of the given
/// lengths: at most [`GRADCHECK_ELEMENTS`] each and [`GRADCHECK_BUDGET`] in
/// all, shared fairly (what a small tensor leaves goes to the larger ones).
/// With more tensors than the budget, evenly spaced tensors (first and last
/// included) get one element each and the others none. Deterministic.
pub fn gradcheck_counts(lens: &[usize]) -> Vec<usize> {
    let n = lens.len();
    let chosen: Vec<usize> = if n <= GRADCHECK_BUDGET {
        (0..n).collect()
    } else {
        spaced(n, GRADCHECK_BUDGET)
    };
    let mut order = chosen;
    order.sort_by_key(|&i| (lens[i], i));
    let mut counts = vec![0; n];
    let (mut left, mut tensors) = (GRADCHECK_BUDGET, order.len());
    // Smallest first: each takes at most its fair share of what is left,
    // so the share of the larger tensors only grows.
    for i in order {
        let got = lens[i].min(GRADCHECK_ELEMENTS).min(left / tensors);
        counts[i] = got;
        left -= got;
        tensors -= 1;
    }
    counts
}

/// `k` evenly spaced indices of `0..len` (first and last included when
/// `k > 1`), or all of them when `k >= len`.
fn spaced(len: usize, k: usize) -> Vec<usize> {
    if k >= len {
        return (0..len).collect();
    }
    if k <= 1 {
        return vec![0; k];
    }
    let last = (len - 1) as f64;
    let steps = (k - 1) as f64;
    let mut picked: Vec<usize> = (0..k)
        .map(|j| (j as f64 * last / steps).round() as usize)
        .collect();
    picked.dedup();
    picked
}

/// One tensor's gradient check.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorCheck {
    /// The worst relative error (infinite when one is NaN).
    pub worst: f64,
    /// Elements compared.
    pub checked: usize,
    /// Elements in the tensor.
    pub len: usize,
    /// Elements judged at a kink: the central difference straddles a point
    /// where the loss is not differentiable (relu at 0, a max pooling tie)
    /// and the gradient matches the difference on one side, the side the
    /// derivative rule picks (relu'(0) = 0 is the left one).
    pub kinks: usize,
}

/// How the gradient `g` of one element compares with the finite
/// differences of the loss `f` around the element's value `v`.
fn judge(
    g: f64,
    h: f64,
    mut f: impl FnMut(f64) -> Result<f64, TaskError>,
) -> Result<(f64, bool), TaskError> {
    let err = |fd: f64| (g - fd).abs() / g.abs().max(fd.abs()).max(GRADCHECK_FLOOR);
    let (up, down) = (f(h)?, f(-h)?);
    // Gradients below the floor are compared absolutely: there the
    // differences' rounding noise (about 1e-16·loss/h) dominates.
    let central = err((up - down) / (2.0 * h));
    if central.is_nan() {
        return Ok((f64::INFINITY, false));
    }
    if central <= GRADCHECK_TOL {
        return Ok((central, false));
    }
    // A kink between v - h and v + h: each side alone is smooth, so the
    // one-sided differences of second order (error O(h²), as the central
    // one) are exact there; a wrong gradient matches neither.
    let (at, up2, down2) = (f(0.0)?, f(2.0 * h)?, f(-2.0 * h)?);
    let right = (4.0 * up - 3.0 * at - up2) / (2.0 * h);
    let left = (3.0 * at - 4.0 * down + down2) / (2.0 * h);
    let side = err(right).min(err(left));
    Ok(if side <= GRADCHECK_TOL {
        (side, true)
    } else {
        (central, false)
    })
}

/// Compares the f64 JIT gradient of `net` at `w` over `rows` rows of `x`/`t`
/// with central differences, per tensor (`slope gradcheck`). Where they
/// disagree because a kink lies within the step, the one-sided difference
/// the derivative rule follows decides (see [`TensorCheck::kinks`]).
pub fn gradcheck(
    net: &Network,
    w: &Weights,
    x: Vec<f64>,
    t: Vec<f64>,
    rows: usize,
) -> Result<Vec<TensorCheck>, TaskError> {
    let mut jit = Jit::new(1).map_err(fail)?;
    let mut lg = LossGrad::<f64>::new(&mut jit, net, (false, true), rows, x.clone(), t.clone())?;
    let mut loss = LossGrad::<f64>::new(&mut jit, net, (true, false), rows, x, t)?;
    let loss_slot = loss
        .entry
        .output(Role::Loss)
        .ok_or_else(|| fail("no loss"))?;
    let mut params = param_values::<f64>(w);
    let mut grads = lg.outputs();
    lg.run(&params, &mut grads)?;
    let mut lout = loss.outputs();
    let lens: Vec<usize> = params.iter().map(Vec::len).collect();
    let counts = gradcheck_counts(&lens);
    let mut checks = Vec::new();
    let slots = lg.entry.output_slots();
    for ti in 0..params.len() {
        let gslot = *slots
            .get(&Role::Grad(ti))
            .ok_or_else(|| fail("no gradient"))?;
        let (mut worst, mut kinks) = (0.0f64, 0);
        let indices = spaced(params[ti].len(), counts[ti]);
        for &i in &indices {
            let v = params[ti][i];
            let h = 1e-6 * v.abs().max(1.0);
            let (err, kink) = judge(grads[gslot][i], h, |d| {
                params[ti][i] = v + d;
                loss.run(&params, &mut lout)?;
                params[ti][i] = v;
                Ok(lout[loss_slot][0])
            })?;
            worst = worst.max(err);
            kinks += usize::from(kink);
        }
        checks.push(TensorCheck {
            worst,
            checked: indices.len(),
            len: params[ti].len(),
            kinks,
        });
    }
    Ok(checks)
}

/// The training step exactly as `slope train` compiles it (forward, loss,
/// correct count, gradients, finiteness checks, the optimizer's update in
/// place; split over threads where `slope train` would split it), with
/// buffers to call it on: what `slope bench` times.
pub struct TrainStep {
    /// The compiled step.
    pub step: Step,
    /// The fused step's entry (the roles of the step's outputs).
    pub entry: Entry,
    /// The batch's features and targets.
    pub x: Vec<f32>,
    /// See `x`.
    pub t: Vec<f32>,
    /// The optimizer's per-step scalars (any value works for timing).
    pub scalars: [[f32; 1]; optim::MAX_SCALARS],
    /// Parameters (initialised with seed 1), then optimizer states (zero).
    pub states: Vec<Vec<f32>>,
    /// Output buffers.
    pub outputs: Vec<Vec<f32>>,
}

impl TrainStep {
    /// Compiles the step for `batch` rows of `x` and `t` on `threads`
    /// threads.
    pub fn new(
        jit: &mut Jit,
        (net, model): (&Network, &Model),
        opt: &Optimizer,
        (batch, threads): (usize, usize),
        (x, t): (Vec<f32>, Vec<f32>),
    ) -> Result<TrainStep, TaskError> {
        let mut b = Builder::new(net);
        let (entry, up) = b.step(opt).map_err(fail)?;
        let macs = model.layers.iter().map(|l| l.forward_macs()).sum();
        let step = shard::compile(&mut b, (&entry, &up), opt, batch, (threads, macs), jit);
        let step = step.map_err(fail)?;
        let mut states: Vec<Vec<f32>> = weights::init(model, 1)
            .tensors
            .into_iter()
            .map(|t| t.data)
            .collect();
        for &(_, p) in &up.states {
            states.push(vec![0.0; states[p].len()]);
        }
        let outputs = vec![vec![0.0]; entry.outputs.len()];
        Ok(TrainStep {
            step,
            entry,
            x,
            t,
            scalars: [[1.0f32]; optim::MAX_SCALARS],
            states,
            outputs,
        })
    }

    /// Calls `f` with a function that runs the step once; the argument
    /// lists are built once, outside it, as the training loop does (per-call
    /// allocations would time the allocator).
    pub fn with_runner<R>(
        &mut self,
        f: impl FnOnce(&mut dyn FnMut() -> Result<(), TaskError>) -> R,
    ) -> R {
        let feed = Feed {
            scalars: &self.scalars,
            ..Feed::new(&self.x, &self.t)
        };
        let mut st: Vec<&mut [f32]> = self.states.iter_mut().map(Vec::as_mut_slice).collect();
        let mut out: Vec<&mut [f32]> = self.outputs.iter_mut().map(Vec::as_mut_slice).collect();
        let (step, entry) = (&mut self.step, &self.entry);
        f(&mut || step.call(entry, &feed, &mut st, &mut out).map_err(fail))
    }

    /// Runs the step once.
    pub fn run(&mut self) -> Result<(), TaskError> {
        self.with_runner(|run| run())
    }
}

/// The values of `nodes` (any nodes of `net`'s graph) on one row `x`/`t`
/// at `w`, from f64 compiled code: the worked numbers of
/// `slope grad --sample`. Each value is row-major, batch axis of 1 row.
pub fn probe(
    net: &Network,
    w: &Weights,
    x: &[f64],
    t: &[f64],
    nodes: &[NodeId],
) -> Result<Vec<Vec<f64>>, TaskError> {
    let mut b = Builder::new(net);
    let entry = b.nodes(nodes);
    let mut jit = Jit::new(1).map_err(fail)?;
    let mut f: Compiled<f64> = b.compile(&mut jit, &entry, 1).map_err(fail)?;
    let params = param_values::<f64>(w);
    let ins = inputs(&entry, x, t, &params);
    let mut outs: Vec<Vec<f64>> = f.output_lens().iter().map(|&n| vec![0.0; n]).collect();
    let mut refs: Vec<&mut [f64]> = outs.iter_mut().map(|o| o.as_mut_slice()).collect();
    f.call(&ins, &mut [], &mut refs).map_err(fail)?;
    // Reorder by role, never by position (the entry lists them in order today).
    let mut values = vec![Vec::new(); nodes.len()];
    for (slot, role) in entry.outputs.iter().enumerate() {
        if let Role::Node(i) = *role {
            values[i] = std::mem::take(&mut outs[slot]);
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::{
        GRADCHECK_BUDGET, GRADCHECK_ELEMENTS, GRADCHECK_TOL, TaskError, gradcheck_counts, judge,
        spaced,
    };

    /// `judge` of gradient `g` for a loss `f(v + d)` given as a function of d.
    fn judged(g: f64, f: impl Fn(f64) -> f64) -> (f64, bool) {
        judge(g, 1e-6, |d| Ok::<f64, TaskError>(f(d))).expect("no failure")
    }

    /// A kink at 0 with slopes -1 (left) and 3 (right) and curvature on
    /// both sides, as a relu inside a network has.
    fn kink(d: f64) -> f64 {
        if d > 0.0 {
            0.7 + 3.0 * d + 50.0 * d * d
        } else {
            0.7 - d + 40.0 * d * d
        }
    }

    #[test]
    fn either_one_sided_slope_at_a_kink_is_accepted_as_a_kink() {
        for g in [-1.0, 3.0] {
            let (err, at_kink) = judged(g, kink);
            assert!(at_kink && err <= GRADCHECK_TOL, "g = {g}: {err}");
        }
    }

    #[test]
    fn a_wrong_gradient_is_caught_at_a_kink_and_at_a_smooth_point() {
        // Neither side's slope, nor the central difference's mean of them (1).
        let (err, at_kink) = judged(0.0, kink);
        assert!(!at_kink && err > GRADCHECK_TOL, "{err}");
        let smooth = |d: f64| (1.5 + d).powi(3);
        let (err, at_kink) = judged(3.0 * 1.5 * 1.5 * 1.001, smooth);
        assert!(!at_kink && err > GRADCHECK_TOL, "{err}");
        let (err, at_kink) = judged(3.0 * 1.5 * 1.5, smooth);
        assert!(!at_kink && err <= GRADCHECK_TOL, "{err}");
    }

    #[test]
    fn nan_fails() {
        let (err, at_kink) = judged(1.0, |_| f64::NAN);
        assert!(err.is_infinite() && !at_kink);
    }

    #[test]
    fn a_small_network_is_checked_as_before_the_budget() {
        let lens = [8, 4, 300, 1, 5000];
        let counts = gradcheck_counts(&lens);
        assert_eq!(
            counts,
            vec![8, 4, GRADCHECK_ELEMENTS, 1, GRADCHECK_ELEMENTS]
        );
        assert_eq!(spaced(5000, 256).len(), 256);
        assert_eq!(spaced(10, 3), vec![0, 5, 9]);
    }

    #[test]
    fn the_budget_bounds_the_elements_of_a_deep_network() {
        // 1,000 layers: what was 6 elements per layer, all of them, is now
        // at most the budget in all, spread over every tensor.
        let lens: Vec<usize> = (0..2000).map(|i| if i % 2 == 0 { 4 } else { 2 }).collect();
        let counts = gradcheck_counts(&lens);
        assert_eq!(counts.iter().sum::<usize>(), GRADCHECK_BUDGET);
        assert!(counts.iter().all(|&c| c >= 1), "every tensor sampled");
        assert!(counts.iter().zip(&lens).all(|(c, l)| c <= l));
        // Small tensors leave their share to the larger ones.
        let counts = gradcheck_counts(&[1, 1, 100_000, 100_000]);
        assert_eq!(counts, vec![1, 1, GRADCHECK_ELEMENTS, GRADCHECK_ELEMENTS]);
        let lens = vec![10_000; 40];
        let counts = gradcheck_counts(&lens);
        assert_eq!(counts.iter().sum::<usize>(), GRADCHECK_BUDGET);
        assert!(
            counts
                .iter()
                .all(|&c| c == GRADCHECK_BUDGET / 40 || c == GRADCHECK_BUDGET / 40 + 1)
        );
    }

    #[test]
    fn beyond_the_budget_evenly_spaced_tensors_get_one_element() {
        let n = 3 * GRADCHECK_BUDGET;
        let counts = gradcheck_counts(&vec![6; n]);
        assert_eq!(counts.iter().sum::<usize>(), GRADCHECK_BUDGET);
        assert!(counts.iter().all(|&c| c <= 1));
        assert_eq!((counts[0], counts[n - 1], counts[1]), (1, 1, 0));
    }
}
