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
    /// Counters the device answered; one that is not supported is dropped after saying so once.
    live: [bool; COUNTERS.len()],
}

impl NvmlSampler {
    pub fn start(index: u32) -> Result<NvmlSampler, String> {
        let nvml = Nvml::init().map_err(|e| format!("NVML is unavailable ({e}); no GPU counter tracks"))?;
        nvml.device_by_index(index).map_err(|e| format!("NVML has no device {index} ({e}); no GPU counter tracks"))?;
        Ok(NvmlSampler { nvml, index, live: [true; COUNTERS.len()] })
    }

    /// Reads every counter still live; `report` gets one line for each that fails the first time.
    pub fn sample(&mut self, mut report: impl FnMut(String), mut emit: impl FnMut(&str, f64)) {
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
        for (i, reading) in readings.into_iter().enumerate() {
            if !self.live[i] {
                continue;
            }
            match reading {
                Ok(v) => emit(COUNTERS[i], v),
                Err(e) => {
                    self.live[i] = false;
                    report(format!("NVML cannot read {} on this device ({e}); that track is left out", COUNTERS[i]));
                }
            }
        }
    }
}
