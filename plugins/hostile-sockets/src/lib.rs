//! A plugin that opens a TCP connection, so that its component imports
//! `wasi:sockets`, which the host must reject at load. It is never run.

use std::net::TcpStream;

use sandtable_guest::udf;

/// Connects to the discard port of the loopback address and returns `x`.
#[udf]
fn connect(x: i64) -> Result<i64, String> {
    TcpStream::connect("127.0.0.1:9")
        .map(|_| x)
        .map_err(|error| format!("cannot connect to 127.0.0.1:9: {error}"))
}

sandtable_guest::plugin!(functions = [connect]);
