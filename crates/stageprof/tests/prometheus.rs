//! The Prometheus endpoint scraped by a real Prometheus server (Debian's
//! `prometheus`, started here on loopback), with the values checked through
//! Prometheus' own query API.
#![cfg(feature = "prometheus")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use stageprof::{Config, Format, Profiler};

/// `GET path` on `addr`: the status line's code and the body.
fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut conn = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(conn, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    conn.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n")?.1;
    // Prometheus answers chunked; its JSON bodies here fit one chunk.
    let body = match text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        true => {
            body.split_once("\r\n").map_or(body, |(_, rest)| rest.rsplit_once("\r\n0\r\n").map_or(rest, |(b, _)| b))
        }
        false => body,
    };
    Some((code, body.trim_end().to_string()))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the server when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The value of `query` once Prometheus has it, within `timeout`.
fn query(prometheus: SocketAddr, query: &str, timeout: Duration) -> Option<f64> {
    let encoded: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some((200, body)) = get(prometheus, &format!("/api/v1/query?query={encoded}")) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if let Some(value) = v["data"]["result"][0]["value"][1].as_str() {
                return value.parse().ok();
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
fn a_real_prometheus_scrapes_the_stage_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let p = Profiler::start(Config {
        output_dir: dir.path().join("out"),
        formats: vec![Format::Native],
        prometheus_port: Some(0),
        ..Config::default()
    });
    let endpoint = p.metrics_addr().expect("the endpoint is up");
    assert!(endpoint.ip().is_loopback(), "binds loopback by default: {endpoint}");
    for _ in 0..5 {
        let _f = p.frame();
        for _ in 0..7 {
            let _s = p.stage("decode");
        }
        let _s = p.stage("infer");
        std::thread::sleep(Duration::from_millis(20));
    }
    // The collector feeds the exporter every 20 ms: wait until it has all of it.
    let start = Instant::now();
    let text = loop {
        let (code, text) = get(endpoint, "/metrics").expect("the endpoint answers");
        assert_eq!(code, 200);
        if text.contains("stageprof_frames_total 5") || start.elapsed() > Duration::from_secs(5) {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("stageprof_stage_calls_total{stage=\"decode\"} 35"), "{text}");
    assert_eq!(get(endpoint, "/other").map(|(c, _)| c), Some(404));

    let binary = ["prometheus", "/usr/bin/prometheus"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok())
        .expect("this test needs Debian's prometheus: apt-get install prometheus (.ci/run does)");
    let port = free_port();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: stageprof\n    static_configs:\n      - targets: ['{endpoint}']\n"),
    )
    .unwrap();
    let _server = Server(
        Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("tsdb").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let prometheus: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let wait = Duration::from_secs(60);
    assert_eq!(query(prometheus, "stageprof_stage_calls_total{stage=\"decode\"}", wait), Some(35.0));
    assert_eq!(query(prometheus, "stageprof_stage_calls_total{stage=\"infer\"}", wait), Some(5.0));
    assert_eq!(query(prometheus, "stageprof_frames_total", wait), Some(5.0));
    // Each frame slept 20 ms: its histogram's sum is at least 100 ms, its count 5.
    assert_eq!(query(prometheus, "stageprof_frame_duration_seconds_count", wait), Some(5.0));
    let sum = query(prometheus, "stageprof_frame_duration_seconds_sum", wait).unwrap();
    assert!((0.1..1.0).contains(&sum), "{sum}");
    let up = query(prometheus, "up{job=\"stageprof\"}", wait);
    assert_eq!(up, Some(1.0), "Prometheus scraped the endpoint successfully");
    p.finish();
}
