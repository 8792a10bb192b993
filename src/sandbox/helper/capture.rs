//! What a command writes, kept up to a cap with the rest counted, so a
//! hostile command cannot exhaust memory.

/// One output stream of a command, as it arrives.
pub struct Capped {
    kept: Vec<u8>,
    cap: usize,
    dropped: usize,
}

impl Capped {
    pub fn new(cap: usize) -> Self {
        Self {
            kept: Vec::new(),
            cap,
            dropped: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        let room = self.cap.saturating_sub(self.kept.len());
        self.kept.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.dropped += bytes.len().saturating_sub(room);
    }

    /// The text kept, with a note of how much more there was.
    pub fn finish(self) -> String {
        let mut text = String::from_utf8_lossy(&self.kept).into_owned();
        if self.dropped > 0 {
            text.push_str(&format!(
                "\n[... {} more bytes{}",
                self.dropped,
                crate::protocol::TRUNCATED
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::Capped;

    #[test]
    fn bytes_past_the_cap_are_counted_not_kept() {
        let mut out = Capped::new(5);
        out.push(b"abc");
        out.push(b"defgh");
        out.push(b"ij");
        assert_eq!(out.finish(), "abcde\n[... 5 more bytes truncated]");
        let mut exact = Capped::new(3);
        exact.push(b"abc");
        assert_eq!(exact.finish(), "abc");
    }

    #[test]
    fn a_stream_cut_at_its_cap_says_so_as_observations_recognise() {
        let observed = |cap| {
            let mut out = Capped::new(cap);
            out.push(b"0123456789");
            crate::protocol::Observation::succeeded(out.finish(), 0)
        };
        assert!(observed(4).is_truncated());
        assert!(!observed(10).is_truncated());
    }
}
