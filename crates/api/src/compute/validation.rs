//! CEL rules shared by several compute types.
//!
//! Upstream validates Workloads in an admission webhook that runs on create only and is
//! missing whenever the webhook is down. We put the rules into the CRDs instead
//! (`x-kubernetes-validations`), so the API server enforces them on create **and** update and
//! names the offending field in its error. Rules specific to one type sit on that type; the
//! ones here are used in several places.
//!
//! The API server refuses a CRD whose rules could cost too much to evaluate, estimating the
//! cost from the sizes of the lists and strings a rule touches. Every string a rule matches
//! therefore has a `maxLength` and every list a rule walks a `maxItems`; the limits are
//! generous (see [`limits`]).

use kube::core::{Message, Reason, Rule};

/// Size limits on the lists and strings that CEL rules walk or match.
///
/// They exist so the API server can bound the rules' cost; none is meant to bite in practice.
pub mod limits {
    /// Longest DNS label (RFC 1123), the limit on every name a rule checks.
    pub const NAME_LENGTH: u32 = 63;
    /// Longest port name (IANA service name).
    pub const PORT_NAME_LENGTH: u32 = 15;
    /// Most placements per Workload.
    pub const PLACEMENTS: u32 = 32;
    /// Most city codes or locations per placement.
    pub const LOCATIONS: u32 = 64;
    /// Most containers per sandbox.
    pub const CONTAINERS: u32 = 32;
    /// Most volumes per instance, and volume attachments per container or VM.
    pub const VOLUMES: u32 = 64;
    /// Most ports per container or VM.
    pub const PORTS: u32 = 64;
    /// Most environment variables per container.
    pub const ENV: u32 = 256;
    /// Most network interfaces per instance (newer upstream allows one).
    pub const NETWORK_INTERFACES: u32 = 8;
}

/// `self` is an RFC 1123 DNS label: what Kubernetes allows as a name inside a name (and what
/// upstream's webhook checks). The length limit comes from the field's `maxLength`.
///
/// `what` names the field for the message, e.g. "placement name".
pub fn dns_label(what: &str) -> Rule {
    Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message(Message::Message(format!(
        "{what} must be a DNS label: lowercase letters, digits and '-', starting and ending \
         with a letter or digit"
    )))
}

/// `self` is an IANA service name, as Kubernetes requires of port names: lowercase letters,
/// digits and single '-' between them, at least one letter. The 15-character limit comes from
/// the field's `maxLength`.
pub fn iana_service_name() -> Rule {
    Rule::new("self.matches('^[a-z0-9]([a-z0-9]|-[a-z0-9])*$') && self.matches('[a-z]')").message(
        "port name must be an IANA service name: at most 15 lowercase letters, digits and '-', \
         with at least one letter and no leading, trailing or doubled '-'",
    )
}

/// A rule that fails because something that must be present is missing.
pub fn required(rule: &str, message: &str) -> Rule {
    Rule::new(rule)
        .message(message)
        .reason(Reason::FieldValueRequired)
}

/// A rule that fails because something is set where it must not be.
pub fn forbidden(rule: &str, message: &str) -> Rule {
    Rule::new(rule)
        .message(message)
        .reason(Reason::FieldValueForbidden)
}
