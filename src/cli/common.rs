//! Plumbing every command shares: read a `.nn` file, parse it, check it,
//! pick the model (`--model`), load its data, and turn diagnostics into a
//! [`Failure`] whose text names files as the user typed them.

use super::Failure;
use super::source::{decode, io_message, read_source};
use crate::check::{self, model};
use crate::data::{self, Dataset};
use crate::diag::{self, Diagnostic, FileId, SourceMap, suggest};
use crate::syntax;
use crate::train::weights::{self, Weights};
use std::path::{Path, PathBuf};

/// A checked file and the model a command works on.
pub struct Loaded {
    /// The `.nn` path as typed on the command line.
    pub path: PathBuf,
    /// The same path as shown in diagnostics.
    pub name: String,
    /// The file's text.
    pub text: String,
    /// A source map holding the `.nn` file as [`FileId::MAIN`].
    pub sources: SourceMap,
    /// The checked program (no diagnostics).
    pub program: model::Program,
    /// Index of the chosen model in `program.models`.
    pub model: usize,
}

impl Loaded {
    /// The chosen model.
    pub fn model(&self) -> &model::Model {
        &self.program.models[self.model]
    }

    /// Renders diagnostics that point into the `.nn` file only.
    pub fn render(&self, diagnostics: &[Diagnostic]) -> String {
        diag::render(diagnostics, &self.sources)
    }

    /// The path of the `train` block's data file: relative to the `.nn` file.
    pub fn data_path(&self, spec: &model::DataSpec) -> PathBuf {
        match self.path.parent() {
            Some(dir) => dir.join(&spec.path),
            None => PathBuf::from(&spec.path),
        }
    }
}

/// Reads, parses and checks `path`, then picks the model: the only one, or
/// the one named by `--model`. Bad input is exit 1; a missing or unknown
/// `--model` is a usage error, exit 2.
pub fn load_program(path: &Path, model: Option<&str>) -> Result<Loaded, Failure> {
    let (name, text) = read_source(path)?;
    let mut sources = SourceMap::new();
    sources.add(name.clone(), text.clone());
    // Syntax errors come alone: checking a partly parsed file would report
    // statements the parser had to skip as missing.
    let (file, parse_diags) = syntax::parse(&text);
    if !parse_diags.is_empty() {
        return Err(Failure::Input(diag::render(&parse_diags, &sources)));
    }
    let (program, diags) = check::check(&file);
    if !diags.is_empty() {
        return Err(Failure::Input(diag::render(&diags, &sources)));
    }
    let names: Vec<&str> = program.models.iter().map(|m| m.name.as_str()).collect();
    let index = match (model, names.len()) {
        (_, 0) => {
            let d = Diagnostic::bare(format!("'{name}' defines no model"))
                .with_help("add a model block, such as: model m { input 2; dense 1; loss mse }");
            return Err(Failure::Input(diag::render(&[d], &sources)));
        }
        (None, 1) => 0,
        (None, n) => {
            let d = Diagnostic::bare(format!("'{name}' has {n} models; choose one with --model"))
                .with_note(format!("the models are: {}", names.join(", ")))
                .with_help(format!("for example: --model {}", names[0]));
            return Err(Failure::Usage(diag::render(&[d], &sources)));
        }
        (Some(wanted), _) => match names.iter().position(|n| *n == wanted) {
            Some(i) => i,
            None => {
                let mut d = Diagnostic::bare(format!("no model '{wanted}' in '{name}'"));
                if let Some(s) = suggest(wanted, names.iter().copied()) {
                    d = d.with_help(format!("did you mean '{s}'?"));
                }
                let d = d.with_note(format!("the models are: {}", names.join(", ")));
                return Err(Failure::Usage(diag::render(&[d], &sources)));
            }
        },
    };
    Ok(Loaded {
        path: path.to_path_buf(),
        name,
        text,
        sources,
        program,
        model: index,
    })
}

