//! Opening an encrypted, bound connection to a domain controller.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::error::{AdError, BindFailure};

/// Where and as whom to connect. `Debug` never shows the password.
#[derive(Clone)]
pub struct LdapTarget {
    pub url: String,
    pub bind_dn: String,
    pub bind_password: String,
    /// PEM file of the CA that signed the DC's certificate; `None` uses the system roots.
    pub ca_file: Option<String>,
    /// Skip certificate verification (logged as a warning by the caller).
    pub insecure_skip_verify: bool,
}

impl fmt::Debug for LdapTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LdapTarget")
            .field("url", &self.url)
            .field("bind_dn", &self.bind_dn)
            .field("bind_password", &"<redacted>")
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .finish()
    }
}

fn tls_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, AdError> {
    let err = |reason: String| AdError::CaFile { path: ca_file.to_string(), reason };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| err(e.to_string()))? {
        roots.add(cert.map_err(|e| err(e.to_string()))?).map_err(|e| err(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(Arc::new(rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth()))
}

/// Connects over TLS (LDAPS, or StartTLS for `ldap://`) and binds.
pub async fn connect(t: &LdapTarget) -> Result<Ldap, AdError> {
    let mut ldap = open(t).await?;
    bind(&mut ldap, &t.bind_dn, &t.bind_password).await?;
    Ok(ldap)
}

/// Opens a TLS connection without binding (for delegated password checks, which bind as
/// the user on a pooled connection).
pub async fn open(t: &LdapTarget) -> Result<Ldap, AdError> {
    let starttls = if t.url.starts_with("ldaps://") {
        false
    } else if t.url.starts_with("ldap://") {
        true
    } else {
        return Err(AdError::BadUrl(t.url.clone()));
    };
    let mut settings = LdapConnSettings::new().set_conn_timeout(Duration::from_secs(10)).set_starttls(starttls);
    if t.insecure_skip_verify {
        settings = settings.set_no_tls_verify(true);
    } else if let Some(ca) = &t.ca_file {
        settings = settings.set_config(tls_config(ca)?);
    }
    let (conn, ldap) = LdapConnAsync::with_settings(settings, &t.url)
        .await
        .map_err(|source| AdError::Connect { url: t.url.clone(), source: Box::new(source) })?;
    ldap3::drive!(conn);
    Ok(ldap)
}

/// A simple bind on an open connection; refuses empty passwords itself (some servers treat
/// them as an anonymous bind that "succeeds").
pub async fn bind(ldap: &mut Ldap, who: &str, password: &str) -> Result<(), AdError> {
    if password.is_empty() {
        return Err(AdError::Bind {
            who: who.to_string(),
            failure: BindFailure::InvalidCredentials,
            diagnostic: "empty password".into(),
        });
    }
    let res = ldap.simple_bind(who, password).await?;
    if res.rc != 0 {
        return Err(AdError::Bind {
            who: who.to_string(),
            failure: BindFailure::from_diagnostic(&res.text),
            diagnostic: res.text,
        });
    }
    Ok(())
}
