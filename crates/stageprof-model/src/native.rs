//! The native stageprof file: the recorder's records, stored as written.
//!
//! Layout (all integers little-endian; documented in docs/format.md):
//! an 8-byte magic `STGPROF\0`, a u32 format version, a u32 reserved word,
//! then chunks, each a u32 kind, a u32 payload length and the payload.
//! Chunks are appended while the pipeline runs, so a file cut short by a hard
//! kill is still readable up to its last whole chunk.

use std::io::{self, Read, Write};

use crate::event::ThreadInfo;

/// The first eight bytes of every native profile.
pub const MAGIC: &[u8; 8] = b"STGPROF\0";
/// Version 2 added the PROCESS_MEM record, version 3 its heap level,
/// version 4 the GPU records, version 5 GPU activities' launch time and
/// shape, version 6 tasks, version 7 GPU allocator levels and queues,
/// version 8 the age of received queue items, version 9 untimed GPU
/// instances and the allocator trace's marks, version 10 queue items' send
/// ticks, version 11 kernel tracing's windows, version 12 queue operations
/// that did not read the depth, version 13 received items with no send tick
/// (the reader pairs them with their sends); older files read as before.
pub const FORMAT_VERSION: u32 = 13;

/// The native file's name in a run's output directory.
pub const PROFILE_FILE: &str = "profile.stgp";

/// The file name of part `n` of a bounded run's native file (`max_disk_mb`).
pub fn part_file_name(n: u64) -> String {
    format!("profile.{n}.stgp")
}

/// The part a file name says it is (`profile.N.stgp`), if it names one.
pub fn part_number(file_name: &str) -> Option<u64> {
    file_name.strip_prefix("profile.")?.strip_suffix(".stgp")?.parse().ok()
}

const CHUNK_META: u32 = 1;
const CHUNK_NAMES: u32 = 2;
const CHUNK_THREAD: u32 = 3;
const CHUNK_RECORDS: u32 = 4;
const CHUNK_END: u32 = 5;
const CHUNK_PASS: u32 = 6;

/// Largest payload a reader accepts; bigger means the file is corrupt.
const MAX_CHUNK_BYTES: u32 = 1 << 30;

/// One chunk of a native file.
#[derive(Clone, Debug, PartialEq)]
pub enum Chunk {
    /// Key/value facts: clock calibration, host, config, versions.
    Meta(Vec<(String, String)>),
    /// Names `first_id`, `first_id + 1`, ...
    Names {
        /// The first name's id.
        first_id: u32,
        /// The names, in id order.
        names: Vec<String>,
    },
    /// A thread that records refer to by index.
    Thread(ThreadInfo),
    /// Record words of one thread, in the order it wrote them (see [`crate::wire`]).
    Records {
        /// The thread's index.
        thread: u32,
        /// Its record words.
        words: Vec<u64>,
    },
    /// The collector read every thread's records in a pass that began at
    /// tick `began`: every record timed before the pass before it has come
    /// (one timed just before a pass began may be read in the next). The
    /// reader settles queue operations by it (`ingest::queue_order`).
    Pass {
        /// The tick the pass began.
        began: u64,
    },
    /// The profile ended normally or at a signal.
    End {
        /// Records dropped because the buffers were full.
        dropped_records: u64,
        /// The clock at the end.
        end_ticks: u64,
        /// `finish`, a signal's name, `exit` or `panic`.
        reason: String,
    },
}

/// Writes chunks to a native file, each with one `write_all`, so that with
/// an unbuffered file a failed write loses at most the chunk being written.
pub struct NativeWriter<W: Write> {
    out: W,
    buf: Vec<u8>,
    written: u64,
}

