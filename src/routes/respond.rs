//! What a request gets: every routing decision, as one pure function of the request, the
//! route table and the access settings ([`respond`]). No I/O and no counters: the
//! connection carries the [`Reply`] out, counts it, and leaves the body out for `HEAD`.
//!
//! The checks run in this order, and the order is part of the contract:
//! 1. `OPTIONS *`, the server-wide OPTIONS of RFC 9110 §9.3.7: `204` with `Allow`. It
//!    names no resource and tells only the methods, so it needs no credentials.
//! 2. A CORS preflight (any `OPTIONS`, with `--allow-origin`): `204` with the
//!    `Access-Control-*` headers, before authentication, because browsers send
//!    preflights without credentials.
//! 3. Authentication (`--auth`): `401` with the challenge, before the routes, so a client
//!    without credentials learns nothing about which paths exist.
//! 4. The route: `404` for a path nobody serves. A server with exactly one stream also
//!    answers µStreamer's paths for it, unless a stream took them: `/stream` (its
//!    stream) and `/snapshot` (its snapshot), so dashboards set up for µStreamer
//!    (Mainsail, crowsnest, Home Assistant) need only the address.
//! 5. The method: `405` with `Allow` (`/quit` takes `GET` only; everything else `GET`
//!    and `HEAD`, plus `OPTIONS` when CORS answers preflights).
//! 6. The route's answer. A stream takes `?action=stream` (the default) or
//!    `?action=snapshot` (its latest image: `404` when it has none; a live stream
//!    before its first frame waits for it, [`Reply::AwaitFrame`], and a live stream
//!    that ended with none answers `404`); any other action is a
//!    `400`. Other query parameters are ignored, so the ones pollers add to defeat
//!    caches (`?timestamp=…`, `?bypassCache=…`, `?_=…`, a bare `?1234` or `&1234`) are
//!    harmless. A stream with the `busy_page` fault answers its stream requests with a
//!    busy page.
//!
//! A `PUT` or `POST` to a `push` stream is decided before step 3, by the stream's own
//! rule ([`Access::allows_publisher`]: its `token=`, or the server's credentials): a
//! publisher is [`Reply::Publish`], else `401`. Anywhere else those methods go through
//! the steps above like any other (`401`, `404`, `405`; a push stream's `Allow` names
//! `PUT, POST` too).
//!
//! Every answer carries the access settings' header lines (CORS), as every response does.

use std::rc::Rc;

use crate::clock::Micros;
use crate::http::{Method, Request, Status};
use crate::routes::access::{self, Access};
use crate::routes::stats::Counters;
use crate::routes::{Route, Routes, view};
use crate::stream::multipart::Part;
use crate::stream::{Live, Stream};

/// What a request gets.
#[derive(Debug)]
pub enum Reply {
    /// A short `text/plain` answer (or a bodiless `204`); `extra`: its header lines,
    /// each ending in CRLF.
    Answer { status: Status, extra: String },
    /// A `200` with a page made for this request.
    Page(Page),
    /// A `200` with the stream.
    Stream {
        stream: Rc<Stream>,
        options: StreamOptions,
    },
    /// A `200` with a busy page instead of the stream (the `busy_page` fault).
    Busy,
    /// A `200` with this image alone.
    Snapshot(Rc<Part>),
    /// A snapshot of a live stream with no frame yet: the connection waits for the
    /// first one (and an on-demand input starts for it), then answers as
    /// [`Reply::Snapshot`], or `503` with `Retry-After` if none comes in time.
    AwaitFrame(Rc<Stream>),
    /// `GET /quit`: a `202`, and the server stops gracefully.
    Quit,
    /// A `PUT` or `POST` to a `push` stream by an allowed publisher: the connection
    /// reads the body into the stream (`409` if another publisher is at it), then
    /// answers `204`.
    Publish(Rc<Stream>),
}

impl Reply {
    /// A short answer carrying only the headers every response carries.
    pub fn answer(status: Status, access: &Access) -> Reply {
        Reply::Answer {
            status,
            extra: access.headers().to_owned(),
        }
    }

    /// `503` with `Retry-After`: past the client cap, or a live snapshot before the
    /// first frame; the client should come back shortly.
    pub fn retry_later(access: &Access) -> Reply {
        Reply::Answer {
            status: Status::ServiceUnavailable,
            extra: format!("Retry-After: 1\r\n{}", access.headers()),
        }
    }
}

