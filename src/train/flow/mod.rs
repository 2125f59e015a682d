//! Gradient flow (spec §8): per-layer statistics of the back-propagated
//! signal, the gradients and the activations, measured on a fixed probe set
//! at the initial weights and after every epoch.
//!
//! The statistics are graph nodes (`nodes.rs`) on the network derived for
//! equations (every `z`, `a`, `δ` and `f'(z)`), compiled into a separate
//! probe entry point ([`layout::Builder::probe`]), so the training step is
//! the same code with or without it and the weights are bit-identical.

pub mod compare;
mod nodes;

use super::batch::{BatchBuf, SHUFFLE_STREAM};
use super::layout::{self, Builder, Feed, Role, Stat};
use super::rng::Rng;
use super::{EpochReport, Outcome, Settings, TrainError, internal, json_number};
use crate::check::layer::ParamRole;
use crate::check::model::{Activation, Model, Program};
use crate::codegen::{Compiled, Jit, Signature};
use crate::data::Dataset;
use crate::pipeline::{self, Network};
use crate::train::weights::Weights;
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::time::Instant;

/// The default number of probe rows.
pub const DEFAULT_PROBE: usize = 512;

/// One layer's statistics at one epoch (spec §8).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerFlow {
    /// The layer's name.
    pub name: String,
    /// sqrt(mean((P·∂L/∂z)²)): the back-propagated signal per example.
    pub delta_rms: f64,
    /// sqrt(mean((∂L/∂W)²)).
    pub grad_rms: f64,
    /// max |∂L/∂W|.
    pub grad_max_abs: f64,
    /// The mean of the layer's output over probe rows and units.
    pub act_mean: f64,
    /// Its (population) standard deviation.
    pub act_std: f64,
    /// The fraction of (row, unit) pairs with |f'(z)| < 0.1·g; `None` for
    /// `identity` and `softmax`.
    pub saturated: Option<f64>,
    /// The fraction of units saturated on every probe row.
    pub dead: Option<f64>,
    /// ‖W_after − W_before‖ / ‖W_before‖ over the epoch; `None` at epoch 0.
    pub update_ratio: Option<f64>,
}

/// The probe's measurement at one epoch (0: the initial weights).
#[derive(Clone, Debug, PartialEq)]
pub struct FlowReport {
    /// Epoch, 0 for the initial weights.
    pub epoch: usize,
    /// `delta_rms` of the first layer / that of the last.
    pub flow: f64,
    /// The mean loss over the probe rows.
    pub probe_loss: f64,
    /// Per layer with parameters, in order.
    pub layers: Vec<LayerFlow>,
}

fn opt(v: Option<f64>) -> Value {
    v.map_or(Value::Null, json_number)
}

impl LayerFlow {
    /// The layer's JSON object, with the spec's keys (non-finite as `null`).
    pub fn json(&self) -> Value {
        let mut m = Map::new();
        m.insert("name".into(), self.name.clone().into());
        m.insert("delta_rms".into(), json_number(self.delta_rms));
        m.insert("grad_rms".into(), json_number(self.grad_rms));
        m.insert("grad_max_abs".into(), json_number(self.grad_max_abs));
        m.insert("act_mean".into(), json_number(self.act_mean));
        m.insert("act_std".into(), json_number(self.act_std));
        m.insert("saturated".into(), opt(self.saturated));
        m.insert("dead".into(), opt(self.dead));
        m.insert("update_ratio".into(), opt(self.update_ratio));
        Value::Object(m)
    }
}

impl FlowReport {
    /// The `--json` object: `epoch`'s keys (or `epoch: 0` alone before
    /// training) plus `flow`, `probe_loss` and `layers`.
    pub fn json(&self, epoch: Option<&EpochReport>) -> Map<String, Value> {
        let mut m = match epoch {
            Some(r) => r.json_map(),
            None => Map::from_iter([("epoch".to_string(), Value::from(self.epoch))]),
        };
        m.insert("flow".into(), json_number(self.flow));
        m.insert("probe_loss".into(), json_number(self.probe_loss));
        let layers = self.layers.iter().map(LayerFlow::json).collect();
        m.insert("layers".into(), Value::Array(layers));
        m
    }
}

/// One measured layer.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeLayer {
    /// The layer's name.
    pub name: String,
    /// Its activation's name.
    pub activation: String,
    /// g = max |f'| on [−8, 8]; `None` for `identity` and `softmax`.
    pub bound: Option<f64>,
    /// Its weight's parameter index.
    pub weight: usize,
    /// Its index in the model's layers (pooling and flatten layers, which
    /// have no parameters, are not measured but keep their indices).
    pub index: usize,
}

