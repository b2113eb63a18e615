//! The one check of the base URLs that liveup joins paths onto (`{public_url}/hls/…`,
//! `{jellyfin_url}/Items?…`): http or https, a host, no credentials, no query or fragment. The
//! URL is kept in `url`'s normal form (lower-case scheme and host, no default port) without a
//! trailing slash.

use url::{ParseError, Url};

pub fn base_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let must_be_http = || format!("it must start with http:// or https://, got {text:?}");
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("it contains whitespace: {text:?}"));
    }
    let url = Url::parse(text).map_err(|error| match error {
        ParseError::RelativeUrlWithoutBase => must_be_http(),
        ParseError::EmptyHost => format!("it has no host: {text:?}"),
        other => format!("{other}: {text:?}"),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(must_be_http());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("it has no host: {text:?}"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported".to_string());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "it must not contain a query or a fragment: {text:?}"
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

#[cfg(test)]
mod tests {
    use super::base_url;

    #[test]
    fn a_base_url_is_kept_in_normal_form_without_its_trailing_slash() {
        for (given, kept) in [
            ("http://films.lan:9999", "http://films.lan:9999"),
            ("HTTP://Jf.Local:8096/", "http://jf.local:8096"),
            (
                "https://films.example/liveup/",
                "https://films.example/liveup",
            ),
            ("http://[::1]:8765", "http://[::1]:8765"),
            ("http://films.lan:80/", "http://films.lan"),
        ] {
            assert_eq!(base_url(given).as_deref(), Ok(kept), "{given}");
        }
    }

    #[test]
    fn what_cannot_be_a_base_is_refused_with_the_reason() {
        for (given, reason) in [
            ("jf.local:8096", "must start with http://"),
            ("ftp://jf.local", "must start with http://"),
            ("/liveup", "must start with http://"),
            ("http://", "no host"),
            ("http://:8096", "no host"),
            ("https://", "no host"),
            ("http://user:pw@jf.local", "credentials"),
            ("http://jf.local/?api_key=x", "query"),
            ("http://jf.local/#top", "fragment"),
            ("http://jf local", "whitespace"),
        ] {
            let error = base_url(given).unwrap_err();
            assert!(error.contains(reason), "{given}: {error}");
        }
    }
}
