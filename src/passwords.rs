//! Passwords that protect a nickname, hashed with Argon2id. Hashing is slow on purpose (tens
//! of milliseconds), so callers run it off the async workers.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

/// Shorter passwords are refused: they are guessed by anyone with the hash.
pub const MIN_CHARS: usize = 8;
/// Longer ones are refused too: Argon2 takes them, but nobody types them.
pub const MAX_CHARS: usize = 256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error("A password needs at least {MIN_CHARS} characters.")]
    TooShort,
    #[error("A password can have at most {MAX_CHARS} characters.")]
    TooLong,
    #[error("The two passwords are not the same.")]
    Mismatch,
}

/// Checks a new password and its confirmation.
pub fn check_new(password: &str, confirmation: &str) -> Result<(), PasswordError> {
    let chars = password.chars().count();
    if chars < MIN_CHARS {
        return Err(PasswordError::TooShort);
    }
    if chars > MAX_CHARS {
        return Err(PasswordError::TooLong);
    }
    if password != confirmation {
        return Err(PasswordError::Mismatch);
    }
    Ok(())
}

/// The PHC string of `password` with a fresh salt (Argon2id, the crate's default cost).
pub fn hash(password: &str) -> String {
    let salt =
        SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("16 bytes make a valid salt");
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("Argon2 hashes any password with its default parameters")
        .to_string()
}

/// Whether `password` is the one `stored` was made from. A hash that doesn't parse matches
/// nothing.
pub fn verify(password: &str, stored: &str) -> bool {
    if password.chars().count() > MAX_CHARS {
        return false;
    }
    PasswordHash::new(stored).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only_and_is_salted() {
        let stored = hash("correct horse");
        assert!(stored.starts_with("$argon2id$"));
        assert!(verify("correct horse", &stored));
        assert!(!verify("correct hors", &stored));
        assert!(!verify("correct horse", "not a hash"));
        assert_ne!(stored, hash("correct horse"), "a fresh salt each time");
    }

    #[test]
    fn new_passwords_are_long_enough_and_confirmed() {
        assert_eq!(check_new("short", "short"), Err(PasswordError::TooShort));
        assert_eq!(
            check_new("long enough", "long enougH"),
            Err(PasswordError::Mismatch)
        );
        assert_eq!(check_new("long enough", "long enough"), Ok(()));
        let huge = "x".repeat(MAX_CHARS + 1);
        assert_eq!(check_new(&huge, &huge), Err(PasswordError::TooLong));
    }
}
