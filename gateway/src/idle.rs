//! A body's bound on silence: each wait for its next bytes is bounded, not the whole body
//! (a long stream that keeps sending is fine). For a streamed answer, a backend that stops
//! mid-answer; for a request, a client whose body stops before its end (a `Content-Length`
//! that lies, a chunked body that never ends) is refused at once rather than held until
//! the request's deadline.
//!
//! By hand, not tower-http's `TimeoutBody`: that one reports no size, so hyper framed every
//! streamed answer of known length as chunked (losing its `Content-Length`), and it looks
//! at its timer before the body, so bytes already there could be refused when the task ran
//! late.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::body::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Sleep;
use tower::BoxError;

pin_project_lite::pin_project! {
    pub struct IdleBound<B> {
        #[pin]
        body: B,
        idle: Duration,
        #[pin]
        timer: Option<Sleep>,
        side: Side,
    }
}

/// Whose body it is, for the log line when the bound runs out.
pub enum Side {
    /// A data-plane backend's answer, by its route's prefix.
    Backend(String),
    /// The client's request.
    Client,
}

impl<B> IdleBound<B> {
    pub fn new(body: B, idle: Duration, side: Side) -> Self {
        Self { body, idle, timer: None, side }
    }
}

/// The body's sender sent nothing for the bound.
#[derive(Debug, thiserror::Error)]
#[error("nothing was sent for {0:?} before the body's end")]
pub struct FellSilent(Duration);

impl<B> Body for IdleBound<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        // The body first: what the backend already sent goes on, however late this runs.
        if let Poll::Ready(frame) = this.body.poll_frame(cx) {
            this.timer.set(None);
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        // The wait starts when the answer asks for more: a client slow to read never counts.
        if this.timer.is_none() {
            this.timer.set(Some(tokio::time::sleep(*this.idle)));
        }
        match this.timer.as_pin_mut().map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => {
                match this.side {
                    Side::Backend(prefix) => {
                        tracing::warn!(%prefix, idle = ?this.idle, "data-plane backend fell silent mid-answer: broken off");
                    }
                    // The client's doing, not an operator's concern.
                    Side::Client => tracing::debug!(idle = ?this.idle, "request body stopped before its end"),
                }
                Poll::Ready(Some(Err(FellSilent(*this.idle).into())))
            }
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
