//! Run the simulator with a generated cluster for manual use:
//!
//! ```text
//! apiserver-sim [--port 8001] [--seed 1] [--namespaces 3] [--apps 4] [--empty]
//! kubectl --server http://127.0.0.1:8001 get ingresses -A
//! ```

use std::io::Write as _;
use std::process::ExitCode;

use kstore_apiserver_sim::ApiServerSim;
use kstore_apiserver_sim::generate::Cluster;

struct Args {
    port: u16,
    seed: u64,
    namespaces: usize,
    apps: usize,
    empty: bool,
}

fn usage() -> &'static str {
    "usage: apiserver-sim [--port N] [--seed N] [--namespaces N] [--apps N] [--empty]\n\
     Serves a Kubernetes-compatible API on 127.0.0.1 with a generated cluster.\n\
     --port        listen port (default 0: ephemeral, printed on start)\n\
     --seed        generator seed (default 1)\n\
     --namespaces  generated namespaces (default 3)\n\
     --apps        generated apps per namespace (default 4)\n\
     --empty       start without generated objects"
}

fn parse() -> Result<Args, String> {
    let mut args = Args { port: 0, seed: 1, namespaces: 3, apps: 4, empty: false };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--empty" {
            args.empty = true;
            continue;
        }
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |_| format!("invalid value {value:?} for {flag}");
        match flag.as_str() {
            "--port" => args.port = value.parse().map_err(bad)?,
            "--seed" => args.seed = value.parse().map_err(bad)?,
            "--namespaces" => args.namespaces = value.parse().map_err(bad)?,
            "--apps" => args.apps = value.parse().map_err(bad)?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(msg) => {
            if !msg.is_empty() {
                eprintln!("{msg}");
            }
            eprintln!("{}", usage());
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let objects = if args.empty {
            Vec::new()
        } else {
            Cluster::new(args.seed).namespaces(args.namespaces).apps_per_namespace(args.apps).build()
        };
        let n = objects.len();
        let sim = match ApiServerSim::builder().port(args.port).objects(objects).start().await {
            Ok(sim) => sim,
            Err(e) => {
                eprintln!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        // A closed stdout (e.g. a parent that read the URL and left) must not stop the server.
        let mut out = std::io::stdout();
        let _ = writeln!(out, "apiserver-sim serving {n} objects on {}", sim.url());
        let _ = writeln!(out, "try: kubectl --server {} get ingresses -A", sim.url());
        let _ = out.flush();
        std::future::pending::<()>().await;
        ExitCode::SUCCESS
    })
}
