//! CSV text to a [`Dataset`] of float32 features and targets, checked
//! against the model it feeds.
//!
//! This module never reads files: the command line reads the CSV and passes
//! its text, keeping I/O at the edges. Problems inside the CSV are reported
//! with spans into it (under the [`FileId`] the caller registered it with), so
//! they render as `--> examples/xor.csv:3:5`; problems of the `.nn` file
//! (a target column that does not exist, a feature count that does not match
//! `input`) point into the `.nn` file.

use crate::check::model::{DataSpec, Loss, Model};
use crate::diag::{Diagnostic, FileId, Span, suggest};

/// At most this many cell-level problems are reported, so a wrong file does
/// not print thousands of errors; the last one says how many more there are.
const MAX_CELL_ERRORS: usize = 10;

/// A loaded data set: row-major float32 features and targets.
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// Every column of the header, in file order.
    pub columns: Vec<String>,
    /// The feature columns (all non-target columns), in file order.
    pub feature_names: Vec<String>,
    /// The target columns, in the order of `target=[...]`; empty when a
    /// prediction file has no targets.
    pub target_names: Vec<String>,
    /// Number of data rows.
    pub rows: usize,
    /// `rows × feature_names.len()`, row-major.
    pub features: Vec<f32>,
    /// `rows × target_names.len()`, row-major. For `cross_entropy` one column
    /// of class indices `0..K-1` stored as floats.
    pub targets: Vec<f32>,
}

impl Dataset {
    /// Number of feature columns.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// Number of target columns.
    pub fn n_targets(&self) -> usize {
        self.target_names.len()
    }
}

/// Loads training data: the target columns named by `spec` must be present.
pub fn load(
    text: &str,
    file: FileId,
    spec: &DataSpec,
    model: &Model,
) -> Result<Dataset, Vec<Diagnostic>> {
    load_with(text, file, spec, model, false)
}

/// Loads data for `predict` and `grad`: the columns the `data` statement
/// describes, where the target columns may be left out (all of them, then).
pub fn load_for_predict(
    text: &str,
    file: FileId,
    spec: &DataSpec,
    model: &Model,
) -> Result<Dataset, Vec<Diagnostic>> {
    load_with(text, file, spec, model, true)
}

/// One CSV record: its cells (trimmed) and the byte offset where it starts.
struct Record {
    /// The trimmed cells, in one allocation (a `String` per cell was most
    /// of reading the digits CSV).
    cells: csv::StringRecord,
    start: usize,
}

