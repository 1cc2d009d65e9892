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
}
