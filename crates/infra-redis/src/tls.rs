//! TLS for `rediss…://` URLs: rustls (ring provider) with the URL's CA, client certificate and
//! server-name override.

use fred::prelude::Config as FredConfig;
use infra_config::RedisUrl;

use crate::{RedisError, urls::TlsParams};

/// Sets fred's TLS configuration from the URL's `tls_*` parameters.
#[cfg(not(feature = "tls"))]
pub(crate) fn configure(_config: &mut FredConfig, _params: &TlsParams, url: &RedisUrl) -> Result<(), RedisError> {
    // fred without a TLS feature reads `rediss://` and connects in plain text: refuse instead.
    Err(RedisError::InvalidConfig {
        url: url.redacted(),
        reason: "TLS urls need the `tls` feature of infra-redis (and of infra-state, infra-events or infra-facade)"
            .to_owned(),
    })
}

#[cfg(feature = "tls")]
pub(crate) use enabled::configure;

#[cfg(feature = "tls")]
mod enabled {
    use std::{net::IpAddr, sync::Arc};

    use fred::types::config::{HostMapping, Server, ServerConfig, TlsConfig, TlsHostMapping};
    use rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    };

    use super::*;

    /// Sets fred's TLS configuration from the URL's `tls_*` parameters: the CA file's
    /// certificates as the only roots (the system's without `tls_ca`), the client certificate
    /// and key if given, and `tls_server_name` as the name every server's certificate is
    /// checked against, for the URL's hosts and for cluster nodes found later (whose addresses
    /// rarely match their certificates).
    pub(crate) fn configure(config: &mut FredConfig, params: &TlsParams, url: &RedisUrl) -> Result<(), RedisError> {
        let invalid = |reason: String| RedisError::InvalidConfig { url: url.redacted(), reason };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| invalid(format!("tls setup: {error}")))?
            .with_root_certificates(roots(params).map_err(invalid)?);
        let client = match (&params.cert, &params.key) {
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .and_then(Iterator::collect::<Result<Vec<_>, _>>)
                    .map_err(|error| invalid(format!("cannot read the client certificate `{cert}`: {error}")))?;
                if chain.is_empty() {
                    return Err(invalid(format!("no certificate in the client certificate file `{cert}`")));
                }
                // The key's path is shown, never its content (rustls's errors do not quote it).
                let key_der = PrivateKeyDer::from_pem_file(key)
                    .map_err(|error| invalid(format!("cannot read the client key `{key}`: {error}")))?;
                builder
                    .with_client_auth_cert(chain, key_der)
                    .map_err(|error| invalid(format!("the client certificate `{cert}` and key `{key}`: {error}")))?
            }
            _ => builder.with_no_client_auth(),
        };
        let mut tls = TlsConfig::from(client);
        if let Some(name) = &params.server_name {
            ServerName::try_from(name.as_str())
                .map_err(|error| invalid(format!("tls_server_name `{name}`: {error}")))?;
            for server in servers(&mut config.server) {
                server.tls_server_name = Some(name.as_str().into());
            }
            tls.hostnames = TlsHostMapping::Custom(Arc::new(FixedName(name.clone())));
        }
        config.tls = Some(tls);
        Ok(())
    }

    fn roots(params: &TlsParams) -> Result<RootCertStore, String> {
        let mut store = RootCertStore::empty();
        match &params.ca {
            Some(ca) => {
                for cert in CertificateDer::pem_file_iter(ca).map_err(|e| format!("cannot read tls_ca `{ca}`: {e}"))? {
                    let cert = cert.map_err(|e| format!("cannot read tls_ca `{ca}`: {e}"))?;
                    store.add(cert).map_err(|e| format!("a certificate of tls_ca `{ca}` is unusable: {e}"))?;
                }
                if store.is_empty() {
                    return Err(format!("no certificate in tls_ca `{ca}`"));
                }
            }
            None => {
                // Certificates the system store cannot parse are skipped, as browsers do.
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("no system certificate authority found: give one with tls_ca".to_owned());
                }
            }
        }
        Ok(store)
    }

    /// The servers a configuration names (the sentinels, for Sentinel).
    fn servers(server: &mut ServerConfig) -> Vec<&mut Server> {
        match server {
            ServerConfig::Centralized { server } => vec![server],
            ServerConfig::Clustered { hosts, .. } | ServerConfig::Sentinel { hosts, .. } => hosts.iter_mut().collect(),
            #[allow(unreachable_patterns)]
            _ => Vec::new(),
        }
    }

    /// Every discovered node is checked against the one configured name.
    #[derive(Debug)]
    struct FixedName(String);

    impl HostMapping for FixedName {
        fn map(&self, _ip: &IpAddr, _default_host: &str) -> Option<String> {
            Some(self.0.clone())
        }
    }
}
