//! Fault classes, and the one mapping from wasmtime's errors to them.
//!
//! wasmtime reports the same kind of failure in several shapes, so the
//! mapping below looks at more than the trap code (observed on wasmtime 48
//! with Rust guests built for `wasm32-wasip2`):
//!
//! - Fuel running out is `Trap::OutOfFuel`.
//! - The epoch deadline is `Trap::Interrupt`.
//! - Running out of linear memory has three shapes. When the limiter denies
//!   growth, `memory.grow` returns -1 and a Rust guest aborts with an
//!   `unreachable` trap after printing "memory allocation of N bytes failed"
//!   on stderr. A batch too big for the guest's memory traps the same way
//!   inside `cabi_realloc`. With `trap_on_grow_failure` the denial comes back
//!   as a plain error, not a `Trap`. All three are [`FaultClass::MemoryLimit`]
//!   when the limiter recorded a denied growth or stderr has that message.
//! - A stack overflow is `Trap::StackOverflow` when the host's wasm stack runs
//!   out. A Rust guest's own shadow stack lives at the bottom of linear
//!   memory, so overflowing it wraps the stack pointer below address 0 and
//!   shows as `Trap::MemoryOutOfBounds`: that is classed as a stack overflow
//!   too, since safe Rust cannot produce it otherwise.
//! - Data from the guest past the store's hostcall fuel, which the host
//!   sets just above the output cap, is a plain error; it is classed as
//!   [`FaultClass::InvalidOutput`].
//! - Every other trap, including a Rust panic (which aborts with
//!   `unreachable`), is a [`FaultClass::GuestTrap`].

use std::fmt;

use serde::{Deserialize, Serialize};
use wasmtime::Trap;

/// Why a guest call, or one row of it, failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultClass {
    /// The call used all the fuel it was given.
    FuelExhausted,
    /// The call ran past its wall-clock deadline.
    DeadlineExceeded,
    /// The guest needed more linear memory or table space than its limit.
    MemoryLimit,
    /// The guest overflowed its stack.
    StackOverflow,
    /// The guest trapped for another reason, such as a panic.
    GuestTrap,
    /// The guest returned an error, for the whole call or for one row.
    GuestError,
    /// The guest's output broke the contract: wrong length, wrong type,
    /// malformed offsets, invalid JSON, or over the output cap.
    InvalidOutput,
}

impl FaultClass {
    /// All classes, in a fixed order for reports.
    pub const ALL: [FaultClass; 7] = [
        FaultClass::FuelExhausted,
        FaultClass::DeadlineExceeded,
        FaultClass::MemoryLimit,
        FaultClass::StackOverflow,
        FaultClass::GuestTrap,
        FaultClass::GuestError,
        FaultClass::InvalidOutput,
    ];

    /// The class's name as stored in a cell's error type, such as
    /// `fuel_exhausted`.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultClass::FuelExhausted => "fuel_exhausted",
            FaultClass::DeadlineExceeded => "deadline_exceeded",
            FaultClass::MemoryLimit => "memory_limit",
            FaultClass::StackOverflow => "stack_overflow",
            FaultClass::GuestTrap => "guest_trap",
            FaultClass::GuestError => "guest_error",
            FaultClass::InvalidOutput => "invalid_output",
        }
    }

    /// Whether re-running a smaller batch could avoid this fault, which is
    /// the case for every fault that one row can cause.
    pub(crate) fn is_row_specific(self) -> bool {
        !matches!(self, FaultClass::GuestError)
    }
}

impl fmt::Display for FaultClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified failure of one guest call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The class of the failure.
    pub class: FaultClass,
    /// A message for the person reading the table or the log.
    pub message: String,
}

impl Fault {
    /// Creates a fault of `class` with `message`.
    pub fn new(class: FaultClass, message: impl Into<String>) -> Self {
        Fault {
            class,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.class, self.message)
    }
}

/// What the store saw during a call, beyond the error itself.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FaultEvidence {
    /// The limiter denied a memory or table growth.
    pub growth_denied: bool,
    /// The guest printed Rust's out-of-memory message on stderr.
    pub oom_message: bool,
}

