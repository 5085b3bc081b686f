//! Identity-provider presets: what `preset: entra | okta | google` fills in (the contract's table).
//! Explicit keys always win over these values.

use super::reader::{error, Obj, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Entra,
    /// `org_server`: the Okta org authorization server (no `authorization_server` given).
    Okta {
        org_server: bool,
    },
    Google,
}

/// Where a preset's keys come from, before the cluster and timings are added.
pub enum PresetKeys {
    Discovery,
    Uri(String),
}

pub struct PresetValues {
    pub issuer: String,
    pub issuer_aliases: Vec<String>,
    pub keys: PresetKeys,
    /// `None` when the preset's audience needs `client_id` and none was given.
    pub audiences: Option<Vec<String>>,
    pub user_claims: Vec<String>,
    pub required_claims: Vec<(String, Vec<String>)>,
    pub hosted_domains: Vec<String>,
}

/// Reads `preset` and the keys that only presets use, refusing those keys without their preset.
pub fn read_preset(obj: &Obj) -> Result<Option<(Preset, PresetValues)>> {
    let preset = obj.optional_str("preset")?;
    let tenant_id = obj.optional_str("tenant_id")?;
    let client_id = obj.optional_str("client_id")?;
    let org_url = obj.optional_str("org_url")?;
    let authorization_server = obj.optional_str("authorization_server")?;
    let hosted_domains = obj.optional_strings("hosted_domains")?;
    let only_with = |key: &str, present: bool, allowed: bool, preset: &str| -> Result<()> {
        if present && !allowed {
            return Err(error(&obj.child(key), format!("only applies with preset {preset}")));
        }
        Ok(())
    };
    let name = preset.as_deref();
    only_with("tenant_id", tenant_id.is_some(), name == Some("entra"), "entra")?;
    only_with("org_url", org_url.is_some(), name == Some("okta"), "okta")?;
    only_with("authorization_server", authorization_server.is_some(), name == Some("okta"), "okta")?;
    only_with("hosted_domains", hosted_domains.is_some(), name == Some("google"), "google")?;
    only_with("client_id", client_id.is_some(), name.is_some(), "entra, okta or google")?;
    let audiences =
        |extra: &[String]| client_id.as_ref().map(|id| [vec![id.clone()], extra.to_vec()].concat());
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let values = match name {
        None => return Ok(None),
        Some("entra") => {
            let tenant =
                tenant_id.ok_or_else(|| error(&obj.child("tenant_id"), "required with preset entra"))?;
            check_id_segment(&tenant, &obj.child("tenant_id"))?;
            let api_audience = client_id.as_ref().map(|id| format!("api://{id}"));
            (
                Preset::Entra,
                PresetValues {
                    issuer: format!("https://login.microsoftonline.com/{tenant}/v2.0"),
                    issuer_aliases: vec![format!("https://sts.windows.net/{tenant}/")],
                    keys: PresetKeys::Discovery,
                    audiences: audiences(&api_audience.into_iter().collect::<Vec<_>>()),
                    user_claims: strings(&["oid", "sub"]),
                    required_claims: vec![("tid".to_owned(), vec![tenant])],
                    hosted_domains: Vec::new(),
                },
            )
        }
        Some("okta") => {
            let org = org_url.ok_or_else(|| error(&obj.child("org_url"), "required with preset okta"))?;
            if !org.starts_with("https://") {
                return Err(error(&obj.child("org_url"), "must start with https://"));
            }
            let org = org.trim_end_matches('/').to_owned();
            let (issuer, keys) = match &authorization_server {
                Some(server) => {
                    check_id_segment(server, &obj.child("authorization_server"))?;
                    let issuer = format!("{org}/oauth2/{server}");
                    let keys = format!("{issuer}/v1/keys");
                    (issuer, keys)
                }
                None => (org.clone(), format!("{org}/oauth2/v1/keys")),
            };
            (
                Preset::Okta { org_server: authorization_server.is_none() },
                PresetValues {
                    issuer,
                    issuer_aliases: Vec::new(),
                    keys: PresetKeys::Uri(keys),
                    audiences: audiences(&[]),
                    user_claims: strings(&["uid", "sub"]),
                    required_claims: Vec::new(),
                    hosted_domains: Vec::new(),
                },
            )
        }
        Some("google") => {
            let domains = hosted_domains
                .ok_or_else(|| error(&obj.child("hosted_domains"), "required with preset google"))?;
            (
                Preset::Google,
                PresetValues {
                    issuer: "https://accounts.google.com".into(),
                    issuer_aliases: vec!["accounts.google.com".into()],
                    keys: PresetKeys::Uri("https://www.googleapis.com/oauth2/v3/certs".into()),
                    audiences: audiences(&[]),
                    user_claims: strings(&["sub"]),
                    required_claims: vec![("hd".to_owned(), domains.clone())],
                    hosted_domains: domains,
                },
            )
        }
        Some(_) => return Err(error(&obj.child("preset"), "must be entra, okta or google")),
    };
    Ok(Some(values))
}

/// Tenant and authorization-server ids end up in URLs: refuse anything that would change the path.
fn check_id_segment(id: &str, path: &str) -> Result<()> {
    if id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) && id != "." && id != ".." {
        Ok(())
    } else {
        Err(error(path, "must be letters, digits, '-', '_' or '.' only"))
    }
}
