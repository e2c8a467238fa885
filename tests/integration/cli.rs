//! The command line: bad flags, a taken address, help and version, IPv6.

use crate::support::http::{check_stream_head, exchange};
use crate::support::server::{Server, check_refused, run_binary};
use crate::support::tools::skip_or_fail;

#[test]
fn a_bad_flag_or_value_exits_2_with_one_line_naming_it() {
    for (args, names) in [
        (&["--bogus"][..], &["--bogus"][..]),
        (&["--listen", "nonsense"], &["--listen", "nonsense"]),
        (&["--listen"], &["--listen"]),
        (
            &["--listen", "127.0.0.1:0", "--head-timeout", "0"],
            &["--head-timeout"],
        ),
        (
            &["--listen", "127.0.0.1:0", "--send-timeout", "soon"],
            &["--send-timeout", "soon"],
        ),
        (
            &["--listen", "127.0.0.1:0", "--stream", "/x=video"],
            &["--stream", "video"],
        ),
        (
            &["--listen", "127.0.0.1:0", "--stream", "/stats=demo"],
            &["--stream", "/stats"],
        ),
        (&["--listen", "127.0.0.1:0", "stray"], &["stray"]),
        (
            &["--listen", "127.0.0.1:0", "--stream", "/c=testcard,size=8x8"],
            &["testcard", "size", "8x8"],
        ),
        (
            &["--listen", "127.0.0.1:0", "--stream", "/c=testcard,quality=0"],
            &["testcard", "quality", "1 to 100"],
        ),
        (
            &[
                "--listen",
                "127.0.0.1:0",
                "--stream",
                "/c=testcard,size=1920x1080,frames=73",
            ],
            &["testcard", "frames", "1 to 72"],
        ),
    ] {
        check_refused(&run_binary(args, &[]), &format!("{args:?}"), names);
    }
}

#[test]
fn an_address_in_use_exits_1_with_one_line() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let done = run_binary(&["--listen", &addr], &[("RUST_LOG", "off")]);
    let stderr = done.stderr_text();
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&addr), "{stderr:?} does not name {addr}");
    assert!(stderr.to_lowercase().contains("in use"), "{stderr:?}");
    assert!(done.stdout.is_empty(), "{}", done.stdout_text());
}

#[test]
fn help_and_version_exit_0() {
    let done = run_binary(&["--help"], &[]);
    assert_eq!(done.status.code(), Some(0));
    assert!(
        done.stdout_text().starts_with("Usage: mixreplace"),
        "{}",
        done.stdout_text()
    );
    let done = run_binary(&["--version"], &[]);
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(
        done.stdout_text(),
        format!("mixreplace {}\n", env!("CARGO_PKG_VERSION"))
    );
}

/// Every `--listen` is served: `[::1]:0` beside the helpers' `127.0.0.1:0`.
#[test]
fn it_listens_on_the_ipv6_loopback_too() {
    if let Err(e) = std::net::TcpListener::bind("[::1]:0") {
        skip_or_fail(&format!(
            "no IPv6 loopback here ({e}); enable it with sysctl net.ipv6.conf.lo.disable_ipv6=0"
        ));
        return;
    }
    let server = Server::start(&["--listen", "[::1]:0"]);
    let v6: std::net::SocketAddr = server.listening()[1]
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix('/')?.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", server.listening()));
    assert!(v6.is_ipv6() && v6.ip().is_loopback(), "{v6}");
    let response = exchange(v6, b"HEAD / HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    check_stream_head(&response);
    assert_eq!(
        server.stats().answers(200),
        2,
        "the HEAD and this /stats, over IPv6"
    );
}
