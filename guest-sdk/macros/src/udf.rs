//! The `#[udf]` attribute: a type named after the function that implements
//! `sandtable_guest::Udf` by decoding the columns and calling the function.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, FnArg, Ident, ItemFn, LitBool, LitStr, Pat, ReturnType, Token, Type};

/// The calling convention of a `#[udf]` function.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Once a row, with one value of each argument.
    Scalar,
    /// Once a batch, with a view of each argument column.
    Batch,
    /// Once a batch, with the columns as the host sent them.
    Raw,
}

/// The options of one `#[udf(...)]`.
struct Options {
    mode: Mode,
    name: Option<LitStr>,
    doc: Option<LitStr>,
    batch_size: Option<Expr>,
    pool: Option<LitStr>,
    fuel_per_row: Option<Expr>,
    memory_bytes: Option<Expr>,
    deadline_ms: Option<Expr>,
    output_bytes: Option<Expr>,
    dimension: Option<Expr>,
    takes_nulls: bool,
    params: Option<Vec<(Ident, TokenStream)>>,
    returns: Option<TokenStream>,
}

/// One parameter of the function, as the generated code decodes it.
struct Param {
    name: String,
    ty: Type,
    dimension: Option<Expr>,
}

const OPTIONS: &str = "`name`, `doc`, `batch`, `raw`, `batch_size`, `pool`, `fuel_per_row`, \
    `memory_bytes`, `deadline_ms`, `output_bytes`, `dimension`, `takes_nulls`, `params` and `returns`";

pub fn expand(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let options = parse_options(attr)?;
    let mut function: ItemFn = syn::parse2(item)?;
    check_signature(&function)?;

    let ident = function.sig.ident.clone();
    let name = options
        .name
        .as_ref()
        .map_or_else(|| ident.to_string(), LitStr::value);
    let doc = options
        .doc
        .as_ref()
        .map_or_else(|| first_doc_paragraph(&function.attrs), LitStr::value);
    let params = take_params(&mut function)?;

    let describe = describe_body(&options, &name, &doc, &params, &function)?;
    let call = match options.mode {
        Mode::Scalar => scalar_call(&options, &params, &function),
        Mode::Batch => batch_call(&options, &params, &function),
        Mode::Raw => quote! { #ident(args, rows) },
    };
    let vis = &function.vis;

    Ok(quote! {
        #function

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}

        impl ::sandtable_guest::Udf for #ident {
            const NAME: &'static str = #name;

            fn describe() -> ::sandtable_guest::types::Function {
                #describe
            }

            fn call(
                args: &[::sandtable_guest::types::Column],
                rows: u32,
            ) -> ::core::result::Result<
                ::sandtable_guest::types::BatchResult,
                ::sandtable_guest::types::CallError,
            > {
                #call
            }
        }
    })
}

