//! Carries TCP connections made inside the sandbox's network namespace to
//! the real service outside it. The two stages share one Unix socket pair
//! created before the split (the inner stage's stdin); connections are
//! multiplexed over it as frames (`open`, `data`, `close` by connection
//! id), so no file descriptor ever crosses the boundary and the outside end
//! only ever dials the service. The link closing means the other stage is
//! gone. A warm sandbox's requests travel the same link, outside to
//! inside, as `request` frames ended by `request-end`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const OPEN: u8 = 1;
const DATA: u8 = 2;
const CLOSE: u8 = 3;
const REQUEST: u8 = 4;
const REQUEST_END: u8 = 5;
/// A connection dropped whole (both directions), not half-closed.
const ABORT: u8 = 6;
const MAX_PAYLOAD: usize = 16 * 1024;
/// Bytes one request may take (a file's new content is in it).
const MAX_REQUEST: usize = 64 << 20;
/// A peer that reads nothing for this long loses its connection: the one
/// thread that delivers frames must not wait on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

pub type Link = Arc<Mutex<Box<dyn Write + Send>>>;
type Streams = Arc<Mutex<HashMap<u32, TcpStream>>>;

fn send(link: &Link, kind: u8, id: u32, payload: &[u8]) -> std::io::Result<()> {
    let mut frame = Vec::with_capacity(9 + payload.len());
    frame.push(kind);
    frame.extend_from_slice(&id.to_be_bytes());
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    link.lock()
        .unwrap_or_else(|e| e.into_inner())
        .write_all(&frame)
}

/// The next frame, or None when the link is closed or garbled.
fn receive(link: &mut impl Read) -> Option<(u8, u32, Vec<u8>)> {
    let mut head = [0u8; 9];
    link.read_exact(&mut head).ok()?;
    let id = u32::from_be_bytes([head[1], head[2], head[3], head[4]]);
    let len = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) as usize;
    if len > MAX_PAYLOAD {
        return None;
    }
    let mut payload = vec![0u8; len];
    link.read_exact(&mut payload).ok()?;
    Some((head[0], id, payload))
}

/// Copies one TCP stream into frames until it ends, then says so.
fn pump(mut stream: TcpStream, id: u32, link: Link) {
    let mut buf = [0u8; MAX_PAYLOAD];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if send(&link, DATA, id, &buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
    let _ = send(&link, CLOSE, id, &[]);
}

/// One request to the inside, in frames of at most [`MAX_PAYLOAD`].
pub fn send_request(link: &Link, request: &[u8]) -> std::io::Result<()> {
    for part in request.chunks(MAX_PAYLOAD) {
        send(link, REQUEST, 0, part)?;
    }
    send(link, REQUEST_END, 0, &[])
}

/// Delivers frames to the streams they belong to; `on_open` answers an
/// `open` frame (only the outside end gets them), `on_request` a whole
/// request (only the inside end gets them). Returns when the link closes
/// or breaks the protocol.
fn demultiplex(
    mut reader: impl Read,
    streams: Streams,
    mut on_open: impl FnMut(u32) -> Option<TcpStream>,
    mut on_request: impl FnMut(Vec<u8>) -> bool,
) {
    let mut request = Vec::new();
    while let Some((kind, id, payload)) = receive(&mut reader) {
        match kind {
            REQUEST if request.len() + payload.len() <= MAX_REQUEST => {
                request.extend_from_slice(&payload);
            }
            REQUEST_END => {
                if !on_request(std::mem::take(&mut request)) {
                    return;
                }
            }
            OPEN => {
                if let Some(stream) = on_open(id) {
                    streams
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(id, stream);
                }
            }
            DATA => {
                let target = streams
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&id)
                    .and_then(|s| s.try_clone().ok());
                if let Some(mut stream) = target
                    && stream.write_all(&payload).is_err()
                {
                    let removed = streams
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&id);
                    if let Some(stream) = removed {
                        let _ = stream.shutdown(Shutdown::Both);
                    }
                }
            }
            CLOSE | ABORT => {
                let removed = streams
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&id);
                let how = if kind == ABORT {
                    Shutdown::Both
                } else {
                    Shutdown::Write
                };
                if let Some(stream) = removed {
                    let _ = stream.shutdown(how);
                }
            }
            _ => return,
        }
    }
}

