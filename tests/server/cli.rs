//! The command line: bad flags, a taken address, help and version, IPv6.

use crate::common::*;

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
    ] {
        let done = run_cli(args, &[]);
        let stderr = done.stderr_text();
        assert_eq!(done.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        for name in names {
            assert!(stderr.contains(name), "{args:?}: {stderr:?} does not name {name}");
        }
        assert!(done.stdout.is_empty(), "{args:?}: {}", done.stdout_text());
    }
}

#[test]
fn an_address_in_use_exits_1_with_one_line() {
    let server = Server::start(&[]);
    let addr = server.addr().to_string();
    let done = run_cli(&["--listen", &addr], &[("RUST_LOG", "off")]);
    let stderr = done.stderr_text();
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains(&addr), "{stderr:?} does not name {addr}");
    assert!(stderr.to_lowercase().contains("in use"), "{stderr:?}");
    assert!(done.stdout.is_empty(), "{}", done.stdout_text());
}

#[test]
fn help_and_version_exit_0() {
    let done = run_cli(&["--help"], &[]);
    assert_eq!(done.status.code(), Some(0));
    assert!(
        done.stdout_text().starts_with("Usage: mixreplace"),
        "{}",
        done.stdout_text()
    );
    let done = run_cli(&["--version"], &[]);
    assert_eq!(done.status.code(), Some(0));
    assert_eq!(
        done.stdout_text(),
        format!("mixreplace {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn it_listens_on_the_ipv6_loopback_too() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIPPED: no IPv6 loopback here");
        return;
    }
    let server = Server::start(&["--listen", "[::1]:0"]);
    assert!(server.addr().is_ipv6());
    let bytes = exchange(server.addr(), b"HEAD / HTTP/1.1\r\nHost: [::1]\r\n\r\n");
    let (head, _) = split_head(&bytes).unwrap_or_else(|e| panic!("{e}"));
    check_stream_head(&head, "HTTP/1.1");
}
