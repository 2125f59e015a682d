//! `slope grad --latex`: a LaTeX fragment that compiles as it is. Section
//! titles, notes and the legend are `%` comments (`#` is special in LaTeX);
//! each section is one `align*` environment (amsmath) whose rows align on
//! the `=` before the right-hand side. No blank line falls inside an
//! environment (a paragraph break is an error in math mode).

use super::Equations;
use crate::graph::print::{Printer, Style};

/// The equations as a LaTeX fragment.
pub(super) fn render(eq: &Equations) -> String {
    let p = Printer::new(&eq.net.graph, Style::Latex).per_sample();
    let mut out = String::new();
    for (title, lines) in eq.sections() {
        if lines.is_empty() {
            continue;
        }
        out += &format!("% {title}\n\\begin{{align*}}\n");
        for (i, l) in lines.iter().enumerate() {
            if let Some(note) = &l.note {
                out += &format!("% {note}\n");
            }
            // `\\` ends every row but the last (after it, an empty row).
            let end = if i + 1 < lines.len() { " \\\\" } else { "" };
            out += &format!("{} &= {}{end}\n", l.lhs_latex, l.text(&p, Style::Latex));
        }
        out += "\\end{align*}\n\n";
    }
    for n in &eq.notes {
        out += &format!("% {n}\n");
    }
    out += "% where\n";
    for l in &eq.legend {
        out += &format!("%   {l}\n");
    }
    out
}
