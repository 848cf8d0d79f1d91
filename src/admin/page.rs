//! The operator view's page (`/admin`) and its files, compiled into the
//! binary (`src/admin/page/`): no CDN, no build step, the web client's
//! strict Content-Security-Policy, and everything from the server rendered
//! as text (the page never parses server text as HTML).

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;

use crate::http::page_file;

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/admin.js");
const STYLE: &str = include_str!("page/admin.css");

/// Where the page's files are served.
pub(crate) const ASSET_DIR: &str = "/admin/assets/";

/// The page.
pub(crate) fn index() -> Response<Full<Bytes>> {
    page_file(
        Bytes::from_static(INDEX.as_bytes()),
        "text/html; charset=utf-8",
    )
}

/// One of the page's files, if `path` names one.
pub(crate) fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    let (body, content_type) = match path.strip_prefix(ASSET_DIR)? {
        "admin.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "admin.css" => (STYLE, "text/css; charset=utf-8"),
        _ => return None,
    };
    Some(page_file(Bytes::from_static(body.as_bytes()), content_type))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{assert_never_parses_html, assert_no_inline_code};

    #[test]
    fn the_page_has_no_inline_code_and_never_parses_server_text_as_html() {
        assert!(INDEX.contains(&format!("src=\"{ASSET_DIR}admin.js\"")));
        assert!(INDEX.contains(&format!("href=\"{ASSET_DIR}admin.css\"")));
        assert_no_inline_code(INDEX);
        assert_never_parses_html("admin.js", SCRIPT);
        // Nor inline styles (the CSP's style-src blocks them too).
        assert!(!INDEX.contains(" style=") && !SCRIPT.contains("setAttribute('style'"));
        assert!(asset("/admin/assets/../mod.rs").is_none());
        // Built on the SDK, as the web client is (served under /assets/sdk/).
        assert!(SCRIPT.contains("from '/assets/sdk/index.js'"));
    }
}
