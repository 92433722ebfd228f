//! Declares an initial linear memory of 2 GiB, 32,768 pages of 64 KiB.

fn main() {
    // Only the WebAssembly linker accepts the flag, so native builds (as for
    // `cargo test`) go without it.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--initial-memory=2147483648");
    }
}
