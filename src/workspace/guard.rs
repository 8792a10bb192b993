//! Doing no harm: before every mutating step the root is snapshotted in
//! the journal; after it the controller's own probe looks once, and a step
//! that made the service worse (it answered before and does not now, or it
//! answered 200 and now fails) is undone at once: files restored, the
//! service restarted as it was. The whole incident can be undone too.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::journal::{Journal, JournalError, Restored};
use crate::verify::{self, Health};

/// The journal of one incident and what its service last started from.
#[derive(Debug, Clone)]
pub struct Guard {
    journal: Arc<Mutex<Journal>>,
    health_path: String,
    /// The step whose snapshot holds the files the running service read
    /// at its last start (0: as the incident found it).
    last_start: Arc<Mutex<u32>>,
}

/// What one guarded step came to.
#[derive(Debug)]
pub enum Checked {
    /// No worse than before.
    Kept,
    /// Worse, and undone: the evidence for the record and the agent.
    RolledBack(String),
}

impl Guard {
    pub fn new(journal: Journal, health_path: impl Into<String>) -> Self {
        Self {
            journal: Arc::new(Mutex::new(journal)),
            health_path: health_path.into(),
            last_start: Arc::new(Mutex::new(0)),
        }
    }

    /// Runs blocking journal work off the async workers.
    async fn with_journal<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Journal) -> Result<T, JournalError> + Send + 'static,
    ) -> Result<T, JournalError> {
        let journal = self.journal.clone();
        tokio::task::spawn_blocking(move || {
            let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
            work(&mut journal)
        })
        .await
        .map_err(|e| JournalError::Io {
            path: PathBuf::new(),
            error: std::io::Error::other(e),
        })?
    }

    /// The root as the incident found it (before any step).
    pub async fn baseline(&self) -> Result<(), JournalError> {
        self.with_journal(|j| j.take(0).map(|_| ())).await
    }

    /// Snapshots the root before `step`; an error means the step must not
    /// run (it could not be undone).
    pub async fn before(&self, step: u32, address: SocketAddr) -> Result<Health, JournalError> {
        let health = verify::look(address, &self.health_path).await;
        self.with_journal(move |j| j.take(step).map(|_| ())).await?;
        Ok(health)
    }

    /// Looks once after `step`; undoes it if the service got worse.
    /// `restart` restarts the service the way the workspace does.
    pub async fn after<F, Fut>(
        &self,
        step: u32,
        was_restart: bool,
        before: Health,
        address: SocketAddr,
        restart: F,
    ) -> Checked
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let after = verify::look(address, &self.health_path).await;
        if after >= before {
            if was_restart {
                *self.last_start.lock().unwrap_or_else(|e| e.into_inner()) = step;
            }
            return Checked::Kept;
        }
        // A restart that made it worse brings back the files the previous
        // process ran with; any other step, the files before it.
        let target = if was_restart {
            *self.last_start.lock().unwrap_or_else(|e| e.into_inner())
        } else {
            step
        };
        let restored = self.with_journal(move |j| j.restore(target)).await;
        let restarted = if was_restart || after == Health::Down {
            restart().await
        } else {
            false
        };
        let now = verify::look(address, &self.health_path).await;
        let what = match &restored {
            Ok(r) => describe(r, target),
            Err(e) => format!("the restore failed: {e}"),
        };
        Checked::RolledBack(format!(
            "the service got worse ({before} before, {after} after); {what}{}; now {now}",
            if restarted { ", service restarted" } else { "" }
        ))
    }

    /// Puts the root back as it was before `step` (0: as found) and
    /// restarts the service so it runs as it did then.
    pub async fn undo<F, Fut>(&self, step: u32, restart: F) -> Result<Restored, JournalError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let restored = self.with_journal(move |j| j.restore(step)).await?;
        restart().await;
        Ok(restored)
    }
}

fn describe(restored: &Restored, step: u32) -> String {
    format!(
        "{} written back and {} removed, as before step {step}",
        plural(restored.written.len(), "file"),
        plural(restored.removed.len(), "file")
    )
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
