//! Who may change anything: the token (compared in constant time) and same-origin requests
//! only.

use axum::http::{HeaderMap, StatusCode, header};
use infra_facade::config::Secret;

/// The header every changing request must carry; a form or a simple request from another
/// site cannot set it, and a cross-origin `fetch` that sets it needs a CORS preflight the
/// dashboard never grants.
pub(crate) const ACTION_HEADER: &str = "x-infra-dashboard";

/// Why a request is refused: its status and message.
pub(crate) type Refusal = (StatusCode, String);

fn refuse(status: StatusCode, message: impl Into<String>) -> Result<(), Refusal> {
    Err((status, message.into()))
}

/// Refuses (403) a request from another site: an `Origin` other than the page's own
/// (`http://<Host>`), `Sec-Fetch-Site` naming another site, or no `X-Infra-Dashboard: 1`.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), Refusal> {
    let forbidden = StatusCode::FORBIDDEN;
    let value = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
    match value(header::HeaderName::from_static("sec-fetch-site")) {
        None | Some("same-origin" | "none") => {}
        Some(site) => return refuse(forbidden, format!("cross-site request refused (Sec-Fetch-Site: {site})")),
    }
    if let Some(origin) = value(header::ORIGIN) {
        let own = value(header::HOST).map(|host| format!("http://{host}"));
        if own.as_deref() != Some(origin) {
            return refuse(forbidden, "cross-site request refused: the Origin is not the dashboard's own");
        }
    }
    if value(header::HeaderName::from_static(ACTION_HEADER)) != Some("1") {
        return refuse(
            forbidden,
            "request refused: the header `X-Infra-Dashboard: 1` is missing (cross-site protection)",
        );
    }
    Ok(())
}

/// Refuses a request without the configured token: 403 when none is configured, 401 when the
/// `Authorization: Bearer` token is missing or wrong.
pub(crate) fn authorized(headers: &HeaderMap, token: Option<&Secret>) -> Result<(), Refusal> {
    let Some(token) = token else {
        return refuse(
            StatusCode::FORBIDDEN,
            "changing actions are disabled: set `dashboard.token` (INFRA_DASHBOARD__TOKEN) to enable them",
        );
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    match given {
        None => refuse(StatusCode::UNAUTHORIZED, "a token is required: `Authorization: Bearer <dashboard.token>`"),
        Some(given) if !constant_time_eq(given.as_bytes(), token.expose().as_bytes()) => {
            refuse(StatusCode::UNAUTHORIZED, "wrong token")
        }
        Some(_) => Ok(()),
    }
}

/// Compares every byte whatever the first difference, so the time taken says nothing about
/// how much of a guess was right (only the longer length shows).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_whole_tokens() {
        assert!(constant_time_eq(b"s3cret", b"s3cret"));
        assert!(!constant_time_eq(b"s3cret", b"s3cre"));
        assert!(!constant_time_eq(b"s3cret", b"s3creT"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn same_origin_needs_the_header_and_the_own_origin() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(same_origin(&headers).unwrap_err().0, StatusCode::FORBIDDEN);
        headers.insert(ACTION_HEADER, "1".parse().unwrap());
        assert!(same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&headers).is_ok());
        headers.insert(header::ORIGIN, "http://evil.example".parse().unwrap());
        assert!(same_origin(&headers).is_err());
        headers.remove(header::ORIGIN);
        headers.insert("sec-fetch-site", "cross-site".parse().unwrap());
        assert!(same_origin(&headers).is_err());
    }
}