impl<W: Write> NativeWriter<W> {
    /// Writes the file header.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_le_bytes())?;
        out.write_all(&0u32.to_le_bytes())?;
        Ok(NativeWriter { out, buf: Vec::new(), written: (MAGIC.len() + 8) as u64 })
    }

    /// Writes run metadata as key-value pairs.
    pub fn meta(&mut self, pairs: &[(String, String)]) -> io::Result<()> {
        self.start_chunk();
        put_u32(&mut self.buf, pairs.len() as u32);
        for (k, v) in pairs {
            put_str(&mut self.buf, k);
            put_str(&mut self.buf, v);
        }
        self.flush_chunk(CHUNK_META)
    }

    /// Writes names, the first with id `first_id`, the rest numbered on.
    pub fn names<'a>(&mut self, first_id: u32, names: impl ExactSizeIterator<Item = &'a str>) -> io::Result<()> {
        self.start_chunk();
        put_u32(&mut self.buf, first_id);
        put_u32(&mut self.buf, names.len() as u32);
        for n in names {
            put_str(&mut self.buf, n);
        }
        self.flush_chunk(CHUNK_NAMES)
    }

    /// Writes a thread's identity.
    pub fn thread(&mut self, t: &ThreadInfo) -> io::Result<()> {
        self.start_chunk();
        put_u32(&mut self.buf, t.index);
        self.buf.extend_from_slice(&t.os_tid.to_le_bytes());
        put_str(&mut self.buf, &t.name);
        self.flush_chunk(CHUNK_THREAD)
    }

    /// Writes a thread's records.
    pub fn records(&mut self, thread: u32, words: &[u64]) -> io::Result<()> {
        self.records_from(thread, words.iter().copied())
    }

    /// Like [`NativeWriter::records`], taking the words from an iterator (no copy in between).
    pub fn records_from(&mut self, thread: u32, words: impl ExactSizeIterator<Item = u64>) -> io::Result<()> {
        self.start_chunk();
        put_u32(&mut self.buf, thread);
        put_u32(&mut self.buf, 0);
        self.buf.reserve(words.len() * 8);
        for w in words {
            self.buf.extend_from_slice(&w.to_le_bytes());
        }
        self.flush_chunk(CHUNK_RECORDS)
    }

    /// Says that the collector read every thread's records in a pass that
    /// began at tick `began` (see [`Chunk::Pass`]).
    pub fn pass(&mut self, began: u64) -> io::Result<()> {
        self.start_chunk();
        self.buf.extend_from_slice(&began.to_le_bytes());
        self.flush_chunk(CHUNK_PASS)
    }

    /// Writes the end marker: records dropped, the final clock reading, why recording ended.
    pub fn end(&mut self, dropped_records: u64, end_ticks: u64, reason: &str) -> io::Result<()> {
        self.start_chunk();
        self.buf.extend_from_slice(&dropped_records.to_le_bytes());
        self.buf.extend_from_slice(&end_ticks.to_le_bytes());
        put_str(&mut self.buf, reason);
        self.flush_chunk(CHUNK_END)?;
        self.out.flush()
    }

    /// Flushes the underlying writer.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Bytes written so far, the header included.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Leaves room for the chunk header, filled in by `flush_chunk`.
    fn start_chunk(&mut self) {
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 8]);
    }

    fn flush_chunk(&mut self, kind: u32) -> io::Result<()> {
        let len = (self.buf.len() - 8) as u32;
        self.buf[..4].copy_from_slice(&kind.to_le_bytes());
        self.buf[4..8].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&self.buf)?;
        self.written += self.buf.len() as u64;
        Ok(())
    }
}

fn put_u32(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_le_bytes());
}

fn put_str(buf: &mut Vec<u8>, s: &str) {
    put_u32(buf, s.len() as u32);
    buf.extend_from_slice(s.as_bytes());
}

/// Why a native file could not be read (further).
#[derive(Debug)]
pub enum NativeError {
    /// Not a native file at all.
    NotNative,
    /// Written by a newer stageprof.
    UnsupportedVersion(u32),
    /// The file ends inside a chunk: everything before `offset` was read.
    Truncated {
        /// Bytes read before the break.
        offset: u64,
    },
    /// A chunk's content is malformed.
    Corrupt {
        /// Where the chunk starts.
        offset: u64,
        /// What is wrong with it.
        message: String,
    },
    /// Reading the file failed.
    Io(io::Error),
    /// Files read as the parts of one bounded run are of different runs.
    PartsOfDifferentRuns {
        /// The first part's number and the one of another run.
        first: u64,
        /// The part of another run.
        other: u64,
    },
}

