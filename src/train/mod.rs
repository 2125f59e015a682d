//! Stage 7: training. A network's graph and gradients, plus the optimizer
//! update built as graph nodes ([`optim`]), compile into one native training
//! step per batch size; this module feeds it batches and keeps the metrics.
//!
//! All numeric work runs in JIT-compiled code. The Rust side gathers rows
//! into preallocated buffers, sets the optimizer's per-step scalars
//! ([`optim::step_scalars`]), and adds up the step's loss and
//! correct-prediction count. The compiled entry points come from one
//! builder ([`layout::Builder`]) and are read by [`layout::Role`], never by
//! position; the loop names no optimizer.
//!
//! **Architecture Invariant:** `train` uses `pipeline`, `graph`, `codegen`,
//! `data`, `check::model` and `weights`; it never parses, prints or reads files.

pub mod batch;
pub mod flow;
pub mod helpers;
pub mod layout;
pub mod optim;
pub mod rng;
pub mod shard;
pub mod tasks;
pub mod weights;

use crate::check::model::{Model, Optimizer};
use crate::codegen::{Compiled, Jit};
use crate::data::Dataset;
use crate::pipeline::Network;
use batch::{BatchBuf, SHUFFLE_STREAM, Split};
use layout::{Builder, Role};
use shard::Step;

use rng::Rng;
use std::time::Instant;
use weights::Weights;

/// Hyper-parameters in effect (the `train` block with CLI overrides).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Number of epochs (≥ 1).
    pub epochs: usize,
    /// Rows per batch (≥ 1).
    pub batch: usize,
    /// Shuffle before the split and every epoch.
    pub shuffle: bool,
    /// Seed of the shuffling stream (and of the initial weights, elsewhere).
    pub seed: u64,
    /// Fraction of rows held out for validation, in `[0, 1)`.
    pub validation: f64,
    /// The optimizer, learning rate included.
    pub optimizer: Optimizer,
    /// Threads: a step with enough work is split by rows across them
    /// (`shard`); products of fused steps may use them too.
    pub threads: usize,
}

/// One epoch's metrics, as printed and as `--json` reports them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochReport {
    /// Epoch number, from 1.
    pub epoch: usize,
    /// Unweighted mean of the epoch's batch losses, each from the forward
    /// pass before that batch's update.
    pub loss: f64,
    /// Fraction correct over the same forward passes (classification only).
    pub accuracy: Option<f64>,
    /// Validation loss after the epoch's last update (with validation only).
    pub val_loss: Option<f64>,
    /// Validation accuracy (classification with validation only).
    pub val_accuracy: Option<f64>,
    /// Wall time of this epoch alone, validation included.
    pub seconds: f64,
}

impl EpochReport {
    /// The `--json` object: exactly the keys that apply, in a fixed order.
    pub fn to_json(&self) -> String {
        serde_json::Value::Object(self.json_map()).to_string()
    }

    /// The keys of [`EpochReport::to_json`], for callers that add more.
    pub fn json_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        map.insert("epoch".into(), self.epoch.into());
        map.insert("loss".into(), json_number(self.loss));
        let optional = [
            ("accuracy", self.accuracy),
            ("val_loss", self.val_loss),
            ("val_accuracy", self.val_accuracy),
        ];
        for (key, value) in optional {
            if let Some(v) = value {
                map.insert(key.into(), json_number(v));
            }
        }
        map.insert("seconds".into(), json_number(self.seconds));
        map
    }
}

/// JSON has no NaN; a finite check runs before any report, so this only
/// guards against a bug turning into invalid JSON.
pub(crate) fn json_number(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Where training stopped on a non-finite value.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// Epoch, from 1.
    pub epoch: usize,
    /// Batch within the epoch, from 1.
    pub batch: usize,
    /// The batch loss (non-finite when the loss itself diverged).
    pub loss: f64,
    /// Indices (into the parameters) of the tensors whose gradient is NaN or
    /// infinite, in parameter order; empty when only the loss is.
    pub tensors: Vec<usize>,
}

/// Why training failed.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainError {
    /// A loss or gradient became NaN or infinite.
    Diverged(Divergence),
    /// The data cannot be split as asked (too few rows).
    Data(String),
    /// The training step could not be compiled or called (a bug in slope).
    Internal(String),
}

