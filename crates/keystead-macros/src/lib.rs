//! Route-level annotations for `keystead-axum` and `keystead-actix`.
//!
//! ```ignore
//! use keystead_axum::require_permission;
//!
//! #[require_permission("read:projects")]
//! async fn list_projects(user: CurrentUser) -> Json<Vec<Project>> { … }
//! ```
//!
//! Each annotation adds one leading argument to the handler, an extractor
//! (`keystead_axum::Require<_>` or `keystead_actix::Require<_>`) that checks the request's principal
//! before the handler runs and answers 401 (no principal) or 403 (`forbidden`, or
//! `insufficient_scope` for a token without the scope) otherwise — never 404. The handler's
//! other arguments, its return type and its body are left exactly as written. Annotations
//! stack; each adds its own check.
//!
//! The adapter is found in the calling crate's dependencies (`keystead-axum` or `keystead-actix`); a
//! crate that depends on both names it: `#[require_permission("x", adapter = keystead_actix)]`.
//!
//! - `#[require_permission("billing:manage")]`: the effective permissions include it.
//! - `#[require_scope("write:deployments")]`: the same check, named for API tokens (a token's
//!   effective permissions are its scopes that its owner's role still grants).
//! - `#[require_role("admin")]`: the active organization's role grants at least what `admin`
//!   grants. The name is checked at compile time: `owner`, `admin` and `member` (the built-in
//!   roles) are accepted; any other name is a compile error unless marked as the app's own,
//!   `#[require_role("billing-admin", custom)]`, so a typo (`"administrator"`) never compiles.
//!   A role that is not in the configured `RolePermissions` admits no one at run time (403,
//!   logged at error); `auth.check_roles([...])` at start-up reports such names before the
//!   first request.
//! - `#[require_recent_auth]`: step-up ("sudo mode"). The session's user proved who they are
//!   within the configured step-up age (10 minutes by default), else 403
//!   `reauthentication_required`: the client re-authenticates (`POST /auth/reauthenticate`)
//!   and retries. An API token gets 403 `forbidden`. `#[require_recent_auth(adapter = …)]`
//!   names the adapter where both are dependencies.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::{Error, FnArg, Ident, ItemFn, LitStr, Token, parse_macro_input, parse_quote};

/// Requires a permission of the request's principal. See the [crate docs](crate).
#[proc_macro_attribute]
pub fn require_permission(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Permission, args, item)
}

/// Requires an API token scope (or, for a session, the same permission). See the
/// [crate docs](crate).
#[proc_macro_attribute]
pub fn require_scope(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Scope, args, item)
}

/// Requires a role in the active organization (or one that grants at least as much). See the
/// [crate docs](crate).
#[proc_macro_attribute]
pub fn require_role(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(Kind::Role, args, item)
}

/// Requires a recent authentication (step-up). See the [crate docs](crate).
#[proc_macro_attribute]
pub fn require_recent_auth(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut function = parse_macro_input!(item as ItemFn);
    let adapter = if args.is_empty() {
        None
    } else {
        let parsed = syn::parse::Parser::parse(
            |input: ParseStream<'_>| {
                let key: Ident = input.parse()?;
                if key != "adapter" {
                    return Err(Error::new(key.span(), "expected `adapter = <crate>`"));
                }
                input.parse::<Token![=]>()?;
                let path: syn::Path = input.parse()?;
                if !input.is_empty() {
                    return Err(input.error("unexpected tokens"));
                }
                Ok(path)
            },
            args,
        );
        match parsed {
            Ok(path) => Some(path),
            Err(err) => return err.to_compile_error().into(),
        }
    };
    if function.sig.asyncness.is_none() {
        return Error::new_spanned(
            function.sig.fn_token,
            "route annotations apply to async handler functions",
        )
        .to_compile_error()
        .into();
    }
    let adapter = match adapter_path(adapter) {
        Ok(adapter) => adapter,
        Err(err) => return err.to_compile_error().into(),
    };
    let argument: FnArg = parse_quote! {
        _: #adapter::Require<#adapter::__private::RecentAuth>
    };
    function.sig.inputs.insert(0, argument);
    quote!(#function).into()
}

#[derive(Clone, Copy)]
enum Kind {
    Permission,
    Scope,
    Role,
}

/// `"name"`, then optionally `custom` and `adapter = path`, comma-separated.
struct Args {
    value: LitStr,
    adapter: Option<syn::Path>,
    custom: bool,
}

/// The roles every `RolePermissions::default()` defines.
const BUILT_IN_ROLES: [&str; 3] = ["owner", "admin", "member"];

impl Parse for Args {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let value = if input.peek(LitStr) {
            input.parse::<LitStr>()?
        } else {
            // `#[require_role(admin)]` reads as well as `#[require_role("admin")]`.
            let ident: Ident = input.parse()?;
            LitStr::new(&ident.to_string(), ident.span())
        };
        let mut adapter = None;
        let mut custom = false;
        while input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let key: Ident = input.parse()?;
            if key == "custom" {
                custom = true;
            } else if key == "adapter" {
                input.parse::<Token![=]>()?;
                adapter = Some(input.parse()?);
            } else {
                return Err(Error::new(
                    key.span(),
                    "expected `custom` or `adapter = <crate>`",
                ));
            }
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens"));
        }
        Ok(Self {
            value,
            adapter,
            custom,
        })
    }
}

