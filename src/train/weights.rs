//! A model's parameters as named float32 tensors: initialisation (spec §5),
//! safetensors reading and writing, and atomic file replacement.
//!
//! The order of [`Weights::tensors`] is the model's parameter order,
//! [`Model::params`] (for each layer, first to last, `NAME.weight` and then
//! `NAME.bias` when the layer has one; `check::layer` says their shapes).
//! Everything downstream (training buffers, gradients, `predict`) relies on
//! that order.

use super::rng::Rng;
use crate::check::layer::ParamSpec;
use crate::check::model::{Init, Model};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;

/// One named parameter tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// `NAME.weight` or `NAME.bias`.
    pub name: String,
    /// `[out, in]` for a weight, `[out]` for a bias.
    pub shape: Vec<usize>,
    /// Row-major values; `data.len()` is the product of `shape`.
    pub data: Vec<f32>,
}

/// All parameters of a model, in the model's parameter order.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    /// The tensors, layer by layer, weight before bias.
    pub tensors: Vec<Tensor>,
}

impl Weights {
    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The total number of scalars.
    pub fn len(&self) -> usize {
        self.tensors.iter().map(|t| t.data.len()).sum()
    }

    /// True when there are no scalars at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The names and shapes a model's weights must have, in parameter order.
pub fn expected_shapes(model: &Model) -> Vec<(String, Vec<usize>)> {
    model
        .params()
        .into_iter()
        .map(|p| (p.name, p.shape))
        .collect()
}

/// The RNG stream used for initialisation (shuffling uses another).
pub const INIT_STREAM: u64 = 0;

/// Fresh weights for `model` (spec §5), from each parameter's fan_in and
/// fan_out: glorot uniform on ±sqrt(6/(fan_in + fan_out)), he normal with
/// std sqrt(2/fan_in) (Box–Muller), standard uniform on ±1/sqrt(fan_in),
/// or zeros (every bias).
///
/// One RNG stream seeded by `seed` is consumed parameter by parameter,
/// elements in row-major order (zeros draw nothing), so the result depends
/// only on the model's shapes, inits and the seed.
pub fn init(model: &Model, seed: u64) -> Weights {
    let mut rng = Rng::new(seed, INIT_STREAM);
    let tensors = model
        .params()
        .into_iter()
        .map(|p| Tensor {
            data: init_values(&p, &mut rng),
            name: p.name,
            shape: p.shape,
        })
        .collect();
    Weights { tensors }
}

/// The initial values of one parameter, drawn from `rng`.
fn init_values(p: &ParamSpec, rng: &mut Rng) -> Vec<f32> {
    let n = p.len();
    let uniform = |rng: &mut Rng, limit: f64| -> Vec<f32> {
        (0..n)
            .map(|_| ((2.0 * rng.next_f64() - 1.0) * limit) as f32)
            .collect()
    };
    match p.init {
        Init::Glorot => uniform(rng, (6.0 / (p.fan_in + p.fan_out) as f64).sqrt()),
        Init::He => {
            let std = (2.0 / p.fan_in as f64).sqrt();
            (0..n).map(|_| (rng.normal() * std) as f32).collect()
        }
        Init::Standard => uniform(rng, 1.0 / (p.fan_in as f64).sqrt()),
        Init::Zeros => vec![0.0; n],
    }
}

/// Why a weights file does not fit a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WeightsError {
    /// Not a readable safetensors file (truncated, garbage, bad header).
    Malformed(String),
    /// A tensor the model needs is absent.
    Missing {
        /// Its name.
        name: String,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// Tensors the model does not have (sorted by name).
    Unexpected(Vec<String>),
    /// A tensor of the wrong shape.
    Shape {
        /// Its name.
        name: String,
        /// The shape in the file.
        found: Vec<usize>,
        /// The shape the model needs.
        expected: Vec<usize>,
    },
    /// A tensor that is not float32.
    Dtype {
        /// Its name.
        name: String,
        /// The dtype in the file, as safetensors spells it.
        found: String,
    },
    /// A tensor holding NaN or infinity.
    NonFinite {
        /// Its name.
        name: String,
        /// Row-major index of the first bad value.
        index: usize,
    },
}

impl fmt::Display for WeightsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WeightsError::Malformed(why) => write!(f, "not a valid safetensors file: {why}"),
            WeightsError::Missing { name, expected } => {
                write!(f, "'{name}' is missing; the model needs shape {expected:?}")
            }
            WeightsError::Unexpected(names) => {
                let list: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
                write!(
                    f,
                    "unexpected tensor{} {} not in the model",
                    if names.len() == 1 { "" } else { "s" },
                    list.join(", ")
                )
            }
            WeightsError::Shape {
                name,
                found,
                expected,
            } => write!(
                f,
                "'{name}' has shape {found:?}, the model needs {expected:?}"
            ),
            WeightsError::Dtype { name, found } => {
                write!(f, "'{name}' has dtype {found}, the model needs F32")
            }
            WeightsError::NonFinite { name, index } => {
                write!(f, "'{name}' holds a NaN or infinite value at index {index}")
            }
        }
    }
}

