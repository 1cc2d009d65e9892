//! Web policies that every adapter applies the same way: CSRF origin checks, cookie attributes,
//! the client address.
//!
//! Each is a pure function over plain inputs (header values as `&str`, an [`IpAddr`]), so the
//! axum and the actix adapters call the same code without converting their request types.
//! All of them are built once from configuration; [`AppOrigin`] is the root of it.
//!
//! ```
//! use keystead::web::{AppOrigin, ClientIpPolicy, CookiePolicy, CsrfPolicy, CsrfRequest};
//!
//! let origin = AppOrigin::parse("https://app.example.com").unwrap();
//! let cookies = CookiePolicy::for_origin(&origin);
//! let csrf = CsrfPolicy::new(origin.clone());
//! let client_ip = ClientIpPolicy::from_config("10.0.0.0/8").unwrap();
//!
//! // In an adapter, per request:
//! let cookie_header = "__Host-authkit_session=not-a-token";
//! let request = CsrfRequest {
//!     method: "POST",
//!     origin: Some("https://app.example.com"),
//!     has_session_cookie: cookies.has_session_cookie(cookie_header),
//!     ..CsrfRequest::default()
//! };
//! assert!(csrf.check(&request).is_ok());
//! assert_eq!(cookies.session_token(cookie_header), None); // not a plausible token
//! let peer = "10.1.2.3".parse().unwrap();
//! assert_eq!(client_ip.client_ip(peer, Some("198.51.100.4")).to_string(), "198.51.100.4");
//! ```
//!
//! [`IpAddr`]: std::net::IpAddr

pub mod client_ip;
pub mod cookie;
pub mod csrf;
pub mod origin;

pub use client_ip::{CidrError, ClientIpPolicy, ForwardedHeader, IpCidr};
pub use cookie::{CookieDomainError, CookiePolicy, is_plausible_token};
pub use csrf::{CsrfPolicy, CsrfRejection, CsrfRequest, is_safe_method};
pub use origin::{AppOrigin, OriginError};
