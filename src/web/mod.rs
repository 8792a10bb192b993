//! `remediator serve`: a web dashboard and a JSON API over the same
//! fan-out and scorecard the command line runs. One fan-out at a time (a
//! second start gets 409), live state over server-sent events, static
//! assets built into the binary. It binds loopback unless told otherwise.

mod api;
mod log;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::router;
pub use state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "cannot listen on {addr}: {error} (is another remediator serve running there? pick another with --addr)"
    )]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("the server failed: {0}")]
    Serve(std::io::Error),
}

/// Binds `addr` first, so a port in use is an error before anything else.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|error| ServeError::Bind { addr, error })
}

/// Serves until `shutdown` resolves; then stops a running fan-out (its
/// services stop and roots are removed) and closes the event streams.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = router(state.clone());
    let closing = state.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            closing.shutdown().await;
        })
        .await
        .map_err(ServeError::Serve)
}
