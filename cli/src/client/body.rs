//! A response body, read whole but no larger than any answer of the API: a gateway, or
//! whatever poses as one, could otherwise have the CLI fill its memory.

use reqwest::Response;

/// 8 MiB: far above the API's largest page.
pub const LIMIT: usize = 8 << 20;

pub enum Error {
    TooLarge,
    Transport(reqwest::Error),
}

/// The body, refused up front when its Content-Length is over `limit` and while it
/// streams when not (a length need not be given).
pub async fn read(mut response: Response, limit: usize) -> Result<Vec<u8>, Error> {
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(Error::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Error::Transport)? {
        if body.len() + chunk.len() > limit {
            return Err(Error::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
