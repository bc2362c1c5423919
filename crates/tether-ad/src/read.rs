//! Reading the directory: rootDSE, all groups (with ranged `member` retrieval, since real
//! AD returns at most 1,500 values of an attribute per read), and users (paged, since real
//! AD returns at most 1,000 entries per page).

use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, Scope, SearchEntry};

use crate::error::AdError;

/// What the rootDSE tells (readable without a bind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootDse {
    pub highest_committed_usn: u64,
    pub default_naming_context: String,
    /// `vendorName`: Samba names itself here ("Samba Team (https://www.samba.org)"); Active
    /// Directory leaves it out.
    pub vendor_name: Option<String>,
    /// `dsServiceName`: which DC answered (USNs are each DC's own).
    pub ds_service_name: String,
}

impl RootDse {
    /// Whether the DC is a Samba AD DC rather than Windows Active Directory.
    pub fn is_samba(&self) -> bool {
        self.vendor_name.as_deref().is_some_and(|v| v.starts_with("Samba"))
    }
}

pub async fn root_dse(ldap: &mut Ldap) -> Result<RootDse, AdError> {
    let e = root_dse_entry(ldap, vec!["highestCommittedUSN", "defaultNamingContext", "vendorName", "dsServiceName"])
        .await?;
    let one = |k: &str| e.attrs.get(k).and_then(|v| v.first()).cloned().unwrap_or_default();
    Ok(RootDse {
        highest_committed_usn: one("highestCommittedUSN").parse().unwrap_or(0),
        default_naming_context: one("defaultNamingContext"),
        vendor_name: e.attrs.get("vendorName").and_then(|v| v.first()).cloned(),
        ds_service_name: one("dsServiceName"),
    })
}

/// rootDSE `highestCommittedUSN` alone: the DC's latest USN, which every write moves.
pub async fn highest_committed_usn(ldap: &mut Ldap) -> Result<u64, AdError> {
    let e = root_dse_entry(ldap, vec!["highestCommittedUSN"]).await?;
    text(&e, "highestCommittedUSN").and_then(|v| v.parse().ok()).ok_or_else(|| AdError::Refused {
        dn: String::new(),
        rc: 16,
        message: "rootDSE has no highestCommittedUSN".into(),
    })
}

/// The rootDSE entry with `attrs`.
async fn root_dse_entry(ldap: &mut Ldap, attrs: Vec<&str>) -> Result<SearchEntry, AdError> {
    let (entries, _) = ldap.search("", Scope::Base, "(objectClass=*)", attrs).await?.success()?;
    Ok(SearchEntry::construct(entries.into_iter().next().ok_or_else(|| AdError::Refused {
        dn: String::new(),
        rc: 32,
        message: "no rootDSE".into(),
    })?))
}

/// A search entry with its text and binary attributes.
pub type Entry = SearchEntry;

/// First text value of an attribute.
pub fn text(e: &Entry, k: &str) -> Option<String> {
    e.attrs.get(k).and_then(|v| v.first()).cloned()
}

/// The first value of `k` as a number (`None` when absent or not one).
pub fn number<T: std::str::FromStr>(e: &Entry, k: &str) -> Option<T> {
    e.attrs.get(k).and_then(|v| v.first()).and_then(|v| v.parse().ok())
}

/// The first value of a binary attribute (objectGUID, objectSid). ldap3 files a value under
/// `attrs` whenever its bytes happen to be valid UTF-8, which random GUIDs and domain SIDs
/// sometimes are (and the builtin SIDs always are), so both maps are read.
pub fn binary(e: &Entry, k: &str) -> Option<Vec<u8>> {
    e.bin_attrs
        .get(k)
        .and_then(|v| v.first().cloned())
        .or_else(|| e.attrs.get(k).and_then(|v| v.first()).map(|s| s.as_bytes().to_vec()))
}

/// objectGUID as lowercase hex of its 16 bytes.
pub fn guid_hex(e: &Entry) -> String {
    binary(e, "objectGUID").map(|b| b.iter().map(|x| format!("{x:02x}")).collect()).unwrap_or_default()
}

/// An objectGUID (lowercase hex, as [`guid_hex`] gives it) escaped for a search filter:
/// `\xx` per byte.
pub fn guid_filter_value(hex: &str) -> String {
    hex.as_bytes().chunks(2).map(|c| format!("\\{}", String::from_utf8_lossy(c))).collect()
}

