//! `#[stageprof::profile]`: marks a whole function as a stage.
//!
//! The stage is named after the function's path (`module::function`), or
//! after the string given: `#[profile("decode")]`. It expands to a
//! `stageprof::scope!` at the top of the body, so it costs the same.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn, LitStr};

/// Records each call of the function as a stage: `#[stageprof::profile]`
/// names it `module::function`, `#[stageprof::profile("name")]` as given.
#[proc_macro_attribute]
pub fn profile(attr: TokenStream, item: TokenStream) -> TokenStream {
    let name = if attr.is_empty() { None } else { Some(parse_macro_input!(attr as LitStr)) };
    let mut function = parse_macro_input!(item as ItemFn);
    if let Some(asyncness) = function.sig.asyncness {
        return syn::Error::new_spanned(
            asyncness,
            "#[stageprof::profile] marks synchronous functions; a stage guard cannot be held across .await",
        )
        .to_compile_error()
        .into();
    }
    let name = match name {
        Some(lit) => quote!(#lit),
        None => {
            let ident = function.sig.ident.to_string();
            quote!(concat!(module_path!(), "::", #ident))
        }
    };
    let body = &function.block;
    function.block = syn::parse_quote!({
        let __stageprof_stage = ::stageprof::scope!(#name);
        #body
    });
    quote!(#function).into()
}
