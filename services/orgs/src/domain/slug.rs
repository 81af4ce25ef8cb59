//! Slugs: `Acme Corp` → `acme-corp`, then `acme-corp-2`, `acme-corp-3` as they are taken.

const MAX_LEN: usize = 48;

/// The base slug of a name: its letters without accents (`Äcme` → `acme`, however the `Ä`
/// was typed), lower-case ASCII letters and digits joined by single dashes.
pub fn slugify(name: &str) -> String {
    let name = keyplane_common::text::unaccented(name);
    let mut slug = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(MAX_LEN).collect();
    let slug = slug.trim_end_matches('-').to_owned();
    if slug.is_empty() { "org".to_owned() } else { slug }
}

/// The first free slug for `base`, given the slugs already taken that start with it.
pub fn first_free(base: &str, taken: &[String]) -> String {
    if !taken.iter().any(|t| t == base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .expect("an unbounded range always has a free slug")
}

/// `base` with a random suffix: for when many creators race for one name.
pub fn with_random_suffix(base: &str) -> String {
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = [0u8; 3];
    SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random number generator failed");
    format!("{base}-{}", hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_slugs() {
        assert_eq!(slugify("Acme Corp"), "acme-corp");
        assert_eq!(slugify("  Acme -- Corp!! "), "acme-corp");
        assert_eq!(slugify("Café 42"), "cafe-42");
        assert_eq!(slugify("\u{c4}cme"), slugify("A\u{308}cme"), "one slug however the name was typed");
        assert_eq!(slugify("Éclair Straße"), "eclair-strasse");
        assert_eq!(slugify("🎉"), "org");
        assert!(slugify(&"x".repeat(100)).len() <= MAX_LEN);
    }

    #[test]
    fn taken_slugs_get_a_number() {
        assert_eq!(first_free("acme-corp", &[]), "acme-corp");
        assert_eq!(first_free("acme-corp", &["acme-corp".into()]), "acme-corp-2");
        assert_eq!(first_free("acme-corp", &["acme-corp".into(), "acme-corp-2".into()]), "acme-corp-3");
    }
}