fn load_with(
    text: &str,
    file: FileId,
    spec: &DataSpec,
    model: &Model,
    targets_optional: bool,
) -> Result<Dataset, Vec<Diagnostic>> {
    let path = &spec.path;
    let mut records = read_records(text, file)?;
    if records.is_empty() {
        return Err(vec![
            Diagnostic::error(format!("data file '{path}' is empty"), spec.path_span)
                .with_label("no header and no rows")
                .with_help("the first line must name the columns, such as: x1,x2,y"),
        ]);
    }
    let header = records.remove(0);
    check_header(text, file, &header, path)?;
    let columns: Vec<String> = header.cells.iter().map(str::to_string).collect();

    // Find the target columns.
    let mut diags = Vec::new();
    let found: Vec<Option<usize>> = spec
        .targets
        .iter()
        .map(|t| columns.iter().position(|c| c == t))
        .collect();
    let n_found = found.iter().filter(|f| f.is_some()).count();
    let targets_absent = targets_optional && n_found == 0;
    if !targets_absent {
        for (i, f) in found.iter().enumerate() {
            if f.is_none() {
                diags.push(missing_target(spec, i, &columns));
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags);
    }
    let target_idx: Vec<usize> = found.into_iter().flatten().collect();
    let feature_idx: Vec<usize> = (0..columns.len())
        .filter(|i| !target_idx.contains(i))
        .collect();
    let feature_names: Vec<String> = feature_idx.iter().map(|&i| columns[i].clone()).collect();
    let target_names: Vec<String> = target_idx.iter().map(|&i| columns[i].clone()).collect();

    if feature_names.len() != model.input.features() {
        diags.push(feature_count_error(path, &feature_names, model));
    }
    if !targets_absent && let Some(d) = check_target_count(spec, model) {
        diags.push(d);
    }
    if !diags.is_empty() {
        return Err(diags);
    }

    if records.is_empty() {
        return Err(vec![
            Diagnostic::error(format!("'{path}' has no data rows"), spec.path_span)
                .with_label("only a header")
                .with_note(format!("its columns are: {}", list(&columns))),
        ]);
    }

    let rows = records.len();
    let columns_ix = Columns {
        names: &columns,
        features: &feature_idx,
        targets: &target_idx,
    };
    let (features, targets, errors) = read_cells(text, file, &records, &columns_ix, model);
    if !errors.diags.is_empty() {
        return Err(errors.finish(path));
    }
    Ok(Dataset {
        columns,
        feature_names,
        target_names,
        rows,
        features,
        targets,
    })
}

/// The diagnostic for a CSV whose feature columns do not match the
/// model's inputs; an image input says where its count comes from.
fn feature_count_error(path: &str, feature_names: &[String], model: &Model) -> Diagnostic {
    let n_inputs = model.input.features();
    // An image input says where its count comes from: `1x8x8 = 64 inputs`.
    let shape = if model.input.is_image() {
        format!("{} = ", model.input)
    } else {
        String::new()
    };
    Diagnostic::error(
        format!(
            "'{path}' has {} feature column{} but model '{}' takes {} input{}",
            feature_names.len(),
            plural(feature_names.len()),
            model.name,
            n_inputs,
            plural(n_inputs)
        ),
        model.input_span,
    )
    .with_label(format!("{shape}{n_inputs} input{}", plural(n_inputs)))
    .with_note(format!(
        "the features are all non-target columns, in file order: {}",
        list(feature_names)
    ))
    .with_help(if model.input.is_image() {
        format!(
            "an input {} needs {n_inputs} feature columns, in (C, H, W) order",
            model.input
        )
    } else if feature_names.len() > n_inputs {
        "list every target column in target=[...], or set 'input' to the number of features"
            .to_string()
    } else {
        "set 'input' to the number of feature columns".to_string()
    })
}

/// The header's columns split into features and targets, by index.
struct Columns<'a> {
    names: &'a [String],
    features: &'a [usize],
    targets: &'a [usize],
}

/// Every row's feature and target values, in row-major order, with the
/// problems of the cells that are not numbers (or not valid targets).
fn read_cells(
    text: &str,
    file: FileId,
    records: &[Record],
    cols: &Columns,
    model: &Model,
) -> (Vec<f32>, Vec<f32>, CellErrors) {
    let (feature_idx, target_idx, columns) = (cols.features, cols.targets, cols.names);
    let rows = records.len();
    let mut features = Vec::with_capacity(rows * feature_idx.len());
    let mut targets = Vec::with_capacity(rows * target_idx.len());
    let mut errors = CellErrors::default();
    for record in records {
        if record.cells.len() != columns.len() {
            let span = line_span(text, record.start);
            errors.push(
                Diagnostic::error_in(
                    file,
                    format!(
                        "row has {} cell{}, but the header has {} columns",
                        record.cells.len(),
                        plural(record.cells.len()),
                        columns.len()
                    ),
                    span,
                )
                .with_label(format!("{} cells", record.cells.len()))
                .with_note(format!("the columns are: {}", list(columns))),
            );
            continue;
        }
        let mut spans: Option<Vec<Span>> = None;
        let mut cell_span = |i: usize| {
            let s = spans.get_or_insert_with(|| cell_spans(text, record.start));
            s.get(i)
                .copied()
                .unwrap_or_else(|| line_span(text, record.start))
        };
        for &i in feature_idx {
            match number(&record.cells[i], &columns[i]) {
                Ok(x) => features.push(x),
                Err((msg, label)) => {
                    errors.push(Diagnostic::error_in(file, msg, cell_span(i)).with_label(label))
                }
            }
        }
        for &i in target_idx {
            let checked = number(&record.cells[i], &columns[i])
                .and_then(|x| target_value(x, &record.cells[i], model));
            match checked {
                Ok(x) => targets.push(x),
                Err((msg, label)) => {
                    errors.push(Diagnostic::error_in(file, msg, cell_span(i)).with_label(label))
                }
            }
        }
    }
    (features, targets, errors)
}

