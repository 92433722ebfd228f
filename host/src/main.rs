//! The `sandtable` command.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    sandtable::cli::main().await
}
