//! A middleware's future without a box: the inner service's answer, or one the middleware
//! gave before calling it, then finished by the middleware (an error body, a header). An
//! axum `from_fn` boxes its own future and the inner service's on every request; the hot
//! routes' middleware use this instead.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    extract::Request,
    response::{IntoResponse, Response},
};
use tower::{Layer, Service};

/// What a middleware does to the answer once it is written.
pub trait Finish {
    fn finish(self, response: Response) -> Response;
}

/// A middleware in two halves: `start` reads (or amends) the request and says how to
/// finish its answer, with an answer of its own when the request goes no further.
pub trait Middleware: Clone {
    type Finish: Finish;
    fn start(&self, request: &mut Request) -> (Self::Finish, Option<Response>);
}

/// The layer of a [`Middleware`].
#[derive(Clone)]
pub struct MiddlewareLayer<M>(pub M);

impl<M: Clone, S> Layer<S> for MiddlewareLayer<M> {
    type Service = WithMiddleware<M, S>;

    fn layer(&self, inner: S) -> WithMiddleware<M, S> {
        WithMiddleware { middleware: self.0.clone(), inner }
    }
}

#[derive(Clone)]
pub struct WithMiddleware<M, S> {
    middleware: M,
    inner: S,
}

impl<M, S> Service<Request> for WithMiddleware<M, S>
where
    M: Middleware,
    S: Service<Request, Error = Infallible>,
    S::Response: IntoResponse,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Finishing<S::Future, M::Finish>;

    // An answer given by `start` leaves the readied inner service uncalled: harmless
    // while everything below is always ready (axum's routes are); a layer that reserves
    // capacity in `poll_ready` would hold it until this clone drops.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        match self.middleware.start(&mut request) {
            (finish, None) => Finishing::inner(self.inner.call(request), finish),
            (finish, Some(answer)) => Finishing::given(answer, finish),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Finishing<F, T> {
        #[pin]
        answer: Answer<F>,
        finish: Option<T>,
    }
}

pin_project_lite::pin_project! {
    #[project = AnswerProjection]
    enum Answer<F> {
        Inner { #[pin] future: F },
        Given { response: Option<Response> },
    }
}

impl<F, T> Finishing<F, T> {
    /// The inner service's answer (`future`), then `finish`.
    pub fn inner(future: F, finish: T) -> Self {
        Self { answer: Answer::Inner { future }, finish: Some(finish) }
    }

    /// An answer given without calling the inner service, then `finish`.
    pub fn given(response: Response, finish: T) -> Self {
        Self { answer: Answer::Given { response: Some(response) }, finish: Some(finish) }
    }
}

impl<F, R, T> Future for Finishing<F, T>
where
    F: Future<Output = Result<R, Infallible>>,
    R: IntoResponse,
    T: Finish,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.answer.project() {
            AnswerProjection::Inner { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response.into_response(),
                Poll::Ready(Err(never)) => match never {},
                Poll::Pending => return Poll::Pending,
            },
            AnswerProjection::Given { response } => response.take().expect("polled after it was ready"),
        };
        let finish = this.finish.take().expect("polled after it was ready");
        Poll::Ready(Ok(finish.finish(response)))
    }
}
