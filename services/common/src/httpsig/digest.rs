//! RFC 9530 `Content-Digest`: a dictionary of algorithm → byte sequence of the body's hash.
//! Every entry of an algorithm we know must match (one right entry beside a wrong one is
//! refused, RFC 9530 §6.7), and at least one must be of an algorithm we know.

use base64::Engine;
use sfv::{Dictionary, ListEntry, Parser};
use sha2::{Digest, Sha256, Sha512};

use super::Refusal;

/// `sha-256=:…:` of `body`: what a signer sends.
pub fn content_digest(body: &[u8]) -> String {
    let hash = Sha256::digest(body);
    format!("sha-256=:{}:", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// Whether the `Content-Digest` field value says what `body` is.
pub fn check(field: &str, body: &[u8]) -> Result<(), Refusal> {
    // A structured dictionary keeps the last of two entries of one name: a wrong digest
    // and a right one of the same algorithm must not pass as the right one.
    let mut names: Vec<&str> = field.split(',').filter_map(|entry| entry.split('=').next()).map(str::trim).collect();
    names.sort_unstable();
    if names.windows(2).any(|pair| pair[0] == pair[1]) {
        return Err(Refusal::Malformed("Content-Digest names an algorithm twice".into()));
    }
    let entries: Dictionary = Parser::new(field)
        .parse()
        .map_err(|e| Refusal::Malformed(format!("Content-Digest is not a structured dictionary: {e}")))?;
    let mut known = 0;
    for (algorithm, entry) in &entries {
        let ListEntry::Item(item) = entry else {
            return Err(Refusal::Malformed(format!("Content-Digest {} is not a byte sequence", algorithm.as_str())));
        };
        let Some(sent) = item.bare_item.as_byte_sequence() else {
            return Err(Refusal::Malformed(format!("Content-Digest {} is not a byte sequence", algorithm.as_str())));
        };
        let ours: Vec<u8> = match algorithm.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            // Algorithms we do not know are passed over (RFC 9530 §2).
            _ => continue,
        };
        known += 1;
        if sent != ours.as_slice() {
            return Err(Refusal::DigestMismatch(algorithm.as_str().to_owned()));
        }
    }
    if known == 0 {
        return Err(Refusal::Malformed("Content-Digest has no sha-256 or sha-512 entry".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9530's examples, from ../shared/vectors.
    #[test]
    fn the_rfc_9530_examples_hold() {
        let cases: [(&[u8], &str, Option<&str>); 4] = [
            (
                b"{\"hello\": \"world\"}",
                "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:",
                Some(
                    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
                ),
            ),
            (
                b"{\"hello\": \"world\"}\n",
                "sha-256=:RK/0qy18MlBSVnWgjwz6lZEWjP/lF5HF9bvEF8FabDg=:",
                Some(
                    "sha-512=:YMAam51Jz/jOATT6/zvHrLVgOYTGFy1d6GJiOHTohq4yP+pgk4vf2aCsyRZOtw8MjkM7iw7yZ/WkppmM44T3qg==:",
                ),
            ),
            (
                b"{\"message\": \"good dog\"}",
                "sha-256=:z0bm/K2/kBiAHdTk/FHlB2NyoHqaTdzCA9k+jeJ0ezA=:",
                Some(
                    "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:",
                ),
            ),
            (b"", "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:", None),
        ];
        for (body, sha256, sha512) in cases {
            assert_eq!(content_digest(body), sha256);
            assert!(check(sha256, body).is_ok());
            if let Some(sha512) = sha512 {
                assert!(check(sha512, body).is_ok());
                assert!(check(&format!("{sha256}, {sha512}"), body).is_ok());
            }
            assert!(matches!(check(sha256, b"another body"), Err(Refusal::DigestMismatch(_))));
        }
    }

    #[test]
    fn one_wrong_entry_beside_a_right_one_is_refused() {
        let body = b"{\"hello\": \"world\"}";
        let right = "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:";
        let wrong =
            "sha-512=:mEWXIS7MaLRuGgxOBdODa3xqM1XdEvxoYhvlCFJ41QJgJc4GTsPp29l5oGX69wWdXymyU0rjJuahq4l5aGgfLQ==:";
        assert!(matches!(check(&format!("{right}, {wrong}"), body), Err(Refusal::DigestMismatch(a)) if a == "sha-512"));
        assert!(matches!(check("md5=:AAAA:", body), Err(Refusal::Malformed(_))), "nothing we know");
        assert!(matches!(check("sha-256=X48E", body), Err(Refusal::Malformed(_))));
        assert!(check(&format!("unixsum=:AAAA:, {right}"), body).is_ok(), "unknown algorithms are passed over");
        let twice = format!("sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:, {right}");
        assert!(matches!(check(&twice, body), Err(Refusal::Malformed(_))), "the last of two would win");
    }
}
