//! Weights: initialisation statistics and determinism, safetensors round
//! trips, every way a weights file can fail to fit a model, atomic writes.

use slope::check::model::{Activation, Builtin, FeatureShape, Init, Layer, Loss, Model};
use slope::diag::Span;
use slope::train::weights::{self, Tensor, WeightsError};
use std::collections::HashMap;

fn layer(name: &str, input_width: usize, width: usize, init: Init, bias: bool) -> Layer {
    Layer::dense(
        name,
        FeatureShape::flat(input_width),
        width,
        Activation::Builtin(Builtin::Tanh),
        init,
        bias,
    )
}

/// 3 -> 4 (glorot) -> 1 (he, no bias): names dense1.weight, dense1.bias, out.weight.
fn small() -> Model {
    Model {
        name: "m".to_string(),
        input: FeatureShape::flat(3),
        layers: vec![
            layer("dense1", 3, 4, Init::Glorot, true),
            layer("out", 4, 1, Init::He, false),
        ],
        loss: Loss::Mse,
        span: Span::default(),
        input_span: Span::default(),
        loss_span: Span::default(),
    }
}

fn model_of(layers: Vec<Layer>) -> Model {
    Model {
        name: "big".to_string(),
        input: layers[0].input.clone(),
        layers,
        loss: Loss::Mse,
        span: Span::default(),
        input_span: Span::default(),
        loss_span: Span::default(),
    }
}

fn err(bytes: &[u8], model: &Model) -> WeightsError {
    weights::from_safetensors(bytes, model).expect_err("these bytes must be rejected")
}

/// Hand-built safetensors bytes, to make files the writer never would.
fn raw(tensors: &[(&str, &str, Vec<usize>, usize)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (name, dtype, shape, nbytes) in tensors {
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + nbytes]}),
        );
        offset += nbytes;
    }
    let h = serde_json::Value::Object(header).to_string();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h.as_bytes());
    out.extend(vec![0u8; offset]);
    out
}

#[test]
fn parameter_order_names_and_shapes() {
    let w = weights::init(&small(), 1);
    let got: Vec<(&str, &[usize])> = w
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("dense1.weight", &[4usize, 3][..]),
            ("dense1.bias", &[4][..]),
            ("out.weight", &[1, 4][..]),
        ]
    );
    assert_eq!(
        w.get("dense1.bias").map(|t| t.data.clone()),
        Some(vec![0.0; 4])
    );
    assert_eq!(w.len(), 12 + 4 + 4);
}

#[test]
fn init_is_deterministic_and_seed_dependent() {
    let m = small();
    assert_eq!(weights::init(&m, 42), weights::init(&m, 42));
    assert_ne!(weights::init(&m, 42), weights::init(&m, 43));
    assert_eq!(
        weights::to_safetensors(&weights::init(&m, 5)),
        weights::to_safetensors(&weights::init(&m, 5))
    );
}

#[test]
fn init_values_are_pinned() {
    // The PRNG is our own, so these values must never change between
    // platforms or versions: a change would silently change every training run.
    let w = weights::init(&small(), 0);
    let first: Vec<u32> = w.tensors[0].data[..3].iter().map(|v| v.to_bits()).collect();
    let again: Vec<u32> = weights::init(&small(), 0).tensors[0].data[..3]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    assert_eq!(first, again);
    insta::assert_debug_snapshot!(w.tensors[0].data[..6].to_vec());
}

#[test]
fn glorot_is_uniform_within_its_bound() {
    // 200 x 300: bound sqrt(6/500); uniform on ±a has mean 0 and variance a²/3.
    let m = model_of(vec![layer("dense1", 300, 200, Init::Glorot, true)]);
    let w = weights::init(&m, 3);
    let a = (6.0f64 / 500.0).sqrt();
    let d = &w.tensors[0].data;
    assert!(d.iter().all(|&v| f64::from(v).abs() <= a));
    let n = d.len() as f64;
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = d
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 0.01 * a, "mean {mean}");
    assert!((var / (a * a / 3.0) - 1.0).abs() < 0.02, "variance {var}");
    // Both ends of the range are reached.
    let max = d.iter().cloned().fold(f32::MIN, f32::max);
    let min = d.iter().cloned().fold(f32::MAX, f32::min);
    assert!(f64::from(max) > 0.99 * a && f64::from(min) < -0.99 * a);
}

/// Mean and variance (population) of a tensor's values, in f64.
fn moments(d: &[f32]) -> (f64, f64) {
    let n = d.len() as f64;
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = d
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean, var)
}

