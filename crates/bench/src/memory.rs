//! Peak resident set size of another process, from `/proc/<pid>/status`.

use anyhow::Context;

/// Bytes per KiB, the unit of `/proc/<pid>/status`.
const KIB: u64 = 1024;
/// Written to `/proc/<pid>/clear_refs`, resets the peak RSS (Linux ≥ 4.0).
const RESET_PEAK_RSS: &str = "5";

/// `VmHWM` (the peak RSS) of process `pid`, in bytes.
pub fn peak_rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_kib_field(&status, "VmHWM:").map(|kib| kib * KIB).with_context(|| format!("no VmHWM in {path}"))
}

/// Resets the peak RSS of `pid` to its current RSS; false where not permitted.
pub fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), RESET_PEAK_RSS).is_ok()
}

/// The number of a `Name:   1234 kB` line.
fn parse_kib_field(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    line[field.len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_vm_hwm() {
        let status = "Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(parse_kib_field(status, "VmHWM:"), Some(1234));
        assert_eq!(parse_kib_field(status, "VmSwap:"), None);
    }

    #[test]
    fn own_peak_rss_is_positive() {
        assert!(peak_rss_bytes(std::process::id()).unwrap() > 0);
    }
}
