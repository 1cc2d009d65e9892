//! The web policies against the attacks they exist for: forged origins, tossed and junk cookies,
//! spoofed forwarding headers. Each case performs the attack with the header values a browser
//! or an attacker would send.

use std::net::IpAddr;

use keystead::ErrorCode;
use keystead::secret::{SecretString, generate_token};
use keystead::web::{
    AppOrigin, ClientIpPolicy, CookiePolicy, CsrfPolicy, CsrfRejection, CsrfRequest,
};
use time::Duration;

const APP: &str = "http://localhost:3000";

fn csrf(origin: &str) -> CsrfPolicy {
    CsrfPolicy::new(AppOrigin::parse(origin).unwrap())
}

/// A cookie-authenticated POST with no provenance headers; cases add what they send.
fn post() -> CsrfRequest<'static> {
    CsrfRequest {
        method: "POST",
        has_session_cookie: true,
        ..CsrfRequest::default()
    }
}

#[test]
fn forged_origins_are_rejected_and_ours_passes() {
    use CsrfRejection::OriginMismatch;
    let policy = csrf(APP);
    let cases: &[(&str, Result<(), CsrfRejection>)] = &[
        ("http://localhost:3000", Ok(())),
        // Case and a written-out default port are the same origin.
        ("HTTP://LOCALHOST:3000", Ok(())),
        ("http://LocalHost:3000", Ok(())),
        // Sandboxed iframes, `data:` pages and no-referrer policies send `null`.
        ("null", Err(OriginMismatch)),
        ("Null", Err(OriginMismatch)),
        ("", Err(OriginMismatch)),
        // Scheme swap.
        ("https://localhost:3000", Err(OriginMismatch)),
        // Longer host, longer port, other port, no port.
        ("http://localhost:3000.evil.com", Err(OriginMismatch)),
        ("http://localhost:30001", Err(OriginMismatch)),
        ("http://localhost:3001", Err(OriginMismatch)),
        ("http://localhost", Err(OriginMismatch)),
        // Sibling or parent hosts are not us.
        ("http://evil.localhost:3000", Err(OriginMismatch)),
        ("http://127.0.0.1:3000", Err(OriginMismatch)),
        // Userinfo and path tricks.
        ("http://localhost:3000@evil.com", Err(OriginMismatch)),
        ("http://evil.com/http://localhost:3000", Err(OriginMismatch)),
        ("http://localhost:3000/path", Err(OriginMismatch)),
        // Two origins in one header (RFC 6454 allows a list; we never accept one).
        ("http://localhost:3000 http://evil.com", Err(OriginMismatch)),
        (
            "http://localhost:3000, http://evil.com",
            Err(OriginMismatch),
        ),
    ];
    for &(origin, expected) in cases {
        let req = CsrfRequest {
            origin: Some(origin),
            ..post()
        };
        assert_eq!(policy.evaluate(&req), expected, "Origin: {origin:?}");
    }
}

#[test]
fn https_app_rejects_the_http_twin_and_accepts_uppercase_with_default_port() {
    let policy = csrf("https://App.Example.com");
    let ok = |origin: &str| {
        policy
            .evaluate(&CsrfRequest {
                origin: Some(origin),
                ..post()
            })
            .is_ok()
    };
    assert!(ok("https://app.example.com"));
    assert!(ok("https://APP.EXAMPLE.COM:443"));
    assert!(!ok("http://app.example.com"));
    assert!(!ok("https://app.example.com:8443"));
    assert!(!ok("https://app.example.com.evil.com"));
    assert!(!ok("https://evilapp.example.com"));
}

#[test]
fn referer_is_compared_by_origin_not_by_prefix() {
    let policy = csrf(APP);
    let cases: &[(&str, bool)] = &[
        ("http://localhost:3000/settings", true),
        ("http://localhost:3000", true),
        ("http://localhost:3000/", true),
        ("http://localhost:3000?next=/x", true),
        ("HTTP://LOCALHOST:3000/Settings", true),
        // Prefix attacks: each starts with the app's origin as a string.
        ("http://localhost:3000.evil.com/", false),
        ("http://localhost:30001/", false),
        ("http://localhost:3000@evil.com/", false),
        ("http://localhost:3000\\@evil.com/", false),
        ("http://localhost:3000:80/", false),
        // Not ours at all, or not a URL.
        ("https://localhost:3000/", false),
        ("http://evil.com/http://localhost:3000/", false),
        ("/settings", false),
        ("null", false),
        ("", false),
    ];
    for &(referer, passes) in cases {
        let req = CsrfRequest {
            referer: Some(referer),
            ..post()
        };
        let expected = if passes {
            Ok(())
        } else {
            Err(CsrfRejection::RefererMismatch)
        };
        assert_eq!(policy.evaluate(&req), expected, "Referer: {referer:?}");
    }
}