fn parse_options(attr: TokenStream) -> syn::Result<Options> {
    let mut options = Options {
        mode: Mode::Scalar,
        name: None,
        doc: None,
        batch_size: None,
        pool: None,
        fuel_per_row: None,
        memory_bytes: None,
        deadline_ms: None,
        output_bytes: None,
        dimension: None,
        takes_nulls: false,
        params: None,
        returns: None,
    };
    let mut batch = false;
    let mut raw = false;
    let parser = syn::meta::parser(|meta| {
        let Some(key) = meta.path.get_ident().map(Ident::to_string) else {
            return Err(meta.error(format!("unknown `udf` option; expected one of {OPTIONS}")));
        };
        match key.as_str() {
            "batch" => batch = true,
            "raw" => raw = true,
            "takes_nulls" => options.takes_nulls = parse_flag(&meta)?,
            "name" => options.name = Some(meta.value()?.parse()?),
            "doc" => options.doc = Some(meta.value()?.parse()?),
            "pool" => options.pool = Some(meta.value()?.parse()?),
            "batch_size" => options.batch_size = Some(meta.value()?.parse()?),
            "fuel_per_row" => options.fuel_per_row = Some(meta.value()?.parse()?),
            "memory_bytes" => options.memory_bytes = Some(meta.value()?.parse()?),
            "deadline_ms" => options.deadline_ms = Some(meta.value()?.parse()?),
            "output_bytes" => options.output_bytes = Some(meta.value()?.parse()?),
            "dimension" => options.dimension = Some(meta.value()?.parse()?),
            "returns" => options.returns = Some(parse_wit_type(meta.value()?)?),
            "params" => {
                let content;
                syn::parenthesized!(content in meta.input);
                let list = Punctuated::<(Ident, TokenStream), Token![,]>::parse_terminated_with(
                    &content,
                    |input| {
                        let name: Ident = input.parse()?;
                        input.parse::<Token![:]>()?;
                        Ok((name, parse_wit_type(input)?))
                    },
                )?;
                options.params = Some(list.into_iter().collect());
            }
            _ => {
                return Err(meta.error(format!(
                    "unknown `udf` option `{key}`; expected one of {OPTIONS}"
                )));
            }
        }
        Ok(())
    });
    parser.parse2(attr)?;

    options.mode = match (batch, raw) {
        (false, false) => Mode::Scalar,
        (true, false) => Mode::Batch,
        (false, true) => Mode::Raw,
        (true, true) => {
            return Err(syn::Error::new(
                Span::call_site(),
                "a `udf` is either `batch` or `raw`, not both",
            ));
        }
    };
    if options.mode == Mode::Raw {
        if options.params.is_none() || options.returns.is_none() {
            return Err(syn::Error::new(
                Span::call_site(),
                "a `raw` udf declares its signature: `#[udf(raw, params(x: int), returns = int)]`",
            ));
        }
        if options.dimension.is_some() {
            return Err(syn::Error::new(
                Span::call_site(),
                "a `raw` udf declares a vector result as `returns = vector(N)`, not with `dimension`",
            ));
        }
    } else if options.params.is_some() || options.returns.is_some() {
        return Err(syn::Error::new(
            Span::call_site(),
            "`params` and `returns` are only for `raw` udfs; other udfs take the types of their signature",
        ));
    }
    Ok(options)
}

/// Parses `takes_nulls` or `takes_nulls = true`.
fn parse_flag(meta: &ParseNestedMeta<'_>) -> syn::Result<bool> {
    if meta.input.peek(Token![=]) {
        let value: LitBool = meta.value()?.parse()?;
        return Ok(value.value);
    }
    Ok(true)
}