impl std::fmt::Display for NativeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NativeError::NotNative => write!(f, "not a stageprof native file (no STGPROF header)"),
            NativeError::UnsupportedVersion(v) => {
                write!(f, "native format version {v} is newer than this stageprof reads ({FORMAT_VERSION})")
            }
            NativeError::Truncated { offset } => {
                write!(f, "file is truncated: it breaks off in the chunk at byte {offset}")
            }
            NativeError::Corrupt { offset, message } => write!(f, "corrupt chunk at byte {offset}: {message}"),
            NativeError::Io(e) => write!(f, "{e}"),
            NativeError::PartsOfDifferentRuns { first, other } => write!(
                f,
                "part {other} is of another run than part {first} (another process or start time): read the parts of one run together"
            ),
        }
    }
}

impl std::error::Error for NativeError {}

/// Reads chunks from a native file, one at a time.
pub struct NativeReader<R: Read> {
    input: R,
    offset: u64,
    buf: Vec<u8>,
}

impl<R: Read> NativeReader<R> {
    /// Checks the header.
    pub fn new(mut input: R) -> Result<Self, NativeError> {
        let mut head = [0u8; 16];
        read_full(&mut input, &mut head).map_err(NativeError::Io)?.then_some(()).ok_or(NativeError::NotNative)?;
        if &head[..8] != MAGIC {
            return Err(NativeError::NotNative);
        }
        let version = u32::from_le_bytes(head[8..12].try_into().unwrap());
        if version > FORMAT_VERSION {
            return Err(NativeError::UnsupportedVersion(version));
        }
        Ok(NativeReader { input, offset: 16, buf: Vec::new() })
    }

    /// Byte offset of the next chunk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next chunk, `None` at a clean end of file. Unknown chunk kinds are skipped.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, NativeError> {
        loop {
            let start = self.offset;
            let mut head = [0u8; 8];
            match read_some(&mut self.input, &mut head).map_err(NativeError::Io)? {
                0 => return Ok(None),
                8 => {}
                _ => return Err(NativeError::Truncated { offset: start }),
            }
            let kind = u32::from_le_bytes(head[..4].try_into().unwrap());
            let len = u32::from_le_bytes(head[4..].try_into().unwrap());
            if len > MAX_CHUNK_BYTES {
                return Err(NativeError::Corrupt {
                    offset: start,
                    message: format!("chunk length {len} is implausible"),
                });
            }
            // Read what arrives rather than trusting the length: a corrupt
            // header must not make the reader allocate a gigabyte up front.
            self.buf.clear();
            let got = (&mut self.input).take(u64::from(len)).read_to_end(&mut self.buf).map_err(NativeError::Io)?;
            if got < len as usize {
                return Err(NativeError::Truncated { offset: start });
            }
            self.offset += 8 + u64::from(len);
            let corrupt = |message: String| NativeError::Corrupt { offset: start, message };
            let mut p = Payload { bytes: &self.buf, at: 0 };
            let chunk = match kind {
                CHUNK_META => {
                    let n = p.u32()?;
                    let mut pairs = Vec::new();
                    for _ in 0..n {
                        pairs.push((p.string()?, p.string()?));
                    }
                    Chunk::Meta(pairs)
                }
                CHUNK_NAMES => {
                    let first_id = p.u32()?;
                    let n = p.u32()?;
                    let mut names = Vec::new();
                    for _ in 0..n {
                        names.push(p.string()?);
                    }
                    Chunk::Names { first_id, names }
                }
                CHUNK_THREAD => Chunk::Thread(ThreadInfo { index: p.u32()?, os_tid: p.u64()?, name: p.string()? }),
                CHUNK_RECORDS => {
                    let thread = p.u32()?;
                    p.u32()?;
                    let rest = &p.bytes[p.at..];
                    if rest.len() % 8 != 0 {
                        return Err(corrupt("record payload is not a whole number of words".into()));
                    }
                    let words = rest.chunks_exact(8).map(|b| u64::from_le_bytes(b.try_into().unwrap())).collect();
                    Chunk::Records { thread, words }
                }
                CHUNK_PASS => Chunk::Pass { began: p.u64()? },
                CHUNK_END => Chunk::End { dropped_records: p.u64()?, end_ticks: p.u64()?, reason: p.string()? },
                _ => continue,
            };
            return Ok(Some(chunk));
        }
    }
}

