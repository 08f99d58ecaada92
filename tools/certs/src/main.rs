//! `certs`: the development PKI behind `just certs` and `just up`. Creates (or keeps) a CA in a
//! directory and issues each service a certificate with `spiffe://longship/<namespace>/<service>`:
//!
//! ```text
//! certs --dir DIR [--namespace NS] [--days N] [--renew] SERVICE...
//! ```
//!
//! Writes `DIR/ca.pem`, `DIR/ca.key` (kept when present) and `DIR/<service>.pem`,
//! `DIR/<service>.key` (issued when missing, or again with `--renew`; files are replaced
//! atomically, so running services pick them up at their next reload). Not for production.

use std::path::PathBuf;
use std::process::ExitCode;

use longship_identity::pki::DevPki;

struct Options {
    dir: PathBuf,
    namespace: String,
    days: i64,
    renew: bool,
    services: Vec<String>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut o = Options {
        dir: PathBuf::new(),
        namespace: "dev".into(),
        days: 30,
        renew: false,
        services: Vec::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dir" => o.dir = args.next().ok_or("--dir needs a value")?.into(),
            "--namespace" => o.namespace = args.next().ok_or("--namespace needs a value")?,
            "--days" => {
                o.days = args
                    .next()
                    .and_then(|d| d.parse().ok())
                    .filter(|d| (1..=3650).contains(d))
                    .ok_or("--days needs a number of days (1-3650)")?
            }
            "--renew" => o.renew = true,
            s if s.starts_with('-') => return Err(format!("unknown option {s}")),
            s => o.services.push(s.to_owned()),
        }
    }
    if o.dir.as_os_str().is_empty() || o.services.is_empty() {
        return Err(
            "usage: certs --dir DIR [--namespace NS] [--days N] [--renew] SERVICE...".into(),
        );
    }
    Ok(o)
}

fn run(o: &Options) -> Result<(), String> {
    let pki = DevPki::open_or_create(&o.dir, &o.namespace)?;
    for service in &o.services {
        let cert = o.dir.join(format!("{service}.pem"));
        if cert.is_file() && !o.renew {
            continue;
        }
        pki.issue(service, o.days)?;
        eprintln!(
            "certs: {} for spiffe://longship/{}/{service}",
            cert.display(),
            o.namespace
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match parse(std::env::args().skip(1)).and_then(|o| run(&o)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("certs: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_missing_certificates_and_keeps_the_ca() {
        let dir = std::env::temp_dir().join(format!("longship-certs-{}", std::process::id()));
        let args = |extra: &[&str]| {
            let mut a = vec!["--dir".to_owned(), dir.display().to_string()];
            a.extend(extra.iter().map(|s| (*s).to_owned()));
            parse(a.into_iter()).expect("options")
        };
        run(&args(&["order", "inventory"])).expect("first run");
        let ca = std::fs::read(dir.join("ca.pem")).expect("ca");
        let order = std::fs::read(dir.join("order.pem")).expect("order");
        run(&args(&["order"])).expect("again");
        assert_eq!(std::fs::read(dir.join("order.pem")).expect("order"), order);
        run(&args(&["--renew", "order"])).expect("renew");
        assert_ne!(std::fs::read(dir.join("order.pem")).expect("order"), order);
        assert_eq!(std::fs::read(dir.join("ca.pem")).expect("ca"), ca);
        assert!(parse(["--dir".to_owned()].into_iter()).is_err());
        assert!(parse(["--bogus".to_owned()].into_iter()).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
