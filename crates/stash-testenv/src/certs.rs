//! Certificates for the control plane, generated per run (ECDSA P-256, like envtest's `TinyCA`).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("failed to generate certificate {what}")]
    Generate {
        what: String,
        #[source]
        source: rcgen::Error,
    },
    #[error("failed to write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A certificate authority that signs leaf certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and its PEM (PKCS#8) key.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> CertError + '_ {
    move |source| CertError::Generate {
        what: what.to_owned(),
        source,
    }
}

fn name(cn: &str, orgs: &[&str]) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    dn
}

impl Ca {
    pub fn new(cn: &str) -> Result<Self, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err(cn))?;
        params.distinguished_name = name(cn, &["stash-testenv"]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(gen_err(cn))?;
        let issuer = CertifiedIssuer::self_signed(params, key).map_err(gen_err(cn))?;
        Ok(Self { issuer })
    }

    #[must_use]
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// A serving certificate for `127.0.0.1` and `localhost` (plus `extra_dns`).
    pub fn serving(&self, cn: &str, extra_dns: &[&str]) -> Result<Pair, CertError> {
        let mut sans = vec![SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into())];
        for dns in std::iter::once(&"localhost").chain(extra_dns) {
            sans.push(SanType::DnsName((*dns).try_into().map_err(gen_err(cn))?));
        }
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err(cn))?;
        params.subject_alt_names = sans;
        params.distinguished_name = name(cn, &[]);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(cn, &params)
    }

    /// A client certificate: CN is the user name, O the groups.
    pub fn client(&self, user: &str, groups: &[&str]) -> Result<Pair, CertError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err(user))?;
        params.distinguished_name = name(user, groups);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(user, &params)
    }

    fn sign(&self, what: &str, params: &CertificateParams) -> Result<Pair, CertError> {
        let key = KeyPair::generate().map_err(gen_err(what))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(gen_err(what))?;
        Ok(Pair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// The CA's own key pair (used as the service-account token signer).
    #[must_use]
    pub fn as_pair(&self) -> Pair {
        Pair {
            cert_pem: self.cert_pem(),
            key_pem: self.issuer.key().serialize_pem(),
        }
    }
}

/// Writes `contents` to `dir/file` with mode 0600 and returns the path.
pub fn write(dir: &Path, file: &str, contents: &str) -> Result<PathBuf, CertError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(file);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|source| CertError::Write {
            path: path.clone(),
            source,
        })?;
    f.write_all(contents.as_bytes())
        .map_err(|source| CertError::Write {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}
