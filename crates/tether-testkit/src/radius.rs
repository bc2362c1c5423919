//! FreeRADIUS's and wpa_supplicant's own clients, as devices use them against the RADIUS
//! front end: `radtest` (Debian's freeradius-utils) for PAP, `eapol_test` (Debian's
//! eapoltest) for WPA-Enterprise's EAP-TTLS.

/// `radtest USER PASSWORD SERVER 0 SECRET` (it adds Message-Authenticator itself); what
/// radclient printed.
pub async fn radtest(server: &str, secret: &str, user: &str, password: &str) -> String {
    let out = tokio::process::Command::new("radtest")
        .args(["-x", user, password, server, "0", secret])
        .output()
        .await
        .unwrap_or_else(|e| panic!("radtest (Debian's freeradius-utils) cannot run: {e}"));
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `eapol_test` (Debian's eapoltest: wpa_supplicant's EAP engine with a RADIUS client, what
/// a Wi-Fi access point relays) logging in `identity` with `password` with the supplicant
/// configuration of docs/radius/wpa_supplicant-ttls.conf as written (EAP-TTLS with PAP
/// inside, the outer identity `anonymous`, tetherd's certificate checked against the CA),
/// only the user, password, CA file and server name replaced, its TLS messages cut in
/// fragments of 100 bytes (so the server gathers fragments), the access point's Framed-MTU
/// 300 (so the server sends fragments); (whether it printed SUCCESS with matching keys, what
/// it printed).
pub async fn eapol_test(server: &str, secret: &str, identity: &str, password: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ttls.conf");
    let ca = crate::ca_file().display().to_string();
    let doc = std::fs::read_to_string(crate::workspace_root().join("docs/radius/wpa_supplicant-ttls.conf")).unwrap();
    let mut replaced = 0;
    let lines: Vec<String> = doc
        .lines()
        .map(|l| {
            let value = match l.trim().split_once('=').map(|(k, _)| k) {
                Some("identity") => format!("\"{identity}\""),
                Some("password") => format!("\"{password}\""),
                Some("ca_cert") => format!("\"{ca}\""),
                Some("domain_suffix_match") => "\"localhost\"".to_string(),
                Some("phase2") => return format!("{l}\n    fragment_size=100"),
                _ => return l.to_string(),
            };
            replaced += 1;
            format!("    {}={value}", l.trim().split_once('=').unwrap().0)
        })
        .collect();
    assert_eq!(replaced, 4, "the doc's identity, password, ca_cert and domain_suffix_match lines");
    std::fs::write(&conf, lines.join("\n")).unwrap();
    let (ip, port) = server.rsplit_once(':').unwrap();
    let out = tokio::process::Command::new("eapol_test")
        .args(["-c", &conf.display().to_string(), "-a", ip, "-p", port, "-s", secret, "-r", "0", "-t", "5"])
        // The access point's link carries 300 bytes (Framed-MTU): the server's flights come
        // in fragments too.
        .args(["-N", "12:d:300"])
        .output()
        .await
        .unwrap_or_else(|e| panic!("eapol_test (Debian's eapoltest) cannot run: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    // eapol_test exits 0 only when the EAP method succeeded and the keys the server sent the
    // "access point" (MS-MPPE) match the ones the supplicant derived.
    let ok = out.status.success() && text.lines().any(|l| l.trim() == "SUCCESS");
    (ok, text)
}