/// Parses the CSV into records. The `csv` crate handles quoting; we keep
/// each record's start offset to point diagnostics into the file.
fn read_records(text: &str, file: FileId) -> Result<Vec<Record>, Vec<Diagnostic>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let start = record.position().map_or(0, |p| p.byte() as usize);
                records.push(Record {
                    cells: record.clone(),
                    start,
                });
            }
            Err(e) => {
                let start = e.position().map_or(0, |p| p.byte() as usize);
                return Err(vec![
                    Diagnostic::error_in(
                        file,
                        format!("cannot read the CSV: {e}"),
                        line_span(text, start),
                    )
                    .with_label("here"),
                ]);
            }
        }
    }
    Ok(records)
}

/// The header must name every column once, and must not look like data.
fn check_header(
    text: &str,
    file: FileId,
    header: &Record,
    path: &str,
) -> Result<(), Vec<Diagnostic>> {
    let spans = cell_spans(text, header.start);
    let span = |i: usize| {
        spans
            .get(i)
            .copied()
            .unwrap_or_else(|| line_span(text, header.start))
    };
    if header.cells.iter().all(|c| c.parse::<f64>().is_ok()) {
        return Err(vec![
            Diagnostic::error_in(
                file,
                format!("'{path}' has no header row"),
                line_span(text, header.start),
            )
            .with_label("this looks like data")
            .with_help("add a first line naming the columns, such as: x1,x2,y"),
        ]);
    }
    let mut diags = Vec::new();
    // First position of each name: a linear scan per column was quadratic
    // and took minutes on a header of 100,000 columns.
    let mut firsts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (i, c) in header.cells.iter().enumerate() {
        let first = *firsts.entry(c).or_insert(i);
        if c.is_empty() {
            diags.push(
                Diagnostic::error_in(file, format!("column {} has no name", i + 1), span(i))
                    .with_label("empty header cell")
                    .with_help("every column needs a name in the first line"),
            );
        } else if first < i {
            diags.push(
                Diagnostic::error_in(file, format!("column '{c}' appears twice"), span(i))
                    .with_label("repeated here")
                    .with_secondary(span(first), "first here")
                    .with_help("give each column its own name"),
            );
        }
    }
    if diags.is_empty() { Ok(()) } else { Err(diags) }
}

fn missing_target(spec: &DataSpec, i: usize, columns: &[String]) -> Diagnostic {
    let name = &spec.targets[i];
    let span = spec.target_spans.get(i).copied().unwrap_or(spec.span);
    let mut d = Diagnostic::error(format!("no column '{name}' in '{}'", spec.path), span)
        .with_label("not a column of the data file");
    if let Some(s) = suggest(name, columns.iter().map(String::as_str)) {
        d = d.with_help(format!("did you mean '{s}'?"));
    }
    d.with_note(format!("the columns are: {}", list(columns)))
}

/// `cross_entropy` takes one column of class indices; every other loss one
/// column per output.
fn check_target_count(spec: &DataSpec, model: &Model) -> Option<Diagnostic> {
    let n = spec.targets.len();
    let span = match (spec.target_spans.first(), spec.target_spans.last()) {
        (Some(a), Some(b)) => a.to(*b),
        _ => spec.span,
    };
    let k = model.output_width();
    if model.loss == Loss::CrossEntropy {
        if n == 1 {
            return None;
        }
        return Some(
            Diagnostic::error(
                format!("'cross_entropy' needs one target column of class indices, found {n}"),
                span,
            )
            .with_label(format!("{n} target columns"))
            .with_secondary(model.loss_span, "the loss")
            .with_note(format!(
                "the target column holds the class index 0..{} of each row",
                k - 1
            )),
        );
    }
    if n == k {
        return None;
    }
    let last = model.layers.last().map_or(model.span, |l| l.span);
    Some(
        Diagnostic::error(
            format!(
                "model '{}' has {k} output{} but the data names {n} target column{}",
                model.name,
                plural(k),
                plural(n)
            ),
            span,
        )
        .with_label(format!("{n} target column{}", plural(n)))
        .with_secondary(last, format!("{k} output{}", plural(k)))
        .with_note("each output is paired with one target column, in the order of target=[...]"),
    )
}

