//! Maps between byte offsets in the TOML text, line:column positions and key paths such as
//! `vip[0].rule[1].ports`, using the span-preserving `toml_edit` parser.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

/// One step of a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Parses `a.b[2].c` into segments (the inverse of [`render`] for simple keys).
fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            segs.push(Seg::Key(rest[..open].to_string()));
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(close) = stripped.find(']') else {
                    break;
                };
                if let Ok(i) = stripped[..close].parse() {
                    segs.push(Seg::Index(i));
                }
                rest = &stripped[close + 1..];
            }
        } else {
            segs.push(Seg::Key(rest.to_string()));
        }
    }
    segs
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut offset = offset;
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// A parsed document used only to locate keys.
pub(crate) struct Locator<'a> {
    text: &'a str,
    doc: Option<ImDocument<&'a str>>,
}

impl<'a> Locator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Locator {
            text,
            doc: ImDocument::parse(text).ok(),
        }
    }

    /// The key path of the innermost key or value whose span contains `offset`.
    pub(crate) fn key_at(&self, offset: usize) -> String {
        let Some(doc) = &self.doc else {
            return String::new();
        };
        let mut best: Option<(usize, Vec<Seg>)> = None;
        let mut path = Vec::new();
        visit_table(doc.as_table(), offset, &mut path, &mut best);
        best.map(|(_, p)| render(&p)).unwrap_or_default()
    }

    /// Line and column of `key` (a path like `vip[0].rule[1].ports`); if the key is absent from
    /// the file (a default value), the position of its nearest present ancestor.
    pub(crate) fn position_of(&self, key: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let segs = parse_path(key);
        let mut item_span: Option<Range<usize>> = None;
        let mut cur = Cursor::Table(doc.as_table());
        for seg in &segs {
            let next = match (cur, seg) {
                (Cursor::Table(t), Seg::Key(k)) => match t.get_key_value(k) {
                    Some((key, item)) => {
                        item_span = span_of(key, item).or(item_span);
                        Cursor::from_item(item)
                    }
                    None => None,
                },
                (Cursor::Inline(t), Seg::Key(k)) => match t.get_key_value(k) {
                    Some((key, item)) => {
                        item_span = span_of(key, item).or(item_span);
                        Cursor::from_item(item)
                    }
                    None => None,
                },
                (Cursor::Tables(a), Seg::Index(i)) => a.get(*i).map(|t| {
                    item_span = t.span().or(item_span.take());
                    Cursor::Table(t)
                }),
                (Cursor::Array(a), Seg::Index(i)) => a.get(*i).map(|v| {
                    item_span = v.span().or(item_span.take());
                    Cursor::from_value(v)
                }),
                _ => None,
            };
            match next {
                Some(c) => cur = c,
                None => break,
            }
        }
        item_span.map(|s| line_col(self.text, s.start))
    }
}

/// Where a key "is": the header of a `[table]`, else the key itself.
fn span_of(key: &toml_edit::Key, item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Table(t) if t.span().is_some() => t.span(),
        _ => key.span().or_else(|| item.span()),
    }
}

#[derive(Clone, Copy)]
enum Cursor<'d> {
    Table(&'d Table),
    Inline(&'d toml_edit::InlineTable),
    Tables(&'d toml_edit::ArrayOfTables),
    Array(&'d toml_edit::Array),
    Leaf,
}

impl<'d> Cursor<'d> {
    fn from_item(item: &'d Item) -> Option<Self> {
        match item {
            Item::None => None,
            Item::Table(t) => Some(Cursor::Table(t)),
            Item::ArrayOfTables(a) => Some(Cursor::Tables(a)),
            Item::Value(v) => Some(Cursor::from_value(v)),
        }
    }
    fn from_value(v: &'d Value) -> Self {
        match v {
            Value::InlineTable(t) => Cursor::Inline(t),
            Value::Array(a) => Cursor::Array(a),
            _ => Cursor::Leaf,
        }
    }
}

fn consider(
    span: Option<Range<usize>>,
    offset: usize,
    path: &[Seg],
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    let Some(span) = span else { return };
    // Spans are half-open; an error at the very end of a value still belongs to it.
    if span.start <= offset && offset <= span.end {
        let len = span.end - span.start;
        let better = match best {
            None => true,
            Some((l, p)) => len < *l || (len == *l && path.len() > p.len()),
        };
        if better {
            *best = Some((len, path.to_vec()));
        }
    }
}

fn visit_table(
    t: &Table,
    offset: usize,
    path: &mut Vec<Seg>,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    for (k, item) in t.iter() {
        path.push(Seg::Key(k.to_string()));
        if let Some(key) = t.key(k) {
            consider(key.span(), offset, path, best);
        }
        visit_item(item, offset, path, best);
        path.pop();
    }
}

fn visit_item(
    item: &Item,
    offset: usize,
    path: &mut Vec<Seg>,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    match item {
        Item::None => {}
        Item::Value(v) => visit_value(v, offset, path, best),
        Item::Table(t) => {
            consider(t.span(), offset, path, best);
            visit_table(t, offset, path, best);
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                consider(t.span(), offset, path, best);
                visit_table(t, offset, path, best);
                path.pop();
            }
        }
    }
}

fn visit_value(
    v: &Value,
    offset: usize,
    path: &mut Vec<Seg>,
    best: &mut Option<(usize, Vec<Seg>)>,
) {
    consider(v.span(), offset, path, best);
    match v {
        Value::Array(a) => {
            for (i, v) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                visit_value(v, offset, path, best);
                path.pop();
            }
        }
        Value::InlineTable(t) => {
            for (k, v) in t.iter() {
                path.push(Seg::Key(k.to_string()));
                if let Some(key) = t.key(k) {
                    consider(key.span(), offset, path, best);
                }
                visit_value(v, offset, path, best);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "[module]\nname = \"web\"\n\n[[vip]]\naddr = \"198.18.0.10\"\n[[vip.rule]]\nproto = \"tcp\"\n[[vip.rule]]\nports = \"80\"\n";

    #[test]
    fn line_col_counts_chars() {
        assert_eq!(line_col("ab\ncé\nx", 0), (1, 1));
        assert_eq!(line_col("ab\ncé\nx", 3), (2, 1));
        assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
        assert_eq!(line_col("ab\ncé\nx", 100), (3, 2));
    }

    #[test]
    fn path_round_trip() {
        let p = parse_path("vip[0].rule[12].ports");
        assert_eq!(render(&p), "vip[0].rule[12].ports");
        assert_eq!(p.len(), 5);
    }

    #[test]
    fn key_at_finds_nested_array_of_tables() {
        let loc = Locator::new(DOC);
        let off = DOC.find("\"80\"").unwrap();
        assert_eq!(loc.key_at(off), "vip[0].rule[1].ports");
        let off = DOC.find("\"web\"").unwrap();
        assert_eq!(loc.key_at(off), "module.name");
    }

    #[test]
    fn position_of_key_or_nearest_ancestor() {
        let loc = Locator::new(DOC);
        assert_eq!(loc.position_of("vip[0].rule[1].ports"), Some((9, 1)));
        assert_eq!(loc.position_of("vip[0].rule[0].proto"), Some((7, 1)));
        // Absent key: falls back to its table.
        assert_eq!(loc.position_of("vip[0].rule[1].affinity"), Some((8, 1)));
        assert_eq!(loc.position_of("module.buckets"), Some((1, 1)));
        assert_eq!(loc.position_of("heartbeat.pulse"), None);
    }
}
