//! A stream that reads at most a fixed number of bytes over its life: a
//! directory connection carries a greeting and one short answer, so more
//! bytes than [`crate::limits::DIRECTORY_REPLY_BYTES_MAX`] mean the peer is
//! not speaking the protocol, and the library client's much larger reply
//! bound must not be what stops it.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};

/// The error a read past the budget fails with, recognisable by type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadBudgetSpent {
    pub limit_bytes: usize,
}

impl std::fmt::Display for ReadBudgetSpent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the peer sent more than {} bytes", self.limit_bytes)
    }
}

impl std::error::Error for ReadBudgetSpent {}

impl ReadBudgetSpent {
    /// Whether `error` is a spent budget (through the client's error).
    pub fn is(error: &std::io::Error) -> bool {
        error
            .get_ref()
            .is_some_and(|inner| inner.is::<ReadBudgetSpent>())
    }
}

/// `S`, reading at most `limit_bytes` in total; writes pass through.
#[derive(Debug)]
pub struct ReadBudget<S> {
    inner: S,
    limit_bytes: usize,
    left: usize,
}

impl<S> ReadBudget<S> {
    pub fn new(inner: S, limit_bytes: usize) -> ReadBudget<S> {
        ReadBudget {
            inner,
            limit_bytes,
            left: limit_bytes,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ReadBudget<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.left == 0 {
            let spent = ReadBudgetSpent {
                limit_bytes: self.limit_bytes,
            };
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                spent,
            )));
        }
        let room = buf.len().min(self.left);
        let Some(buf) = buf.get_mut(..room) else {
            return Poll::Ready(Ok(0));
        };
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read {
            self.left = self.left.saturating_sub(n);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ReadBudget<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use futures_lite::AsyncReadExt;

    use super::*;

    #[test]
    fn reads_stop_with_a_typed_error_once_the_budget_is_spent() {
        let source: &[u8] = b"0123456789";
        let mut limited = ReadBudget::new(futures_lite::io::Cursor::new(source), 4);
        let mut buf = [0u8; 16];
        let n = futures_lite::future::block_on(limited.read(&mut buf)).expect("read");
        assert_eq!(&buf[..n], b"0123");
        let error = futures_lite::future::block_on(limited.read(&mut buf)).unwrap_err();
        assert!(ReadBudgetSpent::is(&error), "{error}");
    }
}
