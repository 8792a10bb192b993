//! The service's own log file, `<root>/service.log`: one line per event,
//! so an agent can find a failure's reason even when the HTTP body hides it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub const LOG_FILE: &str = "service.log";

#[derive(Debug, Clone)]
pub struct ServiceLog {
    path: PathBuf,
}

impl ServiceLog {
    pub fn in_root(root: &Path) -> Self {
        Self {
            path: root.join(LOG_FILE),
        }
    }

    pub fn info(&self, message: &str) {
        self.write("INFO", message);
    }

    pub fn error(&self, message: &str) {
        self.write("ERROR", message);
    }

    /// Logging never takes the service down: a log that cannot be written
    /// is reported on stderr instead.
    fn write(&self, level: &str, message: &str) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        let line = format!("{now} {level} {message}\n");
        let result = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| f.write_all(line.as_bytes()));
        if let Err(e) = result {
            eprintln!("cannot write {}: {e}; {line}", self.path.display());
        }
    }
}