/// A page made for the request that asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/stats`: the counters as JSON.
    Stats,
    /// `/metrics`: the counters in the Prometheus text format.
    Metrics,
    /// `/view`: every image stream on one HTML page.
    View,
}

impl Page {
    pub fn content_type(self) -> &'static str {
        match self {
            Page::Stats => "application/json",
            Page::Metrics => "text/plain; version=0.0.4; charset=utf-8",
            Page::View => "text/html; charset=utf-8",
        }
    }

    /// The page's body; `now`: the server's uptime.
    pub fn render(self, stats: &Counters, now: Micros, routes: &Routes) -> String {
        match self {
            Page::Stats => stats.to_json(now, routes),
            Page::Metrics => stats.to_metrics(now, routes),
            Page::View => view::page(routes),
        }
    }
}

/// Per-request switches for the browsers' quirks (query parameters, as ustreamer names
/// them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// `advance_headers=1`: send each part's header block right after the previous part.
    /// Chrome shows a part only once the next part's headers have arrived
    /// (crbug.com/527446), so without this it lags one part behind.
    pub advance_headers: bool,
    /// `dual_final_frames=1`: send a finished stream's last part twice, so Chrome shows it.
    pub dual_final: bool,
}

impl StreamOptions {
    /// The query's switches; a browser's image request (`Request::image_request`) has
    /// both on unless the query turns them off, so a plain `<img src=…>` shows each
    /// frame as it arrives, while every other client keeps plain parts with
    /// `Content-Length` first (many readers require it).
    fn of(request: &Request<'_>) -> StreamOptions {
        let switch = |name| match request.query_param(name) {
            Some("1" | "true" | "yes") => true,
            Some("0" | "false" | "no") => false,
            _ => request.image_request,
        };
        StreamOptions {
            advance_headers: switch("advance_headers"),
            dual_final: switch("dual_final_frames"),
        }
    }
}

/// What `request` gets (see the module header for the order of the checks).
pub fn respond(request: &Request<'_>, routes: &Routes, access: &Access) -> Reply {
    if request.method == Method::Options && request.path == "*" {
        return Reply::Answer {
            status: Status::NoContent,
            extra: format!("Allow: {}\r\n{}", access.allowed_methods(), access.headers()),
        };
    }
    if request.method == Method::Options && access.cors_enabled() {
        return Reply::Answer {
            status: Status::NoContent,
            extra: access.preflight_headers(),
        };
    }
    if matches!(request.method, Method::Put | Method::Post) {
        if let Some(reply) = publish(request, routes, access) {
            return reply;
        }
    }
    if !access.allows(request.authorization) {
        return Reply::Answer {
            status: Status::Unauthorized,
            extra: format!("{}{}", access::CHALLENGE, access.headers()),
        };
    }
    let (route, action) = match routes.get(&request.path) {
        Some(route) => (route, request.query_param("action")),
        None => match ustreamer_alias(&request.path, routes) {
            Some(found) => found,
            None => return Reply::answer(Status::NotFound, access),
        },
    };
    let (allowed, method_ok) = match route {
        Route::Quit => ("GET", request.method == Method::Get),
        // A push stream's other methods (a publisher's went to `publish`).
        Route::Stream(stream) if stream.as_live().and_then(Live::push_port).is_some() => (
            access.allowed_methods_with_publish(),
            matches!(request.method, Method::Get | Method::Head),
        ),
        _ => (
            access.allowed_methods(),
            matches!(request.method, Method::Get | Method::Head),
        ),
    };
    if !method_ok {
        return Reply::Answer {
            status: Status::MethodNotAllowed,
            extra: format!("Allow: {allowed}\r\n{}", access.headers()),
        };
    }
    match route {
        Route::Quit => Reply::Quit,
        Route::Stats => Reply::Page(Page::Stats),
        Route::Metrics => Reply::Page(Page::Metrics),
        Route::View => Reply::Page(Page::View),
        Route::Stream(stream) => match action {
            None | Some("stream") if stream.is_busy() => Reply::Busy,
            None | Some("stream") => Reply::Stream {
                stream: stream.clone(),
                options: StreamOptions::of(request),
            },
            Some("snapshot") => snapshot(stream.clone(), access),
            Some(_) => Reply::answer(Status::BadRequest, access),
        },
    }
}

