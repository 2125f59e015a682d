//! Worked numbers: the equations of `slope grad` with each one's value on
//! one data row (`slope grad --sample N`). The values are computed by the
//! caller (compiled code); this module only lays them out.
//!
//! How values print: a scalar as a number; a vector of up to 8 entries in
//! full, `[a, b, c]`; a longer one as its first 8 entries, `…`, then its
//! length and Euclidean norm. A matrix (`∂ℓ/∂W` is `[out, in]`, as the
//! weights are) prints by rows, `[[a, b], [c, d]]`, with the same budget:
//! its first 8 entries in row-major order, a `…` where a row or the rows
//! are cut, then its shape and Frobenius norm. Numbers have 4 significant
//! digits.

use super::Equations;

/// Entries shown before a value is cut.
const SHOWN: usize = 8;

/// The closing comment of the worked numbers: how to read the values.
pub(super) const LEGEND: &str = "# values: 4 significant digits; past 8 entries (matrices by rows), \
the first 8, `…`, the shape and the norm (Frobenius for matrices)\n";

/// One data row and every number computed on it, for the worked equations.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// What the numbers are, printed first as a comment (e.g. "row 1 of
    /// xor.csv at weights w.safetensors").
    pub title: String,
    /// The row (from 1), as the command line counts.
    pub row: usize,
    /// The row's features.
    pub x: Vec<f64>,
    /// The row's targets (one class index for `cross_entropy`).
    pub t: Vec<f64>,
    /// The weights, in parameter order.
    pub params: Vec<Vec<f64>>,
    /// One value per equation, parallel to [`Equations::value_nodes`].
    pub values: Vec<Vec<f64>>,
}

impl Equations {
    /// The text equations, each followed by its value on `sample`
    /// (aligned under its `=`), the weights' values in the legend.
    pub fn render_worked(&self, sample: &Sample) -> String {
        self.text(Some(sample))
    }

    /// The JSON of [`Equations::json`] with, in each equation, its `shape`
    /// (one row's) and `value` (every entry, row-major), and a `sample`
    /// object: the row, its `x` and `t`, and the weights by name.
    pub fn json_worked(&self, sample: &Sample) -> String {
        self.json_value(crate::graph::print::Style::Text, Some(sample))
            .to_string()
    }
}

/// The first lines of the worked numbers: what they are and the row itself.
pub(super) fn intro(eq: &Equations, s: &Sample) -> String {
    let net = &eq.net;
    format!(
        "# worked numbers: {}\nx = {}\nt = {}\n\n",
        s.title,
        show(&eq.dims(net.x), &s.x),
        show(&eq.dims(net.t), &s.t)
    )
}

/// The `sample` object of [`Equations::json_worked`].
pub(super) fn json(eq: &Equations, s: &Sample) -> serde_json::Value {
    let mut weights = serde_json::Map::new();
    for (p, w) in eq.net.params.iter().zip(&s.params) {
        weights.insert(p.name.clone(), w.clone().into());
    }
    serde_json::json!({
        "row": s.row,
        "x": s.x,
        "t": s.t,
        "weights": weights,
    })
}

/// A value of shape `dims` (row-major `data`) as the worked numbers print it.
pub(super) fn show(dims: &[usize], data: &[f64]) -> String {
    let count: usize = dims.iter().product();
    if count != data.len() {
        // Not the shape it claims: show it flat rather than misread it.
        return list(data);
    }
    match dims {
        [] => number(data[0]),
        [_] => list(data),
        [rows, cols] => matrix(*rows, *cols, data),
        _ => {
            let shape: Vec<String> = dims.iter().map(|d| d.to_string()).collect();
            let shown = list(&data[..data.len().min(SHOWN)]);
            if data.len() <= SHOWN {
                return format!("{shown}  ({})", shape.join("×"));
            }
            let head = shown.trim_end_matches(']');
            format!(
                "{head}, …]  ({}, norm {})",
                shape.join("×"),
                number(norm(data))
            )
        }
    }
}

/// A vector: in full up to 8 entries, else its first 8, `…`, length and norm.
fn list(data: &[f64]) -> String {
    let shown: Vec<String> = data.iter().take(SHOWN).map(|&v| number(v)).collect();
    if data.len() <= SHOWN {
        return format!("[{}]", shown.join(", "));
    }
    format!(
        "[{}, …]  ({} entries, norm {})",
        shown.join(", "),
        data.len(),
        number(norm(data))
    )
}

