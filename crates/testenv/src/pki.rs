//! Certificates and keys for one control plane: a CA, the API server's serving
//! certificate, client certificates for the admin and the controller manager, and the
//! service-account signing key. Written as PEM files under `<data>/pki`.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::Error;

/// Paths of the generated files.
#[derive(Clone, Debug)]
pub struct Pki {
    pub ca_cert: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub admin_cert: PathBuf,
    pub admin_key: PathBuf,
    pub controller_manager_cert: PathBuf,
    pub controller_manager_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_pub: PathBuf,
}

impl Pki {
    fn paths(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            admin_cert: dir.join("admin.crt"),
            admin_key: dir.join("admin.key"),
            controller_manager_cert: dir.join("controller-manager.crt"),
            controller_manager_key: dir.join("controller-manager.key"),
            service_account_key: dir.join("sa.key"),
            service_account_pub: dir.join("sa.pub"),
        }
    }

    /// Reuses the files under `dir` when they are all there (a restarted `datum up` keeps
    /// its kubeconfig valid), otherwise generates a new set.
    pub fn load_or_generate(dir: &Path) -> Result<Self, Error> {
        let pki = Self::paths(dir);
        if pki.all().iter().all(|p| p.exists()) {
            return Ok(pki);
        }
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.into(),
            source,
        })?;

        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "datum-local-ca");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca, ca_key);
        write_private(&pki.ca_cert, &ca_cert.pem())?;

        let serving_key = KeyPair::generate()?;
        let mut serving = CertificateParams::new(vec![
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
            "kubernetes.default.svc.cluster.local".to_owned(),
        ])?;
        serving
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        serving
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
        serving
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        write_private(
            &pki.serving_cert,
            &serving.signed_by(&serving_key, &issuer)?.pem(),
        )?;
        write_private(&pki.serving_key, &serving_key.serialize_pem())?;

        client_cert(
            &issuer,
            "datum-admin",
            "system:masters",
            &pki.admin_cert,
            &pki.admin_key,
        )?;
        // The controller manager runs every controller under its own identity
        // (--use-service-account-credentials=false), so it needs more than the bootstrap
        // `system:kube-controller-manager` role: the garbage collector deletes anything.
        client_cert(
            &issuer,
            "system:kube-controller-manager",
            "system:masters",
            &pki.controller_manager_cert,
            &pki.controller_manager_key,
        )?;

        let sa_key = KeyPair::generate()?;
        write_private(&pki.service_account_key, &sa_key.serialize_pem())?;
        write_private(&pki.service_account_pub, &sa_key.public_key_pem())?;
        Ok(pki)
    }

    fn all(&self) -> [&PathBuf; 9] {
        [
            &self.ca_cert,
            &self.serving_cert,
            &self.serving_key,
            &self.admin_cert,
            &self.admin_key,
            &self.controller_manager_cert,
            &self.controller_manager_key,
            &self.service_account_key,
            &self.service_account_pub,
        ]
    }
}

fn client_cert(
    issuer: &Issuer<'_, KeyPair>,
    user: &str,
    group: &str,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, user);
    params
        .distinguished_name
        .push(DnType::OrganizationName, group);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    write_private(cert_path, &params.signed_by(&key, issuer)?.pem())?;
    write_private(key_path, &key.serialize_pem())
}

/// Writes owner-only (0600): these are private keys and the certificates beside them.
pub(crate) fn write_private(path: &Path, contents: &str) -> Result<(), Error> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(contents.as_bytes()))
        .map_err(|source| Error::Write {
            path: path.into(),
            source,
        })
}