/// Cursor over one chunk's payload.
struct Payload<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Payload<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], NativeError> {
        let s = self.bytes.get(self.at..self.at + n).ok_or_else(|| NativeError::Corrupt {
            offset: 0,
            message: "field runs past the end of its chunk".into(),
        })?;
        self.at += n;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, NativeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, NativeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn string(&mut self) -> Result<String, NativeError> {
        let n = self.u32()? as usize;
        // Names are written from Rust strings; lossy decoding only guards against corruption.
        Ok(String::from_utf8_lossy(self.take(n)?).into_owned())
    }
}

/// Fills `buf`; `false` if the input ended first.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    Ok(read_some(input, buf)? == buf.len())
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_file() -> Vec<u8> {
        let mut w = NativeWriter::new(Vec::new()).unwrap();
        w.meta(&[("clock".into(), "tsc".into())]).unwrap();
        w.names(0, ["a\"b\n", "é"].into_iter()).unwrap();
        w.thread(&ThreadInfo { index: 3, os_tid: 77, name: "main".into() }).unwrap();
        w.records(3, &[1, 2, u64::MAX]).unwrap();
        w.pass(42).unwrap();
        w.end(5, 99, "finish").unwrap();
        w.into_inner()
    }

    fn read_all(bytes: &[u8]) -> (Vec<Chunk>, Option<NativeError>) {
        let mut r = NativeReader::new(bytes).unwrap();
        let mut chunks = Vec::new();
        loop {
            match r.next_chunk() {
                Ok(Some(c)) => chunks.push(c),
                Ok(None) => return (chunks, None),
                Err(e) => return (chunks, Some(e)),
            }
        }
    }

    #[test]
    fn round_trips_all_chunks() {
        let (chunks, err) = read_all(&sample_file());
        assert!(err.is_none());
        assert_eq!(
            chunks,
            vec![
                Chunk::Meta(vec![("clock".into(), "tsc".into())]),
                Chunk::Names { first_id: 0, names: vec!["a\"b\n".into(), "é".into()] },
                Chunk::Thread(ThreadInfo { index: 3, os_tid: 77, name: "main".into() }),
                Chunk::Records { thread: 3, words: vec![1, 2, u64::MAX] },
                Chunk::Pass { began: 42 },
                Chunk::End { dropped_records: 5, end_ticks: 99, reason: "finish".into() },
            ]
        );
    }

    #[test]
    fn truncated_file_yields_whole_chunks_then_the_break_offset() {
        let bytes = sample_file();
        // Cut inside the records chunk: meta, names and thread survive.
        let records_at = 16 + (8 + 4 + 4 + 5 + 4 + 3) + (8 + 4 + 4 + 4 + 4 + 4 + 2) + (8 + 4 + 8 + 4 + 4);
        let (chunks, err) = read_all(&bytes[..records_at + 10]);
        assert_eq!(chunks.len(), 3);
        match err {
            Some(NativeError::Truncated { offset }) => assert_eq!(offset, records_at as u64),
            other => panic!("expected truncation, got {other:?}"),
        }
    }

    #[test]
    fn rejects_foreign_files() {
        assert!(matches!(NativeReader::new(&b"{\"traceEvents\": []}"[..]), Err(NativeError::NotNative)));
        assert!(matches!(NativeReader::new(&b"STG"[..]), Err(NativeError::NotNative)));
        let mut newer = sample_file();
        newer[8] = FORMAT_VERSION as u8 + 1;
        let refused = NativeReader::new(&newer[..]);
        assert!(matches!(refused, Err(NativeError::UnsupportedVersion(v)) if v == FORMAT_VERSION + 1));
    }
}