/// A matrix by rows, its first 8 entries in row-major order.
fn matrix(rows: usize, cols: usize, data: &[f64]) -> String {
    let mut shown_rows = Vec::new();
    let mut budget = SHOWN;
    for row in data.chunks(cols.max(1)).take(rows) {
        if budget == 0 {
            shown_rows.push("…".to_string());
            break;
        }
        let mut cells: Vec<String> = row.iter().take(budget).map(|&v| number(v)).collect();
        budget -= cells.len();
        if cells.len() < row.len() {
            cells.push("…".to_string());
        }
        shown_rows.push(format!("[{}]", cells.join(", ")));
    }
    let body = format!("[{}]", shown_rows.join(", "));
    if data.len() <= SHOWN {
        return body;
    }
    format!("{body}  ({rows}×{cols}, norm {})", number(norm(data)))
}

/// The Euclidean (for a matrix, Frobenius) norm.
fn norm(data: &[f64]) -> f64 {
    data.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `v` with 4 significant digits, trailing zeros dropped: `0.006648`,
/// `-1.5`, `1234`, `1.2e-7`.
pub(super) fn number(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN"
        } else if v > 0.0 {
            "inf"
        } else {
            "-inf"
        }
        .to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let exp = v.abs().log10().floor() as i32;
    let s = if (-4..6).contains(&exp) {
        let decimals = (3 - exp).max(0) as usize;
        trim_zeros(&format!("{v:.decimals$}"))
    } else {
        let s = format!("{v:.3e}");
        match s.split_once('e') {
            Some((mantissa, e)) => format!("{}e{e}", trim_zeros(mantissa)),
            None => s,
        }
    };
    if s == "-0" { "0".to_string() } else { s }
}

/// `1.2500` → `1.25`, `2.000` → `2`; integers unchanged.
fn trim_zeros(s: &str) -> String {
    if !s.contains('.') {
        return s.to_string();
    }
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_have_four_significant_digits() {
        assert_eq!(number(0.0066481), "0.006648");
        assert_eq!(number(-1.5), "-1.5");
        assert_eq!(number(1234.56), "1235");
        assert_eq!(number(123456.0), "123456");
        assert_eq!(number(1234567.0), "1.235e6");
        assert_eq!(number(1.2e-7), "1.2e-7");
        assert_eq!(number(9.99996), "10");
        assert_eq!(number(-0.00001), "-1e-5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(-1e-300 * 1e-300), "0");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn vectors_are_cut_after_eight_entries_with_their_norm() {
        assert_eq!(show(&[], &[0.5]), "0.5");
        assert_eq!(show(&[3], &[1.0, 2.0, 3.0]), "[1, 2, 3]");
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // sqrt(1 + 4 + ... + 100) = sqrt(385) = 19.62
        assert_eq!(
            show(&[10], &v),
            "[1, 2, 3, 4, 5, 6, 7, 8, …]  (10 entries, norm 19.62)"
        );
    }

    #[test]
    fn matrices_print_by_rows_with_the_same_budget() {
        let m: Vec<f64> = (1..=8).map(f64::from).collect();
        assert_eq!(show(&[4, 2], &m), "[[1, 2], [3, 4], [5, 6], [7, 8]]");
        assert_eq!(show(&[1, 4], &m[..4]), "[[1, 2, 3, 4]]");
        let m: Vec<f64> = (1..=12).map(f64::from).collect();
        // sqrt(1 + 4 + ... + 144) = sqrt(650) = 25.5
        assert_eq!(
            show(&[4, 3], &m),
            "[[1, 2, 3], [4, 5, 6], [7, 8, …], …]  (4×3, norm 25.5)"
        );
        assert_eq!(
            show(&[2, 6], &m),
            "[[1, 2, 3, 4, 5, 6], [7, 8, …]]  (2×6, norm 25.5)"
        );
        let wide: Vec<f64> = vec![1.0; 20];
        assert_eq!(
            show(&[2, 10], &wide),
            "[[1, 1, 1, 1, 1, 1, 1, 1, …], …]  (2×10, norm 4.472)"
        );
        assert_eq!(show(&[2], &[1.0, 2.0, 3.0]), "[1, 2, 3]");
    }
}
