//! The `compute.datumapis.com/ssh-keys` annotation (newline-separated
//! `username:<authorized_keys line>` entries, as the short form writes it) → the `ssh-keys`
//! instance metadata value, whose documented format is the same `USERNAME:KEY` per line.
//! The guest environment of Google's images (Ubuntu, Container-Optimized OS) creates the
//! users and installs the keys.

use std::collections::BTreeMap;

use datum_api::compute::annotations::SSH_KEYS;
use datum_provider::PlatformError;

/// The `ssh-keys` metadata value, `None` without keys; a malformed entry is refused with
/// its line number.
pub fn metadata(annotations: &BTreeMap<String, String>) -> Result<Option<String>, PlatformError> {
    let Some(text) = annotations.get(SSH_KEYS) else {
        return Ok(None);
    };
    let mut lines = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let valid = line.split_once(':').is_some_and(|(user, key)| {
            let mut chars = user.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')
                })
                && user.len() <= 32
                && key.split_whitespace().count() >= 2
        });
        if !valid {
            return Err(PlatformError {
                reason: "InvalidSpec".to_owned(),
                message: format!(
                    "annotation {SSH_KEYS}, line {}: expected `username:<key type> <key> [comment]` with a lowercase Linux username",
                    n + 1
                ),
            });
        }
        lines.push(line.to_owned());
    }
    Ok((!lines.is_empty()).then(|| lines.join("\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_googles_user_key_form() {
        let annotations: BTreeMap<String, String> = [(
            SSH_KEYS.to_owned(),
            "myuser:ssh-ed25519 AAAAC3Nz me@example.com\n\nops:ssh-rsa AAAAB3 \n".to_owned(),
        )]
        .into();
        assert_eq!(
            metadata(&annotations).expect("valid").as_deref(),
            Some("myuser:ssh-ed25519 AAAAC3Nz me@example.com\nops:ssh-rsa AAAAB3")
        );
        let bad: BTreeMap<String, String> =
            [(SSH_KEYS.to_owned(), "ssh-ed25519 AAAAC3Nz".to_owned())].into();
        assert!(
            metadata(&bad)
                .expect_err("no user")
                .message
                .contains("line 1")
        );
        assert_eq!(metadata(&BTreeMap::new()).expect("none"), None);
    }
}
