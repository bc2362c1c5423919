//! Which tetherd addresses a client may use.
//!
//! Agents and the CLI send agent tokens, API keys and passwords to tetherd, so they speak
//! HTTPS to it. Plain HTTP is allowed only where no network lies between the two: a
//! loopback host (`127.0.0.0/8`, `::1`, `localhost`), as in a single-machine install or a
//! test. The rule lives here so the agents and the CLI refuse the same URLs.

/// Checks a tetherd URL: `https://` anywhere, `http://` only to a loopback host.
pub fn check_server_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url.split_once("://").ok_or("must start with https:// (or http:// to a loopback host)")?;
    let host = host_of(rest).ok_or("names no host")?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "http:// is allowed only to a loopback host (127.0.0.0/8, ::1, localhost), not to `{host}`: \
             use https:// (and CaFile for a private CA)"
        )),
        other => Err(format!("`{other}://` is not https:// (or http:// to a loopback host)")),
    }
}

/// The host of `authority[/path…]`, without user info, port or IPv6 brackets.
fn host_of(rest: &str) -> Option<&str> {
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']')?.0
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    (!host.is_empty()).then_some(host)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| match ip {
            std::net::IpAddr::V4(v4) => v4.is_loopback(),
            std::net::IpAddr::V6(v6) => v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        })
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
    ];

    #[test]
    fn https_anywhere_http_only_to_loopback() {
        for (url, allowed) in CASES {
            assert_eq!(check_server_url(url).is_ok(), *allowed, "{url}: {:?}", check_server_url(url));
        }
    }
}