#[test]
fn standard_is_uniform_within_one_over_sqrt_fan_in() {
    // 200 x 300: fan_in 300, bound 1/sqrt(300), whatever fan_out is;
    // uniform on ±a has mean 0 and variance a²/3.
    let m = model_of(vec![layer("dense1", 300, 200, Init::Standard, true)]);
    let w = weights::init(&m, 3);
    let a = 1.0 / 300f64.sqrt();
    let d = &w.tensors[0].data;
    assert_eq!(d.len(), 60_000);
    assert!(d.iter().all(|&v| f64::from(v).abs() <= a), "outside ±{a}");
    let (mean, var) = moments(d);
    assert!(mean.abs() < 0.01 * a, "mean {mean}");
    assert!((var / (a * a / 3.0) - 1.0).abs() < 0.02, "variance {var}");
    let max = d.iter().cloned().fold(f32::MIN, f32::max);
    let min = d.iter().cloned().fold(f32::MAX, f32::min);
    assert!(f64::from(max) > 0.99 * a && f64::from(min) < -0.99 * a);
    // A quarter of a uniform's mass lies in each quarter of its range.
    let inner = d.iter().filter(|&&v| f64::from(v).abs() < a / 2.0).count() as f64;
    assert!((inner / d.len() as f64 - 0.5).abs() < 0.01, "inner {inner}");
    // Biases start at zero.
    assert!(w.tensors[1].data.iter().all(|&v| v == 0.0));
}

#[test]
fn standard_is_deterministic_in_the_seed() {
    let m = model_of(vec![layer("dense1", 30, 20, Init::Standard, true)]);
    assert_eq!(weights::init(&m, 7), weights::init(&m, 7));
    assert_ne!(weights::init(&m, 7), weights::init(&m, 8));
    // The same draws as glorot, scaled to the other bound: one stream, one
    // uniform per element, so only the limit differs.
    let g = model_of(vec![layer("dense1", 30, 20, Init::Glorot, true)]);
    let (s, g) = (weights::init(&m, 7), weights::init(&g, 7));
    let ratio = (1.0 / 30f64.sqrt()) / (6.0f64 / 50.0).sqrt();
    for (x, y) in s.tensors[0].data.iter().zip(&g.tensors[0].data) {
        assert!((f64::from(*x) - f64::from(*y) * ratio).abs() < 1e-6);
    }
}

#[test]
fn an_image_input_is_read_flattened() {
    // input 1x8x8 then dense 5: the weight is [5, 64] and fan_in is C·H·W.
    let mut m = model_of(vec![Layer::dense(
        "dense1",
        FeatureShape::image(1, 8, 8),
        5,
        Activation::Builtin(Builtin::Tanh),
        Init::Standard,
        true,
    )]);
    m.input = FeatureShape::image(1, 8, 8);
    assert_eq!(
        weights::expected_shapes(&m),
        [
            ("dense1.weight".to_string(), vec![5, 64]),
            ("dense1.bias".to_string(), vec![5]),
        ]
    );
    assert_eq!(m.parameter_count(), 5 * 64 + 5);
    let w = weights::init(&m, 1);
    assert!(w.tensors[0].data.iter().all(|&v| v.abs() <= 0.125));
}

#[test]
fn he_is_normal_with_std_sqrt_2_over_in() {
    let m = model_of(vec![layer("dense1", 200, 300, Init::He, true)]);
    let w = weights::init(&m, 9);
    let std = (2.0f64 / 200.0).sqrt();
    let d = &w.tensors[0].data;
    let n = d.len() as f64;
    let mean = d.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = d
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    assert!(mean.abs() < 0.02 * std, "mean {mean}");
    assert!((var.sqrt() / std - 1.0).abs() < 0.02, "std {}", var.sqrt());
    // Normal, not uniform: about 4.55% of samples lie beyond 2 std.
    let tail = d
        .iter()
        .filter(|&&v| f64::from(v).abs() > 2.0 * std)
        .count() as f64
        / n;
    assert!((tail - 0.0455).abs() < 0.006, "tail {tail}");
}

#[test]
fn zeros_init_is_zero() {
    let m = model_of(vec![layer("dense1", 5, 6, Init::Zeros, true)]);
    let w = weights::init(&m, 1);
    assert!(w.tensors.iter().all(|t| t.data.iter().all(|&v| v == 0.0)));
}

#[test]
fn round_trip_is_exact() {
    let m = small();
    let w = weights::init(&m, 11);
    let bytes = weights::to_safetensors(&w);
    let back = weights::from_safetensors(&bytes, &m).expect("our own file reads back");
    assert_eq!(back, w);
    assert_eq!(weights::to_safetensors(&back), bytes);
}

#[test]
fn bytes_do_not_depend_on_tensor_order() {
    let m = small();
    let w = weights::init(&m, 11);
    let mut reversed = w.clone();
    reversed.tensors.reverse();
    assert_eq!(
        weights::to_safetensors(&w),
        weights::to_safetensors(&reversed)
    );
}

#[test]
fn wrong_shape_names_the_tensor() {
    let m = small();
    let mut w = weights::init(&m, 1);
    w.tensors[2] = Tensor {
        name: "out.weight".to_string(),
        shape: vec![1, 3],
        data: vec![0.0; 3],
    };
    let e = err(&weights::to_safetensors(&w), &m);
    assert_eq!(
        e.to_string(),
        "'out.weight' has shape [1, 3], the model needs [1, 4]"
    );
}

