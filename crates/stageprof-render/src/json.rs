//! A small JSON writer. The recorder's crate may not pull in a JSON parser,
//! and writing is all it needs.

use std::fmt::Write;

/// Appends `s` as a JSON string literal. Besides what JSON requires, `<`,
/// `>`, `&` and U+2028/U+2029 are escaped, so the output can also be
/// embedded in HTML `<script>` blocks unchanged.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a float as JSON; non-finite values become `null`.
pub fn push_f64(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push_str("null");
    }
}

/// Appends nanoseconds as microseconds with three decimals, exactly.
pub fn push_us(out: &mut String, ns: u64) {
    let _ = write!(out, "{}.{:03}", ns / 1000, ns % 1000);
}

/// Builds one JSON value, keeping track of commas.
pub struct JsonWriter {
    out: String,
    /// Per open container: whether it has no member yet.
    empty: Vec<bool>,
}

impl Default for JsonWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl JsonWriter {
    /// An empty document.
    pub fn new() -> Self {
        JsonWriter { out: String::new(), empty: Vec::new() }
    }

    /// The document written.
    pub fn finish(self) -> String {
        debug_assert!(self.empty.is_empty(), "unclosed JSON container");
        self.out
    }

    fn sep(&mut self) {
        if let Some(empty) = self.empty.last_mut() {
            if !*empty {
                self.out.push(',');
            }
            *empty = false;
        }
    }

    /// Starts a member of the current object; the value call that follows completes it.
    pub fn key(&mut self, k: &str) -> &mut Self {
        self.sep();
        push_str(&mut self.out, k);
        self.out.push(':');
        // The value that follows must not add another comma.
        if let Some(empty) = self.empty.last_mut() {
            *empty = true;
        }
        self
    }

    fn value_done(&mut self) {
        if let Some(empty) = self.empty.last_mut() {
            *empty = false;
        }
    }

    /// Opens an object.
    pub fn begin_object(&mut self) -> &mut Self {
        self.open('{')
    }

    /// Closes an object.
    pub fn end_object(&mut self) -> &mut Self {
        self.close('}')
    }

    /// Opens an array.
    pub fn begin_array(&mut self) -> &mut Self {
        self.open('[')
    }

    /// Closes an array.
    pub fn end_array(&mut self) -> &mut Self {
        self.close(']')
    }

    fn open(&mut self, bracket: char) -> &mut Self {
        self.sep();
        self.out.push(bracket);
        self.empty.push(true);
        self
    }

    fn close(&mut self, bracket: char) -> &mut Self {
        self.empty.pop();
        self.out.push(bracket);
        self.value_done();
        self
    }

    /// A string value, escaped.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.sep();
        push_str(&mut self.out, s);
        self
    }

    /// A value written as it displays (numbers, bools, `null`).
    pub fn raw(&mut self, v: impl std::fmt::Display) -> &mut Self {
        self.sep();
        let _ = write!(self.out, "{v}");
        self
    }

    /// A number; `null` where it is not finite.
    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.sep();
        push_f64(&mut self.out, v);
        self
    }

    /// A value, or `null`.
    pub fn opt(&mut self, v: Option<impl std::fmt::Display>) -> &mut Self {
        match v {
            Some(v) => self.raw(v),
            None => self.raw("null"),
        }
    }

    /// A key followed by a number, bool or other Display value written as is.
    pub fn field(&mut self, k: &str, v: impl std::fmt::Display) -> &mut Self {
        self.key(k).raw(v)
    }

    /// A key and a string value.
    pub fn field_str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k).string(v)
    }

    /// A key and a value or `null`.
    pub fn field_opt(&mut self, k: &str, v: Option<impl std::fmt::Display>) -> &mut Self {
        self.key(k).opt(v)
    }

    /// A key and a number.
    pub fn field_f64(&mut self, k: &str, v: f64) -> &mut Self {
        self.key(k).f64(v)
    }

    /// A key and an array of strings.
    pub fn field_strs<'a>(&mut self, k: &str, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.key(k).begin_array();
        for s in items {
            self.string(s);
        }
        self.end_array()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_hostile() {
        let name = "q\"b\\n\nt\t\u{1}\u{1b}<script>&\u{2028}é😀";
        let mut s = String::new();
        push_str(&mut s, name);
        assert_eq!(s, r#""q\"b\\n\nt\t\u0001\u001b\u003cscript\u003e\u0026\u2028é😀""#);
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, name);
    }

    #[test]
    fn writer_places_commas() {
        let mut w = JsonWriter::new();
        w.begin_object().field("a", 1).field_strs("b", ["x", "y"]).key("c").begin_object().end_object();
        w.key("d").begin_array().begin_object().field_opt("e", None::<u64>).end_object().raw(2).end_array();
        w.field_f64("f", f64::NAN).end_object();
        let out = w.finish();
        assert_eq!(out, r#"{"a":1,"b":["x","y"],"c":{},"d":[{"e":null},2],"f":null}"#);
        serde_json::from_str::<serde_json::Value>(&out).unwrap();
    }

    #[test]
    fn microseconds_are_exact() {
        let mut s = String::new();
        push_us(&mut s, 1_234_567_890_123_456_789);
        assert_eq!(s, "1234567890123456.789");
    }
}
