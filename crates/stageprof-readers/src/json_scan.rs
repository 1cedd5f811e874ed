//! A streaming, forgiving scanner of Chrome trace JSON.
//!
//! Trace files are large (gigabytes), often damaged (cut short when the
//! profiled process died, names with unescaped quotes or invalid UTF-8) and
//! hold timestamps with more digits than a double keeps. So instead of a
//! general JSON parser this scanner reads one event object at a time from a
//! refilled buffer, keeps every value as its raw JSON text, and converts only
//! what the caller asks for: times as decimal text straight to integer
//! nanoseconds, names unescaped on demand. Memory is the buffer, whatever the
//! file's size.

use std::borrow::Cow;
use std::io::{self, Read};

/// A JSON value as it stands in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Raw<'a> {
    /// Absent, or `null`.
    #[default]
    Null,
    /// A string's content between the quotes, escapes not yet decoded.
    Str(&'a [u8]),
    /// A number's text.
    Num(&'a [u8]),
    Bool(bool),
    /// An object's whole text, braces included.
    Obj(&'a [u8]),
    /// An array's whole text, brackets included.
    Arr(&'a [u8]),
}

impl<'a> Raw<'a> {
    pub fn is_null(&self) -> bool {
        matches!(self, Raw::Null)
    }

    /// The value as text: strings unescaped (invalid UTF-8 replaced), numbers as written.
    pub fn text(&self) -> Cow<'a, str> {
        match *self {
            Raw::Str(s) if memchr::memchr(b'\\', s).is_none() => String::from_utf8_lossy(s),
            Raw::Str(s) => Cow::Owned(unescape(s)),
            Raw::Num(n) | Raw::Obj(n) | Raw::Arr(n) => String::from_utf8_lossy(n),
            Raw::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Raw::Null => Cow::Borrowed(""),
        }
    }

    /// The raw bytes of a string or number (no unescaping).
    pub fn bytes(&self) -> &'a [u8] {
        match *self {
            Raw::Str(s) | Raw::Num(s) | Raw::Obj(s) | Raw::Arr(s) => s,
            _ => b"",
        }
    }

    /// A time in microseconds (number, or number in a string) as integer
    /// nanoseconds, read from the decimal text without going through a double.
    pub fn micros_as_ns(&self) -> Option<i64> {
        match *self {
            Raw::Num(t) | Raw::Str(t) => micros_to_ns(t),
            _ => None,
        }
    }

    /// An integer (number, or number in a string); fractions are cut off.
    pub fn int(&self) -> Option<i64> {
        match *self {
            Raw::Num(t) | Raw::Str(t) => parse_int(t),
            Raw::Bool(b) => Some(i64::from(b)),
            _ => None,
        }
    }

    pub fn float(&self) -> Option<f64> {
        match *self {
            Raw::Num(t) | Raw::Str(t) => std::str::from_utf8(t).ok()?.trim().parse().ok(),
            _ => None,
        }
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<Raw<'a>> {
        let Raw::Obj(text) = *self else { return None };
        let mut c = Cursor { b: text, i: 0 };
        let mut found = None;
        c.object(|k, v| {
            if found.is_none() && k == key.as_bytes() {
                found = Some(v);
            }
        })
        .ok()?;
        found
    }

    /// Members of an object, in order, keys unescaped.
    pub fn members(&self) -> Vec<(Cow<'a, str>, Raw<'a>)> {
        let Raw::Obj(text) = *self else { return Vec::new() };
        let mut c = Cursor { b: text, i: 0 };
        let mut out = Vec::new();
        let _ = c.object(|k, v| out.push((Raw::Str(k).text(), v)));
        out
    }

    /// Elements of an array.
    pub fn elements(&self) -> Vec<Raw<'a>> {
        let Raw::Arr(text) = *self else { return Vec::new() };
        let mut c = Cursor { b: text, i: 0 };
        let mut out = Vec::new();
        let _ = c.array(|v| out.push(v));
        out
    }
}

/// Finds one member of objects by searching for its quoted key, without
/// parsing the members before it: built once per key, used per event.
///
/// A quoted key followed by `:` cannot occur inside a string value (which
/// cannot hold an unescaped quote), so the first match is the member; the
/// first one wins where nested objects repeat the key.
pub(crate) struct KeyFinder {
    finder: memchr::memmem::Finder<'static>,
}

impl KeyFinder {
    pub(crate) fn new(key: &str) -> KeyFinder {
        KeyFinder { finder: memchr::memmem::Finder::new(format!("\"{key}\"").as_bytes()).into_owned() }
    }

