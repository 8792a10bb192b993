//! Every request the operator makes to the Kubernetes API has an end: the
//! client itself waits as long as a watch may take, so each call is bounded
//! here, and a stalled connection becomes an error a retry can follow.

use std::future::Future;
use std::time::Duration;

/// How long one API request may take.
pub const API_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("the Kubernetes API did not answer within {}s", .0.as_secs())]
    Timeout(Duration),
}

/// `request`, bounded by [`API_TIMEOUT`].
pub async fn call<T>(request: impl Future<Output = kube::Result<T>>) -> Result<T, ApiError> {
    within(API_TIMEOUT, request).await
}

/// `request`, bounded by `limit`.
pub async fn within<T>(
    limit: Duration,
    request: impl Future<Output = kube::Result<T>>,
) -> Result<T, ApiError> {
    tokio::time::timeout(limit, request)
        .await
        .map_err(|_| ApiError::Timeout(limit))?
        .map_err(ApiError::Kube)
}
