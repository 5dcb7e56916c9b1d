//! A test PKI: a CA with server and client certificates (rcgen).

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};

pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

pub fn ca(name: &str) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    (p.self_signed(&key).unwrap(), key)
}

pub fn leaf(dir: &Path, name: &str, sans: &[&str], issuer: &(rcgen::Certificate, KeyPair), expired: bool) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    p.distinguished_name.push(DnType::CommonName, name);
    if expired {
        p.not_before = rcgen::date_time_ymd(2020, 1, 1);
        p.not_after = rcgen::date_time_ymd(2020, 2, 1);
    }
    let cert = p.signed_by(&key, &issuer.0, &issuer.1).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
}

/// A CA with a server and a client certificate, an expired server
/// certificate from the same CA, and a second CA that signed nothing here.
pub fn pki(dir: &Path) -> Pki {
    let ca1 = ca("dpdbg test CA");
    std::fs::write(dir.join("ca.pem"), ca1.0.pem()).unwrap();
    leaf(dir, "server", &["localhost"], &ca1, false);
    leaf(dir, "expired", &["localhost"], &ca1, true);
    leaf(dir, "client", &["dpdbg-client"], &ca1, false);
    let other = ca("another CA");
    std::fs::write(dir.join("other-ca.pem"), other.0.pem()).unwrap();
    std::fs::write(dir.join("not-pem.pem"), "hello").unwrap();
    Pki { dir: dir.to_path_buf() }
}