/// The relative id (last sub-authority) of `objectSid`.
pub fn sid_rid(e: &Entry) -> Option<u32> {
    rid_of(&binary(e, "objectSid")?)
}

/// The relative id (last sub-authority) of a binary SID.
pub fn rid_of(sid: &[u8]) -> Option<u32> {
    let tail: [u8; 4] = sid.get(sid.len().checked_sub(4)?..)?.try_into().ok()?;
    Some(u32::from_le_bytes(tail))
}

/// The builtin Administrators group, S-1-5-32-544, as stored (revision 1, two sub-authorities,
/// authority 5, then 32 and 544 little-endian).
pub const BUILTIN_ADMINISTRATORS: [u8; 16] = [1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 32, 2, 0, 0];

/// Parses the range of an attribute name such as `member;range=0-1499` (end `None` for `*`).
fn range_of(name: &str) -> Option<(u64, Option<u64>)> {
    let r = name.split(";range=").nth(1)?;
    let (lo, hi) = r.split_once('-')?;
    Some((lo.parse().ok()?, if hi == "*" { None } else { Some(hi.parse().ok()?) }))
}

/// All values of a multi-valued attribute (`member`), following AD's ranged retrieval:
/// the entry may carry `member;range=0-1499`, and the rest is read range by range.
/// `step` asks for ranges of that size from the start (for tests against Samba, which
/// otherwise returns everything at once).
pub async fn ranged_values(ldap: &mut Ldap, e: &Entry, attr: &str, step: Option<u64>) -> Result<Vec<String>, AdError> {
    let mut values = Vec::new();
    let mut next = match step {
        Some(_) => Some(0),
        None => {
            let ranged = e.attrs.iter().find(|(k, _)| k.to_ascii_lowercase().starts_with(&format!("{attr};range=")));
            match ranged {
                Some((k, v)) => {
                    values.extend(v.iter().cloned());
                    range_of(k).and_then(|(_, hi)| hi.map(|h| h + 1))
                }
                None => {
                    values.extend(e.attrs.get(attr).cloned().unwrap_or_default());
                    None
                }
            }
        }
    };
    while let Some(lo) = next {
        let want = match step {
            Some(s) => format!("{attr};range={lo}-{}", lo + s - 1),
            None => format!("{attr};range={lo}-*"),
        };
        let (entries, _) = ldap.search(&e.dn, Scope::Base, "(objectClass=*)", vec![want.as_str()]).await?.success()?;
        let Some(got) = entries.into_iter().next().map(SearchEntry::construct) else { break };
        let Some((k, v)) =
            got.attrs.iter().find(|(k, _)| k.to_ascii_lowercase().starts_with(&format!("{attr};range=")))
        else {
            break; // no values in this range: done
        };
        values.extend(v.iter().cloned());
        next = range_of(k).and_then(|(_, hi)| hi.map(|h| h + 1));
    }
    Ok(values)
}

/// LDAP_SERVER_EXTENDED_DN_OID: DN values come as `<GUID=hex>;<SID=hex>;dn` (hex of the
/// binary values when the control has no value).
const EXTENDED_DN: &str = "1.2.840.113556.1.4.529";

/// The members of the group `dn`, each with its objectGUID (as [`guid_hex`]) when the DC
/// gives it: one ranged read of the group instead of one search per member. `step` as in
/// [`ranged_values`].
pub async fn members_with_guids(
    ldap: &mut Ldap,
    dn: &str,
    step: Option<u64>,
) -> Result<Vec<(Option<String>, String)>, AdError> {
    let mut out = Vec::new();
    let mut lo = 0;
    loop {
        let want = match step {
            Some(s) => format!("member;range={lo}-{}", lo + s - 1),
            None => format!("member;range={lo}-*"),
        };
        let control = ldap3::controls::RawControl { ctype: EXTENDED_DN.into(), crit: false, val: None };
        let (entries, _) = ldap
            .with_controls(control)
            .search(dn, Scope::Base, "(objectClass=*)", vec![want.as_str()])
            .await?
            .success()?;
        let Some(e) = entries.into_iter().next().map(SearchEntry::construct) else { break };
        let Some((k, v)) = e.attrs.iter().find(|(k, _)| {
            let k = k.to_ascii_lowercase();
            k == "member" || k.starts_with("member;range=")
        }) else {
            break; // no values (left): done
        };
        out.extend(v.iter().map(|x| extended_dn(x)));
        match range_of(k).and_then(|(_, hi)| hi) {
            Some(hi) => lo = hi + 1,
            None => break,
        }
    }
    Ok(out)
}