/// A cell as a finite float32, or the message and label of its problem.
fn number(cell: &str, column: &str) -> Result<f32, (String, String)> {
    // Built only for a problem: a label per cell was a third of reading
    // the digits CSV.
    let label = || format!("column '{column}'");
    if cell.is_empty() {
        return Err((
            format!("empty cell in column '{column}'"),
            "expected a number".into(),
        ));
    }
    let Ok(x) = cell.parse::<f64>() else {
        return Err((format!("not a number: '{cell}'"), label()));
    };
    if !x.is_finite() {
        return Err((format!("'{cell}' is not a finite number"), label()));
    }
    if x.abs() > f32::MAX as f64 {
        return Err((format!("'{cell}' is too large for float32"), label()));
    }
    Ok(x as f32)
}

/// Class indices for `cross_entropy`, values in [0, 1] for `bce`.
fn target_value(x: f32, cell: &str, model: &Model) -> Result<f32, (String, String)> {
    let k = model.output_width();
    match model.loss {
        Loss::CrossEntropy if x.fract() != 0.0 => Err((
            format!("class index '{cell}' is not a whole number"),
            format!("expected a class index from 0 to {}", k - 1),
        )),
        Loss::CrossEntropy if x < 0.0 || x >= k as f32 => Err((
            format!("class index '{cell}' is out of range"),
            format!("model '{}' has {k} classes, 0 to {}", model.name, k - 1),
        )),
        Loss::Bce if !(0.0..=1.0).contains(&x) => Err((
            format!("bce target '{cell}' is not between 0 and 1"),
            "binary cross-entropy compares probabilities".into(),
        )),
        _ => Ok(x),
    }
}

/// Collects cell-level diagnostics up to [`MAX_CELL_ERRORS`], counting the rest.
#[derive(Default)]
struct CellErrors {
    diags: Vec<Diagnostic>,
    more: usize,
}

impl CellErrors {
    fn push(&mut self, d: Diagnostic) {
        if self.diags.len() < MAX_CELL_ERRORS {
            self.diags.push(d);
        } else {
            self.more += 1;
        }
    }

    fn finish(mut self, path: &str) -> Vec<Diagnostic> {
        if self.more > 0
            && let Some(last) = self.diags.pop()
        {
            let note = format!("{} more problems in '{path}' are not shown", self.more);
            self.diags.push(last.with_note(note));
        }
        self.diags
    }
}

/// The span from `start` to the end of its line (line break excluded).
fn line_span(text: &str, start: usize) -> Span {
    let start = start.min(text.len());
    let end = text[start..]
        .find(['\n', '\r'])
        .map_or(text.len(), |i| start + i);
    Span::new(start, end)
}

/// The trimmed span of each cell of the record starting at `start`: commas
/// outside double quotes separate cells, a line break outside quotes ends it.
fn cell_spans(text: &str, start: usize) -> Vec<Span> {
    let bytes = text.as_bytes();
    let mut spans = Vec::new();
    let mut cell_start = start.min(bytes.len());
    let mut in_quotes = false;
    let mut i = cell_start;
    let trimmed = |a: usize, b: usize| {
        let mut a = a;
        let mut b = b;
        while a < b && (bytes[a] == b' ' || bytes[a] == b'\t') {
            a += 1;
        }
        while b > a && (bytes[b - 1] == b' ' || bytes[b - 1] == b'\t') {
            b -= 1;
        }
        Span::new(a, b)
    };
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                spans.push(trimmed(cell_start, i));
                cell_start = i + 1;
            }
            b'\n' | b'\r' if !in_quotes => break,
            _ => {}
        }
        i += 1;
    }
    spans.push(trimmed(cell_start, i));
    spans
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A list of names for notes, shortened in the middle when long.
pub fn list(names: &[String]) -> String {
    if names.len() <= 8 {
        return names.join(", ");
    }
    let head = names[..3].join(", ");
    let tail = names[names.len() - 2..].join(", ");
    format!("{head}, ..., {tail}")
}

#[cfg(test)]
mod tests;