    /// The value of this key in object `obj`.
    pub(crate) fn get<'a>(&self, obj: Raw<'a>) -> Option<Raw<'a>> {
        let Raw::Obj(text) = obj else { return None };
        let mut from = 0;
        while let Some(k) = self.finder.find(&text[from..]) {
            let mut c = Cursor { b: text, i: from + k + self.finder.needle().len() };
            if c.peek().ok() == Some(b':') {
                c.i += 1;
                return c.value(&mut false).ok();
            }
            from += k + 1;
        }
        None
    }

    /// Whether the key appears in `obj` at all (a fast pre-check).
    pub(crate) fn in_text(&self, obj: Raw<'_>) -> bool {
        matches!(obj, Raw::Obj(text) if self.finder.find(text).is_some())
    }
}

/// The members of an object, parsed in one pass and kept on the stack, for
/// looking up several keys without scanning the object again each time.
pub(crate) struct Members<'a> {
    items: [(&'a [u8], Raw<'a>); MAX_MEMBERS],
    len: usize,
}

/// Members beyond this many are not kept (trace event args have about a dozen).
const MAX_MEMBERS: usize = 32;

impl<'a> Members<'a> {
    pub(crate) fn of(obj: Raw<'a>) -> Members<'a> {
        let mut m = Members { items: [(&[][..], Raw::Null); MAX_MEMBERS], len: 0 };
        if let Raw::Obj(text) = obj {
            let mut c = Cursor { b: text, i: 0 };
            let _ = c.object(|k, v| {
                if m.len < MAX_MEMBERS {
                    m.items[m.len] = (k, v);
                    m.len += 1;
                }
            });
        }
        m
    }

    pub(crate) fn get(&self, key: &str) -> Option<Raw<'a>> {
        self.items[..self.len].iter().find(|(k, _)| *k == key.as_bytes()).map(|(_, v)| *v)
    }
}

/// The fields of a trace event that readers use; the rest are skipped.
#[derive(Clone, Copy, Debug, Default)]
pub struct Event<'a> {
    pub ph: Raw<'a>,
    pub name: Raw<'a>,
    pub cat: Raw<'a>,
    pub pid: Raw<'a>,
    pub tid: Raw<'a>,
    pub ts: Raw<'a>,
    pub dur: Raw<'a>,
    pub id: Raw<'a>,
    pub bp: Raw<'a>,
    pub s: Raw<'a>,
    pub args: Raw<'a>,
    /// Byte offset of the event in the file (of the decompressed text).
    pub offset: u64,
}

impl<'a> Event<'a> {
    /// The phase letter (`X`, `B`, `E`, `i`, `C`, `M`, `s`, `f`, ...), or 0.
    pub fn phase(&self) -> u8 {
        match self.ph {
            Raw::Str(s) if !s.is_empty() => s[0],
            _ => 0,
        }
    }

    /// Member `key` of `args`.
    pub fn arg(&self, key: &str) -> Option<Raw<'a>> {
        self.args.get(key)
    }
}

/// Why scanning stopped early. Events before the problem have been delivered.
#[derive(Debug)]
pub enum ScanError {
    /// The input is not JSON (or not text at all).
    NotJson {
        /// The first bytes, for the message.
        found: String,
    },
    /// JSON, but neither an array of events nor an object with `traceEvents`.
    NoEvents,
    /// The input ends inside the event that starts at `offset`.
    Truncated {
        /// Where that event starts in the (decompressed) input.
        offset: u64,
    },
    /// Damage the scanner could not step over.
    Malformed {
        /// Where the damage is in the (decompressed) input.
        offset: u64,
        /// What is wrong there.
        message: String,
    },
    /// Reading the input failed.
    Io(io::Error),
}

impl std::fmt::Display for ScanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanError::NotJson { found } => write!(f, "not a JSON trace: it starts with {found:?}"),
            ScanError::NoEvents => write!(f, "JSON, but not a trace: no traceEvents array and not an array of events"),
            ScanError::Truncated { offset } => {
                write!(f, "the file is cut short: it breaks off in the event at byte {offset}")
            }
            ScanError::Malformed { offset, message } => write!(f, "malformed JSON at byte {offset}: {message}"),
            ScanError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ScanError {}

/// Parsing stopped: the buffer ends too soon, or the text is wrong.
#[derive(Debug)]
enum Stop {
    More,
    Bad(&'static str),
}

type P<T> = Result<T, Stop>;

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t')
}

