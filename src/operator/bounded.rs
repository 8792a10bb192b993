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
    /// The installed CRD is older than this operator: the API server
    /// cannot take a field it writes (and says so with HTTP 500).
    #[error(
        "the installed CRDs are older than this operator ({0}): apply this version's CRDs (kubectl apply -f crds/; helm does not upgrade CRDs)"
    )]
    StaleCrd(String),
}

impl ApiError {
    /// A server-side apply refused because the installed CRD's schema
    /// lacks a field named as the CRD being out of date; any other error
    /// as it is.
    pub fn naming_a_stale_crd(self) -> Self {
        match self {
            ApiError::Kube(kube::Error::Api(status))
                if status.message.contains("field not declared in schema") =>
            {
                ApiError::StaleCrd(status.message)
            }
            other => other,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_field_the_crd_does_not_know_names_the_crd_as_stale() {
        let status = kube::core::Status {
            code: 500,
            message: "failed to create typed patch object (/x; remediator.dev/v1alpha1, Kind=Incident): .status.notices: field not declared in schema".into(),
            ..Default::default()
        };
        let error = ApiError::Kube(kube::Error::Api(Box::new(status))).naming_a_stale_crd();
        assert!(matches!(error, ApiError::StaleCrd(_)));
        assert!(
            error.to_string().contains("kubectl apply -f crds/"),
            "{error}"
        );
        let other = ApiError::Timeout(API_TIMEOUT).naming_a_stale_crd();
        assert!(matches!(other, ApiError::Timeout(_)));
    }
}
