//! The `plugin!` macro: the `describe` and `call` exports, and `lifecycle`
//! when the plugin has an `init` function.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, LitBool, LitStr, Path, Token, bracketed};

/// The options of one `plugin!(...)`.
#[derive(Default)]
struct Options {
    name: Option<LitStr>,
    version: Option<LitStr>,
    functions: Option<Vec<Path>>,
    init: Option<Path>,
    directories: Vec<LitStr>,
    outbound_hosts: Vec<LitStr>,
    warm_instance: bool,
}

const OPTIONS: &str =
    "`name`, `version`, `functions`, `init`, `directories`, `outbound_hosts` and `warm_instance`";

fn bracketed_list<T: Parse>(input: ParseStream<'_>) -> syn::Result<Vec<T>> {
    let content;
    bracketed!(content in input);
    let list = Punctuated::<T, Token![,]>::parse_terminated(&content)?;
    Ok(list.into_iter().collect())
}

impl Parse for Options {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Options::default();
        while !input.is_empty() {
            let key: Ident = input.parse()?;
            input.parse::<Token![=]>()?;
            match key.to_string().as_str() {
                "name" => options.name = Some(input.parse()?),
                "version" => options.version = Some(input.parse()?),
                "functions" => options.functions = Some(bracketed_list(input)?),
                "init" => options.init = Some(input.parse()?),
                "directories" => options.directories = bracketed_list(input)?,
                "outbound_hosts" => options.outbound_hosts = bracketed_list(input)?,
                "warm_instance" => options.warm_instance = input.parse::<LitBool>()?.value,
                other => {
                    return Err(syn::Error::new(
                        key.span(),
                        format!("unknown `plugin!` option `{other}`; expected one of {OPTIONS}"),
                    ));
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(options)
    }
}

pub fn expand(input: TokenStream) -> syn::Result<TokenStream> {
    let options: Options = syn::parse2(input)?;
    let Some(functions) = &options.functions else {
        return Err(syn::Error::new(
            Span::call_site(),
            "`plugin!` needs the plugin's functions: `plugin!(functions = [upper, lower])`",
        ));
    };
    let name = match &options.name {
        Some(name) => quote!(#name),
        None => quote!(::core::env!("CARGO_PKG_NAME")),
    };
    let version = match &options.version {
        Some(version) => quote!(#version),
        None => quote!(::core::env!("CARGO_PKG_VERSION")),
    };
    let directories = &options.directories;
    let outbound_hosts = &options.outbound_hosts;
    let warm_instance = options.warm_instance;

    let init = options.init.as_ref().map(|init| {
        quote! {
            fn init() -> ::core::result::Result<(), ::std::string::String> {
                ::sandtable_guest::__private::init(#init)
            }
        }
    });
    let lifecycle = options.init.as_ref().map(|_| {
        quote! {
            impl ::sandtable_guest::__private::lifecycle_bindings::exports::sandtable::udf::lifecycle::Guest
                for SandtablePlugin
            {
                fn init() -> ::core::result::Result<(), ::std::string::String> {
                    <Self as ::sandtable_guest::Plugin>::init()
                }
            }

            #[cfg(target_arch = "wasm32")]
            ::sandtable_guest::__private::export_lifecycle!(
                SandtablePlugin with_types_in ::sandtable_guest::__private::lifecycle_bindings
            );
        }
    });

    Ok(quote! {
        /// The plugin that `sandtable_guest::plugin!` generated: the type that
        /// the component's exports dispatch to.
        #[allow(dead_code)]
        pub struct SandtablePlugin;

        impl ::sandtable_guest::Plugin for SandtablePlugin {
            fn describe() -> ::sandtable_guest::types::Description {
                ::sandtable_guest::__private::description(
                    #name,
                    #version,
                    ::std::vec![#(<#functions as ::sandtable_guest::Udf>::describe()),*],
                    &[#(#directories),*],
                    &[#(#outbound_hosts),*],
                    #warm_instance,
                )
            }

            fn call(
                function: &str,
                args: &[::sandtable_guest::types::Column],
                rows: u32,
            ) -> ::core::result::Result<
                ::sandtable_guest::types::BatchResult,
                ::sandtable_guest::types::CallError,
            > {
                #(
                    if function == <#functions as ::sandtable_guest::Udf>::NAME {
                        return <#functions as ::sandtable_guest::Udf>::call(args, rows);
                    }
                )*
                ::core::result::Result::Err(
                    ::sandtable_guest::types::CallError::UnknownFunction(function.to_owned()),
                )
            }

            #init
        }

        const _: () = {
            ::sandtable_guest::__private::check_unique_names(&[
                #(<#functions as ::sandtable_guest::Udf>::NAME),*
            ]);
        };

        impl ::sandtable_guest::__private::bindings::exports::sandtable::udf::udf::Guest
            for SandtablePlugin
        {
            fn describe() -> ::sandtable_guest::types::Description {
                <Self as ::sandtable_guest::Plugin>::describe()
            }

            fn call(
                function: ::std::string::String,
                args: ::std::vec::Vec<::sandtable_guest::types::Column>,
                rows: u32,
            ) -> ::core::result::Result<
                ::sandtable_guest::types::BatchResult,
                ::sandtable_guest::types::CallError,
            > {
                <Self as ::sandtable_guest::Plugin>::call(&function, &args, rows)
            }
        }

        #[cfg(target_arch = "wasm32")]
        ::sandtable_guest::__private::export_plugin!(
            SandtablePlugin with_types_in ::sandtable_guest::__private::bindings
        );

        #lifecycle
    })
}
