//! What an agent installed on a Samba DC reads of the DC's `smb.conf` (`SambaSmbConf`): where
//! its private files are (the privileged ldapi socket of the password capture, the database
//! the database watch follows) and which DC it is (its NetBIOS name and realm), so the agent
//! can tell whether the DC its LDAP connection reached is this one.

use std::path::{Path, PathBuf};

/// Where Samba's packages put the DC's `smb.conf`: what the database watch reads when
/// `SambaSmbConf` does not say.
pub const PACKAGED: &str = "/etc/samba/smb.conf";

/// The settings of one `smb.conf` the agent uses; `None` where the file does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SmbConf {
    /// `private dir`: Samba's default is `../private` beside the configuration's folder.
    pub private_dir: PathBuf,
    /// `netbios name`: Samba's default is the host name's first label, upper-cased.
    pub netbios_name: Option<String>,
    /// `realm`, the domain's DNS name.
    pub realm: Option<String>,
}

impl SmbConf {
    /// Reads `path`; a file that cannot be read gives Samba's defaults.
    pub fn read(path: &Path) -> SmbConf {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        SmbConf::parse(&text, default_private_dir(path))
    }

    /// The settings of the `[global]` section of `text` (keys are case-insensitive, their
    /// spaces as written by `samba-tool domain provision`).
    pub fn parse(text: &str, default_private: PathBuf) -> SmbConf {
        let mut out = SmbConf { private_dir: default_private, ..SmbConf::default() };
        let mut global = true;
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                global = line.eq_ignore_ascii_case("[global]");
                continue;
            }
            let Some((k, v)) = line.split_once('=').filter(|_| global && !line.starts_with(['#', ';'])) else {
                continue;
            };
            let v = v.trim();
            // Samba ignores case and blanks in a parameter's name (`netbiosname`).
            let key: String = k.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
            match key.as_str() {
                "privatedir" => out.private_dir = PathBuf::from(v),
                "netbiosname" => out.netbios_name = Some(v.to_string()),
                "realm" => out.realm = Some(v.to_string()),
                _ => {}
            }
        }
        out
    }

    /// The DC's NetBIOS name: `netbios name`, else the host name's first label upper-cased
    /// and cut to NetBIOS's 15 characters, as Samba takes it.
    pub fn netbios_name_or(&self, host_name: &str) -> String {
        self.netbios_name.clone().unwrap_or_else(|| {
            host_name
                .trim()
                .split('.')
                .next()
                .unwrap_or_default()
                .chars()
                .take(15)
                .collect::<String>()
                .to_ascii_uppercase()
        })
    }

    /// Whether the DC that answered (its rootDSE `dsServiceName` and `defaultNamingContext`)
    /// is the one this file configures; `Err` says why not. The DC's server object is named
    /// after its NetBIOS name (`CN=NTDS Settings,CN=<name>,CN=Servers,…`), and the domain's
    /// naming context spells the realm (`DC=corp,DC=example,DC=test` for CORP.EXAMPLE.TEST).
    pub fn is_dc(&self, host_name: &str, ds_service_name: &str, naming_context: &str) -> Result<(), String> {
        let name = self.netbios_name_or(host_name);
        let answered = ds_service_name.split(',').nth(1).and_then(|r| rdn_value(r, "CN")).unwrap_or_default();
        if !answered.eq_ignore_ascii_case(&name) {
            return Err(format!("the DC that answered is {answered:?}, this one is {name:?}"));
        }
        let realm = self.realm.as_deref().ok_or("smb.conf names no realm")?;
        let domain: Vec<&str> = naming_context.split(',').filter_map(|r| rdn_value(r, "DC")).collect();
        if !domain.join(".").eq_ignore_ascii_case(realm) {
            return Err(format!("the DC that answered serves {naming_context:?}, this one the realm {realm:?}"));
        }
        Ok(())
    }
}