/// The compile-time check of a role name: a built-in role, or one marked `custom`.
fn check_role_name(name: &str, custom: bool) -> Result<(), String> {
    if custom || BUILT_IN_ROLES.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "unknown role `{name}`: the built-in roles are `owner`, `admin` and `member`; for a \
         role your app defines in its RolePermissions write \
         `#[require_role(\"{name}\", custom)]` and check it at start-up with \
         `auth.check_roles([...])`"
    ))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:.-".contains(&b))
}

fn adapter_path(explicit: Option<syn::Path>) -> syn::Result<TokenStream2> {
    if let Some(path) = explicit {
        return Ok(quote!(#path));
    }
    let found = |name: &str| crate_name(name).ok();
    // `Itself` shows up in the adapter's own doctests, where `crate` is the doctest and the
    // adapter is an extern crate of that name.
    let path_of = |found: FoundCrate, package: &str| {
        let name = match found {
            FoundCrate::Itself => package.replace('-', "_"),
            FoundCrate::Name(name) => name,
        };
        let ident = Ident::new(&name, Span::call_site());
        quote!(::#ident)
    };
    match (found("keystead-axum"), found("keystead-actix")) {
        (Some(axum), None) => Ok(path_of(axum, "keystead-axum")),
        (None, Some(actix)) => Ok(path_of(actix, "keystead-actix")),
        (Some(_), Some(_)) => Err(Error::new(
            Span::call_site(),
            "this crate depends on both keystead-axum and keystead-actix: \
             name the adapter, e.g. `adapter = keystead_axum`",
        )),
        (None, None) => Err(Error::new(
            Span::call_site(),
            "route annotations need keystead-axum or keystead-actix among the crate's dependencies",
        )),
    }
}

fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let args = parse_macro_input!(args as Args);
    let mut function = parse_macro_input!(item as ItemFn);
    match expand_inner(kind, args, &mut function) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand_inner(kind: Kind, args: Args, function: &mut ItemFn) -> syn::Result<TokenStream2> {
    let name = args.value.value();
    if !valid_name(&name) {
        return Err(Error::new(
            args.value.span(),
            "expected a permission, scope or role name: lowercase letters, digits and `_:.-`",
        ));
    }
    match kind {
        Kind::Role => {
            check_role_name(&name, args.custom)
                .map_err(|msg| Error::new(args.value.span(), msg))?;
        }
        Kind::Permission | Kind::Scope if args.custom => {
            return Err(Error::new(
                args.value.span(),
                "`custom` applies to `#[require_role]` only",
            ));
        }
        Kind::Permission | Kind::Scope => {}
    }
    if function.sig.asyncness.is_none() {
        return Err(Error::new_spanned(
            function.sig.fn_token,
            "route annotations apply to async handler functions",
        ));
    }
    let adapter = adapter_path(args.adapter)?;
    // One marker type per annotation, named after the handler and the check, so stacked
    // annotations and several handlers in one module never collide.
    let marker = format_ident!(
        "__AuthkitRequire_{}_{}_{}",
        function.sig.ident,
        match kind {
            Kind::Permission => "permission",
            Kind::Scope => "scope",
            Kind::Role => "role",
        },
        name.replace([':', '.', '-'], "_")
    );
    let check = match kind {
        Kind::Permission | Kind::Scope => quote! { principal.require(#name) },
        Kind::Role => quote! {
            match #adapter::__private::Role::new(#name) {
                ::core::result::Result::Ok(role) => principal.require_role(&role, roles),
                ::core::result::Result::Err(_) => ::core::result::Result::Err(
                    #adapter::__private::AuthError::new(#adapter::__private::ErrorCode::Forbidden),
                ),
            }
        },
    };
    let argument: FnArg = parse_quote! {
        _: #adapter::Require<#marker>
    };
    function.sig.inputs.insert(0, argument);
    let vis = &function.vis;
    Ok(quote! {
        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #marker;

        impl #adapter::__private::Requirement for #marker {
            fn check(
                principal: &#adapter::__private::Principal,
                roles: &#adapter::__private::RolePermissions,
            ) -> ::core::result::Result<(), #adapter::__private::AuthError> {
                let _ = roles;
                #check
            }
        }

        #function
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_roles_compile_and_typos_do_not() {
        for role in BUILT_IN_ROLES {
            assert!(check_role_name(role, false).is_ok(), "{role}");
        }
        let err = check_role_name("administrator", false).unwrap_err();
        assert!(err.contains("unknown role `administrator`"), "{err}");
        assert!(err.contains("custom"), "{err}");
        assert!(check_role_name("billing-admin", true).is_ok());
    }

    #[test]
    fn arguments_parse_in_any_order() {
        let args: Args =
            syn::parse_str(r#""billing-admin", custom, adapter = keystead_axum"#).unwrap();
        assert!(args.custom);
        assert!(args.adapter.is_some());
        let args: Args = syn::parse_str(r#"admin, adapter = keystead_actix"#).unwrap();
        assert!(!args.custom);
        assert!(syn::parse_str::<Args>(r#""x", nonsense"#).is_err());
    }

    #[test]
    fn an_unknown_role_is_a_compile_error() {
        let mut function: ItemFn = syn::parse_quote! { async fn handler() {} };
        let args: Args = syn::parse_str(r#""administrator", adapter = keystead_axum"#).unwrap();
        let err = expand_inner(Kind::Role, args, &mut function).unwrap_err();
        assert!(err.to_string().contains("unknown role"), "{err}");
        let args: Args =
            syn::parse_str(r#""read:projects", custom, adapter = keystead_axum"#).unwrap();
        assert!(expand_inner(Kind::Permission, args, &mut function).is_err());
    }
}
