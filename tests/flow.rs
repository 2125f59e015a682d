//! Gradient flow (spec §8): every statistic against an independent f64
//! computation written here (forward pass, backprop by hand), and the
//! measurement leaves training untouched.

use slope::train::flow::{Probe, train_with_flow};
use slope::train::{Settings, weights};
use slope::{check, data, diag, pipeline, syntax};

const SRC: &str = "activation sq(x) = x^2 / 2
model m {
    input 3
    dense 5 tanh
    dense 4 sigmoid
    dense 3 sq
    dense 2
    loss mse
}
train {
    data \"d.csv\" target=[t1, t2]
    optimizer sgd lr=0.1
    batch 4
    shuffle false
    seed 3
}
";

fn program() -> check::model::Program {
    let (file, d) = syntax::parse(SRC);
    assert!(d.is_empty(), "{d:?}");
    let (program, d) = check::check(&file);
    assert!(d.is_empty(), "{d:?}");
    program
}

/// 9 rows of a smooth function of three inputs.
fn csv() -> String {
    let mut s = "a,b,c,t1,t2\n".to_string();
    for i in 0..9 {
        let x = [
            i as f64 / 4.0 - 1.0,
            ((i * 7) % 5) as f64 / 2.0 - 1.0,
            (i % 3) as f64 - 1.0,
        ];
        s.push_str(&format!(
            "{},{},{},{},{}\n",
            x[0],
            x[1],
            x[2],
            (x[0] + x[1]).sin(),
            x[2] * x[0]
        ));
    }
    s
}

fn settings(program: &check::model::Program) -> Settings {
    let config = program.train.as_ref().unwrap();
    Settings {
        epochs: 3,
        batch: 4,
        shuffle: false,
        seed: 3,
        validation: 0.0,
        optimizer: config.optimizer,
        threads: 1,
    }
}

/// f, f' and g = max |f'| of each layer's activation, written by hand.
fn act(l: usize, z: f64) -> (f64, f64) {
    match l {
        0 => (z.tanh(), 1.0 - z.tanh().powi(2)),
        1 => {
            let s = 1.0 / (1.0 + (-z).exp());
            (s, s * (1.0 - s))
        }
        2 => (z * z / 2.0, z),
        _ => (z, 1.0),
    }
}
const G: [Option<f64>; 4] = [Some(1.0), Some(0.25), Some(8.0), None];

struct Oracle {
    loss: f64,
    layers: Vec<[Option<f64>; 7]>,
}

