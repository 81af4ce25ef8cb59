//! Aligned columns for people (`--json` is for programs). Hand-written: left-aligned cells
//! two spaces apart is all the CLI shows, which a table crate would bring in with styling,
//! borders and terminal detection that nothing here uses.

use serde_json::Value;

use super::terminal::clean;

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// A row of cells, made safe for the terminal here: they hold the API's text.
    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.headers.len(), "a cell per column");
        self.rows.push(cells.iter().map(|cell| clean(cell).into_owned()).collect());
    }

    pub fn render(&self) -> String {
        let width = |column: usize| {
            let cells = self.rows.iter().map(|row| row[column].chars().count());
            cells.chain([self.headers[column].len()]).max().unwrap_or(0)
        };
        let widths: Vec<usize> = (0..self.headers.len()).map(width).collect();
        let line = |cells: Vec<&str>| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            padded.join("  ").trim_end().to_owned() + "\n"
        };
        let mut out = line(self.headers.clone());
        for row in &self.rows {
            out += &line(row.iter().map(String::as_str).collect());
        }
        out
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }
}

/// A field as a cell: text as it is, numbers written out, lists joined, absent as `-`.
pub fn cell(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) if s.is_empty() => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as a cell: to the minute, in UTC (the header says so).
pub fn time_cell(value: &Value) -> String {
    match value.as_str().and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok()) {
        Some(at) => at.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M").to_string(),
        None => cell(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_align_to_their_widest_cell() {
        let mut table = Table::new(&["ID", "NAME"]);
        table.row(vec!["1".into(), "first".into()]);
        table.row(vec!["1234".into(), "-".into()]);
        assert_eq!(table.render(), "ID    NAME\n1     first\n1234  -\n");
    }

    #[test]
    fn cells_read_as_people_expect() {
        assert_eq!(cell(&json!(null)), "-");
        assert_eq!(cell(&json!(["read:keys", "write:keys"])), "read:keys,write:keys");
        assert_eq!(cell(&json!(42)), "42");
        assert_eq!(time_cell(&json!("2030-01-01T10:11:12.345+02:00")), "2030-01-01 08:11");
    }

    #[test]
    fn cells_cannot_drive_the_terminal() {
        let mut table = Table::new(&["NAME", "SCOPES"]);
        let hostile = json!("\u{1b}]0;owned\u{7}\u{9b}2J\u{202e}exe");
        table.row(vec![cell(&hostile), cell(&json!([hostile, "\u{2066}x\t"]))]);
        let shown = "\u{fffd}]0;owned\u{fffd}\u{fffd}2J\u{fffd}exe";
        // One character for each replaced: the columns still line up.
        assert_eq!(table.render(), format!("NAME{}  SCOPES\n{shown}  {shown},\u{fffd}x\u{fffd}\n", " ".repeat(13)));
    }
}
