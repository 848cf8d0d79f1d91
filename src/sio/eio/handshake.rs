//! The handshake request an Engine.IO connection keeps: what admission and
//! scripts see when a namespace connects, long after hyper's request is gone.

use std::net::SocketAddr;

use hyper::{HeaderMap, Uri};

/// The handshake request, for admission and scripts when a namespace
/// connects: its URI and headers, copied into one allocation of their own
/// (hyper's parsed request shares the connection's read buffer: keeping
/// its parts would keep kilobytes of buffer alive per handshake), and
/// rebuilt when asked for.
pub(crate) struct Handshake {
    /// The URI, then `\n` + `name:value` per header.
    text: Box<[u8]>,
    pub(crate) peer: Option<SocketAddr>,
}

impl Handshake {
    pub(crate) fn new(uri: &Uri, headers: &HeaderMap, peer: Option<SocketAddr>) -> Handshake {
        let target = uri.path_and_query().map_or("/", |p| p.as_str());
        let size = target.len()
            + headers
                .iter()
                .map(|(k, v)| 2 + k.as_str().len() + v.len())
                .sum::<usize>();
        let mut text = Vec::with_capacity(size);
        text.extend_from_slice(target.as_bytes());
        for (k, v) in headers {
            // Neither names nor values hold a newline; names hold no colon.
            text.push(b'\n');
            text.extend_from_slice(k.as_str().as_bytes());
            text.push(b':');
            text.extend_from_slice(v.as_bytes());
        }
        Handshake {
            text: text.into_boxed_slice(),
            peer,
        }
    }

    fn parts(&self) -> impl Iterator<Item = &[u8]> {
        self.text.split(|&b| b == b'\n')
    }

    /// The request's URI (path and query).
    pub(crate) fn uri(&self) -> Uri {
        let target = self.parts().next().unwrap_or(b"/");
        Uri::try_from(target).unwrap_or_default()
    }

    /// The request's headers.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in self.parts().skip(1) {
            let Some(colon) = line.iter().position(|&b| b == b':') else {
                continue;
            };
            let name = hyper::header::HeaderName::from_bytes(&line[..colon]);
            let value = hyper::header::HeaderValue::from_bytes(&line[colon + 1..]);
            if let (Ok(name), Ok(value)) = (name, value) {
                headers.append(name, value);
            }
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handshake_keeps_its_uri_and_headers() {
        let req = hyper::Request::get("/socket.io/?EIO=4&transport=polling&room=x")
            .header("origin", "http://a.test")
            .header("x-custom", "1")
            .header("x-custom", "2")
            .body(())
            .unwrap();
        let h = Handshake::new(req.uri(), req.headers(), None);
        assert_eq!(h.uri(), "/socket.io/?EIO=4&transport=polling&room=x");
        let headers = h.headers();
        assert_eq!(headers["origin"], "http://a.test");
        let custom: Vec<_> = headers.get_all("x-custom").iter().collect();
        assert_eq!(custom, ["1", "2"]);
        assert_eq!(h.text.len(), 85, "one allocation, as long as the head");
    }
}
