//! A private CA for the tests: tetherd in the tests serves HTTPS with a certificate it signs,
//! and every client of the test kit trusts it, as an admin's agents trust their own CA.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// A CA and one server certificate for `127.0.0.1`, `::1` and `localhost`, as PEM files.
pub struct Pki {
    pub ca_pem: String,
    /// The CA certificate (for `Server.CaFile`, `--ca-file`).
    pub ca_file: PathBuf,
    /// The server's certificate chain and key (for `--tls-cert`, `--tls-key`).
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Where the files are (see [`PKI_DIR_VAR`]).
    pub dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
}

/// Names the directory of a [`Pki`] made by another process of the same run (the benchmark
/// runs tetherd and the agents in processes of their own): [`pki`] then uses its files.
pub const PKI_DIR_VAR: &str = "TETHER_TEST_PKI_DIR";

impl Pki {
    /// A new CA named `name` and a server certificate it signs, in a temporary directory.
    pub fn generate(name: &str) -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        ca.distinguished_name.push(DnType::CommonName, name);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().expect("CA key")).expect("CA certificate");
        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".into(), "::1".into(), "localhost".into()]).expect("server params");
        leaf.distinguished_name.push(DnType::CommonName, "tetherd (tests)");
        let key = KeyPair::generate().expect("server key");
        let cert = leaf.signed_by(&key, &ca).expect("server certificate");
        let write = |name: &str, text: &str| -> PathBuf {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write PEM");
            p
        };
        Pki {
            ca_pem: ca.pem(),
            ca_file: write("ca.pem", &ca.pem()),
            cert_file: write("tetherd.pem", &cert.pem()),
            key_file: write("tetherd.key", &key.serialize_pem()),
            dir: dir.path().to_path_buf(),
            _temp: Some(dir),
        }
    }

    /// The files [`Pki::generate`] wrote in `dir` (by another process).
    pub fn load(dir: &Path) -> Pki {
        let ca_file = dir.join("ca.pem");
        Pki {
            ca_pem: std::fs::read_to_string(&ca_file).expect("the shared test CA"),
            ca_file,
            cert_file: dir.join("tetherd.pem"),
            key_file: dir.join("tetherd.key"),
            dir: dir.to_path_buf(),
            _temp: None,
        }
    }

    /// A client that trusts this CA (and the system's roots).
    pub fn client(&self) -> reqwest::Client {
        self.client_builder().build().expect("HTTPS client")
    }

    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        let ca = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA PEM");
        reqwest::Client::builder().add_root_certificate(ca)
    }
}

/// The CA of this test process, made on first use (or the one named by [`PKI_DIR_VAR`]).
pub fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| match std::env::var_os(PKI_DIR_VAR) {
        Some(dir) => Pki::load(Path::new(&dir)),
        None => Pki::generate("Tether test CA"),
    })
}

/// The CA file of [`pki`] (what the test kit's agent configurations put in `Server.CaFile`).
pub fn ca_file() -> &'static Path {
    &pki().ca_file
}

/// A client of the test kit's servers (trusts [`pki`]'s CA).
pub fn client() -> reqwest::Client {
    pki().client()
}