impl std::fmt::Display for TrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrainError::Diverged(d) => write!(
                f,
                "training diverged at epoch {}, batch {} (loss {})",
                d.epoch, d.batch, d.loss
            ),
            TrainError::Data(m) => f.write_str(m),
            TrainError::Internal(m) => write!(f, "internal error (a bug in slope): {m}"),
        }
    }
}

impl std::error::Error for TrainError {}

fn internal(e: impl std::fmt::Display) -> TrainError {
    TrainError::Internal(e.to_string())
}

/// The result of a finished run.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The trained weights.
    pub weights: Weights,
    /// Every epoch's report.
    pub epochs: Vec<EpochReport>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Seconds spent compiling (the training steps and the validation pass).
    pub jit_seconds: f64,
    /// Seconds spent in the epochs (gathering, steps, validation).
    pub train_seconds: f64,
    /// Training rows and validation rows.
    pub rows: (usize, usize),
}

/// Divisor turning a correct-count into an accuracy: rows for
/// cross-entropy (one class per row), rows·K for bce (every output counts).
fn accuracy_units(model: &Model, rows: usize) -> f64 {
    match model.loss {
        crate::check::model::Loss::Bce => (rows * model.output_width()) as f64,
        _ => rows as f64,
    }
}

/// The compiled training step (for full batches and for the shorter last
/// one) and validation pass, with their layouts.
struct Steps {
    step_entry: layout::Entry,
    eval_entry: layout::Entry,
    updates: optim::Updates,
    step_full: Step,
    step_rest: Option<Step>,
    eval: Option<Evals>,
    jit_seconds: f64,
}

/// The validation pass, compiled for chunks of the training batch's size
/// and for the last, shorter chunk. One call over all rows at once had
/// working sets beyond L2: for the digits CNN's 359 rows the second
/// convolution's column matrix alone is 3.3 MB, and that pass cost 1.6 ms
/// an epoch, as much as four training steps.
struct Evals {
    chunk: usize,
    full: Compiled<f32>,
    rest: Option<Compiled<f32>>,
}

/// Builds the step (forward, loss, gradients, checks, updates) and the
/// validation pass, and compiles them for `full`, `rest` (when > 0) and
/// `n_val` (when > 0) rows; a step with enough work per row (`macs`) is
/// split over the threads ([`shard`]).
fn compile_steps(
    net: &Network,
    settings: &Settings,
    (full, rest, n_val): (usize, usize, usize),
    macs: usize,
) -> Result<Steps, TrainError> {
    let jit_start = Instant::now();
    let mut builder = Builder::new(net);
    let (step_entry, updates) = builder.step(&settings.optimizer).map_err(internal)?;
    let eval_entry = builder.eval().map_err(internal)?;
    if updates.scalars.len() > optim::MAX_SCALARS {
        return Err(internal(
            "the optimizer has more per-step scalars than MAX_SCALARS",
        ));
    }
    let mut jit = Jit::new(settings.threads).map_err(internal)?;
    let mut step = |builder: &mut Builder, rows: usize| {
        let how = (settings.threads, macs);
        let step = (&step_entry, &updates);
        shard::compile(builder, step, &settings.optimizer, rows, how, &mut jit).map_err(internal)
    };
    let step_full = step(&mut builder, full)?;
    let step_rest = (rest > 0).then(|| step(&mut builder, rest)).transpose()?;
    // Beside a split step, whose helper threads keep spinning a while after
    // each step, the validation pass's products run on this thread alone:
    // splitting them too would fight the spinning helpers for the cores.
    let mut one = Jit::new(1).map_err(internal)?;
    let eval_jit = match step_full {
        Step::Sharded(_) => &mut one,
        Step::Fused(_) => &mut jit,
    };
    let chunk = full.min(n_val);
    let eval = (n_val > 0)
        .then(|| -> Result<Evals, TrainError> {
            let mut compile = |rows| builder.compile(eval_jit, &eval_entry, rows);
            Ok(Evals {
                chunk,
                full: compile(chunk).map_err(internal)?,
                rest: (n_val % chunk > 0)
                    .then(|| compile(n_val % chunk))
                    .transpose()
                    .map_err(internal)?,
            })
        })
        .transpose()?;
    Ok(Steps {
        step_entry,
        eval_entry,
        updates,
        step_full,
        step_rest,
        eval,
        jit_seconds: jit_start.elapsed().as_secs_f64(),
    })
}

