//! A `remediator sandbox serve` sidecar process for one incident beside a
//! running service, as the operator's Pod starts it: a token in a file, a
//! free loopback port, its own state directory. Shared by the local tests
//! and the fan-out bench.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;

pub struct SidecarProcess {
    pub child: tokio::process::Child,
    pub address: SocketAddr,
    pub token: String,
    /// Holds the token file and the sidecar's state until dropped.
    _state: tempfile::TempDir,
}

impl SidecarProcess {
    /// Starts `binary sandbox serve` for incident `uid` over `root`, the
    /// service answering at `service`; killed when dropped. Not waited for.
    pub fn spawn(binary: &Path, uid: &str, root: &Path, service: SocketAddr) -> Self {
        let state = tempfile::tempdir().unwrap();
        let token = remediator::tokens::generate();
        let token_file = state.path().join("token");
        std::fs::write(&token_file, &token).unwrap();
        let address = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let child = tokio::process::Command::new(binary)
            .args(["sandbox", "serve", "--incident-uid", uid, "--listen"])
            .arg(address.to_string())
            .arg("--token-file")
            .arg(&token_file)
            .arg("--root")
            .arg(root)
            .arg("--service")
            .arg(service.to_string())
            .arg("--state-dir")
            .arg(state.path().join("state"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the sidecar starts");
        Self {
            child,
            address,
            token,
            _state: state,
        }
    }
}