/// A position in a complete or partial JSON text.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn ws(&mut self) {
        while self.i < self.b.len() && is_ws(self.b[self.i]) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> P<u8> {
        self.ws();
        self.b.get(self.i).copied().ok_or(Stop::More)
    }

    fn eat(&mut self, c: u8) -> P<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Stop::Bad("unexpected character"))
        }
    }

    /// A string after its opening quote: its raw content. A value string
    /// whose closing quote is not followed by `,` `}` `]` or `:` had an
    /// unescaped quote inside: the scan goes on to the next candidate.
    fn string_body(&mut self, lenient: bool, repaired: &mut bool) -> P<&'a [u8]> {
        let start = self.i;
        let mut at = self.i;
        loop {
            // Most strings are short: a plain loop finds their end before memchr would warm up.
            let short_end = (at + 32).min(self.b.len());
            match self.b[at..short_end].iter().position(|&b| b == b'"' || b == b'\\') {
                Some(k) => at += k,
                None if short_end == self.b.len() => return Err(Stop::More),
                None => {
                    let Some(k) = memchr::memchr2(b'"', b'\\', &self.b[short_end..]) else { return Err(Stop::More) };
                    at = short_end + k;
                }
            }
            if self.b[at] == b'\\' {
                at += 2;
                if at > self.b.len() {
                    return Err(Stop::More);
                }
                continue;
            }
            let end = at;
            at += 1;
            if lenient {
                let mut j = at;
                while j < self.b.len() && is_ws(self.b[j]) {
                    j += 1;
                }
                match self.b.get(j) {
                    None => return Err(Stop::More),
                    Some(b',' | b'}' | b']' | b':') => {}
                    Some(_) => {
                        *repaired = true;
                        continue;
                    }
                }
            }
            self.i = at;
            return Ok(&self.b[start..end]);
        }
    }

    fn key(&mut self) -> P<&'a [u8]> {
        self.eat(b'"')?;
        self.string_body(false, &mut false)
    }

    /// Any value, returned as its raw text.
    fn value(&mut self, repaired: &mut bool) -> P<Raw<'a>> {
        let c = self.peek()?;
        let start = self.i;
        match c {
            b'"' => {
                self.i += 1;
                Ok(Raw::Str(self.string_body(true, repaired)?))
            }
            b'{' | b'[' => {
                self.skip_nested()?;
                let text = &self.b[start..self.i];
                Ok(if c == b'{' { Raw::Obj(text) } else { Raw::Arr(text) })
            }
            b'-' | b'0'..=b'9' => {
                while self.i < self.b.len() && matches!(self.b[self.i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    self.i += 1;
                }
                if self.i == self.b.len() {
                    return Err(Stop::More);
                }
                Ok(Raw::Num(&self.b[start..self.i]))
            }
            b't' => self.literal(b"true", Raw::Bool(true)),
            b'f' => self.literal(b"false", Raw::Bool(false)),
            b'n' => self.literal(b"null", Raw::Null),
            _ => Err(Stop::Bad("a value cannot start here")),
        }
    }

    fn literal(&mut self, word: &[u8], v: Raw<'a>) -> P<Raw<'a>> {
        let end = self.i + word.len();
        if end > self.b.len() {
            return Err(Stop::More);
        }
        if &self.b[self.i..end] != word {
            return Err(Stop::Bad("unknown literal"));
        }
        self.i = end;
        Ok(v)
    }

    /// Steps over an object or array, strings and nesting included.
    fn skip_nested(&mut self) -> P<()> {
        let mut depth = 0usize;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'"' => {
                    self.i += 1;
                    self.string_body(false, &mut false)?;
                    continue;
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' => {
                    depth -= 1;
                    if depth == 0 {
                        self.i += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.i += 1;
        }
        Err(Stop::More)
    }

    /// An object's members, each given to `f` as (raw key, value).
    fn object(&mut self, mut f: impl FnMut(&'a [u8], Raw<'a>)) -> P<bool> {
        let mut repaired = false;
        self.eat(b'{')?;
        if self.peek()? == b'}' {
            self.i += 1;
            return Ok(false);
        }
        loop {
            let k = self.key()?;
            self.eat(b':')?;
            let v = self.value(&mut repaired)?;
            f(k, v);
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Ok(repaired);
                }
                _ => return Err(Stop::Bad("expected , or } in an object")),
            }
        }
    }

    fn array(&mut self, mut f: impl FnMut(Raw<'a>)) -> P<()> {
        let mut repaired = false;
        self.eat(b'[')?;
        if self.peek()? == b']' {
            self.i += 1;
            return Ok(());
        }
        loop {
            f(self.value(&mut repaired)?);
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Ok(());
                }
                _ => return Err(Stop::Bad("expected , or ] in an array")),
            }
        }
    }
}

/// Where the scanner is in the document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Before the first byte.
    Start,
    /// Among the top-level keys of an object.
    TopKeys,
    /// Inside the events array; `top` says whether it is the document itself.
    Events {
        top: bool,
        first: bool,
    },
    Done,
}

