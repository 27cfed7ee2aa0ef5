//! The `apiserver-sim` binary serves a generated cluster that kube (and kubectl) can read.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ListParams};

/// Kills the child process when the test ends, even on panic.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_serves_a_generated_cluster() {
    let child = Command::new(env!("CARGO_BIN_EXE_apiserver-sim"))
        .args(["--port", "0", "--namespaces", "2", "--apps", "3", "--seed", "11"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let stdout = child.0.stdout.take().unwrap();
    let first = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = tokio::time::timeout(std::time::Duration::from_secs(20), first).await.unwrap().unwrap().unwrap();
    let url = line.split_whitespace().last().unwrap().to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    let config = kube::Config::new(url.parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let ingresses: Api<Ingress> = Api::all(client);
    let list = ingresses.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 6);

    // bad flags are refused with a usage message
    let out = Command::new(env!("CARGO_BIN_EXE_apiserver-sim")).args(["--apps", "many"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
}