#[test]
fn an_origin_mismatch_is_not_rescued_by_a_good_referer_or_fetch_site() {
    let req = CsrfRequest {
        origin: Some("http://evil.com"),
        referer: Some("http://localhost:3000/"),
        sec_fetch_site: Some("same-origin"),
        ..post()
    };
    assert_eq!(csrf(APP).evaluate(&req), Err(CsrfRejection::OriginMismatch));
}

#[test]
fn sec_fetch_site_same_origin_passes_without_origin_and_other_values_fail() {
    let policy = csrf(APP);
    let with = |site| CsrfRequest {
        sec_fetch_site: Some(site),
        ..post()
    };
    assert_eq!(policy.evaluate(&with("same-origin")), Ok(()));
    for site in ["same-site", "cross-site", "none"] {
        assert_eq!(
            policy.evaluate(&with(site)),
            Err(CsrfRejection::NotSameOrigin),
            "{site}"
        );
    }
}

#[test]
fn session_cookie_without_any_provenance_header_is_rejected_with_403() {
    let err = csrf(APP).check(&post()).unwrap_err();
    assert_eq!(err.code, ErrorCode::CsrfRejected);
    assert_eq!(err.status(), 403);
}

#[test]
fn unsafe_methods_are_all_checked_and_safe_ones_exempt() {
    let policy = csrf(APP);
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let req = CsrfRequest { method, ..post() };
        assert!(policy.check(&req).is_err(), "{method} must be checked");
    }
    for method in ["GET", "HEAD", "OPTIONS"] {
        // Even with a hostile Origin: safe methods change nothing and are not checked.
        let req = CsrfRequest {
            method,
            origin: Some("http://evil.com"),
            ..post()
        };
        assert!(policy.check(&req).is_ok(), "{method} must be exempt");
    }
}

#[test]
fn bearer_requests_are_exempt() {
    let req = CsrfRequest {
        origin: Some("http://evil.com"),
        bearer: true,
        ..post()
    };
    assert_eq!(csrf(APP).evaluate(&req), Ok(()));
}

#[test]
fn login_from_a_non_browser_client_passes() {
    let req = CsrfRequest {
        method: "POST",
        login: true,
        ..CsrfRequest::default()
    };
    assert_eq!(csrf(APP).evaluate(&req), Ok(()));
}

#[test]
fn login_csrf_from_a_foreign_page_is_rejected() {
    let policy = csrf(APP);
    let login = CsrfRequest {
        method: "POST",
        login: true,
        ..CsrfRequest::default()
    };
    let cases = [
        (
            CsrfRequest {
                origin: Some("http://evil.com"),
                ..login
            },
            CsrfRejection::OriginMismatch,
        ),
        (
            CsrfRequest {
                origin: Some("null"),
                ..login
            },
            CsrfRejection::OriginMismatch,
        ),
        (
            CsrfRequest {
                referer: Some("http://evil.com/login"),
                ..login
            },
            CsrfRejection::RefererMismatch,
        ),
        (
            CsrfRequest {
                sec_fetch_site: Some("cross-site"),
                ..login
            },
            CsrfRejection::NotSameOrigin,
        ),
        (
            CsrfRequest {
                has_session_cookie: true,
                ..login
            },
            CsrfRejection::NoProvenance,
        ),
    ];
    for (req, expected) in cases {
        assert_eq!(policy.evaluate(&req), Err(expected), "{req:?}");
    }
    let ours = CsrfRequest {
        origin: Some(APP),
        ..login
    };
    assert_eq!(policy.evaluate(&ours), Ok(()));
}

