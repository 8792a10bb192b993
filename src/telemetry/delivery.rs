//! Whether spans reach the collector: the exporter wrapped so a failed
//! export is seen. The SDK reports failures only to its own internal log,
//! so without this a wrong endpoint would lose every trace in silence. A
//! long-running process logs each change (failing, delivering again); a
//! process on its way out says how many batches were lost.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

static FAILED_BATCHES: AtomicUsize = AtomicUsize::new(0);
static FAILING: AtomicBool = AtomicBool::new(false);
static LAST_ERROR: Mutex<String> = Mutex::new(String::new());

/// How many span batches could not be exported so far, and the last error.
pub fn lost() -> Option<(usize, String)> {
    let failed = FAILED_BATCHES.load(Ordering::Relaxed);
    (failed > 0).then(|| {
        (
            failed,
            LAST_ERROR.lock().map(|e| e.clone()).unwrap_or_default(),
        )
    })
}

#[derive(Debug)]
pub(super) struct Reporting<E> {
    pub inner: E,
    /// Where spans go, for the messages.
    pub endpoint: String,
}

impl<E: SpanExporter> SpanExporter for Reporting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                if FAILING.swap(false, Ordering::Relaxed) {
                    tracing::info!(endpoint = %self.endpoint, "traces are delivered again");
                }
            }
            Err(e) => {
                FAILED_BATCHES.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = LAST_ERROR.lock() {
                    *last = e.to_string();
                }
                if !FAILING.swap(true, Ordering::Relaxed) {
                    tracing::warn!(endpoint = %self.endpoint, error = %e, "traces cannot be exported; spans are dropped until the collector answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