/// An activation's name as written in a model.
pub fn activation_name(a: &Activation) -> String {
    match a {
        Activation::Builtin(b) => b.name().to_string(),
        Activation::Softmax => "softmax".to_string(),
        Activation::Custom(name) => name.clone(),
    }
}

/// The compiled probe, its rows and the weights before the current epoch.
pub struct Probe {
    entry: layout::Entry,
    compiled: Compiled<f32>,
    x: Vec<f32>,
    t: Vec<f32>,
    before: Vec<Vec<f32>>,
    outs: Vec<Vec<f32>>,
    /// The measured layers (those with a weight), in order.
    pub layers: Vec<ProbeLayer>,
    /// Probe rows P.
    pub rows: usize,
    /// Seconds spent compiling the probe.
    pub jit_seconds: f64,
    /// Seconds spent measuring, summed over every call.
    pub seconds: f64,
    /// Every measurement so far, epoch 0 first.
    pub history: Vec<FlowReport>,
}

/// g = max |f'(z)| over z in [−8, 8] (a grid of step 1/128), by the
/// compiled derivative; `None` for activations without one.
fn derivative_bound(
    program: &Program,
    activation: &Activation,
    jit: &mut Jit,
) -> Result<Option<f64>, TrainError> {
    let Some(d) =
        pipeline::activation_derivative(program, activation).map_err(|e| internal(e.message))?
    else {
        return Ok(None);
    };
    let grid: Vec<f64> = (0..=2048).map(|i| -8.0 + f64::from(i) / 128.0).collect();
    let sig = Signature {
        inputs: vec![d.z],
        outputs: vec![d.derivative],
        updates: Vec::new(),
    };
    let mut f: Compiled<f64> = jit.compile(&d.graph, &sig, grid.len()).map_err(internal)?;
    let mut out = vec![0.0; grid.len()];
    f.call(&[&grid], &mut [], &mut [&mut out])
        .map_err(internal)?;
    Ok(Some(out.iter().fold(0.0f64, |m, v| m.max(v.abs()))))
}

impl Probe {
    /// Compiles the probe of `model` for the first `rows` training rows (in
    /// the order of the seeded split `train` makes), at most all of them.
    pub fn new(
        program: &Program,
        model: &Model,
        data: &Dataset,
        settings: &Settings,
        rows: usize,
    ) -> Result<Probe, TrainError> {
        let start = Instant::now();
        let split = super::split_rows(
            data.rows,
            settings,
            &mut Rng::new(settings.seed, SHUFFLE_STREAM),
        )?;
        let picked = &split.train[..rows.clamp(1, split.train.len())];
        let mut buf = BatchBuf::new(picked.len(), data);
        let (x, t) = buf.gather(data, picked);
        let (x, t) = (x.to_vec(), t.to_vec());

        let derived =
            pipeline::compile_equations(program, model).map_err(|e| internal(e.message))?;
        let s = &derived.simplified;
        let net: &Network = &derived.network;
        let mut jit = Jit::new(settings.threads).map_err(internal)?;
        let mut inputs = Vec::new();
        let mut layers = Vec::new();
        for (l, (nodes, layer)) in net.layers.iter().zip(&model.layers).enumerate() {
            let Some(weight) =
                (net.params.iter()).position(|p| p.layer == l && p.role == ParamRole::Weight)
            else {
                continue;
            };
            let delta = derived.deltas[l].ok_or_else(|| internal("a layer without δ"))?;
            let bound = derivative_bound(program, layer.activation(), &mut jit)?;
            let derivative =
                (derived.activation_derivatives[l].zip(bound)).map(|(d, g)| (s.get(d), g));
            inputs.push((
                l,
                nodes::LayerNodes {
                    a: s.get(nodes.a),
                    delta: s.get(delta),
                    derivative,
                    weight: (weight, net.params[weight].node, net.grads[weight]),
                },
            ));
            layers.push(ProbeLayer {
                name: nodes.name.clone(),
                activation: activation_name(layer.activation()),
                bound,
                weight,
                index: l,
            });
        }
        let mut builder = Builder::new(net);
        let entry = builder
            .probe(|g| {
                Ok((inputs.iter())
                    .flat_map(|(l, n)| nodes::layer_stats(g, *l, n))
                    .collect())
            })
            .map_err(internal)?;
        let compiled = builder
            .compile(&mut jit, &entry, picked.len())
            .map_err(internal)?;
        let outs = compiled
            .output_lens()
            .iter()
            .map(|&n| vec![0.0; n])
            .collect();
        let before = net
            .params
            .iter()
            .map(|p| vec![0.0; p.shape.iter().product()]);
        Ok(Probe {
            outs,
            before: before.collect(),
            rows: picked.len(),
            entry,
            compiled,
            x,
            t,
            layers,
            jit_seconds: start.elapsed().as_secs_f64(),
            seconds: 0.0,
            history: Vec::new(),
        })
    }
}

