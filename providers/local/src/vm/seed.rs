//! The cloud-init NoCloud seed of a VM: an ISO 9660 image with volume id `cidata` holding
//! `meta-data` (instance id = the external name, hostname), `user-data` (the users and SSH
//! keys of the `compute.datumapis.com/ssh-keys` annotation) and `network-config` (version 2,
//! the planned static addresses, each interface matched by its MAC address). Made with
//! `cloud-localds`.
//!
//! user-data may hold secrets: it is written with mode 0600 and never logged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{Error, io, qemu};
use crate::instance::PlannedInterface;
use crate::names;

/// `meta-data`: the instance id and hostname.
pub fn meta_data(external_name: &str, hostname: &str) -> String {
    format!("instance-id: {external_name}\nlocal-hostname: {hostname}\n")
}

/// A hostname from an object name: lowercase letters, digits and `-`, at most 63 bytes.
pub fn hostname(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(63)
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "instance".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `user-data`: a cloud-config with one user per name in the `ssh-keys` annotation
/// (`username:<authorized_keys line>` per line; lines without a name are skipped).
pub fn user_data(ssh_keys: Option<&str>) -> String {
    let mut users: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in ssh_keys.unwrap_or_default().lines() {
        if let Some((user, key)) = line.trim().split_once(':')
            && !user.trim().is_empty()
            && !key.trim().is_empty()
        {
            users.entry(user.trim()).or_default().push(key.trim());
        }
    }
    let mut out = "#cloud-config\n".to_owned();
    if !users.is_empty() {
        out.push_str("users:\n  - default\n");
        for (user, keys) in users {
            // JSON strings are YAML strings: quoting stays correct whatever the input holds.
            let _ = writeln!(out, "  - name: {}", json_string(user));
            out.push_str("    ssh_authorized_keys:\n");
            for key in keys {
                let _ = writeln!(out, "      - {}", json_string(key));
            }
        }
    }
    out
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// `network-config` (version 2): per interface its MAC, addresses and, on the first, the
/// default routes via the gateways.
pub fn network_config(external_name: &str, planned: &[PlannedInterface]) -> String {
    let mut out = "version: 2\nethernets:\n".to_owned();
    for p in planned {
        let name = names::instance_interface(p.index);
        let _ = write!(
            out,
            "  {name}:\n    match:\n      macaddress: \"{}\"\n    set-name: {name}\n",
            names::mac(external_name, p.index)
        );
        if p.addresses.is_empty() {
            continue;
        }
        out.push_str("    addresses:\n");
        for a in &p.addresses {
            let _ = writeln!(out, "      - {}/{}", a.address, a.prefix);
        }
        if p.index == 0 {
            out.push_str("    routes:\n");
            for a in &p.addresses {
                let to = match a.gateway {
                    IpAddr::V4(_) => "0.0.0.0/0",
                    IpAddr::V6(_) => "\"::/0\"",
                };
                let _ = write!(out, "      - to: {to}\n        via: {}\n", a.gateway);
            }
        }
    }
    out
}

/// Writes the three files into `dir` and makes the ISO at `iso` from them.
pub async fn write(
    dir: &Path,
    iso: &Path,
    meta_data: &str,
    user_data: &str,
    network_config: &str,
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let files = [
        ("meta-data", meta_data),
        ("user-data", user_data),
        ("network-config", network_config),
    ];
    for (name, body) in files {
        let path = dir.join(name);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(io(&path))?;
        std::io::Write::write_all(&mut file, body.as_bytes()).map_err(io(&path))?;
    }
    let tmp = iso.with_extension("iso.tmp");
    qemu::run(
        "cloud-localds",
        &[
            "-N".as_ref(),
            dir.join("network-config").as_os_str(),
            tmp.as_os_str(),
            dir.join("user-data").as_os_str(),
            dir.join("meta-data").as_os_str(),
        ],
    )
    .await?;
    std::fs::rename(&tmp, iso).map_err(io(iso))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_groups_keys_by_user_and_quotes_them() {
        let data = user_data(Some(
            "alice:ssh-ed25519 AAAA a@x\nbob:ssh-rsa BBBB\nalice:ssh-ed25519 CCCC\nnonsense\n",
        ));
        assert!(data.starts_with("#cloud-config\n"));
        assert!(data.contains("- name: \"alice\"\n    ssh_authorized_keys:\n      - \"ssh-ed25519 AAAA a@x\"\n      - \"ssh-ed25519 CCCC\""));
        assert!(data.contains("- name: \"bob\""));
        assert!(!data.contains("nonsense"));
        assert_eq!(user_data(None), "#cloud-config\n");
    }

    #[test]
    fn hostnames_are_dns_labels() {
        assert_eq!(hostname("Web_0"), "web-0");
        assert_eq!(hostname("--"), "instance");
        assert_eq!(hostname(&"a".repeat(100)).len(), 63);
    }
}