/// Reads trace events one at a time.
pub struct Scanner<R: Read> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    state: State,
    top_level: Vec<(String, Vec<u8>)>,
    repaired: u64,
    skipped: u64,
    events: u64,
    /// Where the event last returned lies in `buf`.
    last_event: std::ops::Range<usize>,
}

const INITIAL_BUFFER: usize = 1 << 20;
/// Top-level values larger than this are skipped, not kept.
const MAX_KEPT_TOP_LEVEL: usize = 1 << 20;

impl<R: Read> Scanner<R> {
    /// A scanner over `input`.
    pub fn new(input: R) -> Scanner<R> {
        Scanner {
            input,
            buf: vec![0; INITIAL_BUFFER],
            pos: 0,
            len: 0,
            base: 0,
            eof: false,
            state: State::Start,
            top_level: Vec::new(),
            repaired: 0,
            skipped: 0,
            events: 0,
            last_event: 0..0,
        }
    }

    /// The text of the event last returned by [`Scanner::next_event`].
    pub fn last_event_text(&self) -> &[u8] {
        &self.buf[self.last_event.clone()]
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Events whose strings had unescaped quotes (read as if escaped).
    pub fn repaired(&self) -> u64 {
        self.repaired
    }

    /// Malformed events stepped over.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// The raw JSON text of top-level member `key`, if seen so far and small.
    pub fn top_level(&self, key: &str) -> Option<Raw<'_>> {
        let (_, text) = self.top_level.iter().find(|(k, _)| k == key)?;
        let mut c = Cursor { b: text, i: 0 };
        c.value(&mut false).ok()
    }

