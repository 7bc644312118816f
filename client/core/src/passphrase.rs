//! How strong a new passphrase must be (L4 of the security review).
//!
//! The passphrase is the only thing between a seized phone and every key
//! and message on it (S9). Argon2id slows each guess down, but a state
//! adversary guesses on many GPUs for as long as it likes, so a passphrase
//! must be hard to guess in the first place. The estimate is zxcvbn's
//! (dictionaries, keyboard patterns, dates, repeats, l33t); we require that
//! it would take at least 10^10 guesses, zxcvbn's top score.

/// The minimum: the base-10 logarithm of the guesses an attacker needs.
pub const MIN_GUESSES_LOG10: f64 = 10.0;

/// Why a passphrase was refused, in words for the user.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "this passphrase is too easy to guess{why}; use four or more random words \
     (for example from a dice word list), or a longer sentence only you would write"
)]
pub struct WeakPassphrase {
    why: String,
}

/// Checks a new passphrase. `context` are words an attacker would try first
/// (the profile name, say).
///
/// # Errors
/// [`WeakPassphrase`], saying why.
pub fn check(passphrase: &[u8], context: &[&str]) -> Result<(), WeakPassphrase> {
    let text = String::from_utf8_lossy(passphrase);
    let estimate = zxcvbn::zxcvbn(&text, context);
    if estimate.guesses_log10() >= MIN_GUESSES_LOG10 {
        return Ok(());
    }
    let why = estimate
        .feedback()
        .and_then(|f| f.warning())
        .map(|w| format!(" ({})", w.to_string().trim_end_matches('.').to_lowercase()))
        .unwrap_or_default();
    Err(WeakPassphrase { why })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weak_passphrases_are_refused_with_a_reason() {
        for weak in [
            "password1",
            "qwertyuiop",
            "anna1990",
            "Summer2024!",
            "aaaaaaaaaaaaaaa",
        ] {
            let e = check(weak.as_bytes(), &[]).unwrap_err();
            assert!(e.to_string().contains("too easy"), "{weak}: {e}");
        }
        let e = check(b"Anna Petrova", &["Anna Petrova"]).unwrap_err();
        assert!(e.to_string().starts_with("this passphrase"), "{e}");
    }

    #[test]
    fn random_words_pass() {
        for strong in [
            "plover gasket violin orchard",
            "tundra-marble-cactus-wheel",
            "my cat ate seven blue lanterns in tbilisi",
        ] {
            assert_eq!(check(strong.as_bytes(), &[]), Ok(()), "{strong}");
        }
    }
}
