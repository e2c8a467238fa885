//! `GET /view`: one page that shows every image stream in an `<img>` and links the others,
//! each stream's faults on purpose marked beside it.
//!
//! Chrome and Safari no longer replace a top-level document with
//! `multipart/x-mixed-replace`, but they do render it inside `<img>`. The images link the
//! plain stream URLs: a browser's image request gets `advance_headers` (Chrome shows a
//! part only when the next part's headers arrive) and `dual_final_frames` (so the last
//! frame of a finished stream is shown too) without asking (`respond::StreamOptions`),
//! and a URL copied from the page into a script gets plain parts with `Content-Length`.
//!
//! Paths come from the command line and may hold any character but controls: in a link
//! they are percent-encoded (`href`; the server decodes requests back before routing),
//! and in text HTML-escaped (`escape`).

use std::fmt::Write as _;

use crate::routes::Routes;
use crate::stream::Stream;

pub fn page(routes: &Routes) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mixreplace</title>\n\
         <style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:0 1em 1em 0}\
         img{max-width:90vw;border:1px solid #ccc}.faults{color:#b00}</style></head><body>\n<h1>mixreplace</h1>\n",
    );
    let (images, others): (Vec<_>, Vec<_>) = routes.streams().partition(|(_, stream)| stream.is_images());
    for (path, stream) in &images {
        let (link, text, faults) = (href(path), escape(path), fault_mark(stream));
        let _ = writeln!(
            html,
            "<figure><img src=\"{link}\" alt=\"{text}\">\
             <figcaption><a href=\"{link}\">{text}</a>{faults}</figcaption></figure>"
        );
    }
    if !others.is_empty() {
        html.push_str("<ul>\n");
        for (path, stream) in &others {
            let (link, text, faults) = (href(path), escape(path), fault_mark(stream));
            let _ = writeln!(html, "<li><a href=\"{link}\">{text}</a>{faults}</li>");
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// A stream's faults on purpose, marked so nobody takes them for a bug: empty for most.
fn fault_mark(stream: &Stream) -> String {
    let faults = stream.faults();
    if faults.is_empty() {
        return String::new();
    }
    let names: Vec<String> = faults.iter().map(|f| escape(&f.to_string())).collect();
    format!(
        " <small class=\"faults\">faults on purpose: {}</small>",
        names.join(", ")
    )
}

/// A path as a link: percent-encoded where RFC 3986 does not allow a character in a
/// path (space, `?`, `#`, `%`, `{`, non-ASCII …), so a browser sends it as written here,
/// then escaped for the HTML attribute (`&`, `'`).
fn href(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    escape(&out)
}

/// A path as text, escaped for HTML text and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;

    #[test]
    fn links_are_percent_encoded_and_decode_back() {
        for (path, link) in [
            ("/cam", "/cam"),
            ("/caméra", "/cam%C3%A9ra"),
            ("/cam{1}", "/cam%7B1%7D"),
            ("/my cam", "/my%20cam"),
            ("/a?b#c%d", "/a%3Fb%23c%25d"),
            ("/<\"&'>", "/%3C%22&'%3E"),
        ] {
            assert_eq!(href(path), escape(link));
            assert_eq!(http::percent_decode(link).as_deref(), Some(path));
        }
        assert_eq!(escape("/<\"&'>"), "/&lt;&quot;&amp;&#39;&gt;");
    }
}
