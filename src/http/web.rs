//! The web client: a chat page at `/`, compiled into the binary.
//!
//! The page (`src/http/web/`) is built on the roomcast.v1 SDK
//! (`clients/js/dist/`, committed, served under `/assets/sdk/`) and renders
//! everything from the server as text. It is served with a Content-Security-Policy that allows
//! only its own script and stylesheet, so even a mistake in the page could not
//! run injected markup.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::state::State;

const INDEX: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/roomcast.js");
const STYLE: &str = include_str!("web/roomcast.css");

/// The SDK's modules, as `tsc` built them (`clients/js/dist/`; a test fails
/// when they differ from a fresh build), served under [`SDK_DIR`].
const SDK: [(&str, &str); 8] = [
    ("index.js", include_str!("../../clients/js/dist/index.js")),
    ("admin.js", include_str!("../../clients/js/dist/admin.js")),
    (
        "backoff.js",
        include_str!("../../clients/js/dist/backoff.js"),
    ),
    ("client.js", include_str!("../../clients/js/dist/client.js")),
    ("room.js", include_str!("../../clients/js/dist/room.js")),
    (
        "emitter.js",
        include_str!("../../clients/js/dist/emitter.js"),
    ),
    ("errors.js", include_str!("../../clients/js/dist/errors.js")),
    ("token.js", include_str!("../../clients/js/dist/token.js")),
];
pub(super) const SDK_DIR: &str = "/assets/sdk/";

/// Paths the client's files are served under.
pub(super) const SCRIPT_PATH: &str = "/assets/roomcast.js";
pub(super) const STYLE_PATH: &str = "/assets/roomcast.css";

/// What the page may load: its own files, and WebSockets back to the server.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self' ws: wss:; base-uri 'none'; \
    form-action 'none'; frame-ancestors 'none'";

/// The page, with this server's routes filled in.
pub(super) fn index(state: &State) -> Response<Full<Bytes>> {
    let mut options = String::new();
    let mut routes = String::new();
    for route in &state.routes {
        let name = escape(&route.name);
        let is_default = *route.name == *state.config.default_route;
        let handler = match (&route.script, route.native) {
            (Some(script), _) => escape(script.name()),
            (None, Some(native)) => format!("native {native:?}").to_lowercase(),
            (None, None) => String::new(),
        };
        options.push_str(&format!(
            "      <option value=\"{name}\"{selected}>{name} ({handler})</option>\n",
            selected = if is_default { " selected" } else { "" },
        ));
        routes.push_str(&format!(
            "      <li><code>/{name}</code>, <code>/{name}/&lt;room&gt;</code> &rarr; <code>{handler}</code>{default}</li>\n",
            default = if is_default {
                " <em>(also <code>/</code>)</em>"
            } else {
                ""
            },
        ));
    }
    let page = INDEX
        .replace("{{route_options}}", &options)
        .replace("{{routes}}", &routes);
    file(page.into(), "text/html; charset=utf-8")
}

/// One of the client's static files, if `path` names one.
pub(super) fn asset(path: &str) -> Option<Response<Full<Bytes>>> {
    match path {
        SCRIPT_PATH => Some(file(
            Bytes::from_static(SCRIPT.as_bytes()),
            "text/javascript; charset=utf-8",
        )),
        STYLE_PATH => Some(file(
            Bytes::from_static(STYLE.as_bytes()),
            "text/css; charset=utf-8",
        )),
        _ => {
            let name = path.strip_prefix(SDK_DIR)?;
            let (_, source) = SDK.iter().find(|(n, _)| *n == name)?;
            Some(file(
                Bytes::from_static(source.as_bytes()),
                "text/javascript; charset=utf-8",
            ))
        }
    }
}

/// A file of a page: its type, no caching without revalidation, the strict CSP.
pub(crate) fn file(body: Bytes, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Small files, and a new binary may change them: always revalidate.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    resp
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What a page served with [`CSP`] must not hold: inline scripts or
/// styles, inline event handlers (` onclick=` and the like): the CSP would
/// block them.
#[cfg(test)]
pub(crate) fn assert_no_inline_code(html: &str) {
    assert!(!html.contains("<script>") && !html.contains("<style"));
    let handler = html.split(" on").skip(1).find(|rest| {
        let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
        !name.is_empty() && rest[name.len()..].starts_with('=')
    });
    assert_eq!(handler, None);
}

/// A page's script `name` never turns server text into markup or code.
#[cfg(test)]
pub(crate) fn assert_never_parses_html(name: &str, source: &str) {
    for banned in [
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
    ] {
        assert!(!source.contains(banned), "{name} uses {banned}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_references_exactly_the_served_files() {
        assert!(INDEX.contains(&format!("src=\"{SCRIPT_PATH}\"")));
        assert!(INDEX.contains(&format!("href=\"{STYLE_PATH}\"")));
        assert_no_inline_code(INDEX);
    }

    #[test]
    fn the_client_never_parses_server_text_as_html() {
        let sources = SDK.iter().copied().chain([("roomcast.js", SCRIPT)]);
        for (name, source) in sources {
            assert_never_parses_html(name, source);
        }
    }

    #[test]
    fn every_module_the_sdk_imports_is_served() {
        assert!(SCRIPT.contains("from './sdk/index.js'"));
        for (name, source) in SDK {
            for import in source.split("from './").skip(1) {
                let module = import.split('\'').next().unwrap();
                assert!(
                    SDK.iter().any(|(n, _)| *n == module),
                    "{name} imports {module}, which is not served"
                );
            }
            assert!(asset(&format!("{SDK_DIR}{name}")).is_some());
        }
        assert!(asset("/assets/sdk/../web.rs").is_none());
    }
}
