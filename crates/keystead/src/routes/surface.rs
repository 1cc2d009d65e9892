//! Where the library's routes and the app's pages are: the base path of the routes, the
//! sign-in page and the page after sign-in.

use std::fmt;

/// Where the library's routes are mounted and which app pages it sends browsers to.
///
/// ```
/// use keystead::routes::Surface;
///
/// let surface = Surface::default()
///     .with_base_path("/identity")?
///     .with_sign_in_path("/login")?
///     .with_after_sign_in_path("/app")?;
/// assert_eq!(surface.base_path(), "/identity");
/// assert_eq!(surface.library_path("/auth/sign-in"), "/identity/auth/sign-in");
/// # Ok::<(), keystead::routes::SurfaceError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surface {
    base_path: String,
    sign_in_path: String,
    after_sign_in_path: String,
    form_bodies: bool,
}

impl Default for Surface {
    /// Routes at the root (`/auth/…`, `/orgs…`, `/api/tokens…`, `/invitations/accept`,
    /// `/.well-known/jwks.json`), sign-in page `/sign-in`, page after sign-in `/dashboard`.
    fn default() -> Self {
        Self {
            base_path: String::new(),
            sign_in_path: "/sign-in".to_owned(),
            after_sign_in_path: "/dashboard".to_owned(),
            form_bodies: false,
        }
    }
}

/// A path setting that is not a plain absolute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SurfaceError {
    setting: &'static str,
    value: String,
}

impl fmt::Display for SurfaceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:?} is not a plain absolute path (it must start with `/`, not end with `/`, \
             and hold only letters, digits and `-._~/`)",
            self.setting, self.value
        )
    }
}

impl std::error::Error for SurfaceError {}

/// `/` followed by segments of unreserved characters, no empty segment, no trailing `/`, at
/// most 200 bytes; `""` too when `empty_ok` (the base path's "at the root").
fn plain_path(setting: &'static str, value: &str, empty_ok: bool) -> Result<String, SurfaceError> {
    let ok = (empty_ok && value.is_empty())
        || (value.len() <= 200
            && value.strip_prefix('/').is_some_and(|rest| {
                !rest.is_empty()
                    && rest.split('/').all(|segment| {
                        !segment.is_empty()
                            && segment != "."
                            && segment != ".."
                            && segment.bytes().all(|b| {
                                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
                            })
                    })
            }));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(SurfaceError {
            setting,
            value: value.to_owned(),
        })
    }
}

impl Surface {
    /// Mounts every library route under `base` (`/identity` serves `/identity/auth/sign-in`,
    /// `/identity/orgs`, `/identity/.well-known/jwks.json`, …); `""` (the default) at the root.
    ///
    /// # Errors
    /// When `base` is not a plain absolute path.
    pub fn with_base_path(mut self, base: &str) -> Result<Self, SurfaceError> {
        self.base_path = plain_path("base path", base, true)?;
        Ok(self)
    }

    /// The app's sign-in page: where browsers without a session are sent (`?next=`), and
    /// where a failed provider sign-in returns (`?error=`). Default `/sign-in`.
    ///
    /// # Errors
    /// When `path` is not a plain absolute path.
    pub fn with_sign_in_path(mut self, path: &str) -> Result<Self, SurfaceError> {
        self.sign_in_path = plain_path("sign-in path", path, false)?;
        Ok(self)
    }

    /// The app's page after sign-in: where a verified email link and a provider sign-in
    /// without `next` land. Default `/dashboard`.
    ///
    /// # Errors
    /// When `path` is not a plain absolute path.
    pub fn with_after_sign_in_path(mut self, path: &str) -> Result<Self, SurfaceError> {
        self.after_sign_in_path = plain_path("after-sign-in path", path, false)?;
        Ok(self)
    }

    /// `true`: the routes a plain HTML form posts to (every body route but `POST
    /// /api/tokens`) also take `application/x-www-form-urlencoded` bodies with the same fields,
    /// so plain HTML forms and htmx work without JavaScript; a form with `next` is answered
    /// with a redirect (see the `routes` module). The CSRF rules are the same. Default `false`:
    /// JSON only, a form body is 415 `unsupported_media_type`.
    #[must_use]
    pub fn with_form_bodies(mut self, on: bool) -> Self {
        self.form_bodies = on;
        self
    }

    /// Whether form routes take HTML form bodies.
    #[must_use]
    pub fn form_bodies(&self) -> bool {
        self.form_bodies
    }

    /// The base path (`""` at the root).
    #[must_use]
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The sign-in page.
    #[must_use]
    pub fn sign_in_path(&self) -> &str {
        &self.sign_in_path
    }

    /// The page after sign-in.
    #[must_use]
    pub fn after_sign_in_path(&self) -> &str {
        &self.after_sign_in_path
    }

    /// A library path (`/auth/verify-email`) under the base path.
    #[must_use]
    pub fn library_path(&self, path: &str) -> String {
        format!("{}{path}", self.base_path)
    }

    /// `path` relative to the base path, when it is under it.
    #[must_use]
    pub fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        if self.base_path.is_empty() {
            return Some(path);
        }
        path.strip_prefix(self.base_path.as_str())
            .filter(|rest| rest.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_plain_and_absolute() {
        let surface = Surface::default();
        assert!(surface.clone().with_base_path("").is_ok());
        assert!(surface.clone().with_base_path("/a/b-c_d.e~f").is_ok());
        for bad in [
            "a", "/", "/a/", "//a", "/a//b", "/a/../b", "/./a", "/a?b", "/a#b", "/a%2F", "/a b",
            "/{x}", "/a\\b", "/é",
        ] {
            assert!(surface.clone().with_base_path(bad).is_err(), "{bad}");
            assert!(surface.clone().with_sign_in_path(bad).is_err(), "{bad}");
        }
        assert!(surface.clone().with_sign_in_path("").is_err());
        assert!(
            surface
                .with_base_path(&format!("/{}", "a".repeat(200)))
                .is_err()
        );
    }

    #[test]
    fn relative_paths_are_whole_segments_under_the_base() {
        let surface = Surface::default().with_base_path("/id").unwrap();
        assert_eq!(surface.relative("/id/auth/sign-in"), Some("/auth/sign-in"));
        assert_eq!(surface.relative("/identity/auth/sign-in"), None);
        assert_eq!(surface.relative("/id"), None);
        assert_eq!(surface.relative("/auth/sign-in"), None);
        assert_eq!(Surface::default().relative("/auth/x"), Some("/auth/x"));
    }
}
