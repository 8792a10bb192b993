//! The sidecar's step journal: one file per step (`turns/<step>.json`,
//! written atomically), so a step answered once is answered the same way
//! again, across sidecar restarts.

use std::path::{Path, PathBuf};

use tokio::sync::{Mutex, MutexGuard};

use crate::protocol::Turn;

pub struct StepState {
    dir: PathBuf,
    /// Steps are executed one at a time.
    lock: Mutex<()>,
}

impl StepState {
    pub fn open(state_dir: &Path) -> std::io::Result<Self> {
        let dir = state_dir.join("turns");
        std::fs::create_dir_all(&dir)?;
        Ok(Self {
            dir,
            lock: Mutex::new(()),
        })
    }

    pub async fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().await
    }

    fn path(&self, step: u32) -> PathBuf {
        self.dir.join(format!("{step:06}.json"))
    }

    pub fn recorded(&self, step: u32) -> std::io::Result<Option<Turn>> {
        match std::fs::read_to_string(self.path(step)) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn record(&self, turn: &Turn) -> std::io::Result<()> {
        let path = self.path(turn.step);
        let partial = path.with_extension("partial");
        std::fs::write(
            &partial,
            serde_json::to_vec(turn).map_err(std::io::Error::other)?,
        )?;
        std::fs::rename(partial, path)
    }

    /// Every recorded step, in order.
    pub fn history(&self) -> std::io::Result<Vec<Turn>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p)?;
                serde_json::from_str(&text).map_err(std::io::Error::other)
            })
            .collect()
    }
}