/// The message a Rust guest prints on stderr before it aborts for lack of
/// memory.
pub(crate) const RUST_OOM_MESSAGE: &str = "memory allocation of";

/// The message of wasmtime 48's error when data from the guest exceeds the
/// store's hostcall fuel, which the host sets just above the output cap.
pub(crate) const HOSTCALL_FUEL_MESSAGE: &str = "fuel allocated for hostcalls has been exhausted";

/// Classifies an error returned by wasmtime for a guest call.
pub(crate) fn classify(error: &wasmtime::Error, evidence: FaultEvidence, limits: &str) -> Fault {
    let memory_evidence = evidence.growth_denied || evidence.oom_message;
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Fault::new(
            FaultClass::FuelExhausted,
            format!("the call used all of its fuel ({limits})"),
        ),
        Some(Trap::Interrupt) => Fault::new(
            FaultClass::DeadlineExceeded,
            format!("the call ran past its deadline ({limits})"),
        ),
        Some(Trap::StackOverflow) => Fault::new(
            FaultClass::StackOverflow,
            "the guest overflowed the wasm stack",
        ),
        Some(_) if memory_evidence => Fault::new(
            FaultClass::MemoryLimit,
            format!("the guest ran out of memory ({limits})"),
        ),
        Some(Trap::MemoryOutOfBounds) => Fault::new(
            FaultClass::StackOverflow,
            "the guest accessed memory out of bounds, which in a Rust guest means its shadow stack overflowed",
        ),
        Some(trap) => Fault::new(FaultClass::GuestTrap, format!("the guest trapped: {trap}")),
        None if root_message(error).contains(HOSTCALL_FUEL_MESSAGE) => Fault::new(
            FaultClass::InvalidOutput,
            format!("the guest returned more data than the output cap allows ({limits})"),
        ),
        None if memory_evidence => Fault::new(
            FaultClass::MemoryLimit,
            format!("the guest ran out of memory ({limits})"),
        ),
        None => Fault::new(
            FaultClass::GuestTrap,
            format!("the guest call failed: {}", root_message(error)),
        ),
    }
}

/// Returns the innermost message of an error chain, without wasmtime's
/// backtrace.
fn root_message(error: &wasmtime::Error) -> String {
    error
        .chain()
        .last()
        .map(|cause| cause.to_string())
        .unwrap_or_else(|| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trap(trap: Trap) -> wasmtime::Error {
        wasmtime::Error::new(trap)
    }

    #[test]
    fn classify_maps_trap_codes() {
        let none = FaultEvidence::default();
        let cases = [
            (Trap::OutOfFuel, FaultClass::FuelExhausted),
            (Trap::Interrupt, FaultClass::DeadlineExceeded),
            (Trap::StackOverflow, FaultClass::StackOverflow),
            (Trap::MemoryOutOfBounds, FaultClass::StackOverflow),
            (Trap::UnreachableCodeReached, FaultClass::GuestTrap),
        ];
        for (code, class) in cases {
            assert_eq!(classify(&trap(code), none, "").class, class, "{code:?}");
        }
    }

    #[test]
    fn classify_unreachable_after_denied_growth_is_memory() {
        let evidence = FaultEvidence {
            growth_denied: true,
            oom_message: false,
        };
        let fault = classify(&trap(Trap::UnreachableCodeReached), evidence, "");
        assert_eq!(fault.class, FaultClass::MemoryLimit);
    }

    #[test]
    fn classify_plain_error_with_oom_message_is_memory() {
        let evidence = FaultEvidence {
            growth_denied: false,
            oom_message: true,
        };
        let error = wasmtime::Error::msg("forcing a memory growth failure to be a trap");
        assert_eq!(
            classify(&error, evidence, "").class,
            FaultClass::MemoryLimit
        );
    }

    #[test]
    fn classify_plain_error_is_guest_trap() {
        let error = wasmtime::Error::msg("something else");
        let fault = classify(&error, FaultEvidence::default(), "");
        assert_eq!(fault.class, FaultClass::GuestTrap);
        assert!(
            fault.message.contains("something else"),
            "{}",
            fault.message
        );
    }
}