/// The validation loss and accuracy (classification only) of the rows
/// `validation` at the current parameters (the first entries of
/// `params`), a chunk at a time: the loss is the chunks' means weighted by
/// their rows, the correct counts are summed.
fn validate(
    evals: &mut Evals,
    entry: &layout::Entry,
    (data, validation, buf): (&Dataset, &[usize], &mut BatchBuf),
    params: &[Vec<f32>],
    out: &mut [Vec<f32>],
    units: f64,
) -> Result<(Option<f64>, Option<f64>), TrainError> {
    let loss = entry
        .output(Role::Loss)
        .ok_or_else(|| internal("no loss"))?;
    let correct = entry.output(Role::Correct);
    let (mut loss_sum, mut correct_sum) = (0.0, 0.0);
    for rows in validation.chunks(evals.chunk) {
        let eval = match &mut evals.rest {
            Some(rest) if rows.len() < evals.chunk => rest,
            _ => &mut evals.full,
        };
        let (x, t) = buf.gather(data, rows);
        let ins = tasks::inputs(entry, x, t, params);
        let mut outs: Vec<&mut [f32]> = out.iter_mut().map(Vec::as_mut_slice).collect();
        eval.call(&ins, &mut [], &mut outs).map_err(internal)?;
        loss_sum += f64::from(out[loss][0]) * rows.len() as f64;
        correct_sum += correct.map_or(0.0, |c| f64::from(out[c][0]));
    }
    let accuracy = correct.map(|_| correct_sum / units);
    Ok((Some(loss_sum / validation.len() as f64), accuracy))
}

/// The rows for training and for validation; an error when none are left
/// for training.
fn split_rows(rows: usize, settings: &Settings, rng: &mut Rng) -> Result<Split, TrainError> {
    let split = batch::split(rows, settings.validation, settings.shuffle, rng);
    if split.train.is_empty() {
        return Err(TrainError::Data(format!(
            "no rows are left for training: the data has {} row{} and validation holds out {}",
            rows,
            if rows == 1 { "" } else { "s" },
            split.validation.len()
        )));
    }
    Ok(split)
}

/// Trains `net` (the lowered `model`) on `data` from `weights`, calling
/// `on_epoch` after every epoch. Deterministic: the same inputs give
/// bit-identical weights.
pub fn train(
    model: &Model,
    net: Network,
    settings: &Settings,
    data: &Dataset,
    weights: Weights,
    on_epoch: &mut dyn FnMut(&EpochReport),
) -> Result<Outcome, TrainError> {
    train_observed(
        model,
        net,
        settings,
        data,
        weights,
        on_epoch,
        &mut |_, _| Ok(()),
    )
}

/// A callback given the epoch (0 before training) and the parameters.
pub type Observer<'a> = dyn FnMut(usize, &[Vec<f32>]) -> Result<(), TrainError> + 'a;