/// Samba's own `private dir` when `smb.conf` says none: the one compiled into Debian's,
/// Ubuntu's and Red Hat's packages (`/var/lib/samba/private`, their `smb.conf` in
/// `/etc/samba`), else a build from source's (`private` beside the configuration's folder:
/// `/usr/local/samba/etc` and `/usr/local/samba/private`), whichever exists, the latter when
/// neither does.
fn default_private_dir(smb_conf: &Path) -> PathBuf {
    let beside = smb_conf.parent().unwrap_or(Path::new(".")).join("../private");
    let packaged = PathBuf::from("/var/lib/samba/private");
    if !beside.is_dir() && smb_conf.starts_with("/etc/samba") && packaged.is_dir() {
        packaged
    } else {
        beside
    }
}

/// The value of `rdn` (`CN=DC1`) when its attribute is `attr`, in any case.
fn rdn_value<'a>(rdn: &'a str, attr: &str) -> Option<&'a str> {
    let (a, v) = rdn.trim().split_once('=')?;
    a.trim().eq_ignore_ascii_case(attr).then_some(v.trim())
}

/// This machine's host name (Linux), as Samba takes it for a missing `netbios name`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default().trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROVISIONED: &str = "# Global parameters\n[global]\n\tnetbios name = DC1\n\tprivate dir = /srv/ad/private\n\
        \trealm = CORP.EXAMPLE.TEST\n\tserver role = active directory domain controller\n\n[sysvol]\n\tpath = /x\n";
    const SERVICE: &str = "CN=NTDS Settings,CN=DC1,CN=Servers,CN=Default-First-Site-Name,CN=Sites,CN=Configuration,DC=corp,DC=example,DC=test";
    const NC: &str = "DC=corp,DC=example,DC=test";

    #[test]
    fn reads_the_global_settings_and_samba_defaults() {
        let c = SmbConf::parse(PROVISIONED, PathBuf::from("/etc/samba/../private"));
        assert_eq!(c.private_dir, PathBuf::from("/srv/ad/private"));
        assert_eq!(c.netbios_name.as_deref(), Some("DC1"));
        assert_eq!(c.realm.as_deref(), Some("CORP.EXAMPLE.TEST"));
        // A share's keys are not the DC's; a commented key is not set.
        let share = SmbConf::parse("[global]\n; realm = X\n[data]\nnetbios name = NOPE\n", PathBuf::from("/p"));
        assert_eq!(share, SmbConf { private_dir: PathBuf::from("/p"), netbios_name: None, realm: None });
        assert_eq!(share.netbios_name_or("dc7.corp.example.test\n"), "DC7");
        assert_eq!(share.netbios_name_or("branch-office-dc-07.corp"), "BRANCH-OFFICE-D", "NetBIOS's 15 characters");
        let spelt = SmbConf::parse("[GLOBAL]\n NetBIOSName=DC2\n private  Dir = /x\n", PathBuf::from("/p"));
        assert_eq!(spelt.netbios_name.as_deref(), Some("DC2"), "Samba ignores case and blanks in names");
        assert_eq!(spelt.private_dir, PathBuf::from("/x"));
    }

    #[test]
    fn tells_whether_the_dc_that_answered_is_this_one() {
        let c = SmbConf::parse(PROVISIONED, PathBuf::new());
        let other_realm = "DC=other,DC=test";
        let other_dc = SERVICE.replace("CN=DC1,", "CN=DC2,");
        for (service, nc, same) in [
            (SERVICE, NC, true),
            (&SERVICE.to_lowercase()[..], &NC.to_uppercase()[..], true),
            (&other_dc[..], NC, false),
            (SERVICE, other_realm, false),
            ("", NC, false),
        ] {
            assert_eq!(c.is_dc("ignored", service, nc).is_ok(), same, "{service} {nc}");
        }
        let no_realm = SmbConf { realm: None, ..c };
        assert!(no_realm.is_dc("x", SERVICE, NC).unwrap_err().contains("realm"));
    }
}
