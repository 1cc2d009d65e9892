//! The development mailer: one JSON file per message.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::{MailError, MailMessage, Mailer};
use crate::{Clock, SystemClock};

/// Writes each message into a directory as one JSON file
/// `{"to", "subject", "text", "action_url"}` (`action_url` is `null` when there is none).
///
/// Files are named `<unix microseconds, 20 digits>-<uuid v7>.json`, so that they sort by time
/// and never collide. Each is written to a hidden temporary file (`.<name>.tmp`) in the same
/// directory and then renamed, so a reader listing `*.json` never sees a half-written message.
/// On Unix the directory is created `0700` and the files `0600`: they hold live tokens.
#[derive(Debug, Clone)]
pub struct FileMailer {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
}

#[derive(Serialize)]
struct MailFile<'a> {
    to: &'a str,
    subject: &'a str,
    text: &'a str,
    action_url: Option<&'a str>,
}

impl FileMailer {
    /// A mailer writing into `dir`, which is created if missing.
    ///
    /// # Errors
    /// [`MailError::Io`] when the directory cannot be created.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, MailError> {
        Self::with_clock(dir, Arc::new(SystemClock))
    }

    /// Like [`FileMailer::new`], naming files after `clock`'s time.
    ///
    /// # Errors
    /// [`MailError::Io`] when the directory cannot be created.
    pub fn with_clock(dir: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> Result<Self, MailError> {
        let dir = dir.into();
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(|source| MailError::Io {
            action: "create the directory",
            source,
        })?;
        Ok(Self { dir, clock })
    }

    /// The directory messages are written to.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn file_name(&self) -> String {
        let micros = self.clock.now().unix_timestamp_nanos() / 1_000;
        // Clamped at zero so that the fixed width keeps the names in time order.
        format!("{:020}-{}.json", micros.max(0), Uuid::now_v7())
    }
}

#[async_trait]
impl Mailer for FileMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        let body = serde_json::to_vec_pretty(&MailFile {
            to: message.to.as_str(),
            subject: &message.subject,
            text: &message.text,
            action_url: message.action_url.as_deref(),
        })
        .map_err(|e| MailError::Io {
            action: "encode the message",
            source: io::Error::other(e),
        })?;
        let name = self.file_name();
        let final_path = self.dir.join(&name);
        let temp_path = self.dir.join(format!(".{name}.tmp"));
        let written = final_path.clone();
        tokio::task::spawn_blocking(move || write_atomically(&temp_path, &final_path, &body))
            .await
            .map_err(|e| MailError::Io {
                action: "write the message",
                source: io::Error::other(e),
            })??;
        tracing::debug!(file = %written.display(), to = %message.to, "mail written");
        Ok(())
    }
}

/// Writes `body` to a new `temp` file, then renames it to `target` (atomic on one file system).
fn write_atomically(temp: &Path, target: &Path, body: &[u8]) -> Result<(), MailError> {
    use std::io::Write as _;

    let write = || -> io::Result<()> {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(temp)?;
        file.write_all(body)
    };
    if let Err(source) = write() {
        let _ = std::fs::remove_file(temp);
        return Err(MailError::Io {
            action: "write the message",
            source,
        });
    }
    std::fs::rename(temp, target).map_err(|source| {
        let _ = std::fs::remove_file(temp);
        MailError::Io {
            action: "rename the message into place",
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;
    use time::macros::datetime;

    #[test]
    fn names_are_fixed_width_so_they_sort_by_time() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2001-09-09 01:46:39 UTC)));
        let mailer = FileMailer::with_clock(dir.path(), clock.clone()).unwrap();
        let early = mailer.file_name();
        clock.advance(time::Duration::seconds(1));
        let late = mailer.file_name();
        assert!(early.starts_with("00000999999999000000-"), "{early}");
        assert_eq!(early.len(), late.len());
        assert!(early < late, "{early} < {late}");
    }
}
