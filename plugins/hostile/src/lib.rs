//! Functions that misbehave on purpose, each only on some rows. A bad row
//! exhausts fuel, memory or stack, traps, breaks the contract or floods the
//! log, so tests of the host can check that the harm stays within that row or
//! call and that the rest of the table is still computed.

use std::hint::black_box;
use std::io::Write as _;

use sandtable_guest::types::{BatchResult, CallError, Column, Values};
use sandtable_guest::{log, udf};

/// Loops forever when `x` is negative, and otherwise returns `x`.
#[udf]
fn spin(x: i64) -> i64 {
    if x < 0 {
        let mut counter = 0u64;
        loop {
            // `black_box` keeps the optimizer from proving the loop useless.
            counter = black_box(counter.wrapping_add(1));
        }
    }
    x
}

/// Allocates and writes to 1 MiB chunks without bound when `x` is negative,
/// and otherwise returns `x`.
#[udf]
fn hog(x: i64) -> i64 {
    if x < 0 {
        let mut chunks: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            // One write a 4 KiB page, so that every page is touched.
            for index in (0..chunk.len()).step_by(4096) {
                chunk[index] = 1;
            }
            chunks.push(black_box(chunk));
        }
    }
    x
}

/// Returns `n` after recursing `n` levels deep, with a 128-byte array live
/// across each call so that neither the frames nor the recursion can be
/// optimized away.
#[inline(never)]
fn depth(n: i64) -> i64 {
    let frame = black_box([n; 16]);
    if n <= 0 {
        return 0;
    }
    let below = depth(black_box(frame[0] - 1));
    black_box(&frame);
    below + 1
}

/// Recurses `x` levels deep without tail calls and returns `x`.
///
/// A million levels overflow the stack.
#[udf]
fn recurse(x: i64) -> i64 {
    if x <= 0 { x } else { depth(x) }
}

/// Panics when `s` is `boom`, and otherwise returns `s`.
#[udf]
fn panic_on(s: &str) -> &str {
    if s == "boom" {
        panic!("`panic_on` received \"boom\"");
    }
    s
}

/// Returns one row fewer than the batch has, bypassing the SDK's checks.
#[udf(raw, params(x: int), returns = int)]
fn wrong_length(args: &[Column], rows: u32) -> Result<BatchResult, CallError> {
    let prefix_len = rows.saturating_sub(1) as usize;
    let values = match args.first().map(|column| &column.values) {
        Some(Values::Int(values)) => values.iter().copied().take(prefix_len).collect(),
        _ => vec![0; prefix_len],
    };
    Ok(BatchResult {
        column: Column::ints(values),
        errors: Vec::new(),
    })
}

/// Returns a string column although it is declared to return `int`.
#[udf(raw, params(x: int), returns = int)]
fn wrong_type(_args: &[Column], rows: u32) -> Result<BatchResult, CallError> {
    let column = Column::strings((0..rows).map(|row| row.to_string()));
    Ok(BatchResult {
        column,
        errors: Vec::new(),
    })
}

/// Returns a string of `x` bytes for each row.
#[udf]
fn huge_output(x: i64) -> Result<String, String> {
    let len = usize::try_from(x).map_err(|_| format!("length {x} is negative"))?;
    Ok("x".repeat(len))
}

/// The length of each message that `log_flood` writes.
const FLOOD_MESSAGE_BYTES: usize = 100 * 1024;

/// Writes `x` hostile log records and `x` lines to each of standard output
/// and standard error, then returns `x`.
///
/// Each record is a 100 KiB message with a newline, a carriage return and an
/// ANSI escape, and each line contains the same control characters.
#[udf]
fn log_flood(x: i64) -> i64 {
    let forged = "forged\nERROR sandtable: fake host record\r\x1b[31mred\x1b[0m ";
    let mut message = String::with_capacity(FLOOD_MESSAGE_BYTES);
    message.push_str(forged);
    message.extend(std::iter::repeat_n('A', FLOOD_MESSAGE_BYTES - forged.len()));

    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr().lock();
    for line in 0..x.max(0) {
        log::write(
            log::Level::Error,
            &message,
            &[("key\nforged=1", "value\r\x1b[2J")],
        );
        // Write errors are ignored: the host may close or cap both streams.
        let _ = writeln!(stdout, "stdout {line}\x1b[31m\r{forged}");
        let _ = writeln!(stderr, "stderr {line}\x1b[31m\r{forged}");
    }
    x
}

/// Returns the bytes of the file at `path`, or the I/O error as a row error.
#[udf]
fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read `{path}`: {error}"))
}

/// Returns a row error when `x` is negative, and otherwise returns `x`.
#[udf]
fn fail_row(x: i64) -> Result<i64, String> {
    if x < 0 {
        return Err(format!("`fail_row` rejects negative input {x}"));
    }
    Ok(x)
}

/// Returns `x`.
#[udf]
fn echo(x: i64) -> i64 {
    x
}

