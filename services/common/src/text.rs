//! One rule for human-entered text (names, descriptions), applied everywhere: trimmed,
//! in Unicode's composed form (NFC), no control characters (NUL included), no
//! bidirectional overrides, bounded length.

use unicode_normalization::UnicodeNormalization;

use crate::error::FieldViolation;

/// The text in NFC: `Ä` typed as one character or as `A` and a combining diaeresis is
/// stored, compared and counted as one.
fn composed(value: &str) -> String {
    value.nfc().collect()
}

/// Characters that reorder or hide text: refused so that names read as they compare.
fn is_deceptive(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// A trimmed display text of 1 to `max` characters.
pub fn display_text(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let value = value.trim();
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    optional_text(field, value, max)
}

/// Like [`display_text`], but empty is allowed.
pub fn optional_text(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let value = composed(value.trim());
    if value.chars().count() > max {
        return Err(FieldViolation::new(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(FieldViolation::new(field, "must not contain control characters"));
    }
    if value.chars().any(is_deceptive) {
        return Err(FieldViolation::new(field, "must not contain invisible or direction-changing characters"));
    }
    Ok(value)
}

/// A trimmed text of 1 to `max` characters that may run over lines (a question, an
/// answer): newlines and tabs are kept; other control characters and direction-changing
/// characters are refused, as in names.
pub fn long_text(field: &str, value: &str, max: usize) -> Result<String, FieldViolation> {
    let value = composed(value.trim());
    if value.is_empty() {
        return Err(FieldViolation::new(field, "is required"));
    }
    if value.chars().count() > max {
        return Err(FieldViolation::new(field, format!("must be at most {max} characters")));
    }
    if value.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(FieldViolation::new(field, "must not contain control characters (but for line breaks and tabs)"));
    }
    if value.chars().any(is_deceptive) {
        return Err(FieldViolation::new(field, "must not contain invisible or direction-changing characters"));
    }
    Ok(value)
}

/// The plain ASCII letters a text's letters are written with, as far as they go: accents
/// taken off (`Äcme` → `Acme`, however the `Ä` was typed), a few letters spelt out (`ß` →
/// `ss`); anything else (`日本`, `🎉`) kept as it is. For slugs and the like.
pub fn unaccented(value: &str) -> String {
    let mut plain = String::with_capacity(value.len());
    for c in value.nfkd().filter(|c| !unicode_normalization::char::is_combining_mark(*c)) {
        match c {
            'ß' => plain.push_str("ss"),
            'æ' => plain.push_str("ae"),
            'Æ' => plain.push_str("AE"),
            'œ' => plain.push_str("oe"),
            'Œ' => plain.push_str("OE"),
            'ø' => plain.push('o'),
            'Ø' => plain.push('O'),
            'ł' => plain.push('l'),
            'Ł' => plain.push('L'),
            'đ' => plain.push('d'),
            'Đ' => plain.push('D'),
            c => plain.push(c),
        }
    }
    plain
}

/// An email address as accounts and invitations are keyed by it: trimmed, lower-cased,
/// one `@`, a dotted domain, no spaces or control characters.
pub fn email_address(field: &str, raw: &str) -> Result<String, FieldViolation> {
    let email = raw.trim().to_lowercase();
    let invalid = || FieldViolation::new(field, "must be an email address");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid());
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    if local.is_empty()
        || domain.is_empty()
        || domain.contains('@')
        || !domain.contains('.')
        || domain.starts_with('.')
        || domain.ends_with('.')
    {
        return Err(invalid());
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_text_keeps_lines_and_refuses_what_names_refuse() {
        assert_eq!(long_text("q", " a\nb\tc ", 10).unwrap(), "a\nb\tc");
        for bad in ["a\rb", "a\u{1b}[31m", "a\u{202e}b", "a\0b", "  "] {
            assert!(long_text("q", bad, 10).is_err(), "{bad:?}");
        }
        assert!(long_text("q", "abc", 2).is_err());
    }

    #[test]
    fn one_rule_for_names() {
        assert_eq!(display_text("name", "  Acme Corp  ", 10).unwrap(), "Acme Corp");
        assert_eq!(display_text("name", "Café 🎉", 10).unwrap(), "Café 🎉");
        for bad in ["", "   ", "a\0b", "a\u{202e}b", "zero\u{200b}width", "x\ny"] {
            assert!(display_text("name", bad, 100).is_err(), "{bad:?} accepted");
        }
        assert!(display_text("name", "abcdefghijk", 10).is_err());
    }

    #[test]
    fn composed_and_decomposed_names_are_one_name() {
        let composed = display_text("name", "\u{c4}cme", 10).unwrap();
        let decomposed = display_text("name", "A\u{308}cme", 10).unwrap();
        assert_eq!(composed, decomposed);
        assert_eq!(composed.chars().count(), 4, "counted as it reads");
        assert_eq!(long_text("q", "A\u{308}", 1).unwrap(), "\u{c4}");
    }

    #[test]
    fn accents_come_off_however_they_were_typed() {
        assert_eq!(unaccented("\u{c4}cme"), "Acme");
        assert_eq!(unaccented("A\u{308}cme"), "Acme");
        assert_eq!(unaccented("Éclair Straße"), "Eclair Strasse");
        assert_eq!(unaccented("Ünïcödé"), "Unicode");
        assert_eq!(unaccented("日本 🎉"), "日本 🎉");
    }

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(email_address("email", "  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in
            ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com", "ada@example.com\0", "a@b@c.com"]
        {
            assert!(email_address("email", bad).is_err(), "{bad:?} accepted");
        }
    }
}