impl Probe {
    /// Measures the statistics at `params` (the parameters after `epoch`, or
    /// the initial ones for epoch 0) and appends them to [`Probe::history`].
    pub fn measure(&mut self, epoch: usize, params: &[Vec<f32>]) -> Result<(), TrainError> {
        let start = Instant::now();
        if epoch == 0 {
            self.before.clone_from_slice(params);
        }
        let feed = Feed {
            params,
            before: &self.before,
            ..Feed::new(&self.x, &self.t)
        };
        let ins = self.entry.inputs_from(&feed);
        let mut outs: Vec<&mut [f32]> = self.outs.iter_mut().map(Vec::as_mut_slice).collect();
        self.compiled
            .call(&ins, &mut [], &mut outs)
            .map_err(internal)?;
        let report = self.read(epoch);
        for (b, p) in self.before.iter_mut().zip(params) {
            b.copy_from_slice(p);
        }
        self.history.push(report);
        self.seconds += start.elapsed().as_secs_f64();
        Ok(())
    }

    /// The report of the last call's outputs.
    fn read(&self, epoch: usize) -> FlowReport {
        let slots = self.entry.output_slots();
        let value = |role| (slots.get(&role)).map(|&slot| f64::from(self.outs[slot][0]));
        let layers: Vec<LayerFlow> = (self.layers.iter())
            .map(|layer| {
                let l = layer.index;
                let stat = |s| value(Role::Stat(l, s)).unwrap_or(f64::NAN);
                let grad = (slots.get(&Role::Grad(layer.weight)))
                    .map_or(&[][..], |&slot| &self.outs[slot]);
                LayerFlow {
                    name: layer.name.clone(),
                    delta_rms: stat(Stat::DeltaRms),
                    grad_rms: stat(Stat::GradRms),
                    grad_max_abs: grad.iter().fold(0.0f64, |m, g| m.max(f64::from(g.abs()))),
                    act_mean: stat(Stat::ActMean),
                    act_std: stat(Stat::ActStd),
                    saturated: value(Role::Stat(l, Stat::Saturated)),
                    dead: value(Role::Stat(l, Stat::Dead)),
                    update_ratio: (epoch > 0).then(|| stat(Stat::UpdateRatio)),
                }
            })
            .collect();
        let flow = match (layers.first(), layers.last()) {
            (Some(first), Some(last)) => first.delta_rms / last.delta_rms,
            _ => f64::NAN,
        };
        FlowReport {
            epoch,
            flow,
            probe_loss: value(Role::Loss).unwrap_or(f64::NAN),
            layers,
        }
    }
}

/// [`super::train`] with the probe measuring at epoch 0 and after every
/// epoch; `on_epoch` gets each epoch's report (`None` at epoch 0) and its
/// measurement. The weights are those of [`super::train`], bit for bit.
pub fn train_with_flow(
    model: &Model,
    net: Network,
    settings: &Settings,
    data: &Dataset,
    weights: Weights,
    probe: &mut Probe,
    on_epoch: &mut dyn FnMut(Option<&EpochReport>, &FlowReport),
) -> Result<Outcome, TrainError> {
    let shared = RefCell::new((probe, on_epoch));
    super::train_observed(
        model,
        net,
        settings,
        data,
        weights,
        &mut |r| {
            let (probe, on_epoch) = &mut *shared.borrow_mut();
            if let Some(flow) = probe.history.last() {
                on_epoch(Some(r), flow);
            }
        },
        &mut |epoch, params| {
            let (probe, on_epoch) = &mut *shared.borrow_mut();
            probe.measure(epoch, params)?;
            if let (0, Some(flow)) = (epoch, probe.history.last()) {
                on_epoch(None, flow);
            }
            Ok(())
        },
    )
}
