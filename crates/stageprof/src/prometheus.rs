//! A Prometheus exposition endpoint (feature `prometheus`): per-stage call
//! counters, time counters and duration histograms, frame figures, and per
//! instrumented queue its items in and out, depth and waits, fed
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
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use stageprof_model::{Catalog, CounterSample, ProfileSink, QueueEvent, QueueOp, Span, SpanKind};

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
    queues: QueueMetrics,
    #[cfg(test)]
    registry: Arc<Registry>,
    server: Server,
}

/// Per instrumented queue, labelled by its name.
#[derive(Default)]
struct QueueMetrics {
    sent: Family<Labels, Counter>,
    received: Family<Labels, Counter>,
    depth: Family<Labels, Gauge>,
    blocked: Family<Labels, Counter<f64>>,
    waited: Family<Labels, Counter<f64>>,
}

impl QueueMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register("queue_items_sent", "Items sent into each instrumented queue", self.sent.clone());
        registry.register("queue_items_received", "Items received from each instrumented queue", self.received.clone());
        registry.register(
            "queue_depth",
            "Items in each instrumented queue after its last operation",
            self.depth.clone(),
        );
        registry.register("queue_sender_blocked_seconds", "Time senders waited for room", self.blocked.clone());
        registry.register("queue_receiver_waited_seconds", "Time receivers waited for an item", self.waited.clone());
    }
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
        let queues = QueueMetrics::default();
        queues.register(&mut registry);
        let registry = Arc::new(registry);
        let server = Server::start(bind, port, registry.clone())?;
        Ok(Exporter {
            calls,
            seconds,
            durations,
            frames,
            frame_durations,
            queues,
            #[cfg(test)]
            registry,
            server,
        })
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

    fn queue(&mut self, event: &QueueEvent, catalog: &Catalog) {
        let labels = vec![("queue".to_string(), catalog.name(event.queue).to_owned())];
        let q = &self.queues;
        let (depth, waited, waits) = match event.op {
            QueueOp::Opened { .. } => (Some(0), 0, &q.blocked),
            QueueOp::Sent { blocked_ns, depth } => {
                q.sent.get_or_create(&labels).inc();
                (depth, blocked_ns, &q.blocked)
            }
            QueueOp::Received { waited_ns, depth, .. } => {
                q.received.get_or_create(&labels).inc();
                (depth, waited_ns, &q.waited)
            }
        };
        // Operations that did not read the depth leave the gauge at the last read (at most 10 µs old per end in use).
        if let Some(depth) = depth {
            q.depth.get_or_create(&labels).set(depth.min(i64::MAX as u64) as i64);
        }
        waits.get_or_create(&labels).inc_by(waited as f64 / 1e9);
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_are_counted_by_name() {
        let mut exporter = Exporter::start("127.0.0.1", 0).unwrap();
        let mut catalog = Catalog::default();
        catalog.set_name(3, "frames");
        let event = |op| QueueEvent { queue: 3, thread: 0, ts_ns: 0, op };
        exporter.queue(&event(QueueOp::Opened { capacity: Some(4) }), &catalog);
        for depth in 1..=3 {
            exporter.queue(&event(QueueOp::Sent { blocked_ns: 500_000_000, depth: Some(depth) }), &catalog);
        }
        // The second receive did not read the depth: the gauge stays at the first's.
        for depth in [Some(2), None] {
            exporter.queue(
                &event(QueueOp::Received { waited_ns: 0, depth, residence_ns: Some(9), age_ns: None }),
                &catalog,
            );
        }
        let mut text = String::new();
        encode(&mut text, &exporter.registry).unwrap();
        for line in [
            "stageprof_queue_items_sent_total{queue=\"frames\"} 3",
            "stageprof_queue_items_received_total{queue=\"frames\"} 2",
            "stageprof_queue_depth{queue=\"frames\"} 2",
            "stageprof_queue_sender_blocked_seconds_total{queue=\"frames\"} 1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
        }
    }
}
