//! What machine a profile was taken on, read without any dependency.

/// Host facts recorded with every profile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    /// The machine's name.
    pub hostname: String,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
    /// CPU model name.
    pub cpu_model: String,
    /// CPUs the OS schedules on.
    pub logical_cpus: u32,
    /// Physical memory.
    pub memory_bytes: u64,
}

impl HostInfo {
    /// Reads the facts of this machine; unknown ones stay empty or zero.
    pub fn detect() -> HostInfo {
        let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let meminfo = read("/proc/meminfo");
        HostInfo {
            hostname: read("/proc/sys/kernel/hostname").trim().to_owned(),
            os: std::env::consts::OS.to_owned(),
            arch: std::env::consts::ARCH.to_owned(),
            cpu_model: field(&cpuinfo, "model name").unwrap_or_default().to_owned(),
            logical_cpus: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
            memory_bytes: field(&meminfo, "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |kib| kib * 1024),
        }
    }

    /// The facts as key/value pairs, for metadata sections.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("host.hostname", self.hostname.clone()),
            ("host.os", self.os.clone()),
            ("host.arch", self.arch.clone()),
            ("host.cpu_model", self.cpu_model.clone()),
            ("host.logical_cpus", self.logical_cpus.to_string()),
            ("host.memory_bytes", self.memory_bytes.to_string()),
        ]
    }

    /// Reads the facts back from key/value pairs written by [`HostInfo::to_pairs`].
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> HostInfo {
        let mut host = HostInfo::default();
        for (k, v) in pairs {
            match k {
                "host.hostname" => host.hostname = v.to_owned(),
                "host.os" => host.os = v.to_owned(),
                "host.arch" => host.arch = v.to_owned(),
                "host.cpu_model" => host.cpu_model = v.to_owned(),
                "host.logical_cpus" => host.logical_cpus = v.parse().unwrap_or(0),
                "host.memory_bytes" => host.memory_bytes = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        host
    }
}

/// The value of `key : value` lines as in /proc files.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(':')?;
        (k.trim() == key).then(|| v.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let host = HostInfo {
            hostname: "h".into(),
            os: "linux".into(),
            arch: "x86_64".into(),
            cpu_model: "cpu: with colon".into(),
            logical_cpus: 2,
            memory_bytes: 1 << 34,
        };
        let pairs = host.to_pairs();
        assert_eq!(HostInfo::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str()))), host);
    }

    #[test]
    fn parses_proc_style_fields() {
        assert_eq!(field("a : 1\nmodel name\t: Xeon\n", "model name"), Some("Xeon"));
        assert_eq!(field("a : 1", "b"), None);
    }
}
