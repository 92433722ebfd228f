//! What a benchmark prints about the machine it ran on (the load average
//! and the cores it got, so that figures from shared machines can be read
//! against them), the sections that the command line selects, and the
//! aligned tables that benchmarks print.

use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Returns the 1-, 5- and 15-minute load averages of `/proc/loadavg`.
pub fn load_average() -> String {
    match std::fs::read_to_string("/proc/loadavg") {
        Ok(text) => text
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        Err(error) => format!("unknown ({error})"),
    }
}

/// Measures the cores this process gets while two threads spin for a
/// second, as the CPU time they receive over the wall time. An idle machine
/// of two or more cores gives 2.0.
pub fn free_cores() -> anyhow::Result<f64> {
    const SPIN: Duration = Duration::from_secs(1);
    let cpu_before = process_cpu_time()?;
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                let mut x: u64 = 1;
                while started.elapsed() < SPIN {
                    for _ in 0..1000 {
                        x = std::hint::black_box(x.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 1);
                    }
                }
            });
        }
    });
    let wall = started.elapsed();
    let cpu = process_cpu_time()?.saturating_sub(cpu_before);
    Ok(cpu.as_secs_f64() / wall.as_secs_f64())
}

/// Returns the user and system CPU time of this process so far, all
/// threads included, from `/proc/self/stat`.
pub fn process_cpu_time() -> anyhow::Result<Duration> {
    // NOTE: `utime` and `stime` are in clock ticks of `sysconf(_SC_CLK_TCK)`.
    // Linux fixes that at 100 a second (`USER_HZ`) on x86 and arm64, and
    // these figures assume it.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces: `state` is field 3, `utime` 14 and `stime` 15.
    let after_command = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("`/proc/self/stat` has no command name")?;
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<u64> {
        let field = fields
            .get(index)
            .context("`/proc/self/stat` has too few fields")?;
        Ok(field.parse()?)
    };
    let total = ticks(11)? + ticks(12)?;
    Ok(Duration::from_millis(total * 1000 / TICKS_PER_SECOND))
}

/// Returns the benchmark sections named on the command line, which are all
/// of them when none is named.
///
/// # Errors
///
/// Fails on a name that is not one of `sections`, listing them.
pub fn chosen_sections(sections: &[&str]) -> anyhow::Result<Vec<String>> {
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| !arg.starts_with("--"))
        .collect();
    for name in &chosen {
        anyhow::ensure!(
            sections.contains(&name.as_str()),
            "unknown section `{name}`; the sections are {}",
            sections.join(", ")
        );
    }
    Ok(chosen)
}

/// Rows of figures under a header, printed with aligned columns.
pub struct Figures {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Figures {
    /// Starts a table with the column names `header`.
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Figures {
            header: header.iter().map(|name| (*name).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Appends a row, one cell a column.
    pub fn add_row<const N: usize>(&mut self, row: [String; N]) {
        self.rows.push(row.to_vec());
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|row| row[i].chars().count())
                    .chain([self.header[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| {
                    if i == 0 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            writeln!(f, "{}", cells.join("  ").trim_end())?;
        }
        Ok(())
    }
}
