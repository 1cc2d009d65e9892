//! Signing keys as JSON files in a directory (feature `dir-key-store`, on by default).

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use zeroize::Zeroizing;

use super::keys::{KeyStore, StoredKey};
use crate::{AuthError, ErrorCode};

/// Keys as JSON files in a directory (`<kid>.json`, mode 0600, directory 0700): for
/// development and single-machine deployments.
#[derive(Debug, Clone)]
pub struct DirKeyStore {
    dir: PathBuf,
}

impl DirKeyStore {
    /// A store in `dir`, created when missing.
    ///
    /// # Errors
    /// `internal` when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, AuthError> {
        let dir = dir.into();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(&dir)
            .map_err(|e| io_error("create the key directory", &dir, &e))?;
        Ok(Self { dir })
    }

    fn path(&self, kid: &str) -> Result<PathBuf, AuthError> {
        // Our kids are base64url; anything else never names a file.
        if kid.is_empty()
            || !kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AuthError::new(ErrorCode::Internal));
        }
        Ok(self.dir.join(format!("{kid}.json")))
    }
}

fn io_error(action: &str, path: &Path, err: &std::io::Error) -> AuthError {
    tracing::error!(path = %path.display(), error = %err, "could not {action}");
    AuthError::new(ErrorCode::Internal)
}

#[async_trait]
impl KeyStore for DirKeyStore {
    async fn load_keys(&self) -> Result<Vec<StoredKey>, AuthError> {
        let mut keys = Vec::new();
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| io_error("read the key directory", &self.dir, &e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| io_error("read the key directory", &self.dir, &e))?
                .path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let text =
                std::fs::read_to_string(&path).map_err(|e| io_error("read a key", &path, &e))?;
            let key: StoredKey = serde_json::from_str(&text).map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "malformed key file");
                AuthError::new(ErrorCode::Internal)
            })?;
            keys.push(key);
        }
        Ok(keys)
    }

    async fn save_key(&self, key: &StoredKey) -> Result<(), AuthError> {
        let path = self.path(&key.kid)?;
        let tmp = self.dir.join(format!(".{}.tmp", key.kid));
        let text = Zeroizing::new(
            serde_json::to_string_pretty(key).map_err(|_| AuthError::new(ErrorCode::Internal))?,
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options
            .open(&tmp)
            .map_err(|e| io_error("write a key", &tmp, &e))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io_error("write a key", &tmp, &e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io_error("write a key", &path, &e))
    }

    async fn delete_key(&self, kid: &str) -> Result<(), AuthError> {
        let path = self.path(kid)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_error("delete a key", &path, &e)),
        }
    }
}
