//! Following a list's pages. Where the next page is comes from the gateway, and the
//! session's bearer goes with the request for it: only a path on the same gateway is
//! followed, and no page twice (a gateway naming the same page for ever would never end).

use std::collections::HashSet;

use anyhow::{Result, anyhow, ensure};
use reqwest::header::{HeaderMap, LINK};

/// The target of a `Link: <…>; rel="next"` header, if any: a path with its query.
pub fn next_link(headers: &HeaderMap) -> Result<Option<String>> {
    let Some(link) = headers.get(LINK) else { return Ok(None) };
    let link =
        link.to_str().map_err(|_| anyhow!("the gateway's Link header is not ASCII: its next page not followed"))?;
    let next = link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
        let start = part.find('<')? + 1;
        let end = part.find('>')?;
        part.get(start..end)
    });
    let Some(next) = next else { return Ok(None) };
    ensure!(is_path(next), "the gateway's next page {next:?} is not a path on the gateway: not followed");
    Ok(Some(next.to_owned()))
}

/// One `/` to begin with, not two (`//host/…` and `/\host/…` name another host), and only
/// visible ASCII: URL parsers drop tabs and line breaks, so `/<tab>/host/…` is `//host/…`.
fn is_path(target: &str) -> bool {
    target.starts_with('/') && !target[1..].starts_with(['/', '\\']) && target.bytes().all(|b| b.is_ascii_graphic())
}

/// More pages than any org has (100 items each): a gateway naming a new page every time
/// would otherwise be followed for ever.
const MAX_PAGES: usize = 10_000;

/// The pages asked for so far, by cursor or link.
#[derive(Default)]
pub struct Seen(HashSet<String>);

impl Seen {
    /// Fails if the gateway named `next` before, or named too many pages.
    pub fn first_time(&mut self, next: &str) -> Result<()> {
        ensure!(self.0.len() < MAX_PAGES, "the gateway named over {MAX_PAGES} pages: stopped");
        ensure!(
            self.0.insert(next.to_owned()),
            "the gateway named the page {next:?} twice: stopped, as its pages would never end"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn next_of(link: &str) -> Result<Option<String>> {
        let mut headers = HeaderMap::new();
        headers.insert(LINK, link.parse().unwrap());
        next_link(&headers)
    }

    #[test]
    fn pages_without_end_are_not_followed() {
        let mut seen = Seen::default();
        for page in 0..MAX_PAGES {
            seen.first_time(&format!("/p?cursor={page}")).unwrap();
        }
        assert!(seen.first_time("/p?cursor=new").unwrap_err().to_string().contains("pages: stopped"));
    }

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let link = "</api/v1/developers/orgs/o/keys?limit=100&cursor=abc>; rel=\"next\"";
        assert_eq!(next_of(link).unwrap().as_deref(), Some("/api/v1/developers/orgs/o/keys?limit=100&cursor=abc"));
        assert_eq!(next_of("</a?cursor=1>; rel=\"prev\"").unwrap(), None);
        assert_eq!(next_link(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn a_next_page_elsewhere_is_refused() {
        for target in
            ["//evil:1/steal", "https://evil/x", "http:evil/x", "/\\evil/x", "/\t/evil/x", "evil/x", "", "/a b"]
        {
            let error = next_of(&format!("<{target}>; rel=\"next\"")).unwrap_err();
            assert!(error.to_string().contains("is not a path on the gateway"), "{target:?}: {error}");
        }
    }

    #[test]
    fn a_page_named_twice_stops() {
        let mut seen = Seen::default();
        seen.first_time("/a?cursor=1").unwrap();
        seen.first_time("/a?cursor=2").unwrap();
        assert!(seen.first_time("/a?cursor=1").unwrap_err().to_string().contains("twice"));
    }
}