#[test]
fn missing_tensor_is_named() {
    let m = small();
    let mut w = weights::init(&m, 1);
    w.tensors.remove(1);
    let e = err(&weights::to_safetensors(&w), &m);
    assert_eq!(
        e,
        WeightsError::Missing {
            name: "dense1.bias".to_string(),
            expected: vec![4]
        }
    );
    assert_eq!(
        e.to_string(),
        "'dense1.bias' is missing; the model needs shape [4]"
    );
}

#[test]
fn extra_tensors_are_named_sorted() {
    let m = small();
    let mut w = weights::init(&m, 1);
    for name in ["zeta", "out.bias"] {
        w.tensors.push(Tensor {
            name: name.to_string(),
            shape: vec![1],
            data: vec![0.0],
        });
    }
    let e = err(&weights::to_safetensors(&w), &m);
    assert_eq!(
        e.to_string(),
        "unexpected tensors 'out.bias', 'zeta' not in the model"
    );
}

#[test]
fn wrong_dtype_is_named() {
    let m = small();
    let bytes = raw(&[
        ("dense1.weight", "F64", vec![4, 3], 96),
        ("dense1.bias", "F32", vec![4], 16),
        ("out.weight", "F32", vec![1, 4], 16),
    ]);
    let e = err(&bytes, &m);
    assert_eq!(
        e.to_string(),
        "'dense1.weight' has dtype F64, the model needs F32"
    );
}

#[test]
fn non_finite_values_are_rejected() {
    let m = small();
    let mut w = weights::init(&m, 1);
    w.tensors[1].data[2] = f32::NAN;
    let e = err(&weights::to_safetensors(&w), &m);
    assert_eq!(
        e,
        WeightsError::NonFinite {
            name: "dense1.bias".to_string(),
            index: 2
        }
    );
}

#[test]
fn truncated_and_garbage_files_are_errors_not_panics() {
    let m = small();
    let good = weights::to_safetensors(&weights::init(&m, 1));
    for cut in 0..good.len() {
        let e = err(&good[..cut], &m);
        assert!(
            matches!(e, WeightsError::Malformed(_)),
            "cut at {cut}: {e:?}"
        );
    }
    let mut longer = good.clone();
    longer.push(0);
    assert!(matches!(err(&longer, &m), WeightsError::Malformed(_)));
    let garbage: &[&[u8]] = &[
        b"",
        b"hello world, not a tensor file",
        &[0xff; 64],
        &u64::MAX.to_le_bytes(),
        b"\x02\x00\x00\x00\x00\x00\x00\x00{}",
        b"\x04\x00\x00\x00\x00\x00\x00\x00\xff\xfe{}",
    ];
    for g in garbage {
        // Either malformed or (for the empty header) a missing tensor; never a panic.
        let e = err(g, &m);
        assert!(
            matches!(e, WeightsError::Malformed(_) | WeightsError::Missing { .. }),
            "{e:?}"
        );
    }
    // Offsets that overlap or run past the data.
    let bad = b"\x4c\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,99]}}        ";
    assert!(matches!(err(bad, &m), WeightsError::Malformed(_)));
}

#[test]
fn every_byte_flip_of_the_header_is_handled() {
    // Corrupting any single header byte must give a result, never a panic.
    let m = small();
    let good = weights::to_safetensors(&weights::init(&m, 1));
    let header_end = 8 + u64::from_le_bytes(good[..8].try_into().unwrap()) as usize;
    for i in 0..header_end {
        for flip in [0x01u8, 0x20, 0x80] {
            let mut b = good.clone();
            b[i] ^= flip;
            let _ = weights::from_safetensors(&b, &m);
        }
    }
}

#[test]
fn write_atomic_replaces_and_leaves_no_temp_files() {
    let dir = std::env::temp_dir().join(format!("slope-weights-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    weights::write_atomic(&path, b"first").unwrap();
    weights::write_atomic(&path, b"second").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second");
    let names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["m.safetensors".to_string()]);
    // A directory that does not exist: an error, and nothing is created.
    let missing = dir.join("no/such/dir/m.safetensors");
    assert!(weights::write_atomic(&missing, b"x").is_err());
    // A path that is a directory: the rename fails, the temp file is cleaned up.
    assert!(weights::write_atomic(&dir, b"x").is_err());
    assert!(dir.join("m.safetensors").is_file());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn header_json_is_plain_and_sorted() {
    let m = small();
    let bytes = weights::to_safetensors(&weights::init(&m, 1));
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap().trim_end();
    let parsed: HashMap<String, serde_json::Value> = serde_json::from_str(header).unwrap();
    assert_eq!(parsed.len(), 3);
    insta::assert_snapshot!(header);
}
