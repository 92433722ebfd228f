//! Readings of the host's CPU, memory, disks and network from `/proc`.
//!
//! CPU time, disk and network figures are counters since boot, so a sample
//! is the difference between two readings divided by the time between them.
//!
//! NOTE: the figures are the machine's as `/proc` shows them. Inside a
//! container they are the host machine's, not the container's cgroup
//! limits, and the network figures are those of the process's network
//! namespace.

use std::path::Path;
use std::time::{Duration, Instant};

use procfs::{Current as _, CurrentSI as _};
use serde::Serialize;

/// The bytes of one sector in `/proc/diskstats`, whatever the device's own
/// sector size (Linux's `Documentation/admin-guide/iostats.rst`).
const DISKSTATS_SECTOR_BYTES: u64 = 512;

/// The time between the two readings of [`sample_once`]: long enough for
/// the kernel's CPU counters, which tick 100 times a second, to move.
const ONE_SAMPLE_SPAN: Duration = Duration::from_millis(250);

/// One sample of the host's resources.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostSample {
    /// CPU time in use, in percent of all cores.
    pub cpu_percent: f64,
    /// Memory in use: the total less what the kernel estimates is available.
    pub memory_used_bytes: u64,
    /// The host's memory.
    pub memory_total_bytes: u64,
    /// Bytes read from the disks a second.
    pub disk_read_bytes_per_second: f64,
    /// Bytes written to the disks a second.
    pub disk_written_bytes_per_second: f64,
    /// Bytes received a second, loopback left out.
    pub network_received_bytes_per_second: f64,
    /// Bytes sent a second, loopback left out.
    pub network_sent_bytes_per_second: f64,
}

impl HostSample {
    /// Returns the memory in use, in percent of the total.
    pub fn memory_percent(&self) -> f64 {
        if self.memory_total_bytes == 0 {
            return 0.0;
        }
        self.memory_used_bytes as f64 * 100.0 / self.memory_total_bytes as f64
    }
}

/// The counters of one reading.
#[derive(Debug, Clone, Copy)]
struct Counters {
    at: Instant,
    cpu_busy_ticks: u64,
    cpu_total_ticks: u64,
    disk_read_bytes: u64,
    disk_written_bytes: u64,
    network_received_bytes: u64,
    network_sent_bytes: u64,
}

/// Reads the host's counters and turns consecutive readings into samples.
#[derive(Debug, Default)]
pub struct HostReader {
    previous: Option<Counters>,
}

impl HostReader {
    /// Reads the counters, and returns the sample since the previous reading,
    /// or `None` on the first.
    ///
    /// # Errors
    ///
    /// Fails when a file under `/proc` cannot be read or parsed, as on a
    /// system without procfs.
    pub fn read(&mut self) -> procfs::ProcResult<Option<HostSample>> {
        let counters = read_counters()?;
        let meminfo = procfs::Meminfo::current()?;
        let previous = self.previous.replace(counters);
        let Some(previous) = previous else {
            return Ok(None);
        };
        let seconds = counters
            .at
            .duration_since(previous.at)
            .as_secs_f64()
            .max(1e-3);
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 / seconds;
        let total_ticks = counters
            .cpu_total_ticks
            .saturating_sub(previous.cpu_total_ticks);
        let busy_ticks = counters
            .cpu_busy_ticks
            .saturating_sub(previous.cpu_busy_ticks);
        let cpu_percent = if total_ticks == 0 {
            0.0
        } else {
            busy_ticks as f64 * 100.0 / total_ticks as f64
        };
        // Kernels before 3.14 have no MemAvailable; free memory and the page
        // cache are the usual estimate there.
        let available = meminfo
            .mem_available
            .unwrap_or(meminfo.mem_free + meminfo.buffers + meminfo.cached);
        Ok(Some(HostSample {
            cpu_percent,
            memory_used_bytes: meminfo.mem_total.saturating_sub(available),
            memory_total_bytes: meminfo.mem_total,
            disk_read_bytes_per_second: rate(counters.disk_read_bytes, previous.disk_read_bytes),
            disk_written_bytes_per_second: rate(
                counters.disk_written_bytes,
                previous.disk_written_bytes,
            ),
            network_received_bytes_per_second: rate(
                counters.network_received_bytes,
                previous.network_received_bytes,
            ),
            network_sent_bytes_per_second: rate(
                counters.network_sent_bytes,
                previous.network_sent_bytes,
            ),
        }))
    }
}

/// Takes one sample over a quarter of a second, for a command that runs
/// once.
///
/// # Errors
///
/// Fails as [`HostReader::read`] does.
pub async fn sample_once() -> procfs::ProcResult<HostSample> {
    let mut reader = HostReader::default();
    reader.read()?;
    tokio::time::sleep(ONE_SAMPLE_SPAN).await;
    Ok(reader
        .read()?
        .expect("a second reading always makes a sample"))
}

fn read_counters() -> procfs::ProcResult<Counters> {
    let at = Instant::now();
    let cpu = procfs::KernelStats::current()?.total;
    let idle = cpu.idle + cpu.iowait.unwrap_or(0);
    let busy = cpu.user
        + cpu.nice
        + cpu.system
        + cpu.irq.unwrap_or(0)
        + cpu.softirq.unwrap_or(0)
        + cpu.steal.unwrap_or(0);
    let (mut disk_read_bytes, mut disk_written_bytes) = (0, 0);
    for disk in procfs::diskstats()? {
        if is_whole_device(&disk.name) {
            disk_read_bytes += disk.sectors_read * DISKSTATS_SECTOR_BYTES;
            disk_written_bytes += disk.sectors_written * DISKSTATS_SECTOR_BYTES;
        }
    }
    let (mut network_received_bytes, mut network_sent_bytes) = (0, 0);
    for (name, device) in procfs::net::dev_status()? {
        if name != "lo" {
            network_received_bytes += device.recv_bytes;
            network_sent_bytes += device.sent_bytes;
        }
    }
    Ok(Counters {
        at,
        cpu_busy_ticks: busy,
        cpu_total_ticks: busy + idle,
        disk_read_bytes,
        disk_written_bytes,
        network_received_bytes,
        network_sent_bytes,
    })
}

/// Returns whether a `/proc/diskstats` entry is a device backed by
/// hardware, real or virtual. Partitions, loop, RAM and device-mapper devices are left out,
/// since their I/O is also counted on the device beneath them.
fn is_whole_device(name: &str) -> bool {
    Path::new("/sys/block").join(name).join("device").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_make_a_sample_from_the_second_on() {
        let mut reader = HostReader::default();
        assert_eq!(reader.read().unwrap(), None);
        std::thread::sleep(Duration::from_millis(20));
        let sample = reader.read().unwrap().expect("the second reading");
        assert!(sample.memory_total_bytes > 0, "{sample:?}");
        assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
        assert!((0.0..=100.0).contains(&sample.cpu_percent), "{sample:?}");
        assert!(sample.disk_read_bytes_per_second >= 0.0);
    }
}