#[test]
fn unsafe_request_without_a_session_cookie_is_left_to_authentication() {
    // Nothing to forge: the route will answer 401 (or is public and does not need a session).
    let req = CsrfRequest {
        method: "DELETE",
        origin: Some("http://evil.com"),
        ..CsrfRequest::default()
    };
    assert_eq!(csrf(APP).evaluate(&req), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// Cookies

fn cookies(origin: &str) -> CookiePolicy {
    CookiePolicy::for_origin(&AppOrigin::parse(origin).unwrap())
}

#[test]
fn session_cookie_attributes_on_https_satisfy_the_host_prefix() {
    let token = generate_token();
    let set = cookies("https://app.example.com").session_cookie(&token, Duration::days(7));
    assert_eq!(
        set,
        format!(
            "__Host-authkit_session={}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=604800",
            token.expose()
        )
    );
    // What a browser checks for `__Host-`: Secure, Path=/ and no Domain.
    let parsed = cookie::Cookie::parse(set.as_str()).unwrap();
    assert!(parsed.name().starts_with("__Host-"));
    assert_eq!(parsed.secure(), Some(true));
    assert_eq!(parsed.path(), Some("/"));
    assert_eq!(parsed.domain(), None);
    assert_eq!(parsed.http_only(), Some(true));
    assert_eq!(parsed.same_site(), Some(cookie::SameSite::Lax));
}

#[test]
fn session_cookie_attributes_on_http_have_no_secure_and_no_prefix() {
    let token = generate_token();
    let set = cookies("http://localhost:3000").session_cookie(&token, Duration::hours(1));
    assert_eq!(
        set,
        format!(
            "authkit_session={}; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600",
            token.expose()
        )
    );
    assert!(!set.contains("Secure"));
    assert!(!set.contains("Domain"));
}

#[test]
fn removal_cookie_repeats_every_attribute_of_the_cookie_it_clears() {
    for origin in ["https://app.example.com", "http://localhost:3000"] {
        let policy = cookies(origin);
        let pairs = [
            (
                policy.session_cookie(&generate_token(), Duration::days(1)),
                policy.removal_cookie(),
            ),
            (
                policy.oauth_cookie(&generate_token()),
                policy.oauth_removal_cookie(),
            ),
        ];
        for (set, removal) in pairs {
            let set = cookie::Cookie::parse(set.as_str()).unwrap();
            let removal = cookie::Cookie::parse(removal.as_str()).unwrap();
            assert_eq!(removal.name(), set.name(), "{origin}");
            assert_eq!(removal.value(), "");
            assert_eq!(removal.secure(), set.secure(), "{origin}");
            assert_eq!(removal.http_only(), Some(true));
            assert_eq!(removal.same_site(), set.same_site());
            assert_eq!(removal.path(), Some("/"));
            assert_eq!(removal.domain(), None);
            assert_eq!(removal.max_age(), Some(Duration::ZERO));
            let expires = removal.expires_datetime().expect("an Expires date");
            assert_eq!(expires.unix_timestamp(), 0, "Expires in the past");
        }
    }
    assert_eq!(
        cookies("https://app.example.com").removal_cookie(),
        "__Host-authkit_session=; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=0; \
         Expires=Thu, 01 Jan 1970 00:00:00 GMT"
    );
}

#[test]
fn oauth_flow_cookie_is_short_lived_lax_and_http_only() {
    let token = generate_token();
    let https = cookies("https://app.example.com");
    assert_eq!(
        https.oauth_cookie(&token),
        format!(
            "__Host-authkit_oauth={}; HttpOnly; SameSite=Lax; Secure; Path=/; Max-Age=600",
            token.expose()
        )
    );
    let header = format!(
        "__Host-authkit_session={}; __Host-authkit_oauth={}",
        generate_token().expose(),
        token.expose()
    );
    assert_eq!(https.oauth_token(&header), Some(token.expose()));
    assert_eq!(
        cookies("http://localhost:3000").oauth_cookie(&token),
        format!(
            "authkit_oauth={}; HttpOnly; SameSite=Lax; Path=/; Max-Age=600",
            token.expose()
        )
    );
}

#[test]
fn session_token_is_found_among_several_cookies() {
    let policy = cookies("http://localhost:3000");
    let t = generate_token();
    let t = t.expose();
    for header in [
        format!("authkit_session={t}"),
        format!("theme=dark; authkit_session={t}; lang=en"),
        format!("theme=dark;authkit_session={t};lang=en"),
        format!("  authkit_session={t}  ;  theme=dark "),
        format!("\tauthkit_session=\t{t}\t;theme=dark"),
        // A pair without `=` is skipped, not an error that hides the rest.
        format!("flag; authkit_session={t}"),
        format!("a=b=c; authkit_session={t}"),
        // An HTTP/2 client's split Cookie headers, joined by the adapter.
        format!("theme=dark; lang=en; authkit_session={t}"),
        // The same token twice is not ambiguous.
        format!("authkit_session={t}; authkit_session={t}"),
        // Junk under our name is ignored, not taken.
        format!("authkit_session=junk; authkit_session={t}"),
        format!("authkit_session={t}; authkit_session="),
        // Look-alike names are other cookies.
        format!("xauthkit_session=junk; authkit_sessionx=junk; authkit_session={t}"),
    ] {
        assert_eq!(policy.session_token(&header), Some(t), "{header}");
    }
}

#[test]
fn junk_session_cookies_are_refused() {
    let policy = cookies("http://localhost:3000");
    let short = "a".repeat(42);
    let long = "a".repeat(44);
    let plus = format!("{}+", "a".repeat(42));
    let padded = format!("{}=", "a".repeat(42));
    let quoted = format!("\"{}\"", "a".repeat(43));
    let encoded = format!("{}%41", "a".repeat(40));
    for value in [
        "",
        "junk",
        &short,
        &long,
        &plus,
        &padded,
        &quoted,
        &encoded,
        "' OR 1=1 --",
    ] {
        let header = format!("authkit_session={value}");
        assert_eq!(policy.session_token(&header), None, "{header}");
    }
    assert_eq!(policy.session_token(""), None);
    assert_eq!(policy.session_token(";;;"), None);
    assert_eq!(policy.session_token("authkit_session"), None);
    // Names are case-sensitive.
    let t = generate_token();
    let header = format!("AUTHKIT_SESSION={}", t.expose());
    assert_eq!(policy.session_token(&header), None);
}

#[test]
fn two_different_session_tokens_are_ambiguous_and_read_as_none() {
    // Cookie tossing: a sibling subdomain sets `authkit_session` with `Domain=` and a longer
    // `Path`, which the browser lists first. Taking either would be a guess.
    let policy = cookies("http://app.example.com");
    let attacker = generate_token();
    let victim = generate_token();
    let header = format!(
        "authkit_session={}; authkit_session={}",
        attacker.expose(),
        victim.expose()
    );
    assert_eq!(policy.session_token(&header), None);
    // The CSRF check still sees a session cookie.
    assert!(policy.has_session_cookie(&header));
}

#[test]
fn on_https_only_the_host_prefixed_cookie_is_read() {
    let policy = cookies("https://app.example.com");
    let tossed = generate_token();
    let ours = generate_token();
    // A sibling subdomain can set `authkit_session`, and even `__host-…` in browsers that
    // compare prefixes case-sensitively; neither is ours.
    let header = format!(
        "authkit_session={t}; __host-authkit_session={t}; __Host-authkit_session={o}",
        t = tossed.expose(),
        o = ours.expose()
    );
    assert_eq!(policy.session_token(&header), Some(ours.expose()));
    let only_tossed = format!("authkit_session={}", tossed.expose());
    assert_eq!(policy.session_token(&only_tossed), None);
    assert!(!policy.has_session_cookie(&only_tossed));
}

#[test]
fn set_cookie_round_trips_through_the_parser() {
    let policy = cookies("https://app.example.com");
    let token = generate_token();
    let set = policy.session_cookie(&token, Duration::days(1));
    // The browser sends back only `name=value`.
    let sent = set.split(';').next().unwrap();
    assert_eq!(policy.session_token(sent), Some(token.expose()));
    // A token that is not one of ours is still written safely, but never read back.
    let weird = SecretString::new("a b;c");
    let set = policy.session_cookie(&weird, Duration::days(1));
    assert!(
        set.starts_with("__Host-authkit_session=a%20b%3Bc; "),
        "{set}"
    );
    assert_eq!(policy.session_token(set.split(';').next().unwrap()), None);
}

// ---------------------------------------------------------------------------------------------
// Client address

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn spoofed_forwarded_for_from_an_untrusted_peer_is_ignored() {
    let attacker = ip("203.0.113.66");
    for policy in [
        ClientIpPolicy::default(),
        ClientIpPolicy::from_config("10.0.0.0/8").unwrap(),
    ] {
        for header in [
            "1.2.3.4",
            "10.0.0.1",
            "127.0.0.1",
            "1.2.3.4, 10.0.0.1",
            "garbage",
        ] {
            assert_eq!(
                policy.client_ip(attacker, Some(header)),
                attacker,
                "{header}"
            );
        }
    }
}

#[test]
fn without_configuration_the_socket_peer_is_always_the_client() {
    let policy = ClientIpPolicy::default();
    // Even a loopback or private peer: nothing is trusted unless configured.
    for peer in ["127.0.0.1", "10.0.0.1", "::1"] {
        assert_eq!(
            policy.client_ip(ip(peer), Some("198.51.100.1")),
            ip(peer),
            "{peer}"
        );
    }
}

#[test]
fn trusted_chain_is_walked_from_the_right() {
    let policy = ClientIpPolicy::from_config("10.0.0.0/8, 127.0.0.1, fd00::/8").unwrap();
    let lb = ip("10.0.0.2");
    let cases: &[(&str, &str)] = &[
        // One proxy.
        ("198.51.100.7", "198.51.100.7"),
        // Two proxies of ours; the client's own claim at the far left is never reached.
        ("6.6.6.6, 198.51.100.7, 10.1.1.1", "198.51.100.7"),
        // The client claims to be one of our proxies: our proxy appended the real address.
        ("10.0.0.5, 198.51.100.7", "198.51.100.7"),
        ("127.0.0.1, 198.51.100.7", "198.51.100.7"),
        // Ports, brackets, spacing and IPv4-mapped addresses.
        ("198.51.100.7:4711", "198.51.100.7"),
        (" 2001:db8::7 ,10.1.1.1", "2001:db8::7"),
        ("[2001:db8::7]:443, fd00::1", "2001:db8::7"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        // Every hop trusted: the leftmost trusted one (an internal caller).
        ("10.9.9.9, 10.1.1.1", "10.9.9.9"),
        // No entries: the peer.
        ("", "10.0.0.2"),
        ("   ", "10.0.0.2"),
    ];
    for &(header, expected) in cases {
        assert_eq!(
            policy.client_ip(lb, Some(header)),
            ip(expected),
            "{header:?}"
        );
    }
    assert_eq!(policy.client_ip(lb, None), lb);
    // A trusted peer over a dual-stack socket.
    assert_eq!(
        policy.client_ip(ip("::ffff:10.0.0.2"), Some("198.51.100.7")),
        ip("198.51.100.7")
    );
}

#[test]
fn garbage_entries_stop_the_walk_at_the_last_trusted_hop() {
    let policy = ClientIpPolicy::from_config("10.0.0.0/8").unwrap();
    let lb = ip("10.0.0.2");
    let cases: &[(&str, &str)] = &[
        // Garbage written where our proxy's entry should be: the proxy itself, never an
        // address further left that the client may have written.
        ("198.51.100.7, unknown", "10.0.0.2"),
        ("198.51.100.7, _hidden, 10.1.1.1", "10.1.1.1"),
        ("198.51.100.7, , 10.1.1.1", "10.1.1.1"),
        ("198.51.100.7, 10.1.1.1 10.1.1.2", "10.0.0.2"),
        ("198.51.100.7, <script>", "10.0.0.2"),
        ("198.51.100.7, 999.1.1.1", "10.0.0.2"),
        ("198.51.100.7, \u{0}", "10.0.0.2"),
        // Garbage left of the real client is never looked at.
        ("garbage, 198.51.100.7", "198.51.100.7"),
    ];
    for &(header, expected) in cases {
        assert_eq!(
            policy.client_ip(lb, Some(header)),
            ip(expected),
            "{header:?}"
        );
    }
}

#[test]
fn a_very_long_forwarded_for_header_is_handled() {
    let policy = ClientIpPolicy::from_config("10.0.0.0/8").unwrap();
    let mut header = "1.1.1.1, ".repeat(50_000);
    header.push_str("198.51.100.7");
    assert_eq!(
        policy.client_ip(ip("10.0.0.2"), Some(&header)),
        ip("198.51.100.7")
    );
}
