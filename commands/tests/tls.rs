//! TLS and mutual TLS between `--server` and `serve --listen`: handshakes
//! that should work do, and give the local output; a wrong CA, an expired
//! certificate and a missing client certificate fail saying so; plain TCP
//! beyond loopback needs --insecure on both sides.

mod common;

use common::pki::pki;
use common::{CliLab, Server, free_port};

use std::process::Output;

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn tls_and_mutual_tls() {
    let lab = CliLab::up();
    let (fs, dir) = (&lab.fs, &lab.dir);
    let run = |args: &[&str]| lab.run(args);
    assert!(run(&["lab", "traffic"]).status.success(), "conntrack entries to list");
    let pki = pki(dir.path());
    let socket = dir.path().join("dpdbg.sock");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let local = run(&["bpf", "endpoint", "list", "-o", "json"]);
    assert!(local.status.success());
    let (ca, other, cert, key) =
        (pki.path("ca.pem"), pki.path("other-ca.pem"), pki.path("client.pem"), pki.path("client.key"));

    // TLS: the right CA gets the local output; the wrong one is refused, saying why.
    {
        let _s = Server::start(
            &fs.0,
            &socket,
            &["--listen", &addr, "--tls-cert", &pki.path("server.pem"), "--tls-key", &pki.path("server.key")],
        );
        let o = run(&["--server", &addr, "--tls-ca", &ca, "health"]);
        assert!(o.status.success(), "{}", err(&o));
        let o = run(&["--server", &format!("localhost:{port}"), "--tls-ca", &ca, "health"]);
        assert!(o.status.success(), "by name: {}", err(&o));
        // Without client certificates TLS serves what Hubble serves, not
        // dpdbg's commands (they need mutual TLS, below).
        let o = run(&["--server", &addr, "--tls-ca", &ca, "bpf", "endpoint", "list", "-o", "json"]);
        assert_eq!(o.status.code(), Some(1), "{}", err(&o));
        assert!(err(&o).contains("client certificate"), "{}", err(&o));
        let o = run(&["--server", &addr, "--tls-ca", &other, "bpf", "endpoint", "list"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).contains("TLS with dpdbg serve at"), "{}", err(&o));
        assert!(err(&o).contains("UnknownIssuer"), "{}", err(&o));
        let o = run(&["--server", &addr, "--tls-ca", &ca, "--tls-server-name", "elsewhere", "bpf", "endpoint", "list"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).contains("certificate not valid for name \"elsewhere\""), "{}", err(&o));
        let o = run(&["--server", &addr, "--tls-ca", &pki.path("not-pem.pem"), "bpf", "endpoint", "list"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).contains("not a PEM file"), "{}", err(&o));
        // The other services take the same flags.
        let o = run(&["--server", &addr, "--tls-ca", &ca, "observe", "--last", "1"]);
        assert!(o.status.success(), "{}", err(&o));
    }

    // An expired server certificate.
    {
        let _s = Server::start(
            &fs.0,
            &socket,
            &["--listen", &addr, "--tls-cert", &pki.path("expired.pem"), "--tls-key", &pki.path("expired.key")],
        );
        let o = run(&["--server", &addr, "--tls-ca", &ca, "bpf", "endpoint", "list"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).to_ascii_lowercase().contains("expired"), "{}", err(&o));
    }

    // Mutual TLS: a client certificate from the CA gets in, none does not.
    {
        let _s = Server::start(
            &fs.0,
            &socket,
            &[
                "--listen",
                &addr,
                "--tls-cert",
                &pki.path("server.pem"),
                "--tls-key",
                &pki.path("server.key"),
                "--tls-client-ca",
                &ca,
            ],
        );
        let o = run(&[
            "--server",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
            "bpf",
            "endpoint",
            "list",
            "-o",
            "json",
        ]);
        assert!(o.status.success(), "{}", err(&o));
        assert_eq!(o.stdout, local.stdout);
        let o = run(&["--server", &addr, "--tls-ca", &ca, "bpf", "endpoint", "list"]);
        assert_eq!(o.status.code(), Some(1), "no client certificate");
        assert!(err(&o).contains("it may require a client certificate"), "{}", err(&o));
        let o = run(&["--server", &addr, "--tls-cert", &cert, "--tls-key", &key, "bpf", "endpoint", "list"]);
        assert_eq!(o.status.code(), Some(1));
        assert!(err(&o).contains("needs --tls-ca"), "{}", err(&o));
    }

    // Plain TCP beyond loopback: refused by both sides unless --insecure.
    let o = run(&["serve", "--socket", &pki.path("x.sock"), "--listen", "0.0.0.0:1"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("plain TCP is served on loopback only"), "{}", err(&o));
    let o = run(&["serve", "--socket", &pki.path("x.sock"), "--tls-cert", &cert, "--tls-key", &key]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("are for --listen"), "{}", err(&o));
    let o = run(&["--server", "192.0.2.1:4245", "bpf", "endpoint", "list"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(err(&o).contains("refusing plain TCP to 192.0.2.1:4245"), "{}", err(&o));
}
