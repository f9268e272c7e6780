//! What a Redis URL names beyond fred's own reading: the Sentinel service-name shorthand and the
//! TLS query parameters.
//!
//! Sentinel URLs are fred's (`redis-sentinel://[user:pass@]host:port[/db]?sentinelServiceName=
//! name[&node=host:port…][&sentinelUsername=u&sentinelPassword=p]`), plus one shorthand: a path
//! that is not a database number names the service (`redis-sentinel://host:26379/mymaster`).

use std::borrow::Cow;

use infra_config::{RedisUrl, redact_urls_in};

use crate::RedisError;

/// fred's query parameter naming the monitored service.
const SERVICE_PARAM: &str = "sentinelServiceName";

/// The query parameters of a `rediss` URL that configure TLS (paths, not secrets).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TlsParams {
    /// PEM file of the certificate authorities to trust instead of the system's.
    pub(crate) ca: Option<String>,
    /// PEM file of the client certificate chain.
    pub(crate) cert: Option<String>,
    /// PEM file of the client certificate's private key.
    pub(crate) key: Option<String>,
    /// Name to verify the servers' certificates against instead of the host in the URL.
    pub(crate) server_name: Option<String>,
}

impl TlsParams {
    /// Whether any TLS parameter is set.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A URL ready for fred, and its TLS parameters.
pub(crate) struct Parsed<'a> {
    /// The URL fred parses (the shorthand expanded), secrets included.
    pub(crate) fred_url: Cow<'a, str>,
    /// Whether the scheme asks for TLS (`rediss`, `rediss-cluster`, `rediss-sentinel`).
    pub(crate) tls: bool,
    /// The `tls_*` query parameters.
    pub(crate) tls_params: TlsParams,
}

/// Reads the URL: expands the Sentinel shorthand and collects the TLS parameters.
pub(crate) fn parse(url: &RedisUrl) -> Result<Parsed<'_>, RedisError> {
    let invalid = |reason: &str| RedisError::InvalidConfig { url: url.redacted(), reason: redact_urls_in(reason) };
    let mut parsed = url::Url::parse(url.expose()).map_err(|error| invalid(&error.to_string()))?;
    let mut tls_params = TlsParams::default();
    let mut has_service = false;
    for (name, value) in parsed.query_pairs() {
        let slot = match name.as_ref() {
            "tls_ca" => &mut tls_params.ca,
            "tls_cert" => &mut tls_params.cert,
            "tls_key" => &mut tls_params.key,
            "tls_server_name" => &mut tls_params.server_name,
            SERVICE_PARAM => {
                has_service = true;
                continue;
            }
            _ => continue,
        };
        if value.is_empty() {
            return Err(invalid(&format!("the query parameter `{name}` is empty")));
        }
        *slot = Some(value.into_owned());
    }
    let tls = parsed.scheme().starts_with("rediss");
    if !tls && !tls_params.is_empty() {
        return Err(invalid("tls_* query parameters need a TLS scheme (rediss, rediss-cluster, rediss-sentinel)"));
    }
    if tls_params.cert.is_some() != tls_params.key.is_some() {
        return Err(invalid("a client certificate needs both tls_cert and tls_key"));
    }
    let service = if parsed.scheme().ends_with("-sentinel") && !has_service {
        let path = parsed.path().trim_start_matches('/');
        let is_service = !path.is_empty() && !path.contains('/') && path.parse::<u8>().is_err();
        is_service.then(|| percent_decoded(path))
    } else {
        None
    };
    let fred_url = match service {
        Some(service) => {
            parsed.set_path("");
            parsed.query_pairs_mut().append_pair(SERVICE_PARAM, &service);
            Cow::Owned(parsed.into())
        }
        None => Cow::Borrowed(url.expose()),
    };
    Ok(Parsed { fred_url, tls, tls_params })
}

fn percent_decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map_or_else(|| text.to_owned(), |(_, value)| value.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<(String, bool, TlsParams), RedisError> {
        let url = RedisUrl::parse(text).unwrap();
        let parsed = parse(&url)?;
        Ok((parsed.fred_url.into_owned(), parsed.tls, parsed.tls_params))
    }

    #[test]
    fn a_sentinel_path_that_is_no_database_names_the_service() {
        let (url, ..) = parse_text("redis-sentinel://u:pw@127.0.0.1:26379/mymaster?node=127.0.0.1:26380").unwrap();
        assert_eq!(url, "redis-sentinel://u:pw@127.0.0.1:26379?node=127.0.0.1:26380&sentinelServiceName=mymaster");
        // A database number stays fred's, and an explicit service name wins.
        let text = "redis-sentinel://127.0.0.1:26379/2?sentinelServiceName=m";
        assert_eq!(parse_text(text).unwrap().0, text);
        let text = "redis://127.0.0.1:6379/notadb";
        assert_eq!(parse_text(text).unwrap().0, text, "only sentinel URLs take the shorthand");
    }

    #[test]
    fn tls_parameters_are_read_and_checked() {
        let (_, tls, params) =
            parse_text("rediss://h:1?tls_ca=/ca.pem&tls_cert=/c.pem&tls_key=/k.pem&tls_server_name=redis.test")
                .unwrap();
        assert!(tls);
        assert_eq!(params.ca.as_deref(), Some("/ca.pem"));
        assert_eq!(params.cert.as_deref(), Some("/c.pem"));
        assert_eq!(params.key.as_deref(), Some("/k.pem"));
        assert_eq!(params.server_name.as_deref(), Some("redis.test"));
        let error = |text: &str| parse_text(text).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error("redis://h:1?tls_ca=/ca.pem").contains("need a TLS scheme"));
        assert!(error("rediss://h:1?tls_cert=/c.pem").contains("both tls_cert and tls_key"));
        assert!(error("rediss://bot:pw@h:1?tls_ca=").contains("rediss://bot:***@h:1?tls_ca="));
    }
}
