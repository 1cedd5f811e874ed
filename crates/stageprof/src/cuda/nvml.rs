//! Device-wide GPU counters from NVML, sampled on the session's thread and
//! written as counter tracks.

use nvml_wrapper::enum_wrappers::device::{Clock, PcieUtilCounter};
use nvml_wrapper::Nvml;

/// The counters, in the order they are read.
const COUNTERS: [&str; 7] = [
    "gpu.sm_util_pct",
    "gpu.mem_util_pct",
    "gpu.mem_used_bytes",
    "gpu.power_w",
    "gpu.sm_clock_mhz",
    "gpu.pcie_rx_bytes_per_s",
    "gpu.pcie_tx_bytes_per_s",
];

pub(crate) struct NvmlSampler {
    nvml: Nvml,
    index: u32,
    live: LiveCounters,
}

/// Counters the device answered; one that fails is dropped after saying so once.
struct LiveCounters([bool; COUNTERS.len()]);

impl NvmlSampler {
    pub(super) fn start(index: u32) -> Result<NvmlSampler, String> {
        let nvml = Nvml::init().map_err(|e| format!("NVML is unavailable ({e}); no GPU counter tracks"))?;
        nvml.device_by_index(index).map_err(|e| format!("NVML has no device {index} ({e}); no GPU counter tracks"))?;
        Ok(NvmlSampler { nvml, index, live: LiveCounters([true; COUNTERS.len()]) })
    }

    /// Reads every counter still live; `report` gets one line for each that fails the first time.
    pub(super) fn sample(&mut self, report: impl FnMut(String), emit: impl FnMut(&str, f64)) {
        let Ok(device) = self.nvml.device_by_index(self.index) else { return };
        let text = |e: nvml_wrapper::error::NvmlError| e.to_string();
        let util = device.utilization_rates().map_err(text);
        let readings: [Result<f64, String>; COUNTERS.len()] = [
            util.as_ref().map(|u| f64::from(u.gpu)).map_err(String::clone),
            util.as_ref().map(|u| f64::from(u.memory)).map_err(String::clone),
            device.memory_info().map(|m| m.used as f64).map_err(text),
            device.power_usage().map(|mw| f64::from(mw) / 1000.0).map_err(text),
            device.clock_info(Clock::SM).map(f64::from).map_err(text),
            device.pcie_throughput(PcieUtilCounter::Receive).map(|kb| f64::from(kb) * 1024.0).map_err(text),
            device.pcie_throughput(PcieUtilCounter::Send).map(|kb| f64::from(kb) * 1024.0).map_err(text),
        ];
        self.live.deliver(readings, report, emit);
    }
}

impl LiveCounters {
    /// Emits the live counters' readings; a failed one is reported and left out from then on.
    fn deliver(
        &mut self,
        readings: [Result<f64, String>; COUNTERS.len()],
        mut report: impl FnMut(String),
        mut emit: impl FnMut(&str, f64),
    ) {
        for (i, reading) in readings.into_iter().enumerate() {
            if !self.0[i] {
                continue;
            }
            match reading {
                Ok(v) => emit(COUNTERS[i], v),
                Err(e) => {
                    self.0[i] = false;
                    report(format!("NVML cannot read {} on this device ({e}); that track is left out", COUNTERS[i]));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_counter_is_reported_once_and_the_rest_keep_coming() {
        let mut live = LiveCounters([true; COUNTERS.len()]);
        let (mut lines, mut emitted) = (Vec::new(), Vec::new());
        for round in 0..3 {
            let mut readings: [Result<f64, String>; COUNTERS.len()] =
                std::array::from_fn(|i| Ok((round * 10 + i) as f64));
            readings[3] = Err("Not Supported".into());
            live.deliver(readings, |l| lines.push(l), |name, v| emitted.push((name.to_string(), v)));
        }
        assert_eq!(lines, ["NVML cannot read gpu.power_w on this device (Not Supported); that track is left out"]);
        assert_eq!(emitted.len(), 3 * (COUNTERS.len() - 1));
        assert!(emitted.iter().all(|(name, _)| name != "gpu.power_w"));
        assert_eq!(emitted[COUNTERS.len() - 1], ("gpu.sm_util_pct".to_string(), 10.0));
    }
}