/// `<GUID=…>;<SID=…>;dn` as (objectGUID, dn); a plain DN has no GUID.
pub fn extended_dn(v: &str) -> (Option<String>, String) {
    let mut rest = v;
    let mut guid = None;
    while rest.starts_with('<') {
        let Some(end) = rest.find('>') else { break };
        let part = &rest[1..end];
        if let Some(g) = part.strip_prefix("GUID=") {
            let g = g.to_ascii_lowercase();
            if g.len() == 32 && g.bytes().all(|b| b.is_ascii_hexdigit()) {
                guid = Some(g);
            }
        }
        rest = rest[end + 1..].strip_prefix(';').unwrap_or(&rest[end + 1..]);
    }
    (guid, rest.to_string())
}

/// A paged subtree search returning every entry; fails (never returns a partial list) if
/// any page fails.
pub async fn paged_search(ldap: &mut Ldap, base: &str, filter: &str, attrs: &[&str]) -> Result<Vec<Entry>, AdError> {
    paged_search_each(ldap, base, filter, attrs, PAGE, |_| {}).await
}

/// The page size of [`paged_search`].
pub const PAGE: usize = 1000;

/// [`paged_search`], handing `each` the entries read so far every `every` entries (and the
/// last ones at the end), while the search goes on: what a caller does with them (an import
/// agent sends them to tetherd) overlaps the rest of the read. The whole list is still
/// returned, or an error if any page fails.
pub async fn paged_search_each(
    ldap: &mut Ldap,
    base: &str,
    filter: &str,
    attrs: &[&str],
    every: usize,
    mut each: impl FnMut(&[Entry]),
) -> Result<Vec<Entry>, AdError> {
    let adapters: Vec<Box<dyn Adapter<_, _>>> =
        vec![Box::new(EntriesOnly::new()), Box::new(PagedResults::new(PAGE as i32))];
    let attrs: Vec<String> = attrs.iter().map(|s| s.to_string()).collect();
    let mut stream = ldap.streaming_search_with(adapters, base, Scope::Subtree, filter, attrs).await?;
    let (mut out, mut handed) = (Vec::new(), 0);
    while let Some(entry) = stream.next().await? {
        out.push(SearchEntry::construct(entry));
        if out.len() - handed >= every.max(1) {
            each(&out[handed..]);
            handed = out.len();
        }
    }
    stream.finish().await.success()?;
    if handed < out.len() {
        each(&out[handed..]);
    }
    Ok(out)
}

/// A group with its complete member list.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GroupEntry {
    pub dn: String,
    pub name: String,
    pub guid: String,
    pub rid: Option<u32>,
    pub members: Vec<String>,
    /// `uSNChanged` when read (0 in caches written before it was kept).
    #[serde(default)]
    pub usn: u64,
}

/// Every group below `base`, with complete (ranged) member lists.
pub async fn read_groups(ldap: &mut Ldap, base: &str) -> Result<Vec<GroupEntry>, AdError> {
    read_groups_where(ldap, base, "(objectClass=group)").await
}

/// The groups below `base` matching `filter`, with complete (ranged) member lists.
pub async fn read_groups_where(ldap: &mut Ldap, base: &str, filter: &str) -> Result<Vec<GroupEntry>, AdError> {
    let entries = paged_search(ldap, base, filter, GROUP_ATTRS).await?;
    let mut out = Vec::with_capacity(entries.len());
    for e in &entries {
        out.push(group_entry(ldap, e).await?);
    }
    Ok(out)
}

/// The groups below `base` with the given objectGUIDs (hex, as [`guid_hex`] gives them) that
/// still exist, with complete (ranged) member lists: a few dozen to a search, each an
/// indexed lookup, so the DC reads only these groups' members.
pub async fn read_groups_by_guid(ldap: &mut Ldap, base: &str, guids: &[&str]) -> Result<Vec<GroupEntry>, AdError> {
    const PER_SEARCH: usize = 50;
    let mut out = Vec::with_capacity(guids.len());
    for chunk in guids.chunks(PER_SEARCH) {
        let any: String = chunk.iter().map(|g| format!("(objectGUID={})", guid_filter_value(g))).collect();
        out.extend(read_groups_where(ldap, base, &format!("(&(objectClass=group)(|{any}))")).await?);
    }
    Ok(out)
}

