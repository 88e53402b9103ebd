//! CEL rules shared by several networking types, so a name or a CIDR is checked the same way,
//! with the same message, wherever it appears.
//!
//! The API server prefixes every failure with the path of the field that failed, and each
//! message names the field again, so it reads on its own in a log line:
//! `spec.network.name: Invalid value: "string": name must be a lowercase RFC 1123 subdomain…`.
//! Rules that match or parse strings only go on fields with a `maxLength`, which keeps the
//! CRD under the API server's CEL cost budget.

use kube::core::{Message, Rule};

/// An object name: a lowercase RFC 1123 subdomain, as Kubernetes requires of most names.
pub(crate) fn subdomain(field: &str) -> Rule {
    Rule::new(r"self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')")
        .message(Message::Message(format!(
            "{field} must be a lowercase RFC 1123 subdomain: lowercase letters, digits, '-' and \
             '.', starting and ending with a letter or digit (for example 'my-network')"
        )))
}

/// A namespace name: a lowercase RFC 1123 label.
pub(crate) fn dns_label(field: &str) -> Rule {
    Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message(Message::Message(format!(
        "{field} must be a lowercase RFC 1123 label: lowercase letters, digits and '-', \
             starting and ending with a letter or digit (for example 'default')"
    )))
}

/// A CIDR of either family, such as `10.0.0.0/8` or `2001:db8::/32`.
pub(crate) fn cidr(field: &str) -> Rule {
    Rule::new("isCIDR(self)").message(Message::Message(format!(
        "{field} must be a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
    )))
}

/// An IPv4 CIDR with no host bits set, such as `10.128.0.0/9`.
pub(crate) fn ipv4_range(field: &str) -> Rule {
    Rule::new("isCIDR(self) && cidr(self).ip().family() == 4 && cidr(self) == cidr(self).masked()")
        .message(Message::Message(format!(
            "{field} must be an IPv4 network in CIDR form with no host bits set, such as \
             10.128.0.0/9"
        )))
}

/// An IPv6 CIDR with no host bits set, such as `fd20::/20`.
pub(crate) fn ipv6_range(field: &str) -> Rule {
    Rule::new("isCIDR(self) && cidr(self).ip().family() == 6 && cidr(self) == cidr(self).masked()")
        .message(Message::Message(format!(
            "{field} must be an IPv6 network in CIDR form with no host bits set, such as \
             fd20::/20"
        )))
}

/// A list in which no value appears twice. Only for short lists: the check is quadratic.
/// (No `FieldValueDuplicate` reason: the API server would replace the message with a bare
/// "Duplicate value".)
pub(crate) fn no_duplicates(field: &str, what: &str) -> Rule {
    Rule::new("self.all(x, self.exists_one(y, y == x))").message(Message::Message(format!(
        "{field} must not list the same {what} twice"
    )))
}

/// A field that may not change once set.
pub(crate) fn immutable(field: &str) -> Rule {
    Rule::new("self == oldSelf").message(Message::Message(format!("{field} is immutable")))
}
