//! `datum`: run the Datum system on one machine and work with it.

mod connect;
mod crds;
mod defaults;
mod deploy;
mod logs;
mod provider_new;
mod purge;
mod status;
mod up;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "datum",
    version,
    about = "Declare infrastructure as Kubernetes resources and run it for real",
    after_help = "Example: `datum up`, then in another terminal `datum deploy hello --image IMAGE` and `datum status`"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start everything on this machine: the control plane (etcd, kube-apiserver,
    /// kube-controller-manager) with the Datum CRDs, the controllers, and the local provider
    /// (or the sim one) serving the Location `local`, until Ctrl-C or `datum down`.
    ///
    /// Example: `datum up`, then in another terminal `datum deploy hello --image IMAGE`
    /// or `export KUBECONFIG=~/.local/share/datum/kubeconfig; kubectl get locations`
    Up(up::UpArgs),
    /// Stop a running `datum up`; with --purge, first remove everything it runs and then
    /// its state.
    ///
    /// Example: `datum down`, or `datum down --purge` to start afresh next time
    Down(up::DownArgs),
    /// Run a container image as a Workload (or apply a file), wait until its instances are
    /// Ready, and print their addresses.
    ///
    /// Example: `datum deploy hello --image 127.0.0.1:5000/hello:v1 --replicas 2`
    Deploy(deploy::DeployArgs),
    /// Show Locations, Workloads and their instances with addresses.
    ///
    /// Example: `datum status` or `datum status hello`
    Status(status::StatusArgs),
    /// Print the output of a Workload's instances that run on this machine's local provider
    /// (containers' stdout and stderr, VMs' serial consoles), optionally following it.
    ///
    /// Example: `datum logs hello --follow`
    Logs(logs::LogsArgs),
    /// Print the Datum CRDs as YAML, or write one file per CRD into a directory.
    ///
    /// Example: `datum crds | kubectl apply -f -` or `datum crds --write config/crd`
    Crds(crds::CrdsArgs),
    /// Work with provider crates.
    ///
    /// Example: `datum provider new acme` writes a provider crate for platform `acme` to
    /// `providers/acme`
    #[command(subcommand)]
    Provider(provider_new::ProviderCommand),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        // The client logs every failed readiness probe while the API server starts.
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,kube_client::client::builder=off,datum=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::up(args).await,
        Command::Down(args) => up::down(args).await,
        Command::Deploy(args) => deploy::deploy(args).await,
        Command::Status(args) => status::status(args).await,
        Command::Logs(args) => logs::logs(args).await,
        Command::Crds(args) => crds::crds(args),
        Command::Provider(command) => provider_new::provider(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{}", report(&error));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error as one sentence (what failed and what to do), then each underlying cause on
/// its own line — skipping causes the line above already quotes, as client errors repeat
/// their source in their own message.
fn report(error: &anyhow::Error) -> String {
    let mut lines = vec![format!("error: {error}")];
    let mut previous = error.to_string();
    for cause in error.chain().skip(1) {
        // The API server's own sentence, not kube's debug dump of the whole Status.
        let text = match cause.downcast_ref::<kube::Error>() {
            Some(kube::Error::Api(status)) => status.message.clone(),
            _ => cause.to_string(),
        };
        if !previous.contains(&text) {
            lines.push(format!("  caused by: {text}"));
        }
        previous = text;
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::{Cli, report};
    use anyhow::Context;
    use clap::CommandFactory;

    /// `--help` of every command, nested ones included, shows how it is used.
    #[test]
    fn every_commands_help_has_an_example() {
        fn check(command: &mut clap::Command, path: &str, seen: &mut Vec<String>) {
            let help = command.render_long_help().to_string();
            assert!(
                help.contains("Example") && help.contains(path),
                "`{path} --help` shows an example:\n{help}"
            );
            seen.push(path.to_owned());
            for sub in command.get_subcommands_mut() {
                if sub.get_name() != "help" {
                    let path = format!("{path} {}", sub.get_name());
                    check(sub, &path, seen);
                }
            }
        }
        let mut cli = Cli::command();
        let mut seen = Vec::new();
        check(&mut cli, "datum", &mut seen);
        for expected in [
            "datum up",
            "datum down",
            "datum deploy",
            "datum status",
            "datum logs",
            "datum crds",
            "datum provider new",
        ] {
            assert!(
                seen.iter().any(|s| s == expected),
                "{expected} is checked: {seen:?}"
            );
        }
    }

    #[test]
    fn a_report_is_the_sentence_then_each_new_cause() {
        let io = std::io::Error::other("connection refused");
        let inner = Err::<(), _>(io)
            .context("client error (Connect): connection refused")
            .context("the API server does not answer; is `datum up` running?")
            .expect_err("an error");
        assert_eq!(
            report(&inner),
            "error: the API server does not answer; is `datum up` running?\n  caused by: client error (Connect): connection refused"
        );
        let plain = anyhow::anyhow!("no Workload web in namespace default");
        assert_eq!(
            report(&plain),
            "error: no Workload web in namespace default"
        );
    }
}
