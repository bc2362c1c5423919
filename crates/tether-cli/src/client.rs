//! The REST client: authentication, error bodies turned into readable errors, paging.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Method;
use serde_json::Value;

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

fn is_id(s: &str) -> bool {
    s.len() == 24 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Client {
    /// A client of tetherd at `url` (https://, or http:// to a loopback host), trusting the
    /// system's roots and `ca_file`.
    pub fn new(url: &str, key: Option<&str>, ca_file: Option<&Path>) -> Result<Self> {
        let tls = tether_core::transport::check_server_url(url)
            .map_err(|reason| anyhow!("--url / TETHER_URL {url}: {reason}"))?;
        let key =
            key.filter(|k| !k.is_empty()).ok_or_else(|| anyhow!("no API key: set TETHER_API_KEY or pass --api-key"))?;
        let mut http = reqwest::Client::builder().min_tls_version(reqwest::tls::Version::TLS_1_2).https_only(tls);
        if let Some(path) = ca_file {
            let ca_err = || format!("--ca-file / TETHER_CA_FILE {}", path.display());
            let pem = std::fs::read(path).with_context(ca_err)?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).with_context(ca_err)?;
            if certs.is_empty() {
                bail!("{}: no PEM certificate in the file", ca_err());
            }
            for cert in certs {
                http = http.add_root_certificate(cert);
            }
        }
        let http = http.build().context("HTTPS client")?;
        Ok(Client { http, base: url.trim_end_matches('/').to_string(), key: key.to_string() })
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<(Value, Option<u64>)> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url).header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.with_context(|| format!("cannot reach tetherd at {}", self.base))?;
        let status = resp.status();
        let total = resp.headers().get("x-total-count").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let text = resp.text().await?;
        let v: Value =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        if !status.is_success() {
            let msg = v.get("message").and_then(Value::as_str).unwrap_or("");
            let reason = v.get("status").and_then(Value::as_str).unwrap_or("");
            bail!("{method} {path}: {} {msg} ({reason})", status.as_u16());
        }
        Ok((v, total))
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        Ok(self.send(Method::GET, path, None).await?.0)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        Ok(self.send(Method::POST, path, Some(body)).await?.0)
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value> {
        Ok(self.send(Method::PUT, path, Some(body)).await?.0)
    }

    pub async fn patch(&self, path: &str, body: Value) -> Result<Value> {
        Ok(self.send(Method::PATCH, path, Some(body)).await?.0)
    }

    pub async fn delete(&self, path: &str) -> Result<Value> {
        Ok(self.send(Method::DELETE, path, None).await?.0)
    }

    /// Every user matching the v1 filters, page by page.
    pub async fn all_users(&self, filters: &[String]) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        loop {
            let mut q: Vec<(String, String)> = filters.iter().map(|f| ("filter".to_string(), f.clone())).collect();
            q.push(("limit".into(), "100".into()));
            q.push(("skip".into(), out.len().to_string()));
            let qs = q.iter().map(|(k, v)| format!("{k}={}", urlencode(v))).collect::<Vec<_>>().join("&");
            let page = self.get(&format!("/api/systemusers?{qs}")).await?;
            let results = page["results"].as_array().cloned().unwrap_or_default();
            let total = page["totalCount"].as_u64().unwrap_or(0) as usize;
            let n = results.len();
            out.extend(results);
            if n == 0 || out.len() >= total {
                return Ok(out);
            }
        }
    }

    /// Every item of a v2 list, page by page.
    pub async fn all_v2(&self, path: &str) -> Result<Vec<Value>> {
        let mut out = Vec::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        loop {
            let (page, total) =
                self.send(Method::GET, &format!("{path}{sep}limit=100&skip={}", out.len()), None).await?;
            let items = page.as_array().cloned().unwrap_or_default();
            let n = items.len();
            out.extend(items);
            if n == 0 || total.is_some_and(|t| out.len() as u64 >= t) {
                return Ok(out);
            }
        }
    }

    /// The users a v2 graph list names (`…/users` of a server), each read whole.
    pub async fn users_of(&self, path: &str) -> Result<Vec<Value>> {
        let mut users = Vec::new();
        for u in self.all_v2(path).await? {
            if let Some(uid) = u["id"].as_str() {
                users.push(self.get(&format!("/api/systemusers/{uid}")).await?);
            }
        }
        Ok(users)
    }

    /// A user id from an id or a username.
    pub async fn user_id(&self, user: &str) -> Result<String> {
        if is_id(user) {
            return Ok(user.to_string());
        }
        let page = self
            .get(&format!("/api/systemusers?filter={}&limit=1", urlencode(&format!("username:$eq:{user}"))))
            .await?;
        page["results"][0]["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no user `{user}`"))
    }

    /// A domain id from an id or its DN (`DC=corp,DC=example,DC=com`, any case).
    pub async fn domain_id(&self, domain: &str) -> Result<String> {
        if is_id(domain) {
            return Ok(domain.to_string());
        }
        let all = self.all_v2("/api/v2/activedirectories").await?;
        all.iter()
            .find(|d| d["domain"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(domain.trim())))
            .and_then(|d| d["id"].as_str().map(str::to_string))
            .ok_or_else(|| anyhow!("no AD domain `{domain}`"))
    }

    /// A group id from an id or a name.
    pub async fn group_id(&self, group: &str) -> Result<String> {
        if is_id(group) {
            return Ok(group.to_string());
        }
        let page =
            self.get(&format!("/api/v2/usergroups?filter={}&limit=1", urlencode(&format!("name:eq:{group}")))).await?;
        page[0]["id"].as_str().map(str::to_string).ok_or_else(|| anyhow!("no user group `{group}`"))
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
