//! A WASI command: a component of another world than `sandtable:udf/plugin`.

fn main() {
    println!("not a UDF plugin");
}