/// A loaded data set and the name its file is shown under.
pub struct LoadedData {
    /// The rows.
    pub dataset: Dataset,
    /// The data file's path as shown (relative to the current directory).
    pub name: String,
}

/// Loads the `train` block's data file for the chosen model; `None` when the
/// file has no `train` block.
pub fn load_dataset(loaded: &Loaded) -> Result<Option<LoadedData>, Failure> {
    let Some(spec) = loaded.program.train.as_ref().and_then(|t| t.data.as_ref()) else {
        return Ok(None);
    };
    let path = loaded.data_path(spec);
    let name = path.display().to_string();
    let bytes = std::fs::read(&path).map_err(|e| {
        let d = Diagnostic::error(
            format!("cannot read data file '{}': {}", spec.path, io_message(&e)),
            spec.path_span,
        )
        .with_label("cannot read this file")
        .with_note(format!(
            "looked for '{name}' (paths in a .nn file are relative to it)"
        ));
        Failure::Input(loaded.render(&[d]))
    })?;
    load_bytes(loaded, spec, bytes, &name, false).map(|dataset| Some(LoadedData { dataset, name }))
}

/// Loads a data file given on the command line (`--data D`) with the
/// columns the `data` statement describes; with `for_predict` the target
/// columns may be absent.
pub fn load_data_file(loaded: &Loaded, path: &Path, for_predict: bool) -> Result<Dataset, Failure> {
    let name = path.display().to_string();
    let Some(spec) = loaded.program.train.as_ref().and_then(|t| t.data.as_ref()) else {
        let d = Diagnostic::bare(format!("'{}' has no data statement", loaded.name))
            .with_help("add a train block whose data statement names the target columns");
        return Err(Failure::Input(loaded.render(&[d])));
    };
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::Input(format!("error: cannot read '{name}': {}\n", io_message(&e)))
    })?;
    // Messages name the file given on the command line, not the one the
    // data statement names (it only describes the columns).
    let spec = model::DataSpec {
        path: name.clone(),
        ..spec.clone()
    };
    load_bytes(loaded, &spec, bytes, &name, for_predict)
}

fn load_bytes(
    loaded: &Loaded,
    spec: &model::DataSpec,
    bytes: Vec<u8>,
    name: &str,
    for_predict: bool,
) -> Result<Dataset, Failure> {
    let with_data = |text: String, diags: &[Diagnostic]| {
        let mut sources = SourceMap::new();
        sources.add(loaded.name.clone(), loaded.text.clone());
        let id = sources.add(name.to_string(), text);
        debug_assert_eq!(id, FileId(1), "the data file is the second file added");
        Failure::Input(diag::render(diags, &sources))
    };
    let text = match decode(bytes) {
        Ok(text) => text,
        Err(err) => {
            let (shown, mut d) = *err;
            if let Some(label) = &mut d.primary {
                label.file = FileId(1);
            }
            return Err(with_data(shown, &[d]));
        }
    };
    let result = if for_predict {
        data::load_for_predict(&text, FileId(1), spec, loaded.model())
    } else {
        data::load(&text, FileId(1), spec, loaded.model())
    };
    result.map_err(|mut diags| {
        diags.sort_by_key(Diagnostic::sort_key);
        with_data(text, &diags)
    })
}

/// Reads and checks a weights file against the model; errors name the tensor.
pub fn read_weights(path: &Path, model: &model::Model) -> Result<Weights, Failure> {
    let bytes = std::fs::read(path).map_err(|e| {
        Failure::Input(format!(
            "error: cannot read weights '{}': {}\n",
            path.display(),
            io_message(&e)
        ))
    })?;
    weights::from_safetensors(&bytes, model).map_err(|e| {
        Failure::Input(format!(
            "error: weights '{}' do not fit model '{}': {e}\n",
            path.display(),
            model.name
        ))
    })
}