    /// Moves unread bytes to the front and reads more; `false` at end of input.
    fn refill(&mut self, keep_from: usize) -> Result<bool, ScanError> {
        if self.eof {
            return Ok(false);
        }
        self.buf.copy_within(keep_from..self.len, 0);
        self.base += keep_from as u64;
        self.len -= keep_from;
        self.pos -= keep_from;
        if self.len > self.buf.len() / 2 {
            self.buf.resize(self.buf.len() * 2, 0);
        }
        while self.len < self.buf.len() {
            match self.input.read(&mut self.buf[self.len..]) {
                Ok(0) => {
                    self.eof = true;
                    // A space after the last byte lets a number at the very end complete.
                    if self.len < self.buf.len() {
                        self.buf[self.len] = b' ';
                    }
                    break;
                }
                Ok(n) => self.len += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ScanError::Io(e)),
            }
        }
        Ok(true)
    }

    fn data(&self) -> &[u8] {
        // At end of input, the padding space is part of the text.
        let end = if self.eof && self.len < self.buf.len() { self.len + 1 } else { self.len };
        &self.buf[..end]
    }

    /// The next event, or `None` at the end of the trace.
    pub fn next_event(&mut self) -> Result<Option<Event<'_>>, ScanError> {
        loop {
            match self.state {
                State::Done => return Ok(None),
                State::Start => self.start()?,
                State::TopKeys => self.top_key()?,
                State::Events { top, first } => {
                    if let Some(at) = self.next_event_at(top, first)? {
                        self.events += 1;
                        let offset = self.base + self.last_event.start as u64;
                        return Ok(Some(Event { offset, ..at.resolve(&self.buf) }));
                    }
                }
            }
        }
    }

    /// Parses the next event in the buffer (refilling as needed); its fields
    /// come back as positions, so the buffer can be refilled in this loop.
    fn next_event_at(&mut self, top: bool, first: bool) -> Result<Option<EventAt>, ScanError> {
        loop {
            let start_pos = self.pos;
            let data = self.data();
            let mut c = Cursor { b: data, i: self.pos };
            let step: P<Option<(EventAt, bool, usize)>> = (|| {
                if !first {
                    match c.peek()? {
                        b',' => c.i += 1,
                        b']' => return Ok(None),
                        _ => return Err(Stop::Bad("expected , or ] between events")),
                    }
                } else if c.peek()? == b']' {
                    return Ok(None);
                }
                c.peek()?;
                let begin = c.i;
                let mut ev = Event::default();
                let repaired = parse_event(&mut c, &mut ev)?;
                Ok(Some((EventAt::of(data, &ev), repaired, begin)))
            })();
            let end = c.i;
            match step {
                Ok(Some((at, repaired, begin))) => {
                    self.last_event = begin..end;
                    self.pos = end;
                    self.repaired += u64::from(repaired);
                    self.state = State::Events { top, first: false };
                    return Ok(Some(at));
                }
                Ok(None) => {
                    // `]` closes the events.
                    self.pos = end + 1;
                    self.state = if top { State::Done } else { State::TopKeys };
                    return Ok(None);
                }
                Err(Stop::More) => {
                    if !self.refill(start_pos)? {
                        self.state = State::Done;
                        return Err(ScanError::Truncated { offset: self.event_offset(self.pos) });
                    }
                }
                Err(Stop::Bad(message)) => {
                    let offset = self.event_offset(start_pos);
                    if !self.resync(start_pos)? {
                        self.state = State::Done;
                        return Err(ScanError::Malformed { offset, message: message.into() });
                    }
                    self.skipped += 1;
                    self.state = State::Events { top, first: false };
                }
            }
        }
    }

    /// File offset of the event that starts after `pos` (skipping a comma and blanks).
    fn event_offset(&self, pos: usize) -> u64 {
        let mut i = pos;
        while i < self.len && (is_ws(self.buf[i]) || self.buf[i] == b',') {
            i += 1;
        }
        self.base + i as u64
    }

    /// After a malformed event: goes on after the next `}` that is followed
    /// by `,` and `{` (the start of another event). `false` if there is none.
    fn resync(&mut self, from: usize) -> Result<bool, ScanError> {
        self.pos = from;
        loop {
            let data = &self.buf[..self.len];
            let mut at = self.pos + 1;
            while let Some(k) = memchr::memchr(b'}', &data[at.min(data.len())..]) {
                let close = at + k;
                let mut c = Cursor { b: data, i: close + 1 };
                if c.peek().ok() == Some(b',') {
                    c.i += 1;
                    if c.peek().ok() == Some(b'{') {
                        self.pos = close + 1;
                        return Ok(true);
                    }
                }
                at = close + 1;
            }
            if !self.refill(self.pos)? {
                return Ok(false);
            }
        }
    }

    fn start(&mut self) -> Result<(), ScanError> {
        if self.len == 0 {
            self.refill(0)?;
        }
        // Skip a UTF-8 byte order mark.
        if self.buf[..self.len].starts_with(&[0xEF, 0xBB, 0xBF]) {
            self.pos = 3;
        }
        let mut c = Cursor { b: self.data(), i: self.pos };
        match c.peek() {
            Ok(b'{') => {
                self.pos = c.i + 1;
                self.state = State::TopKeys;
                Ok(())
            }
            Ok(b'[') => {
                self.pos = c.i + 1;
                self.state = State::Events { top: true, first: true };
                Ok(())
            }
            Ok(_) | Err(Stop::Bad(_)) => {
                let shown: String = String::from_utf8_lossy(&self.buf[c.i.min(self.len)..self.len.min(c.i + 20)])
                    .chars()
                    .take(20)
                    .collect();
                Err(ScanError::NotJson { found: shown })
            }
            Err(Stop::More) => Err(ScanError::NotJson { found: String::new() }),
        }
    }

    /// One top-level member; `traceEvents` switches to events.
    fn top_key(&mut self) -> Result<(), ScanError> {
        loop {
            let start_pos = self.pos;
            let mut c = Cursor { b: self.data(), i: self.pos };
            let step: P<Option<(Vec<u8>, usize, usize)>> = (|| {
                match c.peek()? {
                    b',' => c.i += 1,
                    b'}' => return Ok(None),
                    _ => {}
                }
                let k = c.key()?.to_vec();
                c.eat(b':')?;
                if k == b"traceEvents" {
                    if c.peek()? != b'[' {
                        return Err(Stop::Bad("traceEvents is not an array"));
                    }
                    return Ok(Some((k, c.i, usize::MAX)));
                }
                c.ws();
                let at = c.i;
                c.value(&mut false)?;
                Ok(Some((k, at, c.i)))
            })();
            match step {
                Ok(None) => {
                    self.state = State::Done;
                    if !self.has_events() {
                        return Err(ScanError::NoEvents);
                    }
                    return Ok(());
                }
                Ok(Some((k, at, usize::MAX))) if k == b"traceEvents" => {
                    self.pos = at + 1;
                    self.state = State::Events { top: false, first: true };
                    self.top_level.push(("traceEvents".into(), Vec::new()));
                    return Ok(());
                }
                Ok(Some((k, at, end))) => {
                    if end - at <= MAX_KEPT_TOP_LEVEL {
                        let mut text = self.buf[at..end].to_vec();
                        // A structural sentinel, so a value at the end of the text reads as complete.
                        text.push(b'}');
                        self.top_level.push((String::from_utf8_lossy(&k).into_owned(), text));
                    }
                    self.pos = end;
                }
                Err(Stop::More) => {
                    if !self.refill(start_pos)? {
                        self.state = State::Done;
                        if self.has_events() {
                            return Ok(());
                        }
                        return Err(ScanError::NoEvents);
                    }
                }
                Err(Stop::Bad(message)) => {
                    self.state = State::Done;
                    return Err(ScanError::Malformed { offset: self.base + start_pos as u64, message: message.into() });
                }
            }
        }
    }

    fn has_events(&self) -> bool {
        self.top_level.iter().any(|(k, _)| k == "traceEvents")
    }
}