/// The attributes a [`GroupEntry`] is made of.
pub const GROUP_ATTRS: &[&str] = &["cn", "objectGUID", "objectSid", "member", "uSNChanged"];

/// A group from an entry read with (at least) [`GROUP_ATTRS`]; the rest of a ranged `member`
/// is read on `ldap`.
pub async fn group_entry(ldap: &mut Ldap, e: &Entry) -> Result<GroupEntry, AdError> {
    Ok(GroupEntry {
        dn: e.dn.clone(),
        name: text(e, "cn").unwrap_or_default(),
        guid: guid_hex(e),
        rid: sid_rid(e),
        members: ranged_values(ldap, e, "member", None).await?,
        usn: usn_changed(e),
    })
}

/// An entry's `uSNChanged` (0 when it was not read).
pub fn usn_changed(e: &Entry) -> u64 {
    number(e, "uSNChanged").unwrap_or(0)
}

/// Converts an AD FILETIME (100 ns since 1601) to Unix seconds; `None` for 0 and "never".
pub fn filetime_to_unix(ft: i64) -> Option<i64> {
    if ft <= 0 || ft == i64::MAX {
        return None;
    }
    Some(ft / 10_000_000 - 11_644_473_600)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ldap3 files a binary value whose bytes are valid UTF-8 under `attrs`: a GUID or a
    /// domain SID of ASCII-range bytes (random ones sometimes are; builtin SIDs always are)
    /// reads the same as one filed under `bin_attrs`.
    #[test]
    fn binary_values_that_are_valid_utf8_read_the_same() {
        let guid: Vec<u8> = (b'A'..=b'P').collect();
        let mut sid = BUILTIN_ADMINISTRATORS[..12].to_vec();
        sid[1] = 5;
        sid.extend_from_slice(&[b'x'; 12]);
        sid.extend_from_slice(&512u32.to_le_bytes());
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        let as_text = Entry {
            dn: "CN=G,DC=x".into(),
            attrs: [("objectGUID".to_string(), vec![text(&guid)]), ("objectSid".to_string(), vec![text(&sid)])].into(),
            bin_attrs: Default::default(),
        };
        let as_binary = Entry {
            dn: "CN=G,DC=x".into(),
            attrs: Default::default(),
            bin_attrs: [("objectGUID".to_string(), vec![guid.clone()]), ("objectSid".to_string(), vec![sid.clone()])]
                .into(),
        };
        for e in [&as_text, &as_binary] {
            assert_eq!(guid_hex(e), "4142434445464748494a4b4c4d4e4f50");
            assert_eq!(sid_rid(e), Some(512));
            assert_eq!(binary(e, "objectSid"), Some(sid.clone()));
        }
        assert_eq!(binary(&as_text, "cn"), None);
    }

    #[test]
    fn extended_dns() {
        let g = "00112233445566778899aabbccddeeff";
        let rows = [
            (format!("<GUID={g}>;<SID=0105>;CN=A,DC=x"), Some(g), "CN=A,DC=x"),
            (format!("<GUID={}>;CN=B\\;x,DC=x", g.to_uppercase()), Some(g), "CN=B\\;x,DC=x"),
            ("CN=Plain,DC=x".to_string(), None, "CN=Plain,DC=x"),
            ("<GUID=short>;CN=C,DC=x".to_string(), None, "CN=C,DC=x"),
            ("<unterminated;CN=D".to_string(), None, "<unterminated;CN=D"),
        ];
        for (v, guid, dn) in rows {
            assert_eq!(extended_dn(&v), (guid.map(str::to_string), dn.to_string()), "{v}");
        }
    }

    #[test]
    fn ranges_and_filetime() {
        assert_eq!(range_of("member;range=0-1499"), Some((0, Some(1499))));
        assert_eq!(range_of("member;range=1500-*"), Some((1500, None)));
        assert_eq!(range_of("member"), None);
        assert_eq!(filetime_to_unix(0), None);
        assert_eq!(filetime_to_unix(i64::MAX), None);
        assert_eq!(filetime_to_unix(116_444_736_000_000_000), Some(0));
        assert_eq!(guid_filter_value("00ff1a"), "\\00\\ff\\1a");
    }
}
