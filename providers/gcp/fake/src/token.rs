//! The OAuth2 token endpoint (`POST /token`, grant type
//! `urn:ietf:params:oauth:grant-type:jwt-bearer`): checks the signed JWT assertion a
//! service-account key produces — shape, audience, scope, expiry, and the RS256 signature
//! when the test registered the key's public half — and issues an opaque access token.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::errors;

/// What the token endpoint checks an assertion against.
pub struct Expectation<'a> {
    /// The token endpoint's own URL, which must be the assertion's `aud`.
    pub audience: &'a str,
    /// DER `RSAPublicKey`s whose signatures are accepted; empty accepts any signature.
    pub trusted_keys: &'a [Vec<u8>],
}

/// Answers one token request: `Ok(claims)` when the grant is valid.
pub fn check_grant(form: &str, expect: &Expectation<'_>) -> Result<Value, (u16, Value)> {
    let mut grant_type = None;
    let mut assertion = None;
    for pair in form.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = value.replace("%3A", ":").replace("%3a", ":");
        match key {
            "grant_type" => grant_type = Some(value),
            "assertion" => assertion = Some(value),
            _ => {}
        }
    }
    let bad = |what: &str| {
        (
            400,
            json!({ "error": "invalid_grant", "error_description": what }),
        )
    };
    if grant_type.as_deref() != Some("urn:ietf:params:oauth:grant-type:jwt-bearer") {
        return Err((400, json!({ "error": "unsupported_grant_type" })));
    }
    let assertion = assertion.ok_or_else(|| bad("missing assertion"))?;
    let mut parts = assertion.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("the assertion is not a JWT"));
    };
    let decode = |part: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| bad("the assertion is not base64url"))
    };
    let header: Value =
        serde_json::from_slice(&decode(header)?).map_err(|_| bad("bad JWT header"))?;
    let claims_json: Value =
        serde_json::from_slice(&decode(claims)?).map_err(|_| bad("bad JWT claims"))?;
    if header["alg"] != "RS256" {
        return Err(bad("the assertion must be signed with RS256"));
    }
    if claims_json["aud"].as_str() != Some(expect.audience) {
        return Err(bad("Invalid JWT: the audience is not this token endpoint"));
    }
    let scope = claims_json["scope"].as_str().unwrap_or_default();
    if !scope.contains("https://www.googleapis.com/auth/compute")
        && !scope.contains("https://www.googleapis.com/auth/cloud-platform")
    {
        return Err(bad("the scope does not grant Compute Engine"));
    }
    let (Some(iat), Some(exp)) = (claims_json["iat"].as_i64(), claims_json["exp"].as_i64()) else {
        return Err(bad("Invalid JWT: iat and exp are required"));
    };
    if exp <= iat || exp - iat > 3600 {
        return Err(bad("Invalid JWT: exp must be within an hour of iat"));
    }
    if !expect.trusted_keys.is_empty() {
        let signed = assertion
            .rsplit_once('.')
            .map(|(s, _)| s)
            .unwrap_or_default();
        let signature = decode(signature)?;
        let ok = expect.trusted_keys.iter().any(|key| {
            ring::signature::UnparsedPublicKey::new(
                &ring::signature::RSA_PKCS1_2048_8192_SHA256,
                key,
            )
            .verify(signed.as_bytes(), &signature)
            .is_ok()
        });
        if !ok {
            return Err((
                400,
                json!({ "error": "invalid_grant", "error_description": "Invalid JWT Signature." }),
            ));
        }
    }
    Ok(claims_json)
}

/// The 401 Compute Engine answers without a valid bearer token.
pub fn unauthenticated() -> (u16, Value) {
    (
        401,
        errors::body(
            401,
            "required",
            "Request is missing required authentication credential. Expected OAuth 2 access token.",
        ),
    )
}
