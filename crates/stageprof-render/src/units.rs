//! Human units for tables: durations, bytes, and names made safe for a terminal.

use stageprof_analysis::{FigureValue, Unit};

/// `812 ns`, `12.3 µs`, `4.56 ms`, `1.234 s`.
pub fn duration(ns: u64) -> String {
    let f = ns as f64;
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", f / 1e3),
        1_000_000..=999_999_999 => format!("{:.2} ms", f / 1e6),
        _ => format!("{:.3} s", f / 1e9),
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `1.20 GiB`.
pub fn bytes(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if b < 1024 {
        return format!("{b} B");
    }
    let mut v = b as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// Like [`bytes`], with a sign: `+1.5 MiB`, `-512 B`, `0 B`.
pub fn signed_bytes(b: i64) -> String {
    match b {
        0 => "0 B".into(),
        b if b > 0 => format!("+{}", bytes(b as u64)),
        b => format!("-{}", bytes(b.unsigned_abs())),
    }
}

/// A figure's value as a table shows it; `-` where it was not measured.
pub fn figure_text(unit: Unit, value: Option<FigureValue>) -> String {
    match value {
        None => "-".into(),
        Some(FigureValue::Unsigned(v)) => match unit {
            Unit::Nanoseconds => duration(v),
            Unit::Bytes => bytes(v),
            _ => v.to_string(),
        },
        Some(FigureValue::Signed(v)) => match unit {
            Unit::Bytes | Unit::SignedBytes => signed_bytes(v),
            _ => v.to_string(),
        },
        Some(FigureValue::Real(v)) => match unit {
            Unit::Percent => format!("{v:.1}"),
            _ => format!("{v:.3}"),
        },
        Some(FigureValue::Flag(v)) => (if v { "yes" } else { "no" }).into(),
    }
}

/// Characters of a name shown in a table or report; JSON and Chrome traces keep names whole.
pub const NAME_CHARS: usize = 100;

/// A GPU kernel's name as a person reads it: template arguments and
/// parameter lists elided (`<…>`, `(…)`) and a leading `void` dropped, so
/// `void at::native::f<4, Functor<float>>(int, Array<char*, 3>)` reads
/// `at::native::f<…>(…)`. Brackets after a space are words, not C++
/// (`Memcpy HtoD (Pageable -> Device)` stays whole).
pub fn kernel_name(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.contains(['<', '(']) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::with_capacity(name.len().min(128));
    let mut open: Vec<char> = Vec::new();
    let mut last = ' ';
    for c in name.chars() {
        match (c, open.last()) {
            ('<' | '(', None) if last != ' ' => {
                open.push(c);
                out.push_str(if c == '<' { "<…>" } else { "(…)" });
            }
            ('<' | '(', Some(_)) => open.push(c),
            ('>', Some('<')) | (')', Some('(')) => {
                open.pop();
            }
            (_, Some(_)) => {}
            (c, None) => out.push(c),
        }
        last = c;
    }
    let out = out.strip_prefix("void ").map(str::to_owned).unwrap_or(out);
    std::borrow::Cow::Owned(out)
}

/// A name cut to at most `max` characters for display: its start and end
/// kept, an ellipsis between (C++ templates differ at both ends). Linear in
/// the name's length, whatever it is.
pub fn shorten(name: &str, max: usize) -> std::borrow::Cow<'_, str> {
    let count = name.chars().count();
    if count <= max {
        return std::borrow::Cow::Borrowed(name);
    }
    let keep = max.saturating_sub(1);
    let (head, tail) = (keep - keep / 2, keep / 2);
    let head_end = name.char_indices().nth(head).map_or(name.len(), |(i, _)| i);
    let tail_start =
        if tail == 0 { name.len() } else { name.char_indices().nth(count - tail).map_or(name.len(), |(i, _)| i) };
    std::borrow::Cow::Owned(format!("{}…{}", &name[..head_end], &name[tail_start..]))
}

/// A stage path shortened name by name and joined with `sep`.
pub fn display_path(path: &[String], sep: &str) -> String {
    path.iter().map(|p| shorten(p, NAME_CHARS)).collect::<Vec<_>>().join(sep)
}

/// A name as a terminal shows it safely: control characters (newlines,
/// escape sequences) become visible escapes; everything else is kept.
pub fn terminal_safe(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What a bounded run kept of its raw events: parts, bytes against the
/// bound, and the stretches of the run (seconds since its start) they hold.
pub fn raw_events_kept(b: &stageprof_model::KeptRaw) -> String {
    let seconds = |ns: u64| format!("{:.3}", ns as f64 / 1e9);
    let spans: Vec<String> = b.kept.iter().map(|p| format!("{}-{}", seconds(p.start_ns), seconds(p.end_ns))).collect();
    format!(
        "{} of {} parts, {} of {} on disk, from {}",
        b.kept.len(),
        b.parts_written,
        bytes(b.kept.iter().map(|p| p.bytes).sum()),
        bytes(b.limit_bytes),
        if spans.is_empty() { "none".to_owned() } else { format!("{} s", spans.join(", ")) }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_names_lose_their_template_arguments_and_parameters() {
        let cases = [
            (
                "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<float>, at::detail::Array<char*, 3>)",
                "at::native::vectorized_elementwise_kernel<…>(…)",
            ),
            ("ampere_sgemm_128x64_nn", "ampere_sgemm_128x64_nn"),
            ("Memcpy HtoD (Pageable -> Device)", "Memcpy HtoD (Pageable -> Device)"),
            ("void cutlass::Kernel2<cutlass_80_tensorop_s1688gemm>(Params)", "cutlass::Kernel2<…>(…)"),
            // Cut short inside its arguments: what is open stays elided.
            ("void f<a, b<c", "f<…>"),
        ];
        for (name, want) in cases {
            assert_eq!(kernel_name(name), want, "{name}");
        }
    }

    #[test]
    fn long_names_keep_both_ends_and_short_ones_stay_whole() {
        assert_eq!(shorten("abcdefghij", 5), "ab…ij");
        assert_eq!(shorten("abcdefghij", 6), "abc…ij");
        assert_eq!(shorten("ééééé", 4), "éé…é");
        assert_eq!(shorten("short", 5), "short");
        assert_eq!(shorten("ab", 1), "…");
        let long = "x".repeat(10_000_000) + "END";
        let cut = shorten(&long, NAME_CHARS);
        assert_eq!(cut.chars().count(), NAME_CHARS);
        assert!(cut.starts_with("xxx") && cut.ends_with("END"));
    }

    #[test]
    fn formats() {
        assert_eq!(duration(812), "812 ns");
        assert_eq!(duration(12_345), "12.3 µs");
        assert_eq!(duration(4_561_000), "4.56 ms");
        assert_eq!(duration(1_234_000_000), "1.234 s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(signed_bytes(-512), "-512 B");
        assert_eq!(signed_bytes(2048), "+2.0 KiB");
        assert_eq!(terminal_safe("a\nb\u{1b}[31mé"), "a\\nb\\u{1b}[31mé");
    }
}
