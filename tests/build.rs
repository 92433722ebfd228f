//! Builds the plugins in `plugins/` for `wasm32-wasip2`, so that the tests
//! always run against components built from the current source.
//!
//! The nested cargo uses the plugins' own target directory: one that shared
//! this build's directory would wait forever on the lock this build holds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.parent().unwrap().to_owned();
    let plugins = root.join("plugins");
    let target_dir = plugins.join("target");
    for watched in ["plugins", "guest-sdk", "wit"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--manifest-path",
        ])
        .arg(plugins.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the host build must not reach the wasm build.
    for variable in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        command.env_remove(variable);
    }
    let status = command
        .status()
        .expect("cannot run cargo to build the plugins");
    if !status.success() {
        panic!(
            "building the plugins failed ({status}); if the `wasm32-wasip2` target is missing, \
             run `scripts/setup` or `rustup target add wasm32-wasip2`"
        );
    }
    let out = target_dir.join("wasm32-wasip2").join("release");
    println!("cargo:rustc-env=SANDTABLE_PLUGIN_DIR={}", out.display());
    println!(
        "cargo:rustc-env=SANDTABLE_PLUGIN_SOURCE_DIR={}",
        plugins.display()
    );
}
