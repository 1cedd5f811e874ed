//! A Prometheus exposition endpoint (feature `prometheus`): per-stage call
//! counters, time counters and duration histograms, and frame figures, fed
//! by the collector's live decoding and served as OpenMetrics text on
//! `GET /metrics`.
//!
//! Metrics are prometheus-client's (atomics inside), so the collector
//! updates them while the server thread encodes. The server answers one
//! request per connection: a scrape is one GET, and the std listener keeps
//! an HTTP library out of the pipeline's build.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use stageprof_model::{Catalog, CounterSample, ProfileSink, Span, SpanKind};

use crate::live::LiveSink;

type Labels = Vec<(String, String)>;

/// Durations from 10 µs to about 100 s, a bucket every factor of 2.5.
fn duration_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(1e-5, 2.5, 18)
}

/// The metrics, updated from spans as the collector decodes them.
pub(crate) struct Exporter {
    calls: Family<Labels, Counter>,
    seconds: Family<Labels, Counter<f64>>,
    durations: Family<Labels, Histogram>,
    frames: Counter,
    frame_durations: Histogram,
    server: Server,
}

impl Exporter {
    /// Binds `bind:port` (port 0: any free one) and starts serving.
    pub(crate) fn start(bind: &str, port: u16) -> Result<Exporter, String> {
        let mut registry = Registry::with_prefix("stageprof");
        let calls = Family::<Labels, Counter>::default();
        let seconds = Family::<Labels, Counter<f64>>::default();
        let durations = Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new(duration_buckets()));
        let frames = Counter::default();
        let frame_durations = Histogram::new(duration_buckets());
        registry.register("stage_calls", "Calls of each stage that have ended", calls.clone());
        registry.register("stage_seconds", "Wall time of each stage's ended calls", seconds.clone());
        registry.register("stage_duration_seconds", "Wall time per call of each stage", durations.clone());
        registry.register("frames", "Frames that have ended", frames.clone());
        registry.register("frame_duration_seconds", "Wall time per frame", frame_durations.clone());
        let server = Server::start(bind, port, Arc::new(registry))?;
        Ok(Exporter { calls, seconds, durations, frames, frame_durations, server })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

impl ProfileSink for Exporter {
    fn span(&mut self, span: &Span, catalog: &Catalog) {
        let secs = span.duration_ns() as f64 / 1e9;
        match (span.kind, span.path) {
            (SpanKind::Frame, _) => {
                self.frames.inc();
                self.frame_durations.observe(secs);
            }
            (SpanKind::Stage, Some(path)) => {
                let labels = vec![("stage".to_string(), catalog.path_names(path).join("/"))];
                self.calls.get_or_create(&labels).inc();
                self.seconds.get_or_create(&labels).inc_by(secs);
                self.durations.get_or_create(&labels).observe(secs);
            }
            _ => {}
        }
    }

    fn counter(&mut self, _: &CounterSample, _: &Catalog) {}
}

/// The listening thread; stopped when the exporter is dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Server {
    fn start(bind: &str, port: u16, registry: Arc<Registry>) -> Result<Server, String> {
        let listener = TcpListener::bind((bind, port))
            .map_err(|e| format!("cannot serve Prometheus metrics on {bind}:{port}: {e}"))?;
        let addr = listener.local_addr().map_err(|e| format!("Prometheus endpoint: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::Builder::new()
            .name("stageprof-metrics".into())
            .spawn(move || {
                for conn in listener.incoming() {
                    if stopping.load(Relaxed) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        answer(conn, &registry);
                    }
                }
            })
            .map_err(|e| format!("cannot start the Prometheus endpoint's thread: {e}"))?;
        Ok(Server { addr, stop })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        // Wakes the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// Answers one request: the metrics for `GET /metrics`, 404 for anything else.
fn answer(mut conn: TcpStream, registry: &Registry) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let (status, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET /metrics?") {
        let mut text = String::new();
        match encode(&mut text, registry) {
            Ok(()) => ("200 OK", text),
            Err(_) => ("500 Internal Server Error", "encoding failed\n".into()),
        }
    } else {
        ("404 Not Found", "stageprof serves GET /metrics\n".into())
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

impl LiveSink for Exporter {}
