use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;

pub const MAX_NICKNAME_CHARS: usize = 32;

/// A validated nickname: 1–32 letters, digits, `_`, `-` or `.`, none of them invisible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nickname(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NicknameError {
    #[error("Please choose a nickname.")]
    Empty,
    #[error("A nickname can be at most {MAX_NICKNAME_CHARS} characters long.")]
    TooLong,
    #[error("A nickname may only use letters, digits, “_”, “-” and “.” (no spaces).")]
    InvalidCharacter,
}

impl Nickname {
    pub fn parse(input: &str) -> Result<Self, NicknameError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(NicknameError::Empty);
        }
        if trimmed.chars().count() > MAX_NICKNAME_CHARS {
            return Err(NicknameError::TooLong);
        }
        if !trimmed.chars().all(is_nickname_char) {
            return Err(NicknameError::InvalidCharacter);
        }
        let nickname = Nickname(trimmed.to_owned());
        // NFKC turns a few letters into other characters (`Ŀ` into `L·`, `ͺ` into a space and a
        // mark); a mention key holding them would break the space-separated lists pages read.
        if !nickname.mention_key().chars().all(is_mention_key_char) {
            return Err(NicknameError::InvalidCharacter);
        }
        Ok(nickname)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How `@mentions` name this person: NFKC and lower case, so `@Alice` reaches `alice`.
    /// (Look-alikes can't hold a nickname of their own, so no skeleton is needed here.)
    pub fn mention_key(&self) -> String {
        self.0.nfkc().flat_map(char::to_lowercase).collect()
    }

    /// The key that uniqueness is decided on: NFKC and case folding, so `Alice`, `ALICE` and
    /// full-width `Ａｌｉｃｅ` are one nickname; then the UTS #39 skeleton, so a Cyrillic `а`
    /// can't pass for a Latin `a`.
    pub fn key(&self) -> String {
        uniqueness_key(&self.0)
    }
}

fn is_nickname_char(c: char) -> bool {
    (c.is_alphanumeric() && !is_hangul_filler(c)) || matches!(c, '_' | '-' | '.')
}

/// What a mention key may hold: nickname characters, and the combining marks that lower
/// case adds (`İ` is `i` and a dot above).
pub(crate) fn is_mention_key_char(c: char) -> bool {
    is_nickname_char(c) || unicode_normalization::char::is_combining_mark(c)
}

/// The only letters that show as nothing (UTS #39 skeletons drop them): a name of them would
/// be blank.
fn is_hangul_filler(c: char) -> bool {
    matches!(c, '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}')
}

/// Folds and takes the skeleton until nothing changes: a skeleton can hold capitals (`0` is
/// `O`), and `E0` must meet `eo`. A few rounds always settle; the bound only guards the loop.
pub(crate) fn uniqueness_key(text: &str) -> String {
    const MAX_ROUNDS: usize = 8;
    let mut key = skeleton_of_folded(text);
    for _ in 0..MAX_ROUNDS {
        let next = skeleton_of_folded(&key);
        if next == key {
            break;
        }
        key = next;
    }
    key
}

/// Lower case of upper case is Unicode's full case folding but for a handful of letters
/// (`ß` and `SS` meet, as do `ς` and `Σ`), which `to_lowercase` alone misses.
fn skeleton_of_folded(text: &str) -> String {
    let folded: String = text
        .nfkc()
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .nfkc()
        .collect();
    skeleton(&folded).collect()
}

impl fmt::Display for Nickname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_and_punctuation_from_any_script() {
        for ok in [
            "alice",
            "Bob_2",
            "ünïcødé",
            "名前",
            "a.b-c",
            &"x".repeat(32),
        ] {
            assert!(Nickname::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_letters_that_nfkc_turns_into_punctuation_or_space() {
        for odd in ["Ŀx", "77ttͺ", "⑴"] {
            assert_eq!(
                Nickname::parse(odd),
                Err(NicknameError::InvalidCharacter),
                "{odd}"
            );
        }
        assert!(
            Nickname::parse("İlker").is_ok(),
            "lower case adds a mark, which is fine"
        );
        assert!(
            Nickname::parse("Ａｌｉｃｅ").is_ok(),
            "full width is still letters"
        );
    }

    #[test]
    fn trims_before_checking() {
        assert_eq!(Nickname::parse("  alice \n").unwrap().as_str(), "alice");
    }

    #[test]
    fn rejects_blank_long_and_spaced_names() {
        assert_eq!(Nickname::parse("   "), Err(NicknameError::Empty));
        assert_eq!(
            Nickname::parse(&"x".repeat(33)),
            Err(NicknameError::TooLong)
        );
        assert_eq!(
            Nickname::parse("al ice"),
            Err(NicknameError::InvalidCharacter)
        );
        assert_eq!(
            Nickname::parse("<script>"),
            Err(NicknameError::InvalidCharacter)
        );
        assert_eq!(
            Nickname::parse("\u{115F}"),
            Err(NicknameError::InvalidCharacter),
            "a Hangul filler is a letter that shows as nothing"
        );
    }

    #[test]
    fn key_ignores_case_and_width() {
        let a = Nickname::parse("Alice").unwrap().key();
        assert_eq!(a, Nickname::parse("ALICE").unwrap().key());
        assert_eq!(a, Nickname::parse("Ａｌｉｃｅ").unwrap().key());
        assert_ne!(a, Nickname::parse("Alicia").unwrap().key());
    }

    #[test]
    fn key_catches_confusable_look_alikes() {
        let latin = Nickname::parse("paypal").unwrap().key();
        // Cyrillic а and р.
        assert_eq!(
            latin,
            Nickname::parse("\u{0440}\u{0430}yp\u{0430}l")
                .unwrap()
                .key()
        );
        assert_ne!(latin, Nickname::parse("paypal2").unwrap().key());
    }

    #[test]
    fn key_folds_the_capitals_a_skeleton_gives() {
        // The skeleton of a digit zero is a capital O.
        let key = Nickname::parse("eo").unwrap().key();
        assert_eq!(key, Nickname::parse("E0").unwrap().key());
        assert_eq!(key, Nickname::parse("EO").unwrap().key());
    }

    #[test]
    fn key_folds_case_fully() {
        let key = |name| Nickname::parse(name).unwrap().key();
        assert_eq!(key("straße"), key("STRASSE"));
        assert_eq!(key("σας"), key("ΣΑΣ"));
    }

    proptest::proptest! {
        #[test]
        fn parsing_keeps_the_rules_and_keys_ignore_case_and_width(input in "\\PC{0,40}") {
            crate::invariants::check_nickname(&input);
        }
    }
}
