//! `GET /view`: one page that shows every image stream in an `<img>` and links the others.
//!
//! Chrome and Safari no longer replace a top-level document with
//! `multipart/x-mixed-replace`, but they do render it inside `<img>`. The images ask for
//! `advance_headers=1` (Chrome shows a part only when the next part's headers arrive) and
//! `dual_final_frames=1` (so the last frame of a finished stream is shown too).

use std::fmt::Write as _;

use crate::routes::Routes;

pub fn page(routes: &Routes) -> String {
    let mut html = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>mixreplace</title>\n\
         <style>body{font-family:sans-serif;margin:1em}figure{display:inline-block;margin:0 1em 1em 0}\
         img{max-width:90vw;border:1px solid #ccc}</style></head><body>\n<h1>mixreplace</h1>\n",
    );
    let (images, others): (Vec<_>, Vec<_>) = routes.streams().partition(|(_, stream)| stream.is_images());
    for (path, _) in &images {
        let path = escape(path);
        let _ = writeln!(
            html,
            "<figure><img src=\"{path}?advance_headers=1&amp;dual_final_frames=1\" alt=\"{path}\">\
             <figcaption><a href=\"{path}\">{path}</a></figcaption></figure>"
        );
    }
    if !others.is_empty() {
        html.push_str("<ul>\n");
        for (path, _) in &others {
            let path = escape(path);
            let _ = writeln!(html, "<li><a href=\"{path}\">{path}</a></li>");
        }
        html.push_str("</ul>\n");
    }
    html.push_str("</body></html>\n");
    html
}

/// Paths come from the command line: escape them for HTML text and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
