//! A mailer that keeps messages in memory, for tests.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{MailError, MailMessage, Mailer};

/// Keeps every message sent, in order; clones share the same list.
#[derive(Debug, Clone, Default)]
pub struct MemoryMailer {
    sent: Arc<Mutex<Vec<MailMessage>>>,
}

impl MemoryMailer {
    /// The messages sent so far, oldest first.
    #[must_use]
    pub fn messages(&self) -> Vec<MailMessage> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Removes and returns the messages sent so far.
    #[must_use]
    pub fn take(&self) -> Vec<MailMessage> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[async_trait]
impl Mailer for MemoryMailer {
    async fn send(&self, message: &MailMessage) -> Result<(), MailError> {
        self.sent
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(message.clone());
        Ok(())
    }
}
