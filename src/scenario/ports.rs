//! Port leases: a port (and the next one, which a scenario may bind) that
//! no other incident of this process gets until the lease is dropped.
//! Other processes are caught by the bind check and, failing that, by the
//! launcher's retry.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::Mutex;

static LEASED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

#[derive(Debug)]
pub struct PortLease {
    port: u16,
}

fn leased() -> std::sync::MutexGuard<'static, BTreeSet<u16>> {
    LEASED.lock().unwrap_or_else(|e| e.into_inner())
}

impl PortLease {
    /// A free port `p` with `p+1` free too, leased until dropped.
    pub fn acquire() -> Option<Self> {
        for _ in 0..100 {
            let listener = TcpListener::bind("127.0.0.1:0").ok()?;
            let port = listener.local_addr().ok()?.port();
            let Some(next) = port.checked_add(1) else {
                continue;
            };
            if TcpListener::bind(("127.0.0.1", next)).is_err() {
                continue;
            }
            let mut leased = leased();
            if leased.contains(&port) || leased.contains(&next) {
                continue;
            }
            leased.extend([port, next]);
            return Some(Self { port });
        }
        None
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Ports leased right now in this process.
    pub fn outstanding() -> usize {
        leased().len()
    }

    #[cfg(test)]
    fn is_leased(port: u16) -> bool {
        leased().contains(&port)
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        let mut leased = leased();
        leased.remove(&self.port);
        leased.remove(&(self.port + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_exclusive_and_released() {
        let a = PortLease::acquire().unwrap();
        let b = PortLease::acquire().unwrap();
        assert!(
            a.port().abs_diff(b.port()) >= 2,
            "{} {}",
            a.port(),
            b.port()
        );
        let port = a.port();
        assert!(PortLease::is_leased(port) && PortLease::is_leased(port + 1));
        drop(a);
        assert!(!PortLease::is_leased(port) && !PortLease::is_leased(port + 1));
        drop(b);
    }
}