/// The inside end: connections accepted on the sandbox's listeners,
/// forwarded over the link.
#[derive(Clone)]
pub struct Inside {
    writer: Link,
    streams: Streams,
    /// The listeners, held while connections are taken from them: taking
    /// one and forwarding it is one step, which `reset` cannot fall between.
    listeners: Arc<Mutex<Vec<TcpListener>>>,
}

impl Inside {
    pub fn new(writer: impl Write + Send + 'static) -> Self {
        Self {
            writer: Arc::new(Mutex::new(Box::new(writer))),
            streams: Arc::default(),
            listeners: Arc::default(),
        }
    }

    /// Accepts connections on `listeners` and forwards each over the link
    /// (`reader` and this end's writer), and hands requests to `requests`
    /// (a link that sends one without a warm sandbox ends it); returns
    /// when the link closes.
    pub fn serve(
        &self,
        reader: impl Read,
        listeners: Vec<TcpListener>,
        requests: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    ) {
        let next = Arc::new(AtomicU32::new(1));
        for listener in listeners {
            let Ok(taken) = listener.try_clone() else {
                continue;
            };
            if listener.set_nonblocking(true).is_err() {
                continue;
            }
            self.listeners
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(taken);
            let inside = self.clone();
            let next = next.clone();
            std::thread::spawn(move || {
                while wait_readable(&listener) {
                    if !inside.forward_waiting(&listener, &next) {
                        return;
                    }
                }
            });
        }
        demultiplex(
            reader,
            self.streams.clone(),
            |_| None,
            |request| requests.as_ref().is_some_and(|r| r.send(request).is_ok()),
        );
    }

    /// Forwards every connection waiting on `listener`; false once the
    /// link is gone.
    fn forward_waiting(&self, listener: &TcpListener, next: &AtomicU32) -> bool {
        let _taking = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let conn = match listener.accept() {
                Ok((conn, _)) => conn,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
            };
            let id = next.fetch_add(1, Ordering::Relaxed);
            let _ = conn.set_nonblocking(false);
            let _ = conn.set_write_timeout(Some(WRITE_TIMEOUT));
            let Ok(copy) = conn.try_clone() else { continue };
            self.streams
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, copy);
            if send(&self.writer, OPEN, id, &[]).is_err() {
                return false;
            }
            let writer = self.writer.clone();
            std::thread::spawn(move || pump(conn, id, writer));
        }
    }

    /// Closes every forwarded connection, both ends, and drops those still
    /// waiting to be taken: between a warm sandbox's ops nothing of the
    /// last one's traffic goes on (a red-team review had a burst of
    /// connections reach the service during the next op), and a service
    /// that never closes its side does not keep them open.
    pub fn reset(&self) {
        let listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        for listener in listeners.iter() {
            loop {
                match listener.accept() {
                    Ok((waiting, _)) => {
                        let _ = waiting.shutdown(Shutdown::Both);
                    }
                    // Interrupted, or a connection reset while it waited.
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
                        ) => {}
                    Err(_) => break,
                }
            }
        }
        let open: Vec<(u32, TcpStream)> = self
            .streams
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (id, stream) in open {
            let _ = stream.shutdown(Shutdown::Both);
            let _ = send(&self.writer, ABORT, id, &[]);
        }
    }
}

/// Blocks until `listener` has a connection waiting; false if it cannot.
fn wait_readable(listener: &TcpListener) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => return true,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return false,
        }
    }
}

/// Outside: dials the service for every connection opened inside.
/// Returns the link's writing end, for requests.
pub fn serve_outer(link: UnixStream, service: SocketAddr) -> std::io::Result<Link> {
    let writer: Link = Arc::new(Mutex::new(Box::new(link.try_clone()?)));
    let streams: Streams = Arc::default();
    let requests = writer.clone();
    std::thread::spawn(move || {
        let on_open = |id| match TcpStream::connect_timeout(&service, Duration::from_secs(5)) {
            Ok(upstream) => {
                let copy = upstream.try_clone().ok()?;
                let writer = writer.clone();
                std::thread::spawn(move || pump(copy, id, writer));
                Some(upstream)
            }
            Err(_) => {
                let _ = send(&writer, CLOSE, id, &[]);
                None
            }
        };
        // Requests only go inward: one coming out ends the link.
        demultiplex(link, streams, on_open, |_| false);
    });
    Ok(requests)
}