/// Sleeps `ms` milliseconds in the host's clock, where no wasm code runs to
/// check the deadline, then returns `ms`.
#[udf]
fn sleep(ms: i64) -> i64 {
    std::thread::sleep(std::time::Duration::from_millis(ms.max(0) as u64));
    ms
}

/// Sleeps `ms` milliseconds as `sleep` does, and returns the wall-clock time
/// at which it started, in microseconds since the Unix epoch, so that a test
/// can tell which calls ran at once.
#[udf]
fn stamped_sleep(ms: i64) -> i64 {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as i64);
    std::thread::sleep(std::time::Duration::from_millis(ms.max(0) as u64));
    started
}

/// Embeds text in 4 dimensions, badly on purpose: `nan` gives a vector with
/// NaN, `inf` one with an infinity and `zero` the zero vector; other text
/// gives `[1, length, 0, 0]`.
#[udf]
fn bad_vector(s: &str) -> [f32; 4] {
    match s {
        "nan" => [1.0, f32::NAN, 0.0, 0.0],
        "inf" => [f32::INFINITY, 0.0, 0.0, 0.0],
        "zero" => [0.0; 4],
        _ => [1.0, s.len() as f32, 0.0, 0.0],
    }
}

/// Returns vectors of 3 numbers although it declares 4.
#[udf(raw, params(s: string), returns = vector(4))]
fn short_vector(_args: &[Column], rows: u32) -> Result<BatchResult, CallError> {
    Ok(BatchResult {
        column: Column::vectors(3, (0..rows).map(|_| [1.0f32, 0.0, 0.0])),
        errors: Vec::new(),
    })
}

sandtable_guest::plugin!(
    functions = [
        bad_vector,
        short_vector,
        sleep,
        stamped_sleep,
        spin,
        hog,
        recurse,
        panic_on,
        wrong_length,
        wrong_type,
        huge_output,
        log_flood,
        read_file,
        fail_row,
        echo,
    ],
    directories = ["/data"],
);

#[cfg(test)]
mod tests {
    use sandtable_guest::types::{Column, DataType, Values};
    use sandtable_guest::{Value, testing};

    use super::*;

    #[test]
    fn well_behaved_rows_pass_through() {
        let input = Column::ints([0, 5]);
        for result in [
            testing::call::<spin>(std::slice::from_ref(&input)),
            testing::call::<hog>(std::slice::from_ref(&input)),
            testing::call::<recurse>(std::slice::from_ref(&input)),
            testing::call::<fail_row>(std::slice::from_ref(&input)),
            testing::call::<echo>(std::slice::from_ref(&input)),
        ] {
            assert_eq!(result.unwrap().column.values, Values::Int(vec![0, 5]));
        }
    }

    #[test]
    fn recurse_returns_depth() {
        let result = testing::call::<recurse>(&[Column::ints([1000, -3])]).unwrap();
        assert_eq!(result.column.values, Values::Int(vec![1000, -3]));
    }

    #[test]
    fn raw_functions_break_contract() {
        let result = testing::call::<wrong_length>(&[Column::ints([1, 2, 3])]).unwrap();
        assert_eq!(result.column.values, Values::Int(vec![1, 2]));
        let result = testing::call::<wrong_type>(&[Column::ints([1, 2])]).unwrap();
        assert_eq!(
            result.column.to_values(),
            [Some(Value::String("0")), Some(Value::String("1"))]
        );
        assert_eq!(testing::describe::<wrong_type>().returns, DataType::Int);
    }

    #[test]
    fn fail_row_rejects_negative_rows() {
        let result = testing::call::<fail_row>(&[Column::ints([1, -1])]).unwrap();
        assert_eq!(result.column.to_values(), [Some(Value::Int(1)), None]);
        assert_eq!(result.errors[0].row, 1);
        assert_eq!(
            result.errors[0].message,
            "`fail_row` rejects negative input -1"
        );
    }

    #[test]
    fn huge_output_repeats_bytes() {
        let result = testing::call::<huge_output>(&[Column::ints([3, -1])]).unwrap();
        assert_eq!(
            result.column.to_values(),
            [Some(Value::String("xxx")), None]
        );
        assert_eq!(result.errors[0].message, "length -1 is negative");
    }

    #[test]
    fn read_file_reports_io_error() {
        let result =
            testing::call::<read_file>(&[Column::strings(["/nonexistent/sandtable"])]).unwrap();
        assert_eq!(result.column.to_values(), [None]);
        assert!(
            result.errors[0]
                .message
                .starts_with("cannot read `/nonexistent/sandtable`: "),
            "{}",
            result.errors[0].message
        );
    }

    #[test]
    fn description_lists_every_function() {
        let description = testing::describe_plugin::<SandtablePlugin>();
        assert_eq!(description.name, "hostile");
        assert_eq!(description.functions.len(), 15);
    }
}
