//! What the gateway says, made safe to show. A terminal acts on control characters (ESC
//! starts sequences that retitle the window, rewrite the screen or, on some terminals,
//! answer back) and bidi overrides reorder what is shown: API text never reaches the
//! terminal with either. Every human-readable line goes out through here.

use std::{borrow::Cow, fmt::Write};

use serde_json::Value;

/// The text with U+FFFD for each character a terminal would act on rather than show.
pub fn clean(text: &str) -> Cow<'_, str> {
    if !text.chars().any(acts_on_terminal) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.chars().map(|c| if acts_on_terminal(c) { '\u{fffd}' } else { c }).collect())
}

/// C0 and C1 controls and DEL (`char::is_control`), and the bidi overrides and isolates.
fn acts_on_terminal(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// A line on standard output.
pub fn say(line: &str) {
    println!("{}", clean(line));
}

/// A line on standard error.
pub fn warn(line: &str) {
    eprintln!("{}", clean(line));
}

/// The value as serde_json prints it, but with `\uXXXX` for what serde leaves raw in
/// strings (it escapes U+0000–U+001F only, not DEL, C1 or bidi): the same JSON value,
/// nothing for a terminal to act on. Outside strings serde writes ASCII alone, so every
/// such character but the line breaks between members is inside a string.
pub fn json(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    let mut safe = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => safe.push(c),
            // All of them are in the Basic Multilingual Plane: one \uXXXX each.
            c if acts_on_terminal(c) => write!(safe, "\\u{:04x}", u32::from(c)).expect("writing to a String"),
            c => safe.push(c),
        }
    }
    safe
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOSTILE: &str = "a\u{1b}]0;x\u{7}b\u{1b}[2J\u{9b}31m\u{7f}\r\n\t\u{85}\u{202e}c\u{2066}\u{2069}\u{202a}";

    fn shown(text: &str) -> Vec<char> {
        text.chars().filter(|&c| acts_on_terminal(c)).collect()
    }

    #[test]
    fn controls_and_bidi_overrides_are_replaced() {
        let cleaned = clean(HOSTILE);
        assert_eq!(shown(&cleaned), Vec::<char>::new(), "{cleaned:?}");
        assert!(cleaned.starts_with("a\u{fffd}]0;x\u{fffd}b") && cleaned.contains("\u{fffd}c"), "{cleaned:?}");
        // One for one, so that table columns stay aligned.
        assert_eq!(cleaned.chars().count(), HOSTILE.chars().count());
        assert!(matches!(clean("plain, café, 日本, ⚠"), Cow::Borrowed("plain, café, 日本, ⚠")));
    }

    #[test]
    fn json_stays_the_same_value_with_nothing_raw_for_a_terminal() {
        let value = json!({"name": HOSTILE, "list": [HOSTILE, 1, null], "plain": "café \\ \""});
        // What serde_json alone leaves raw: DEL, C1 and bidi, which is why `json` exists.
        let serde = serde_json::to_string_pretty(&value).unwrap();
        assert_eq!(
            shown(&serde).into_iter().filter(|&c| c != '\n').collect::<String>(),
            "\u{9b}\u{7f}\u{85}\u{202e}\u{2066}\u{2069}\u{202a}".repeat(2)
        );
        let safe = json(&value);
        assert_eq!(shown(&safe).into_iter().filter(|&c| c != '\n').count(), 0, "{safe}");
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), value);
        assert_eq!(json(&json!({"a": [1, "b"]})), serde_json::to_string_pretty(&json!({"a": [1, "b"]})).unwrap());
    }
}
