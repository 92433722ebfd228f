//! Procedural macros behind `sandtable-guest`: the `#[udf]` attribute and the
//! `plugin!` macro. Their documentation is on the re-exports in
//! `sandtable-guest`.

mod plugin;
mod udf;

use proc_macro::TokenStream;

/// Marks a function as a UDF of the plugin.
#[proc_macro_attribute]
pub fn udf(attr: TokenStream, item: TokenStream) -> TokenStream {
    udf::expand(attr.into(), item.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

/// Generates the plugin's exports from the functions marked with `#[udf]`.
#[proc_macro]
pub fn plugin(input: TokenStream) -> TokenStream {
    plugin::expand(input.into())
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}