/// [`train`], calling `observe(epoch, parameters)` with the parameters at
/// the start (epoch 0) and after every epoch's last update, before that
/// epoch's `on_epoch` (and outside its `seconds`). Observing reads the
/// parameters only, so the weights are those of [`train`], bit for bit.
pub fn train_observed(
    model: &Model,
    net: Network,
    settings: &Settings,
    data: &Dataset,
    mut weights: Weights,
    on_epoch: &mut dyn FnMut(&EpochReport),
    observe: &mut Observer<'_>,
) -> Result<Outcome, TrainError> {
    // ---- Split the rows (one seeded permutation, then hold out the tail). ----
    let mut rng = Rng::new(settings.seed, SHUFFLE_STREAM);
    let Split {
        train: mut order,
        validation,
    } = split_rows(data.rows, settings, &mut rng)?;
    let n_train = order.len();

    // ---- Build and compile the step and the validation pass. ----
    let full = settings.batch.min(n_train);
    let Steps {
        step_entry,
        eval_entry,
        updates,
        mut step_full,
        mut step_rest,
        mut eval,
        jit_seconds,
    } = compile_steps(
        &net,
        settings,
        (full, n_train % full, validation.len()),
        model.layers.iter().map(|l| l.forward_macs()).sum(),
    )?;

    // ---- Slots by role, buffers: all allocated here, none inside an epoch. ----
    let n_params = net.params.len();
    let slot =
        |entry: &layout::Entry, role| entry.output(role).ok_or_else(|| internal("missing output"));
    let loss_slot = slot(&step_entry, Role::Loss)?;
    let correct_slot = step_entry.output(Role::Correct);
    let step_slots = step_entry.output_slots();
    let check_slots: Vec<usize> = (0..n_params)
        .map(|i| {
            (step_slots.get(&Role::Check(i)).copied()).ok_or_else(|| internal("missing output"))
        })
        .collect::<Result<_, _>>()?;
    let mut state_bufs: Vec<Vec<f32>> = weights.tensors.iter().map(|t| t.data.clone()).collect();
    for &(_, param) in &updates.states {
        state_bufs.push(vec![0.0; weights.tensors[param].data.len()]);
    }
    let mut out_bufs: Vec<Vec<f32>> = vec![vec![0.0]; step_entry.outputs.len()];
    let mut val_out: Vec<Vec<f32>> = vec![vec![0.0]; eval_entry.outputs.len()];
    let mut buf = BatchBuf::new(full.max(validation.len()), data);
    let mut scalars = [[1.0f32]; optim::MAX_SCALARS];
    let units = accuracy_units(model, n_train);
    let val_units = accuracy_units(model, validation.len());

    observe(0, &state_bufs[..n_params])?;
    let train_start = Instant::now();
    let mut reports = Vec::with_capacity(settings.epochs);
    let mut steps: u64 = 0;
    for epoch in 1..=settings.epochs {
        let epoch_start = Instant::now();
        if settings.shuffle {
            rng.shuffle(&mut order);
        }
        let mut loss_sum = 0.0f64;
        let mut correct_sum = 0.0f64;
        let mut n_batches = 0usize;
        {
            let mut states: Vec<&mut [f32]> =
                state_bufs.iter_mut().map(Vec::as_mut_slice).collect();
            let mut outs: Vec<&mut [f32]> = out_bufs.iter_mut().map(Vec::as_mut_slice).collect();
            for chunk in order.chunks(full) {
                steps += 1;
                n_batches += 1;
                optim::step_scalars(&settings.optimizer, steps, &mut scalars);
                let (x, t) = buf.gather(data, chunk);
                let feed = layout::Feed {
                    scalars: &scalars,
                    ..layout::Feed::new(x, t)
                };
                let step = if chunk.len() == full {
                    &mut step_full
                } else {
                    step_rest
                        .as_mut()
                        .expect("a batch shorter than `full` exists only when `rest` > 0")
                };
                step.call(&step_entry, &feed, &mut states, &mut outs)
                    .map_err(internal)?;
                let loss = f64::from(outs[loss_slot][0]);
                let bad = check_slots.iter().any(|&i| !outs[i][0].is_finite());
                if !loss.is_finite() || bad {
                    let tensors = (0..n_params)
                        .filter(|&i| !outs[check_slots[i]][0].is_finite())
                        .collect();
                    return Err(TrainError::Diverged(Divergence {
                        epoch,
                        batch: n_batches,
                        loss,
                        tensors,
                    }));
                }
                loss_sum += loss;
                if let Some(c) = correct_slot {
                    correct_sum += f64::from(outs[c][0]);
                }
            }
        }
        let (mut val_loss, mut val_accuracy) = (None, None);
        if let Some(eval) = eval.as_mut() {
            (val_loss, val_accuracy) = validate(
                eval,
                &eval_entry,
                (data, &validation, &mut buf),
                &state_bufs,
                &mut val_out,
                val_units,
            )?;
        }
        let report = EpochReport {
            epoch,
            loss: loss_sum / n_batches as f64,
            accuracy: correct_slot.map(|_| correct_sum / units),
            val_loss,
            val_accuracy,
            seconds: epoch_start.elapsed().as_secs_f64(),
        };
        observe(epoch, &state_bufs[..n_params])?;
        on_epoch(&report);
        reports.push(report);
    }
    let train_seconds = train_start.elapsed().as_secs_f64();
    for (tensor, data) in weights.tensors.iter_mut().zip(state_bufs) {
        tensor.data = data;
    }
    Ok(Outcome {
        weights,
        epochs: reports,
        steps,
        jit_seconds,
        train_seconds,
        rows: (n_train, validation.len()),
    })
}