/// Parses a WIT type name (`int`, `vector(8)`) into a `Kind` expression.
fn parse_wit_type(input: ParseStream<'_>) -> syn::Result<TokenStream> {
    let ident: Ident = input.parse()?;
    let kind = |variant: &str| {
        let variant = Ident::new(variant, ident.span());
        quote! { ::sandtable_guest::__private::Kind::#variant }
    };
    Ok(match ident.to_string().as_str() {
        "bool" => kind("Bool"),
        "int" => kind("Int"),
        "float" => kind("Float"),
        "string" => kind("String"),
        "bytes" => kind("Bytes"),
        "json" => kind("Json"),
        "timestamp" => kind("Timestamp"),
        "vector" => {
            let content;
            syn::parenthesized!(content in input);
            let dimension: Expr = content.parse()?;
            quote! { ::sandtable_guest::__private::Kind::Vector(::core::option::Option::Some::<u32>(#dimension)) }
        }
        other => {
            return Err(syn::Error::new(
                ident.span(),
                format!(
                    "unknown WIT type `{other}`; expected `bool`, `int`, `float`, `string`, `bytes`, \
                     `json`, `timestamp` or `vector(N)`"
                ),
            ));
        }
    })
}

/// Rejects signatures that the generated code cannot call.
fn check_signature(function: &ItemFn) -> syn::Result<()> {
    let sig = &function.sig;
    if let Some(token) = &sig.asyncness {
        return Err(syn::Error::new(token.span(), "a `udf` cannot be `async`"));
    }
    if let Some(variadic) = &sig.variadic {
        return Err(syn::Error::new(
            variadic.span(),
            "a `udf` cannot be variadic",
        ));
    }
    if let Some(param) = sig
        .generics
        .params
        .iter()
        .find(|param| !matches!(param, syn::GenericParam::Lifetime(_)))
    {
        return Err(syn::Error::new(
            param.span(),
            "a `udf` cannot have type or const parameters",
        ));
    }
    if let Some(receiver) = sig.receiver() {
        return Err(syn::Error::new(
            receiver.span(),
            "a `udf` is a free function, without `self`",
        ));
    }
    if matches!(sig.output, ReturnType::Default) {
        return Err(syn::Error::new(
            sig.ident.span(),
            "a `udf` must return a value",
        ));
    }
    Ok(())
}

/// Returns the first paragraph of the doc comment, its lines joined by
/// spaces, as rustdoc's summary line.
fn first_doc_paragraph(attrs: &[Attribute]) -> String {
    let lines = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .flat_map(|text| {
            // `split`, unlike `lines`, yields the empty line of a blank `///`.
            text.split('\n')
                .map(|line| line.trim().to_owned())
                .collect::<Vec<_>>()
        });
    lines
        .skip_while(String::is_empty)
        .take_while(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Collects the parameters and removes their `#[dimension(N)]` attributes.
fn take_params(function: &mut ItemFn) -> syn::Result<Vec<Param>> {
    let mut params = Vec::new();
    for (index, input) in function.sig.inputs.iter_mut().enumerate() {
        let FnArg::Typed(typed) = input else {
            unreachable!("`check_signature` rejects `self`");
        };
        let mut dimension = None;
        let mut other_attrs = Vec::new();
        for attr in typed.attrs.drain(..) {
            if attr.path().is_ident("dimension") {
                dimension = Some(attr.parse_args::<Expr>()?);
            } else {
                other_attrs.push(attr);
            }
        }
        typed.attrs = other_attrs;
        let name = match &*typed.pat {
            Pat::Ident(pat) => pat.ident.to_string().trim_start_matches('_').to_owned(),
            _ => String::new(),
        };
        let name = if name.is_empty() {
            format!("arg{index}")
        } else {
            name
        };
        params.push(Param {
            name,
            ty: (*typed.ty).clone(),
            dimension,
        });
    }
    Ok(params)
}

/// Returns `Some::<T>(expr)` or `None::<T>`.
fn option(value: Option<&Expr>, ty: TokenStream) -> TokenStream {
    match value {
        Some(value) => quote! { ::core::option::Option::Some::<#ty>(#value) },
        None => quote! { ::core::option::Option::None::<#ty> },
    }
}

/// Returns the `Kind` of a parameter, without its declared dimension.
fn param_kind(mode: Mode, ty: &Type) -> TokenStream {
    match mode {
        Mode::Batch => quote! { <#ty as ::sandtable_guest::BatchArg<'_>>::KIND },
        _ => quote! {
            <<#ty as ::sandtable_guest::Arg<'_>>::View as ::sandtable_guest::BatchArg<'_>>::KIND
        },
    }
}

/// Returns the `Kind` of the result, without its declared dimension.
fn return_kind(mode: Mode, ty: &Type) -> TokenStream {
    match mode {
        Mode::Batch => quote! { <#ty as ::sandtable_guest::BatchOutput>::KIND },
        _ => quote! { <#ty as ::sandtable_guest::Output>::KIND },
    }
}

fn return_type(function: &ItemFn) -> &Type {
    match &function.sig.output {
        ReturnType::Type(_, ty) => ty,
        ReturnType::Default => unreachable!("`check_signature` rejects a missing return type"),
    }
}

/// Returns compile-time checks that every vector has exactly one dimension.
fn dimension_checks(
    options: &Options,
    name: &str,
    params: &[Param],
    function: &ItemFn,
) -> TokenStream {
    let mut checks = Vec::new();
    for param in params {
        let kind = param_kind(options.mode, &param.ty);
        let declared = option(param.dimension.as_ref(), quote!(u32));
        let missing = format!(
            "`{name}`: parameter `{}` is a vector without a dimension; declare it as \
             `#[dimension(N)] {}: ...` or use a `[f32; N]` type",
            param.name, param.name
        );
        let conflict = format!(
            "`{name}`: the `#[dimension]` of parameter `{}` does not match its type",
            param.name
        );
        checks.push(quote! {
            const { ::sandtable_guest::__private::check_dimension(#kind, #declared, #missing, #conflict) };
        });
    }
    let kind = return_kind(options.mode, return_type(function));
    let declared = option(options.dimension.as_ref(), quote!(u32));
    let missing = format!(
        "`{name}` returns a vector without a dimension; add `#[udf(dimension = N)]` or return `[f32; N]`"
    );
    let conflict = format!("`{name}`: `#[udf(dimension = ...)]` does not match the result type");
    checks.push(quote! {
        const { ::sandtable_guest::__private::check_dimension(#kind, #declared, #missing, #conflict) };
    });
    quote! { #(#checks)* }
}

fn describe_body(
    options: &Options,
    name: &str,
    doc: &str,
    params: &[Param],
    function: &ItemFn,
) -> syn::Result<TokenStream> {
    let (param_kinds, returns, takes_nulls, checks) = if options.mode == Mode::Raw {
        let declared = options.params.as_ref().expect("checked in `parse_options`");
        let names: Vec<String> = declared.iter().map(|(name, _)| name.to_string()).collect();
        let kinds: Vec<&TokenStream> = declared.iter().map(|(_, kind)| kind).collect();
        let described = quote! {
            #(::sandtable_guest::__private::parameter(#names, #kinds)),*
        };
        let takes_nulls = options.takes_nulls;
        (
            described,
            options.returns.clone().expect("checked in `parse_options`"),
            quote!(#takes_nulls),
            quote!(),
        )
    } else {
        let described = params.iter().map(|param| {
            let kind = param_kind(options.mode, &param.ty);
            let declared = option(param.dimension.as_ref(), quote!(u32));
            let name = &param.name;
            quote! { ::sandtable_guest::__private::parameter(#name, #kind.with_dimension(#declared)) }
        });
        let rdim = option(options.dimension.as_ref(), quote!(u32));
        let rkind = return_kind(options.mode, return_type(function));
        let takes_nulls_attr = options.takes_nulls;
        let takes_nulls = params.iter().map(|param| {
            let ty = &param.ty;
            match options.mode {
                Mode::Batch => quote! { <#ty as ::sandtable_guest::BatchArg<'_>>::TAKES_NULLS },
                _ => quote! { <#ty as ::sandtable_guest::Arg<'_>>::TAKES_NULLS },
            }
        });
        (
            quote! { #(#described),* },
            quote! { #rkind.with_dimension(#rdim) },
            quote! { #takes_nulls_attr #(|| #takes_nulls)* },
            dimension_checks(options, name, params, function),
        )
    };

    let batch_size = match &options.batch_size {
        Some(size) => {
            let message = format!("`{name}`: `batch_size` must be at least 1");
            quote! {{
                const BATCH_SIZE: u32 = #size;
                const { ::core::assert!(BATCH_SIZE > 0, #message) };
                BATCH_SIZE
            }}
        }
        None => quote! { ::sandtable_guest::DEFAULT_BATCH_SIZE },
    };
    let pool = match &options.pool {
        Some(pool) => quote! { ::core::option::Option::Some(#pool) },
        None => quote! { ::core::option::Option::None },
    };
    let fuel_per_row = option(options.fuel_per_row.as_ref(), quote!(u64));
    let memory_bytes = option(options.memory_bytes.as_ref(), quote!(u64));
    let deadline_ms = option(options.deadline_ms.as_ref(), quote!(u32));
    let output_bytes = option(options.output_bytes.as_ref(), quote!(u64));

    Ok(quote! {
        #checks
        ::sandtable_guest::__private::function(
            <Self as ::sandtable_guest::Udf>::NAME,
            #doc,
            ::std::vec![#param_kinds],
            #returns,
            #takes_nulls,
            #batch_size,
            #pool,
            ::sandtable_guest::types::Limits {
                fuel_per_row: #fuel_per_row,
                memory_bytes: #memory_bytes,
                deadline_ms: #deadline_ms,
                output_bytes: #output_bytes,
            },
        )
    })
}

/// Returns the statements that check the arity and decode every argument
/// into `__view{i}` and `__nulls{i}`.
fn decode_args(mode: Mode, params: &[Param]) -> TokenStream {
    let names: Vec<&String> = params.iter().map(|param| &param.name).collect();
    let decodes = params.iter().enumerate().map(|(index, param)| {
        let view = format_ident!("__view{index}");
        let nulls = format_ident!("__nulls{index}");
        let ty = &param.ty;
        let view_ty = match mode {
            Mode::Batch => quote! { #ty },
            _ => quote! { <#ty as ::sandtable_guest::Arg<'_>>::View },
        };
        let kind = param_kind(mode, ty);
        let declared = option(param.dimension.as_ref(), quote!(u32));
        let name = &param.name;
        quote! {
            let (#view, #nulls) = ::sandtable_guest::__private::decode::<#view_ty>(
                &args[#index],
                __rows,
                &::sandtable_guest::__private::Param {
                    function: <Self as ::sandtable_guest::Udf>::NAME,
                    name: #name,
                    dimension: #kind.with_dimension(#declared).dimension(),
                },
            )?;
        }
    });
    quote! {
        let __rows = ::sandtable_guest::__private::check_arity(
            <Self as ::sandtable_guest::Udf>::NAME,
            &[#(#names),*],
            args,
            rows,
        )?;
        #(#decodes)*
    }
}

fn scalar_call(options: &Options, params: &[Param], function: &ItemFn) -> TokenStream {
    let ident = &function.sig.ident;
    let rty = return_type(function);
    let rkind = return_kind(Mode::Scalar, rty);
    let rdim = option(options.dimension.as_ref(), quote!(u32));
    let decodes = decode_args(Mode::Scalar, params);
    let gets = params.iter().enumerate().map(|(index, param)| {
        let ty = &param.ty;
        let view = format_ident!("__view{index}");
        let nulls = format_ident!("__nulls{index}");
        let arg = format_ident!("__arg{index}");
        quote! {
            let ::core::option::Option::Some(#arg) =
                <#ty as ::sandtable_guest::Arg<'_>>::get(&#view, #nulls, __row)
            else {
                ::sandtable_guest::__private::ColumnBuilder::push_null(&mut __out);
                continue;
            };
        }
    });
    let args = (0..params.len()).map(|index| format_ident!("__arg{index}"));

    quote! {
        #decodes
        let mut __out = ::sandtable_guest::__private::builder::<#rty>(
            <Self as ::sandtable_guest::Udf>::NAME,
            __rows,
            #rkind.with_dimension(#rdim).dimension(),
        );
        let mut __errors = ::std::vec::Vec::new();
        for __row in 0..__rows {
            #(#gets)*
            let __value: #rty = #ident(#(#args),*);
            <#rty as ::sandtable_guest::Output>::write_row(__value, &mut __out, __row, &mut __errors);
        }
        ::sandtable_guest::__private::finish(__out, __errors)
    }
}

fn batch_call(options: &Options, params: &[Param], function: &ItemFn) -> TokenStream {
    let ident = &function.sig.ident;
    let rty = return_type(function);
    let rkind = return_kind(Mode::Batch, rty);
    let rdim = option(options.dimension.as_ref(), quote!(u32));
    let decodes = decode_args(Mode::Batch, params);
    let views = (0..params.len()).map(|index| format_ident!("__view{index}"));
    let masks = params.iter().enumerate().map(|(index, param)| {
        let ty = &param.ty;
        let nulls = format_ident!("__nulls{index}");
        quote! {
            ::sandtable_guest::__private::strict_mask(
                <#ty as ::sandtable_guest::BatchArg<'_>>::TAKES_NULLS,
                #nulls,
            )
        }
    });

    quote! {
        #decodes
        let __result: #rty = #ident(#(#views),*);
        let mut __errors = ::std::vec::Vec::new();
        let mut __column = <#rty as ::sandtable_guest::BatchOutput>::into_column(
            __result,
            <Self as ::sandtable_guest::Udf>::NAME,
            __rows,
            #rkind.with_dimension(#rdim).dimension(),
            &mut __errors,
        )?;
        ::sandtable_guest::__private::mask_nulls(&mut __column, &[#(#masks),*]);
        ::core::result::Result::Ok(::sandtable_guest::types::BatchResult {
            column: __column,
            errors: __errors,
        })
    }
}
