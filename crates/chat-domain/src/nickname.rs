use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;

pub const MAX_NICKNAME_CHARS: usize = 32;

/// A validated nickname: 1–32 letters, digits, `_`, `-` or `.`.
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
        if !trimmed
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(NicknameError::InvalidCharacter);
        }
        Ok(Nickname(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key that uniqueness is decided on: NFKC and lower case, so `Alice`, `ALICE` and
    /// full-width `Ａｌｉｃｅ` are one nickname; then the UTS #39 skeleton, so a Cyrillic `а`
    /// can't pass for a Latin `a`.
    pub fn key(&self) -> String {
        uniqueness_key(&self.0)
    }
}

pub(crate) fn uniqueness_key(text: &str) -> String {
    let folded: String = text.nfkc().flat_map(char::to_lowercase).nfkc().collect();
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

    proptest::proptest! {
        #[test]
        fn parsing_keeps_the_rules_and_keys_ignore_case_and_width(input in "\\PC{0,40}") {
            crate::invariants::check_nickname(&input);
        }
    }
}