/// Where a value lies in the buffer: `Raw` as offsets, so that it outlives
/// a refill of the loop that found it.
#[derive(Clone, Copy, Default)]
struct At {
    kind: u8,
    start: usize,
    end: usize,
}

impl At {
    fn of(base: &[u8], v: Raw<'_>) -> At {
        let span = |kind: u8, s: &[u8]| {
            let start = s.as_ptr() as usize - base.as_ptr() as usize;
            At { kind, start, end: start + s.len() }
        };
        match v {
            Raw::Null => At::default(),
            Raw::Str(s) => span(1, s),
            Raw::Num(s) => span(2, s),
            Raw::Bool(true) => At { kind: 3, ..At::default() },
            Raw::Bool(false) => At { kind: 4, ..At::default() },
            Raw::Obj(s) => span(5, s),
            Raw::Arr(s) => span(6, s),
        }
    }

    fn resolve(self, base: &[u8]) -> Raw<'_> {
        let s = &base[self.start..self.end];
        match self.kind {
            1 => Raw::Str(s),
            2 => Raw::Num(s),
            3 => Raw::Bool(true),
            4 => Raw::Bool(false),
            5 => Raw::Obj(s),
            6 => Raw::Arr(s),
            _ => Raw::Null,
        }
    }
}

/// An [`Event`] as positions in the buffer.
struct EventAt([At; 11]);

impl EventAt {
    fn of(base: &[u8], e: &Event<'_>) -> EventAt {
        let f = [e.ph, e.name, e.cat, e.pid, e.tid, e.ts, e.dur, e.id, e.bp, e.s, e.args];
        EventAt(f.map(|v| At::of(base, v)))
    }

    fn resolve(self, base: &[u8]) -> Event<'_> {
        let [ph, name, cat, pid, tid, ts, dur, id, bp, s, args] = self.0.map(|a| a.resolve(base));
        Event { ph, name, cat, pid, tid, ts, dur, id, bp, s, args, offset: 0 }
    }
}

/// Fills `ev` from an event object; `true` if a string needed repair.
fn parse_event<'a>(c: &mut Cursor<'a>, ev: &mut Event<'a>) -> P<bool> {
    c.object(|k, v| match k {
        b"ph" => ev.ph = v,
        b"name" => ev.name = v,
        b"cat" => ev.cat = v,
        b"pid" => ev.pid = v,
        b"tid" => ev.tid = v,
        b"ts" => ev.ts = v,
        b"dur" => ev.dur = v,
        b"id" => ev.id = v,
        b"bp" => ev.bp = v,
        b"s" => ev.s = v,
        b"args" => ev.args = v,
        _ => {}
    })
}

