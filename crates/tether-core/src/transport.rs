//! Which tetherd addresses a client may use.
//!
//! Agents and the CLI send agent tokens, API keys and passwords to tetherd, so they speak
//! HTTPS to it. Plain HTTP is allowed only where no network lies between the two: a
//! loopback host (`127.0.0.0/8`, `::1`, `localhost`), as in a single-machine install or a
//! test. The rule lives here so the agents and the CLI refuse the same URLs.

/// Checks a tetherd URL: `https://` anywhere, `http://` only to a loopback host. Answers
/// whether the URL uses TLS. The URL is parsed as the HTTP client will parse it (WHATWG), so
/// what is checked is where the client connects (`http://evil\@127.0.0.1` is `evil`).
pub fn check_server_url(url: &str) -> Result<bool, String> {
    // WHATWG reads `https:host` or `https:/host` as `https://host`: refused, so the URL an
    // admin wrote is the one that is checked and shown.
    // And WHATWG drops a leading control character, and tabs and newlines anywhere
    // (`ht\ttps:host` is `https://host`): refused too, for the same reason.
    if url.chars().any(|c| c.is_ascii_control()) {
        return Err("contains a control character (a tab, a newline…): write the URL alone".into());
    }
    let lower = url.trim_start().to_ascii_lowercase();
    if !lower.starts_with("https://") && !lower.starts_with("http://") && lower.starts_with("http") {
        return Err("write the URL as https://HOST[:PORT] (with `//`)".into());
    }
    let parsed = url::Url::parse(url).map_err(|e| format!("not a URL ({e}): https://HOST[:PORT]"))?;
    let host = parsed.host().ok_or("names no host")?;
    match parsed.scheme() {
        "https" => Ok(true),
        "http" if is_loopback(&host) => Ok(false),
        "http" => Err(format!(
            "http:// is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), not to `{host}`: \
             use https:// (and CaFile for a private CA)"
        )),
        other => Err(format!("`{other}://` is not https:// (or http:// to a loopback host)")),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(d) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(v4) => v4.is_loopback(),
        url::Host::Ipv6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_server_url;

    #[rustfmt::skip]
    const CASES: &[(&str, bool)] = &[
        // url                                   allowed
        ("https://tether.corp.example.com",       true),
        ("https://10.0.0.5:8443/",                true),
        ("HTTPS://tether:443",                    true),
        ("http://127.0.0.1:8080",                 true),
        ("http://127.0.0.9:8080/",                true),
        ("http://localhost:8080",                 true),
        ("http://LOCALHOST",                      true),
        ("http://[::1]:8080",                     true),
        ("http://[::ffff:127.0.0.1]:8080",        true),
        ("http://10.0.0.5:8080",                  false),
        ("http://0.0.0.0:8080",                   false),
        ("http://tether.corp.example.com",        false),
        ("http://localhost.evil.example:8080",    false),
        ("http://127.0.0.1@evil.example:8080",    false),
        ("http://[::2]:8080",                     false),
        ("ftp://127.0.0.1",                       false),
        ("127.0.0.1:8080",                        false),
        ("https://",                              false),
        ("http://evil.example\\@127.0.0.1:8080",   false),
        ("http://127.0.0.1.evil.example",         false),
        ("HTTP://127.0.0.1:8080",                 true),
        ("http://0x7f000001:8080",                true),
        ("https:t//ether.example.com",            false),
        ("https:/tether.example.com",             false),
        ("http:127.0.0.1:8080",                   false),
        ("\u{1}https://tether.example.com",       false),
        ("ht\ttps:tether.example.com",            false),
        ("https://tether.example.com\n",          false),
        ("https://tether.exa\u{7f}mple.com",      false),
        ("  https://tether.example.com",          true),
    ];

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        for (url, allowed) in CASES {
            assert_eq!(check_server_url(url).is_ok(), *allowed, "{url}: {:?}", check_server_url(url));
        }
        assert_eq!(check_server_url("HTTPS://tether"), Ok(true));
        assert_eq!(check_server_url("HTTP://localhost:1"), Ok(false));
    }
}
