//! A provider's name, checked: a DNS label starting with a letter, so that it can be the key
//! of `Location.spec.provider`, the first label of `<name>.provider.datum.net`, part of a
//! crate name, and (in CamelCase) part of Rust type names.
//!
//! ```ignore
//! let name = ProviderName::parse("my-cloud")?;
//! assert_eq!(name.camel_case(), "MyCloud");
//! ```

use std::fmt;

/// A valid provider name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderName(String);

/// Longest DNS label.
const MAX_LEN: usize = 63;

impl ProviderName {
    /// Checks `name`; the error is one sentence saying what a valid name looks like.
    pub fn parse(name: &str) -> Result<Self, String> {
        let valid = !name.is_empty()
            && name.len() <= MAX_LEN
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if valid {
            Ok(Self(name.to_owned()))
        } else {
            Err(format!(
                "{name:?} is not a valid provider name: use a DNS label of at most {MAX_LEN} \
                 lowercase letters, digits and '-', starting with a letter and ending with a \
                 letter or digit (e.g. acme or my-cloud)"
            ))
        }
    }

    /// The name as given: `my-cloud`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For Rust identifiers: `my_cloud`.
    pub fn snake_case(&self) -> String {
        self.0.replace('-', "_")
    }

    /// For environment variables: `MY_CLOUD`.
    pub fn upper_snake_case(&self) -> String {
        self.snake_case().to_ascii_uppercase()
    }

    /// For Rust type names: `MyCloud`.
    pub fn camel_case(&self) -> String {
        self.0
            .split('-')
            .flat_map(|part| {
                let mut chars = part.chars();
                chars
                    .next()
                    .map(|first| first.to_ascii_uppercase())
                    .into_iter()
                    .chain(chars)
            })
            .collect()
    }
}

impl fmt::Display for ProviderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels_starting_with_a_letter() {
        for name in ["a", "acme", "my-cloud", "k8s", "a1-b2", &"x".repeat(63)] {
            assert!(ProviderName::parse(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_anything_else() {
        for name in [
            "",
            "Acme",
            "1cloud",
            "-a",
            "a-",
            "my_cloud",
            "my.cloud",
            "a b",
            "é",
            &"x".repeat(64),
        ] {
            let error = ProviderName::parse(name).expect_err(name);
            assert!(error.contains("DNS label"), "{error}");
        }
    }

    #[test]
    fn case_forms() {
        let name = ProviderName::parse("my-cloud-2").expect("valid");
        assert_eq!(name.snake_case(), "my_cloud_2");
        assert_eq!(name.upper_snake_case(), "MY_CLOUD_2");
        assert_eq!(name.camel_case(), "MyCloud2");
    }
}