/// Decimal microseconds to nanoseconds, exactly for up to three decimals
/// (more are rounded), without floating point. Exponents fall back to a double.
pub(crate) fn micros_to_ns(text: &[u8]) -> Option<i64> {
    let t = trim(text);
    if t.iter().any(|&b| b == b'e' || b == b'E') {
        let v: f64 = std::str::from_utf8(t).ok()?.parse().ok()?;
        return Some((v * 1000.0).round().clamp(i64::MIN as f64, i64::MAX as f64) as i64);
    }
    let (neg, digits) = match t.first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    // Up to 18 digits fit a u64 with room to spare; longer numbers go on in i128.
    let mut small: u64 = 0;
    let mut i = 0;
    while i < digits.len() && i < 18 && digits[i].is_ascii_digit() {
        small = small * 10 + u64::from(digits[i] - b'0');
        i += 1;
    }
    let mut int = i128::from(small);
    while i < digits.len() && digits[i].is_ascii_digit() {
        // Capped far beyond i64 (the result is clamped to it) and far below overflow.
        int = (int * 10 + i128::from(digits[i] - b'0')).min(i128::MAX / 10_000);
        i += 1;
    }
    let mut frac: i128 = 0;
    let mut round = false;
    if i < digits.len() && digits[i] == b'.' {
        i += 1;
        let mut n = 0;
        while i < digits.len() && digits[i].is_ascii_digit() {
            if n < 3 {
                frac = frac * 10 + i128::from(digits[i] - b'0');
            } else if n == 3 {
                round = digits[i] >= b'5';
            }
            n += 1;
            i += 1;
        }
        while n < 3 {
            frac *= 10;
            n += 1;
        }
    }
    if i != digits.len() || (i == 0) {
        return None;
    }
    let ns = int * 1000 + frac + i128::from(round);
    let ns = if neg { -ns } else { ns };
    Some(ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

fn trim(t: &[u8]) -> &[u8] {
    let start = t.iter().position(|b| !is_ws(*b)).unwrap_or(t.len());
    let end = t.iter().rposition(|b| !is_ws(*b)).map_or(start, |e| e + 1);
    &t[start..end]
}

/// An integer from decimal text; fractions cut off, out-of-range values clamped.
fn parse_int(text: &[u8]) -> Option<i64> {
    // Integer division truncates toward zero either way.
    micros_to_ns(text).map(|ns| ns / 1000)
}

/// Decodes JSON escapes; invalid UTF-8 and bad escapes are kept as well as possible.
fn unescape(s: &[u8]) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] != b'\\' || i + 1 >= s.len() {
            out.push(s[i]);
            i += 1;
            continue;
        }
        let e = s[i + 1];
        i += 2;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hex = |at: usize| {
                    s.get(at..at + 4).and_then(|h| u32::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok())
                };
                let Some(hi) = hex(i) else {
                    out.extend_from_slice(b"\\u");
                    continue;
                };
                i += 4;
                let mut code = hi;
                if (0xD800..0xDC00).contains(&hi) && s.get(i..i + 2) == Some(b"\\u") {
                    if let Some(lo) = hex(i + 2).filter(|lo| (0xDC00..0xE000).contains(lo)) {
                        code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        i += 6;
                    }
                }
                let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
            other => {
                out.push(b'\\');
                out.push(other);
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, ts, dur, tid) of an event.
    type Seen = (String, Option<i64>, Option<i64>, String);

    /// Reads all events with a small buffer, so that refills happen mid-event.
    fn scan(text: &[u8]) -> (Vec<Seen>, Option<String>, u64) {
        let mut sc = Scanner::new(text);
        sc.buf = vec![0; 64];
        let mut out = Vec::new();
        loop {
            match sc.next_event() {
                Ok(Some(e)) => out.push((
                    e.name.text().into_owned(),
                    e.ts.micros_as_ns(),
                    e.dur.micros_as_ns(),
                    e.tid.text().into_owned(),
                )),
                Ok(None) => return (out, None, sc.repaired()),
                Err(e) => return (out, Some(e.to_string()), sc.repaired()),
            }
        }
    }

    #[test]
    fn object_and_bare_array_forms() {
        let doc = br#"{"schemaVersion": 1, "deviceProperties": [{"id": 0, "name": "H200"}],
            "traceEvents": [
              {"ph": "X", "name": "a", "ts": 1.5, "dur": 2, "tid": 7, "args": {"x": [1, {"y": "}"}]}},
              {"name": "b\u00e9\n", "ph": "i", "ts": "12", "tid": "stream 7"}
            ], "traceName": "t.json"}"#;
        let (events, err, _) = scan(doc);
        assert_eq!(err, None);
        assert_eq!(
            events,
            vec![
                ("a".into(), Some(1500), Some(2000), "7".into()),
                ("b\u{e9}\n".replace("\\u{e9}", "\u{e9}").replace("\\n", "\n"), Some(12000), None, "stream 7".into()),
            ]
        );
        let mut sc = Scanner::new(&doc[..]);
        while sc.next_event().unwrap().is_some() {}
        assert_eq!(sc.top_level("schemaVersion").and_then(|v| v.int()), Some(1));
        assert_eq!(sc.top_level("traceName").map(|v| v.text().into_owned()), Some("t.json".into()));
        let props = sc.top_level("deviceProperties").unwrap().elements();
        assert_eq!(props[0].get("name").unwrap().text(), "H200");

        let (events, err, _) = scan(br#"[{"name": "x", "ts": 3}, {"name": "y", "ts": 4}]"#);
        assert_eq!((events.len(), err), (2, None));
    }

    #[test]
    fn nineteen_digit_timestamps_are_exact() {
        assert_eq!(micros_to_ns(b"1790857026123456.789"), Some(1_790_857_026_123_456_789));
        assert_eq!(micros_to_ns(b"4392395962305.605"), Some(4_392_395_962_305_605));
        assert_eq!(micros_to_ns(b"12.3456"), Some(12_346));
        assert_eq!(micros_to_ns(b"-5"), Some(-5000));
        assert_eq!(micros_to_ns(b"1.5e3"), Some(1_500_000));
        assert_eq!(micros_to_ns(b"99999999999999999999999999"), Some(i64::MAX));
        assert_eq!(micros_to_ns(b"abc"), None);
        assert_eq!(micros_to_ns(b""), None);
        assert_eq!(parse_int(b"18446744073709551616"), Some(i64::MAX / 1000));
    }

    #[test]
    fn unescaped_quotes_and_invalid_utf8_are_read() {
        let mut doc = br#"{"traceEvents": [{"name": "say "hi" now", "ts": 1}, {"name": "bad "#.to_vec();
        doc.extend_from_slice(&[0xff, 0xfe]);
        doc.extend_from_slice(br#"", "ts": 2}]}"#);
        let (events, err, repaired) = scan(&doc);
        assert_eq!(err, None);
        assert_eq!(events[0].0, "say \"hi\" now");
        assert_eq!(events[1].0, "bad \u{fffd}\u{fffd}");
        assert_eq!(repaired, 1);
    }

    #[test]
    fn a_cut_trace_gives_its_events_and_the_break_offset() {
        let doc = br#"{"traceEvents": [{"name": "a", "ts": 1}, {"name": "b", "ts": 2}, {"name": "c", "t"#;
        let (events, err, _) = scan(doc);
        assert_eq!(events.len(), 2);
        let at = doc.windows(13).position(|w| w == br#"{"name": "c","#).unwrap();
        assert_eq!(err, Some(format!("the file is cut short: it breaks off in the event at byte {at}")));
        // Cut between events: also reported, nothing lost.
        let (events, err, _) = scan(br#"[{"name": "a", "ts": 1},"#);
        assert_eq!(events.len(), 1);
        assert!(err.unwrap().contains("cut short"));
    }

    #[test]
    fn a_malformed_event_is_skipped() {
        let doc = br#"[{"name": "a", "ts": 1}, {"name": X, "ts": 2}, {"name": "c", "ts": 3}]"#;
        let mut sc = Scanner::new(&doc[..]);
        let mut names = Vec::new();
        while let Some(e) = sc.next_event().unwrap() {
            names.push(e.name.text().into_owned());
        }
        assert_eq!(names, ["a", "c"]);
        assert_eq!(sc.skipped(), 1);
    }

    #[test]
    fn not_a_trace() {
        for (doc, want) in [
            (&b"hello"[..], "not a JSON trace"),
            (&b"\x1f\x8b\x08"[..], "not a JSON trace"),
            (&b"{\"a\": 1}"[..], "no traceEvents"),
            (&b""[..], "not a JSON trace"),
            (&b"{\"traceEvents\": 5}"[..], "traceEvents is not an array"),
        ] {
            let mut sc = Scanner::new(doc);
            let err = sc.next_event().unwrap_err().to_string();
            assert!(err.contains(want), "{doc:?}: {err}");
        }
    }

    #[test]
    fn same_events_as_serde_json_on_a_real_trace() {
        use std::io::Read as _;
        let mut text = Vec::new();
        let gz = std::fs::File::open(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/training.pt.trace.json.gz"))
            .unwrap();
        flate2::read::GzDecoder::new(gz).read_to_end(&mut text).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let expected = v["traceEvents"].as_array().unwrap();
        let mut sc = Scanner::new(&text[..]);
        let mut n = 0;
        while let Some(e) = sc.next_event().unwrap() {
            let want = &expected[n];
            assert_eq!(e.name.text(), want["name"].as_str().unwrap_or(""), "event {n}");
            if let Some(ts) = want["ts"].as_f64() {
                let ns = e.ts.micros_as_ns().unwrap();
                assert!(
                    (ns as f64 / 1000.0 - ts).abs() < 1e-3 * ts.abs().max(1.0) * 1e-6 + 0.002,
                    "event {n}: {ns} vs {ts}"
                );
            }
            if let Some(c) = want["args"]["correlation"].as_i64() {
                assert_eq!(e.arg("correlation").and_then(|r| r.int()), Some(c));
            }
            n += 1;
        }
        assert_eq!(n, expected.len());
        assert_eq!(sc.repaired() + sc.skipped(), 0);
    }
}

#[cfg(test)]
mod overflow_tests {
    use super::*;

    #[test]
    fn absurd_numbers_clamp_instead_of_overflowing() {
        let huge = "9".repeat(60);
        assert_eq!(micros_to_ns(huge.as_bytes()), Some(i64::MAX));
        assert_eq!(micros_to_ns(format!("-{huge}.999").as_bytes()), Some(i64::MIN));
        assert_eq!(parse_int(format!("-{huge}").as_bytes()), Some(i64::MIN / 1000));
        assert_eq!(parse_int(b"-1.9"), Some(-1));
    }
}
