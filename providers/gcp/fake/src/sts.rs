//! Workload Identity Federation in the fake: the Security Token Service's token exchange
//! (`POST /v1/token`, RFC 8693, as `sts.googleapis.com` serves it) and IAM Credentials'
//! `POST /v1/projects/-/serviceAccounts/<email>:generateAccessToken`.
//!
//! A test registers which subject tokens a workload identity pool provider (its
//! `audience`) accepts ([`Federation::trust`]) and which service accounts federated
//! identities may impersonate ([`Federation::allow_impersonation`]). Refusals are Google's:
//! STS answers OAuth errors (`unsupported_grant_type`, `invalid_request`, `invalid_target`
//! for an unknown audience, `invalid_grant` for a subject token the provider does not
//! accept); IAM Credentials answers `google.rpc.Status` errors (`401 UNAUTHENTICATED`
//! without a valid token, `403 PERMISSION_DENIED` when the caller may not impersonate).

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};

use crate::errors;

/// What the federation endpoints accept.
#[derive(Debug, Default)]
pub struct Federation {
    /// Subject token → the audience (pool provider) that accepts it.
    subject_tokens: HashMap<String, String>,
    /// Service accounts a federated identity may impersonate.
    impersonable: HashSet<String>,
    /// Federated access tokens STS issued.
    pub(crate) federated: HashSet<String>,
}

impl Federation {
    /// The pool provider `audience` accepts `subject_token`.
    pub fn trust(&mut self, subject_token: &str, audience: &str) {
        self.subject_tokens
            .insert(subject_token.to_owned(), audience.to_owned());
    }

    /// Federated identities may impersonate `email` (`roles/iam.workloadIdentityUser`).
    pub fn allow_impersonation(&mut self, email: &str) {
        self.impersonable.insert(email.to_owned());
    }

    /// Checks a token exchange request (the form body); the caller mints the token.
    pub(crate) fn exchange(&self, form: &str) -> Result<(), (u16, Value)> {
        let fields: HashMap<String, String> = form
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (form_decode(k), form_decode(v))
            })
            .collect();
        let oauth = |error: &str, description: &str| {
            (
                400,
                json!({ "error": error, "error_description": description }),
            )
        };
        if fields.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:token-exchange")
        {
            return Err(oauth(
                "unsupported_grant_type",
                "The grant_type must be urn:ietf:params:oauth:grant-type:token-exchange.",
            ));
        }
        for required in [
            "audience",
            "subject_token",
            "subject_token_type",
            "requested_token_type",
        ] {
            if fields.get(required).is_none_or(String::is_empty) {
                return Err(oauth(
                    "invalid_request",
                    &format!("The {required} parameter is required."),
                ));
            }
        }
        if fields["requested_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
            return Err(oauth(
                "invalid_request",
                "Invalid requested_token_type: only access tokens are issued.",
            ));
        }
        if !matches!(
            fields["subject_token_type"].as_str(),
            "urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token"
        ) {
            return Err(oauth("invalid_request", "Invalid subject_token_type."));
        }
        let audience = &fields["audience"];
        if !self.subject_tokens.values().any(|a| a == audience) {
            return Err(oauth(
                "invalid_target",
                "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
            ));
        }
        if self.subject_tokens.get(&fields["subject_token"]) != Some(audience) {
            return Err(oauth(
                "invalid_grant",
                "The subject token is not valid for this workload identity pool provider.",
            ));
        }
        Ok(())
    }

    /// Whether `generateAccessToken` for `email` is allowed to a caller holding `token`;
    /// the error reply otherwise.
    pub(crate) fn may_impersonate(
        &self,
        token: &str,
        known_token: bool,
        email: &str,
        body: Option<&Value>,
    ) -> Result<(), (u16, Value)> {
        if !known_token {
            return Err(errors::rpc(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
            ));
        }
        let scopes = body
            .and_then(|b| b["scope"].as_array())
            .is_some_and(|s| !s.is_empty());
        if !scopes {
            return Err(errors::rpc(400, "Scope required."));
        }
        if !self.federated.contains(token) || !self.impersonable.contains(email) {
            return Err(errors::rpc(
                403,
                "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).",
            ));
        }
        Ok(())
    }
}

/// `application/x-www-form-urlencoded` decoding.
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_trusted_subject_token_for_a_known_audience_is_exchanged() {
        let mut f = Federation::default();
        let audience =
            "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k";
        f.trust("jwt-1", audience);
        let form = |aud: &str, token: &str| {
            format!(
                "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange&audience={}&subject_token={token}&subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt&requested_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Aaccess_token",
                aud.replace('/', "%2F")
            )
        };
        assert!(f.exchange(&form(audience, "jwt-1")).is_ok());
        let wrong = f.exchange(&form(audience, "jwt-2")).expect_err("refused");
        assert_eq!(wrong.1["error"], "invalid_grant");
        let unknown = f
            .exchange(&form("//iam.googleapis.com/x", "jwt-1"))
            .expect_err("refused");
        assert_eq!(unknown.1["error"], "invalid_target");
        assert_eq!(form_decode("a%2Fb+c"), "a/b c");
        assert_eq!(form_decode("100%"), "100%");
    }
}
