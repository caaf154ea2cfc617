//! The one table layout of `fvs`: every columned view (services, connections, counters, port
//! statistics) is rows of cells laid out here.

use std::fmt::Write as _;

/// Column widths for rows of cells: each column as wide as its widest cell, at least its
/// minimum. Columns from `right_from` on are right-aligned.
pub(super) struct Layout {
    widths: Vec<usize>,
    right_from: usize,
    sep: &'static str,
}

impl Layout {
    pub(super) fn new<'r>(
        mins: &[usize],
        right_from: usize,
        sep: &'static str,
        rows: impl IntoIterator<Item = &'r Vec<String>>,
    ) -> Layout {
        let mut widths = mins.to_vec();
        for row in rows {
            for (c, cell) in row.iter().enumerate() {
                if c >= widths.len() {
                    widths.push(0);
                }
                widths[c] = widths[c].max(cell.len());
            }
        }
        Layout { widths, right_from, sep }
    }

    /// One line, without trailing blanks.
    pub(super) fn line(&self, cells: &[String]) -> String {
        let mut s = String::new();
        for (c, cell) in cells.iter().enumerate() {
            if c > 0 {
                s.push_str(self.sep);
            }
            let w = self.widths[c];
            let _ = if c >= self.right_from { write!(s, "{cell:>w$}") } else { write!(s, "{cell:<w$}") };
        }
        let mut line = s.trim_end().to_string();
        line.push('\n');
        line
    }

    /// A line per row.
    pub(super) fn lines(&self, rows: &[Vec<String>]) -> String {
        rows.iter().map(|r| self.line(r)).collect()
    }
}

/// Rows laid out with the first `right_from` columns left-aligned, the others right-aligned.
pub(super) fn table(rows: &[Vec<String>], mins: &[usize], right_from: usize, sep: &'static str) -> String {
    Layout::new(mins, right_from, sep, rows).lines(rows)
}

pub(super) fn cells<const N: usize>(items: [&str; N]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A header line and a value line after a label, indented: `    RX:  packets  bytes` over the
/// numbers, right-aligned.
pub(super) fn stat_block(label: &str, headers: &[&str], values: &[u64]) -> String {
    let head = std::iter::once(label).chain(headers.iter().copied()).map(str::to_string).collect();
    let vals = std::iter::once(String::new()).chain(values.iter().map(u64::to_string)).collect();
    let rows = [head, vals];
    let layout = Layout::new(&[], 1, "  ", &rows);
    rows.iter().map(|r| format!("    {}", layout.line(r))).collect()
}