/// A `PUT` or `POST`: to a `push` stream, published (or `401` for a publisher without
/// the credentials or the stream's token); `None` elsewhere (the other checks answer it:
/// `401`, `404`, `405`).
fn publish(request: &Request<'_>, routes: &Routes, access: &Access) -> Option<Reply> {
    let Some(Route::Stream(stream)) = routes.get(&request.path) else {
        return None;
    };
    let port = stream.as_live()?.push_port()?;
    let query = request.query_param("token");
    if !access.allows_publisher(port.token(), request.authorization, query) {
        return Some(Reply::Answer {
            status: Status::Unauthorized,
            extra: format!("{}{}", access::CHALLENGE, access.headers()),
        });
    }
    Some(Reply::Publish(stream.clone()))
}

/// µStreamer's `/stream` and `/snapshot`, for the one stream of a server that has one:
/// its route and the action the path stands for.
fn ustreamer_alias<'r>(path: &str, routes: &'r Routes) -> Option<(&'r Route, Option<&'static str>)> {
    let action = match path {
        "/stream" => "stream",
        "/snapshot" => "snapshot",
        _ => return None,
    };
    routes.only_stream().map(|route| (route, Some(action)))
}

/// `?action=snapshot`: the stream's latest image.
fn snapshot(stream: Rc<Stream>, access: &Access) -> Reply {
    match (stream.snapshot(), stream.as_live()) {
        (Some(part), _) => Reply::Snapshot(part),
        // A live stream before its first frame: wait for it.
        (None, Some(live)) if !live.is_ended() => Reply::AwaitFrame(stream),
        (None, _) => Reply::answer(Status::NotFound, access),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http;
    use crate::stream::PartSpec;
    use crate::stream::fault::Faults;
    use crate::stream::input::push::PushSpec;

    /// The server's configurations the table runs under.
    #[derive(Clone, Copy, Debug)]
    enum Setup {
        /// No options but `--allow-quit`.
        Open,
        /// Without `--allow-quit`.
        NoQuit,
        /// `--auth user:pass`.
        Auth,
        /// `--allow-origin *`.
        Cors,
        /// `--auth user:pass --allow-origin https://example.org`.
        AuthCors,
    }

    /// `Authorization` for `user:pass`.
    const GOOD: &str = "Basic dXNlcjpwYXNz";
    const BAD: &str = "Basic dXNlcjpwYXNx";

    fn routes(quit: bool) -> Routes {
        let mut routes = Routes::default();
        let image = [PartSpec::new("image/png", "png", 100)];
        let text = [PartSpec::new("text/plain", "text", 100)];
        routes.add(
            "/",
            Route::Stream(Rc::new(Stream::scripted(image.to_vec(), 0, None, "").unwrap())),
        );
        routes.add(
            "/text",
            Route::Stream(Rc::new(Stream::scripted(text.to_vec(), 0, None, "").unwrap())),
        );
        routes.add("/live", Route::Stream(Rc::new(Stream::live("").unwrap())));
        for (path, token) in [("/push", None), ("/tok", Some("s3".to_owned()))] {
            let pushed = Stream::pushed("", &PushSpec { token }, 1 << 20).unwrap();
            routes.add(path, Route::Stream(Rc::new(pushed)));
        }
        let busy = Stream::scripted(image.to_vec(), 0, None, "").unwrap();
        let busy = busy
            .with_faults(Faults::parse(["busy_page"]).unwrap(), "")
            .unwrap();
        routes.add("/busy", Route::Stream(Rc::new(busy)));
        routes.add("/stats", Route::Stats);
        routes.add("/metrics", Route::Metrics);
        routes.add("/view", Route::View);
        if quit {
            routes.add("/quit", Route::Quit);
        }
        routes
    }

    fn access(setup: Setup) -> Access {
        match setup {
            Setup::Open | Setup::NoQuit => Access::default(),
            Setup::Auth => Access::new(Some("user:pass"), None),
            Setup::Cors => Access::new(None, Some("*")),
            Setup::AuthCors => Access::new(Some("user:pass"), Some("https://example.org")),
        }
    }

    /// A reply in a few words; an answer's header lines follow its status, without the
    /// CORS lines every answer carries (checked here on the way).
    fn summary(reply: &Reply, access: &Access) -> String {
        match reply {
            Reply::Answer { status, extra } => {
                assert!(extra.contains(access.headers()), "{extra:?} lacks the CORS lines");
                let own = extra.replacen(access.headers(), "", 1);
                let lines: Vec<&str> = own.split_terminator("\r\n").collect();
                format!("{} {}", status.code(), lines.join(" | "))
                    .trim_end()
                    .to_owned()
            }
            Reply::Page(page) => format!("page {page:?}"),
            Reply::Stream { options, .. } => format!(
                "stream{}{}",
                if options.advance_headers { " advance" } else { "" },
                if options.dual_final { " dual" } else { "" }
            ),
            Reply::Snapshot(part) => format!("snapshot {}", String::from_utf8_lossy(part.body())),
            Reply::AwaitFrame(_) => "await frame".to_owned(),
            Reply::Quit => "quit".to_owned(),
            Reply::Busy => "busy".to_owned(),
            Reply::Publish(_) => "publish".to_owned(),
        }
    }

    const CHALLENGE: &str = "401 WWW-Authenticate: Basic realm=\"mixreplace\", charset=\"UTF-8\"";
    const PREFLIGHT: &str = "204 Access-Control-Allow-Methods: GET, HEAD | \
                             Access-Control-Allow-Headers: Authorization | Access-Control-Max-Age: 600";

    #[test]
    fn every_route_and_answer() {
        use Setup::*;
        // (setup, request line, Authorization, what it gets)
        let table: &[(Setup, &str, Option<&str>, &str)] = &[
            // Streams, their aliases and switches; HEAD gets what GET gets.
            (Open, "GET /", None, "stream"),
            (Open, "HEAD /", None, "stream"),
            (Open, "GET /?action=stream", None, "stream"),
            (
                Open,
                "GET /?advance_headers=1&dual_final_frames=true",
                None,
                "stream advance dual",
            ),
            (
                Open,
                "GET /?advance_headers=yes&dual_final_frames=0",
                None,
                "stream advance",
            ),
            (Open, "GET /?action=snapshot", None, "snapshot png"),
            (Open, "HEAD /?action=snapshot", None, "snapshot png"),
            (Open, "GET /?action=record", None, "400"),
            (Open, "HEAD /?action=record", None, "400"),
            // A stream with no image has no snapshot; a live one has none yet.
            (Open, "GET /text?action=snapshot", None, "404"),
            (Open, "GET /live?action=snapshot", None, "await frame"),
            (Open, "GET /live", None, "stream"),
            // busy_page: the page for the stream, its snapshot as ever.
            (Open, "GET /busy", None, "busy"),
            (Open, "HEAD /busy?action=stream", None, "busy"),
            (Open, "GET /busy?action=snapshot", None, "snapshot png"),
            // Pages.
            (Open, "GET /stats", None, "page Stats"),
            (Open, "HEAD /stats", None, "page Stats"),
            (Open, "GET /metrics", None, "page Metrics"),
            (Open, "GET /view", None, "page View"),
            (Open, "GET /view?x=1", None, "page View"),
            // Paths nobody serves; methods a route does not take.
            (Open, "GET /nowhere", None, "404"),
            (Open, "HEAD /nowhere", None, "404"),
            (Open, "GET /stats/", None, "404"),
            (Open, "POST /", None, "405 Allow: GET, HEAD"),
            (Open, "DELETE /stats", None, "405 Allow: GET, HEAD"),
            (Open, "OPTIONS /", None, "405 Allow: GET, HEAD"),
            (Open, "OPTIONS /nowhere", None, "404"),
            (Open, "OPTIONS *", None, "204 Allow: GET, HEAD"),
            // /quit only with --allow-quit, and only by GET.
            (Open, "GET /quit", None, "quit"),
            (Open, "GET /quit?now", None, "quit"),
            (Open, "HEAD /quit", None, "405 Allow: GET"),
            (Open, "POST /quit", None, "405 Allow: GET"),
            (NoQuit, "GET /quit", None, "404"),
            (NoQuit, "GET /", None, "stream"),
            // Authentication comes before the routes and the methods.
            (Auth, "GET /", None, CHALLENGE),
            (Auth, "GET /", Some(BAD), CHALLENGE),
            (Auth, "GET /", Some(GOOD), "stream"),
            (Auth, "HEAD /stats", None, CHALLENGE),
            (Auth, "GET /nowhere", None, CHALLENGE),
            (Auth, "GET /nowhere", Some(GOOD), "404"),
            (Auth, "POST /", None, CHALLENGE),
            (Auth, "POST /", Some(GOOD), "405 Allow: GET, HEAD"),
            (Auth, "OPTIONS /", None, CHALLENGE),
            (Auth, "GET /quit", Some(GOOD), "quit"),
            (Auth, "GET /quit", None, CHALLENGE),
            (Auth, "OPTIONS *", None, "204 Allow: GET, HEAD"),
            // With CORS every OPTIONS is a preflight, before the routes.
            (Cors, "OPTIONS /", None, PREFLIGHT),
            (Cors, "OPTIONS /nowhere", None, PREFLIGHT),
            (Cors, "OPTIONS *", None, "204 Allow: GET, HEAD, OPTIONS"),
            (Cors, "POST /", None, "405 Allow: GET, HEAD, OPTIONS"),
            (Cors, "POST /quit", None, "405 Allow: GET"),
            (Cors, "GET /nowhere", None, "404"),
            (Cors, "GET /live?action=snapshot", None, "await frame"),
            (Cors, "GET /", None, "stream"),
            // ... and before authentication: preflights carry no credentials.
            (AuthCors, "OPTIONS /", None, PREFLIGHT),
            (AuthCors, "GET /", None, CHALLENGE),
            (AuthCors, "GET /", Some(GOOD), "stream"),
            (AuthCors, "OPTIONS *", None, "204 Allow: GET, HEAD, OPTIONS"),
            // push streams: PUT and POST publish, by the stream's own rule; GET watches.
            (Open, "PUT /push", None, "publish"),
            (Open, "POST /push?x=1", None, "publish"),
            (Open, "GET /push", None, "stream"),
            (Open, "GET /push?action=snapshot", None, "await frame"),
            (Open, "DELETE /push", None, "405 Allow: GET, HEAD, PUT, POST"),
            (
                Cors,
                "DELETE /push",
                None,
                "405 Allow: GET, HEAD, OPTIONS, PUT, POST",
            ),
            (Open, "PUT /live", None, "405 Allow: GET, HEAD"),
            (Open, "POST /stats", None, "405 Allow: GET, HEAD"),
            (Open, "PUT /nowhere", None, "404"),
            (Open, "PUT /tok", None, CHALLENGE),
            (Open, "PUT /tok?token=s3", None, "publish"),
            (Open, "PUT /tok?token=s", None, CHALLENGE),
            (Open, "PUT /tok?token=", None, CHALLENGE),
            (Open, "PUT /tok", Some("Bearer s3"), "publish"),
            (Open, "POST /tok", Some("bearer  s3 "), "publish"),
            (Open, "PUT /tok", Some("Bearer s33"), CHALLENGE),
            (Open, "PUT /tok", Some(GOOD), CHALLENGE),
            (Open, "GET /tok", None, "stream"),
            (Auth, "PUT /push", None, CHALLENGE),
            (Auth, "PUT /push", Some(BAD), CHALLENGE),
            (Auth, "PUT /push", Some(GOOD), "publish"),
            (Auth, "PUT /push?token=s3", None, CHALLENGE),
            (Auth, "PUT /tok", Some(GOOD), "publish"),
            (Auth, "PUT /tok?token=s3", None, "publish"),
            (Auth, "POST /tok", Some("Bearer s3"), "publish"),
            (Auth, "PUT /tok", Some(BAD), CHALLENGE),
            (Auth, "GET /tok?token=s3", None, CHALLENGE),
            (Auth, "PUT /nowhere", None, CHALLENGE),
            (Cors, "PUT /push", None, "publish"),
        ];
        let open_routes = routes(true);
        let no_quit_routes = routes(false);
        for &(setup, line, authorization, expected) in table {
            let routes = match setup {
                Setup::NoQuit => &no_quit_routes,
                _ => &open_routes,
            };
            let access = access(setup);
            let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
            let head = format!("{line} HTTP/1.1\r\nHost: t\r\n{auth}\r\n");
            let request = http::parse(head.as_bytes()).unwrap().unwrap();
            let reply = respond(&request, routes, &access);
            assert_eq!(
                summary(&reply, &access),
                expected,
                "{setup:?} {line} {authorization:?}"
            );
        }
    }

    #[test]
    fn a_browsers_image_request_gets_the_switches_unless_its_query_says_no() {
        let routes = routes(true);
        let access = Access::default();
        let chromium = "Accept: image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8\r\n";
        for (target, headers, expected) in [
            ("/live", chromium, "stream advance dual"),
            ("/", "Sec-Fetch-Dest: image\r\n", "stream advance dual"),
            ("/live?advance_headers=0", chromium, "stream dual"),
            ("/live?dual_final_frames=no", chromium, "stream advance"),
            ("/live", "Accept: */*\r\n", "stream"),
            ("/live?advance_headers=1", "Accept: */*\r\n", "stream advance"),
        ] {
            let head = format!("GET {target} HTTP/1.1\r\nHost: t\r\n{headers}\r\n");
            let request = http::parse(head.as_bytes()).unwrap().unwrap();
            let reply = respond(&request, &routes, &access);
            assert_eq!(summary(&reply, &access), expected, "{target} {headers:?}");
        }
    }

    #[test]
    fn ustreamer_paths_name_the_only_stream_and_cache_busters_are_ignored() {
        let mut one = Routes::default();
        let image = [PartSpec::new("image/png", "png", 100)];
        one.add(
            "/cam",
            Route::Stream(Rc::new(Stream::scripted(image.to_vec(), 0, None, "").unwrap())),
        );
        one.add("/stats", Route::Stats);
        let mut taken = routes(true);
        taken.add("/snapshot", Route::Stats);
        let access = Access::default();
        for (routes, line, expected) in [
            (&one, "GET /stream", "stream"),
            (&one, "HEAD /stream?advance_headers=1", "stream advance"),
            (&one, "GET /snapshot", "snapshot png"),
            (&one, "GET /snapshot?timestamp=1700000000000", "snapshot png"),
            (
                &one,
                "GET /snapshot?_=1700000000000&bypassCache=1",
                "snapshot png",
            ),
            (&one, "GET /snapshot?1700000000000", "snapshot png"),
            (&one, "GET /cam?action=snapshot&1700000000000", "snapshot png"),
            (&one, "GET /cam?1700000000000", "stream"),
            (&one, "POST /snapshot", "405 Allow: GET, HEAD"),
            (&one, "GET /stream/", "404"),
            // Several streams: no alias; a path a route took stays that route's.
            (&routes(true), "GET /snapshot", "404"),
            (&taken, "GET /snapshot", "page Stats"),
        ] {
            let head = format!("{line} HTTP/1.1\r\nHost: t\r\n\r\n");
            let request = http::parse(head.as_bytes()).unwrap().unwrap();
            assert_eq!(
                summary(&respond(&request, routes, &access), &access),
                expected,
                "{line}"
            );
        }
    }

    #[test]
    fn a_live_snapshot_is_the_current_frame() {
        let routes = routes(true);
        let Some(Route::Stream(live)) = routes.get("/live") else {
            panic!("no /live");
        };
        assert!(live.as_live().unwrap().publish(b"frame", 0));
        let request = http::parse(b"GET /live?action=snapshot HTTP/1.0\r\n\r\n")
            .unwrap()
            .unwrap();
        let access = Access::default();
        assert_eq!(
            summary(&respond(&request, &routes, &access), &access),
            "snapshot frame"
        );
    }

    #[test]
    fn pages_render_with_their_content_type() {
        let routes = routes(true);
        let stats = Counters::default();
        assert!(
            Page::Stats
                .render(&stats, 0, &routes)
                .starts_with("{\"uptime_s\"")
        );
        assert!(Page::Metrics.render(&stats, 0, &routes).contains("# TYPE"));
        assert!(Page::View.render(&stats, 0, &routes).contains("<img src=\"/\""));
        assert_eq!(Page::Stats.content_type(), "application/json");
        assert!(Page::View.content_type().starts_with("text/html"));
    }
}