/// The statistics in f64: delta_rms, grad_rms, grad_max_abs, act_mean,
/// act_std, saturated, dead.
fn oracle(x: &[Vec<f64>], t: &[Vec<f64>], w: &[Vec<f64>], shapes: &[Vec<usize>]) -> Oracle {
    let p = x.len();
    let nl = 4;
    let (mut zs, mut as_) = (vec![], vec![x.to_vec()]);
    for l in 0..nl {
        let (wt, b) = (&w[2 * l], &w[2 * l + 1]);
        let [o, i] = shapes[2 * l][..] else { panic!() };
        let z: Vec<Vec<f64>> = (0..p)
            .map(|r| {
                (0..o)
                    .map(|u| b[u] + (0..i).map(|k| wt[u * i + k] * as_[l][r][k]).sum::<f64>())
                    .collect()
            })
            .collect();
        as_.push(
            z.iter()
                .map(|row| row.iter().map(|&v| act(l, v).0).collect())
                .collect(),
        );
        zs.push(z);
    }
    let y = &as_[nl];
    let k = y[0].len();
    let n = (p * k) as f64;
    let loss = (0..p)
        .flat_map(|r| (0..k).map(move |c| (r, c)))
        .map(|(r, c)| (y[r][c] - t[r][c]).powi(2))
        .sum::<f64>()
        / n;
    // δ of the last layer (identity), then back.
    let mut deltas = vec![vec![]; nl];
    deltas[nl - 1] = (0..p)
        .map(|r| (0..k).map(|c| 2.0 * (y[r][c] - t[r][c]) / n).collect())
        .collect::<Vec<Vec<f64>>>();
    for l in (0..nl - 1).rev() {
        let [o, i] = shapes[2 * (l + 1)][..] else {
            panic!()
        };
        deltas[l] = (0..p)
            .map(|r| {
                (0..i)
                    .map(|u| {
                        (0..o)
                            .map(|v| deltas[l + 1][r][v] * w[2 * (l + 1)][v * i + u])
                            .sum::<f64>()
                            * act(l, zs[l][r][u]).1
                    })
                    .collect()
            })
            .collect();
    }
    let mut layers = vec![];
    for l in 0..nl {
        let [o, i] = shapes[2 * l][..] else { panic!() };
        let grad: Vec<f64> = (0..o * i)
            .map(|e| (0..p).map(|r| deltas[l][r][e / i] * as_[l][r][e % i]).sum())
            .collect();
        let all = |m: &Vec<Vec<f64>>| m.iter().flatten().copied().collect::<Vec<f64>>();
        let d = all(&deltas[l]);
        let a = all(&as_[l + 1]);
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let am = mean(&a);
        let sat = G[l].map(|g| {
            zs[l]
                .iter()
                .map(|row| {
                    row.iter()
                        .map(|&z| (act(l, z).1.abs() < 0.1 * g) as u8 as f64)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        });
        layers.push([
            Some(p as f64 * mean(&d.iter().map(|v| v * v).collect::<Vec<_>>()).sqrt()),
            Some(mean(&grad.iter().map(|v| v * v).collect::<Vec<_>>()).sqrt()),
            Some(grad.iter().fold(0.0f64, |m, v| m.max(v.abs()))),
            Some(am),
            Some(mean(&a.iter().map(|v| (v - am).powi(2)).collect::<Vec<_>>()).sqrt()),
            sat.as_ref().map(|s| mean(&all(s))),
            sat.as_ref().map(|s| {
                (0..o)
                    .filter(|&u| s.iter().all(|row| row[u] == 1.0))
                    .count() as f64
                    / o as f64
            }),
        ]);
    }
    Oracle { loss, layers }
}

fn close(what: &str, got: f64, want: f64) {
    let tol = 1e-4 * want.abs().max(1e-3);
    assert!(
        (got - want).abs() <= tol,
        "{what}: compiled {got}, f64 oracle {want}"
    );
}

#[test]
fn every_statistic_matches_an_independent_f64_computation() {
    let program = program();
    let model = &program.models[0];
    let spec = program.train.as_ref().unwrap().data.as_ref().unwrap();
    let rows = data::load(&csv(), diag::FileId(1), spec, model).unwrap();
    let settings = settings(&program);
    // 7 of the 9 rows: P < rows, and the first rows of the (unshuffled) split.
    let mut probe = Probe::new(&program, model, &rows, &settings, 7).unwrap();
    assert_eq!(probe.rows, 7);
    let g: Vec<Option<f64>> = probe.layers.iter().map(|l| l.bound).collect();
    assert_eq!(g[0], Some(1.0));
    assert_eq!(g[1], Some(0.25));
    assert_eq!(g[2], Some(8.0), "sq'(x) = x, max on [-8, 8]");
    assert_eq!(g[3], None, "identity has no saturation");

    // Large weights so that some tanh and sigmoid units saturate.
    let mut w = weights::init(model, 3);
    for (i, t) in w.tensors.iter_mut().enumerate() {
        let scale = if i < 4 { 4.0 } else { 0.7 };
        t.data
            .iter_mut()
            .enumerate()
            .for_each(|(j, v)| *v = *v * scale + 0.05 * (j % 3) as f32);
    }
    let params: Vec<Vec<f32>> = w.tensors.iter().map(|t| t.data.clone()).collect();
    let shapes: Vec<Vec<usize>> = w.tensors.iter().map(|t| t.shape.clone()).collect();
    probe.measure(0, &params).unwrap();
    // A second measurement after a made-up "epoch": the update ratio.
    let moved: Vec<Vec<f32>> = params
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.iter()
                .enumerate()
                .map(|(j, v)| v + 0.01 * ((i + j) % 4) as f32 - 0.015)
                .collect()
        })
        .collect();
    probe.measure(1, &moved).unwrap();

    let wide = |ps: &[Vec<f32>]| {
        ps.iter()
            .map(|p| p.iter().map(|&v| f64::from(v)).collect())
            .collect::<Vec<Vec<f64>>>()
    };
    let x: Vec<Vec<f64>> = (0..7)
        .map(|r| {
            rows.features[r * 3..r * 3 + 3]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    let t: Vec<Vec<f64>> = (0..7)
        .map(|r| {
            rows.targets[r * 2..r * 2 + 2]
                .iter()
                .map(|&v| f64::from(v))
                .collect()
        })
        .collect();
    for (epoch, ps) in [(0, &params), (1, &moved)] {
        let want = oracle(&x, &t, &wide(ps), &shapes);
        let got = &probe.history[epoch];
        assert_eq!(got.epoch, epoch);
        close("probe_loss", got.probe_loss, want.loss);
        let names = [
            "delta_rms",
            "grad_rms",
            "grad_max_abs",
            "act_mean",
            "act_std",
            "saturated",
            "dead",
        ];
        for (l, (s, o)) in got.layers.iter().zip(&want.layers).enumerate() {
            let vals = [
                Some(s.delta_rms),
                Some(s.grad_rms),
                Some(s.grad_max_abs),
                Some(s.act_mean),
                Some(s.act_std),
                s.saturated,
                s.dead,
            ];
            for ((name, v), o) in names.iter().zip(vals).zip(o) {
                match (v, o) {
                    (Some(v), Some(o)) => close(&format!("epoch {epoch} layer {l} {name}"), v, *o),
                    (v, o) => assert_eq!(v, *o, "epoch {epoch} layer {l} {name}"),
                }
            }
        }
        let flow = got.layers[0].delta_rms / got.layers[3].delta_rms;
        close("flow", got.flow, flow);
    }
    // Saturation is really exercised: tanh has saturated units at this scale.
    assert!(probe.history[0].layers[0].saturated.unwrap() > 0.05);
    for (l, s) in probe.history[1].layers.iter().enumerate() {
        assert_eq!(probe.history[0].layers[l].update_ratio, None);
        let (b, a) = (&params[2 * l], &moved[2 * l]);
        let num: f64 = b
            .iter()
            .zip(a)
            .map(|(b, a)| (f64::from(*a) - f64::from(*b)).powi(2))
            .sum::<f64>()
            .sqrt();
        let den: f64 = b.iter().map(|b| f64::from(*b).powi(2)).sum::<f64>().sqrt();
        close(
            &format!("layer {l} update_ratio"),
            s.update_ratio.unwrap(),
            num / den,
        );
    }
}

#[test]
fn measuring_changes_no_weight() {
    let program = program();
    let model = &program.models[0];
    let spec = program.train.as_ref().unwrap().data.as_ref().unwrap();
    let rows = data::load(&csv(), diag::FileId(1), spec, model).unwrap();
    let settings = settings(&program);
    let (net, _) = pipeline::compile(&program, model).unwrap();
    let init = weights::init(model, 3);
    let plain = slope::train::train(
        model,
        net.clone(),
        &settings,
        &rows,
        init.clone(),
        &mut |_| {},
    )
    .unwrap();
    let mut probe = Probe::new(&program, model, &rows, &settings, 512).unwrap();
    let mut seen = vec![];
    let flowed = train_with_flow(
        model,
        net,
        &settings,
        &rows,
        init,
        &mut probe,
        &mut |r, f| seen.push((r.map(|r| r.epoch), f.epoch)),
    )
    .unwrap();
    assert_eq!(plain.weights, flowed.weights);
    assert_eq!(probe.rows, 9, "P = min(--probe, training rows)");
    assert_eq!(
        seen,
        vec![(None, 0), (Some(1), 1), (Some(2), 2), (Some(3), 3)]
    );
    let losses = |o: &slope::train::Outcome| o.epochs.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&plain), losses(&flowed));
}
