//! A writer that gathers what is written into batches of a fixed size and hands each full
//! batch, then the last shorter one, to a [`Sink`]. Two writers are made of it: a layer's
//! gzip, compressed a batch at a time on all cores (`source/layer.rs`: fixed batches keep
//! the layer digest the same on every machine), and a build context streamed to BuildKit
//! in messages of bounded size (`builders/session.rs`).
//!
//! `flush` hands nothing over (an early, shorter batch would change a gzip's members):
//! [`Batched::finish`] hands over the rest.

use std::io::Write;

/// Where [`Batched`] hands its batches.
pub trait Sink {
    /// Takes one batch: `size` bytes, or fewer for the last (never empty).
    fn take(&mut self, batch: Vec<u8>) -> std::io::Result<()>;
}

/// A writer handing `size`-byte batches of what is written to its sink.
pub struct Batched<S: Sink> {
    sink: S,
    size: usize,
    pending: Vec<u8>,
}

impl<S: Sink> Batched<S> {
    /// Batches of `size` bytes (at least one) for `sink`.
    pub fn new(sink: S, size: usize) -> Self {
        let size = size.max(1);
        Batched {
            sink,
            size,
            pending: Vec::with_capacity(size),
        }
    }

    /// Hands over what is left (a last, shorter batch, if any): the sink.
    pub fn finish(mut self) -> std::io::Result<S> {
        if !self.pending.is_empty() {
            self.hand_over()?;
        }
        Ok(self.sink)
    }

    fn hand_over(&mut self) -> std::io::Result<()> {
        let batch = std::mem::replace(&mut self.pending, Vec::with_capacity(self.size));
        self.sink.take(batch)
    }
}

impl<S: Sink> Write for Batched<S> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.size - self.pending.len());
        self.pending.extend_from_slice(&buf[..n]);
        if self.pending.len() == self.size {
            self.hand_over()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Sink for Vec<Vec<u8>> {
        fn take(&mut self, batch: Vec<u8>) -> std::io::Result<()> {
            self.push(batch);
            Ok(())
        }
    }

    fn batches(size: usize, writes: &[&[u8]], flush: bool) -> Vec<Vec<u8>> {
        let mut out = Batched::new(Vec::new(), size);
        for w in writes {
            out.write_all(w).unwrap();
            if flush {
                out.flush().unwrap();
            }
        }
        out.finish().unwrap()
    }

    #[test]
    fn batches_are_full_but_the_last_whatever_the_writes_or_flushes() {
        let expected = vec![b"abc".to_vec(), b"def".to_vec(), b"g".to_vec()];
        assert_eq!(batches(3, &[b"abcdefg"], false), expected);
        assert_eq!(batches(3, &[b"ab", b"cdef", b"g"], true), expected);
        assert_eq!(batches(3, &[b"abcdef"], false).len(), 2);
    }

    #[test]
    fn nothing_written_hands_nothing_over() {
        assert!(batches(3, &[], false).is_empty());
        assert!(batches(3, &[b""], true).is_empty());
        assert_eq!(
            batches(0, &[b"ab"], false),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
    }
}
