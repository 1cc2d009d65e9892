//! The HTML pages (minijinja templates, compiled into the binary) and their static assets.

use minijinja::Environment;
use serde::Serialize;

/// A static asset served under `/static/`.
#[derive(Debug, Clone, Copy)]
pub struct StaticFile {
    /// The request path.
    pub path: &'static str,
    /// The `Content-Type`.
    pub content_type: &'static str,
    /// The content.
    pub body: &'static str,
}

/// The assets: one stylesheet and one script (forms post JSON with `fetch`).
pub const STATIC_FILES: &[StaticFile] = &[
    StaticFile {
        path: "/static/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../static/app.css"),
    },
    StaticFile {
        path: "/static/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../static/app.js"),
    },
];

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("index.html", include_str!("../templates/index.html")),
    ("sign_in.html", include_str!("../templates/sign_in.html")),
    ("sign_up.html", include_str!("../templates/sign_up.html")),
    (
        "forgot_password.html",
        include_str!("../templates/forgot_password.html"),
    ),
    (
        "reset_password.html",
        include_str!("../templates/reset_password.html"),
    ),
    (
        "dashboard.html",
        include_str!("../templates/dashboard.html"),
    ),
    ("members.html", include_str!("../templates/members.html")),
    (
        "accept_invitation.html",
        include_str!("../templates/accept_invitation.html"),
    ),
    ("tokens.html", include_str!("../templates/tokens.html")),
    ("audit.html", include_str!("../templates/audit.html")),
    ("security.html", include_str!("../templates/security.html")),
    (
        "not_found.html",
        include_str!("../templates/not_found.html"),
    ),
];

/// The page templates, parsed once. Values are HTML-escaped (auto-escaping for `.html`).
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
}

impl Default for Pages {
    fn default() -> Self {
        Self::new()
    }
}

impl Pages {
    /// Parses the templates.
    ///
    /// # Panics
    /// If a template does not parse: they are compiled in, and a unit test parses them all.
    #[must_use]
    pub fn new() -> Self {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            #[allow(clippy::expect_used)]
            env.add_template(name, source)
                .expect("the built-in templates parse");
        }
        Self { env }
    }

    /// Renders a page; a rendering failure is logged and answered with a short message.
    #[must_use]
    pub fn render(&self, name: &str, context: impl Serialize) -> String {
        match self.env.get_template(name).and_then(|t| t.render(context)) {
            Ok(html) => html,
            Err(err) => {
                tracing::error!(error = %err, page = name, "page did not render");
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_and_escapes() {
        let pages = Pages::new();
        let ctx = serde_json::json!({
            "user": { "email": "<script>@example.com", "name": "A & B", "email_verified": false },
            "orgs": [], "members": [], "next": "/dashboard", "token": "t",
        });
        for (name, _) in TEMPLATES {
            let html = pages.render(name, &ctx);
            assert!(html.contains("<!doctype html>"), "{name}");
            assert!(!html.contains("<script>@"), "{name} must escape");
        }
        assert!(
            pages
                .render("sign_up.html", &ctx)
                .contains(r#"id="sign-up-form""#)
        );
    }

    #[test]
    fn the_sign_in_page_opens_on_its_second_step_when_asked() {
        let pages = Pages::new();
        let first = pages.render("sign_in.html", serde_json::json!({ "next": "/dashboard" }));
        assert!(first.contains(r#"<div id="first-step">"#), "{first}");
        assert!(first.contains(r#"<div id="second-step" hidden"#), "{first}");
        assert!(first.contains(r#"id="passkey-sign-in""#), "{first}");
        let second = pages.render(
            "sign_in.html",
            serde_json::json!({ "mfa": { "methods": ["totp", "recovery_code", "passkey"] } }),
        );
        assert!(
            second.contains(r#"<div id="first-step" hidden>"#),
            "{second}"
        );
        assert!(
            second.contains(r#"<div id="second-step" data-methods="totp,recovery_code,passkey">"#),
            "{second}"
        );
        for id in ["mfa-code-form", "mfa-recovery-form", "mfa-passkey", "error"] {
            assert!(second.contains(&format!(r#"id="{id}""#)), "{id}");
        }
    }

    #[test]
    fn the_members_page_shows_second_factors_the_policy_and_the_block() {
        let pages = Pages::new();
        let member = |email: &str, mfa: bool| {
            serde_json::json!({ "user_id": "u", "email": email, "role": "member",
                "joined_at": "2026-12-01", "mfa_enabled": mfa })
        };
        let org = serde_json::json!({ "id": "o", "name": "Acme", "mfa_required": true });
        let admin = pages.render(
            "members.html",
            serde_json::json!({ "user": { "email": "a@example.com" }, "org": org,
                "members": [member("a@example.com", true), member("b@example.com", false)],
                "can_manage": true, "roles": ["member"] }),
        );
        assert!(admin.contains("<th>2FA</th>"), "{admin}");
        assert!(
            admin.contains(r#"id="mfa-policy-required" checked"#),
            "{admin}"
        );
        assert!(
            admin.contains("/mfa-policy"),
            "the toggle's script is on the page"
        );
        assert!(!admin.contains(r#"id="mfa-required" class="notice" role="alert">"#));
        let blocked = pages.render(
            "members.html",
            serde_json::json!({ "user": { "email": "b@example.com" }, "org": org,
                "members": [], "mfa_blocked": true }),
        );
        assert!(blocked.contains(r#"id="members-mfa-blocked""#), "{blocked}");
        assert!(
            blocked.contains(r#"id="mfa-required" class="notice" role="alert">"#),
            "the notice shows: {blocked}"
        );
        assert!(blocked.contains(r#"href="/dashboard/security#mfa""#));
        assert!(!blocked.contains(r#"id="members""#));
    }

    #[test]
    fn the_security_page_has_its_second_factor_controls() {
        let pages = Pages::new();
        let html = pages.render(
            "security.html",
            serde_json::json!({ "user": { "email": "a@example.com" }, "filters": {} }),
        );
        for id in [
            "totp-begin",
            "totp-secret",
            "totp-qr",
            "totp-confirm-form",
            "recovery-codes",
            "totp-remove",
            "recovery-regenerate",
            "passkeys",
            "passkey-add-form",
            "sessions",
            "reauth-dialog",
            "reauth-form",
        ] {
            assert!(html.contains(&format!(r#"id="{id}""#)), "{id}");
        }
        // Every input has a label around it.
        for input in html.match_indices("<input").map(|(at, _)| &html[..at]) {
            let open = input.rfind("<label").unwrap_or(0);
            let close = input.rfind("</label>").unwrap_or(0);
            assert!(open > close, "an input without a label");
        }
    }
}