impl std::error::Error for WeightsError {}

/// Reads safetensors `bytes` as the weights of `model`: every tensor the model
/// needs must be present, float32, of the right shape and finite; a tensor
/// the model lacks is an error too. Never panics, whatever the bytes.
pub fn from_safetensors(bytes: &[u8], model: &Model) -> Result<Weights, WeightsError> {
    let file =
        SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Malformed(e.to_string()))?;
    let expected = expected_shapes(model);
    let known: std::collections::HashSet<&str> = expected.iter().map(|(e, _)| e.as_str()).collect();
    let mut extra: Vec<String> = file
        .names()
        .into_iter()
        .filter(|n| !known.contains(n))
        .map(str::to_string)
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(WeightsError::Unexpected(extra));
    }
    let mut tensors = Vec::with_capacity(expected.len());
    for (name, shape) in expected {
        let view = match file.tensor(&name) {
            Ok(v) => v,
            Err(_) => {
                return Err(WeightsError::Missing {
                    name,
                    expected: shape,
                });
            }
        };
        tensors.push(read_tensor(name, shape, &view)?);
    }
    Ok(Weights { tensors })
}

/// Checks one view and copies it out as little-endian f32.
fn read_tensor(
    name: String,
    shape: Vec<usize>,
    view: &TensorView<'_>,
) -> Result<Tensor, WeightsError> {
    if view.dtype() != Dtype::F32 {
        return Err(WeightsError::Dtype {
            name,
            found: format!("{:?}", view.dtype()),
        });
    }
    if view.shape() != shape.as_slice() {
        return Err(WeightsError::Shape {
            name,
            found: view.shape().to_vec(),
            expected: shape,
        });
    }
    // The safetensors crate has validated that the byte length matches the
    // shape, so chunks of 4 cover the data exactly.
    let data: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    if let Some(index) = data.iter().position(|v| !v.is_finite()) {
        return Err(WeightsError::NonFinite { name, index });
    }
    Ok(Tensor { name, shape, data })
}

/// The safetensors bytes of `weights`. Deterministic: the crate orders the
/// tensors by dtype and then by name (not by insertion or hash order), and
/// we add no metadata.
pub fn to_safetensors(weights: &Weights) -> Vec<u8> {
    let bytes: Vec<Vec<u8>> = weights
        .tensors
        .iter()
        .map(|t| t.data.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(&str, TensorView<'_>)> = weights
        .tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let view = TensorView::new(Dtype::F32, t.shape.clone(), b)
                .expect("a Tensor's data length is the product of its shape");
            (t.name.as_str(), view)
        })
        .collect();
    safetensors::serialize(views, None)
        .expect("F32 tensors with distinct names and a small header always serialize")
}

/// Writes `bytes` to `path` so that readers see either the old file or the
/// complete new one: a temporary file in the same directory is written,
/// flushed to disk, then renamed over `path`. On failure `path` is untouched
/// and the temporary file is removed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the path names no file"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        // Make the rename itself durable; some file systems refuse to open a
        // directory for syncing, which is harmless to ignore.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
