//! `datum logs`: the output of a Workload's instances that run on this machine's local
//! provider — each container's stdout and stderr, a VM's serial console — merged, each line
//! prefixed with where it came from, optionally followed as it is written.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use datum_api::compute::{Instance, labels};
use datum_api::networking::Location;
use datum_api::provider_config::local::ProviderConfig;
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt};

use crate::connect::ConnectArgs;

#[derive(clap::Args)]
#[command(after_help = "Examples:
  datum logs hello
  datum logs hello --follow
  datum logs hello --instance hello-default-local-0 -c app --tail 20")]
pub struct LogsArgs {
    /// The Workload whose instances' output to show.
    name: String,
    /// Only this instance.
    #[arg(long)]
    instance: Option<String>,
    /// Only this container (`console` for a virtual machine's serial console).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// How many lines from the end of each log to show first (0 for all).
    #[arg(long, default_value_t = 200)]
    tail: usize,
    /// Keep printing what is written (and what new instances write) until Ctrl-C.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The local provider's ProviderConfig, for where it keeps logs.
    #[arg(long, default_value = crate::defaults::PROVIDER_CONFIG)]
    provider_config: String,
    #[command(flatten)]
    connect: ConnectArgs,
}

/// One log file being read: where it came from and how far it has been printed.
struct Source {
    prefix: String,
    path: PathBuf,
    offset: u64,
}

/// Where the last `n` lines of `bytes` start (0 for all of it, or for `n` = 0). Bytes, not
/// text: a program may write anything to its output.
fn last_lines_start(bytes: &[u8], n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    body.iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(n - 1)
        .map_or(0, |(i, _)| i + 1)
}

/// Prints each complete line of `bytes` with `prefix`; returns how many bytes that used (a
/// partial last line waits for the rest, unless `flush`).
fn print_lines(out: &mut impl Write, prefix: &str, bytes: &[u8], flush: bool) -> usize {
    let mut used = 0;
    for line in bytes.split_inclusive(|b| *b == b'\n') {
        let complete = line.ends_with(b"\n");
        if !complete && !flush {
            break;
        }
        let text = String::from_utf8_lossy(line);
        let _ = writeln!(out, "{prefix}{}", text.trim_end_matches('\n'));
        used += line.len();
    }
    used
}

/// The Workload's instances that `args` selects, by name.
async fn instances(client: &Client, args: &LogsArgs) -> anyhow::Result<Vec<Instance>> {
    let api: Api<Instance> = Api::namespaced(client.clone(), &args.connect.namespace);
    let selector = format!("{}={}", labels::WORKLOAD_NAME, args.name);
    let mut list = api
        .list(&ListParams::default().labels(&selector))
        .await?
        .items;
    if let Some(only) = &args.instance {
        list.retain(|i| &i.name_any() == only);
    }
    list.sort_by_key(|i| i.name_any());
    Ok(list)
}

/// Where this machine's local provider keeps its state.
async fn state_dir(client: &Client, config: &str) -> anyhow::Result<PathBuf> {
    let configs: Api<ProviderConfig> = Api::all(client.clone());
    let Some(config) = configs.get_opt(config).await? else {
        bail!(
            "there is no local ProviderConfig `{config}`: logs are kept by the local provider on its machine (`datum up`); pass --provider-config if it has another name"
        );
    };
    Ok(PathBuf::from(config.spec.state_dir))
}

/// The log files of `instances` not yet in `sources`, added with their start offsets:
/// `tail` lines back for a first read, the beginning for an instance that appears later.
fn add_sources(
    sources: &mut BTreeMap<PathBuf, Source>,
    state_dir: &Path,
    instances: &[Instance],
    container: Option<&str>,
    tail: Option<usize>,
) {
    for instance in instances {
        let Some(uid) = instance.uid() else { continue };
        let external_name = format!("datum-{uid}");
        for (name, path) in datum_provider_local::logs::files(state_dir, &external_name) {
            if container.is_some_and(|c| c != name) || sources.contains_key(&path) {
                continue;
            }
            let offset = match tail {
                Some(n) => {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    last_lines_start(&bytes, n) as u64
                }
                None => 0,
            };
            let prefix = format!("{}/{name} | ", instance.name_any());
            sources.insert(
                path.clone(),
                Source {
                    prefix,
                    path,
                    offset,
                },
            );
        }
    }
}

/// Prints what each source gained since its offset.
fn drain(sources: &mut BTreeMap<PathBuf, Source>, flush: bool) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for source in sources.values_mut() {
        let Ok(mut file) = std::fs::File::open(&source.path) else {
            continue;
        };
        let length = file.metadata().map(|m| m.len()).unwrap_or(0);
        if length < source.offset {
            // Truncated (a restarted container starts its log afresh).
            source.offset = 0;
        }
        file.seek(SeekFrom::Start(source.offset))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        source.offset += print_lines(&mut out, &source.prefix, &bytes, flush) as u64;
    }
    out.flush()?;
    Ok(())
}

pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let client = args.connect.client().await?;
    let namespace = &args.connect.namespace;
    let found = instances(&client, &args).await?;
    if found.is_empty() {
        bail!(
            "no instances of Workload {} in namespace {namespace}; `datum status` lists what runs",
            args.name
        );
    }
    // Only the local provider's instances have their output on this machine.
    let locations: Api<Location> = Api::all(client.clone());
    for instance in &found {
        let Some(location) = instance.spec.location.as_ref() else {
            continue;
        };
        let provider = locations
            .get_opt(&location.name)
            .await?
            .and_then(|l| l.provider_name().map(str::to_owned));
        if let Some(other) = provider.filter(|p| p != "local") {
            eprintln!(
                "{} runs on the {other} provider: its output is not on this machine",
                instance.name_any()
            );
        }
    }
    let state_dir = state_dir(&client, &args.provider_config)
        .await
        .context("cannot find the logs")?;
    let container = args.container.as_deref();
    let mut sources = BTreeMap::new();
    add_sources(&mut sources, &state_dir, &found, container, Some(args.tail));
    if sources.is_empty() && !args.follow {
        bail!(
            "no output of Workload {} on this machine yet{}; `datum status {}` shows whether its instances run here",
            args.name,
            container.map_or(String::new(), |c| format!(" from container {c}")),
            args.name
        );
    }
    drain(&mut sources, !args.follow)?;
    if !args.follow {
        return Ok(());
    }
    let mut ticks = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ticks += 1;
        // Instances come and go (scaling, rollouts): look for new ones every few seconds.
        if ticks.is_multiple_of(4) {
            let now = instances(&client, &args).await?;
            add_sources(&mut sources, &state_dir, &now, container, None);
        }
        drain(&mut sources, false)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_lines_are_cut_at_line_starts() {
        let tail = |bytes: &'static [u8], n| &bytes[last_lines_start(bytes, n)..];
        assert_eq!(tail(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(tail(b"a\nb\nc", 2), b"b\nc");
        assert_eq!(tail(b"a\nb\n", 5), b"a\nb\n");
        assert_eq!(tail(b"a\nb\n", 0), b"a\nb\n");
        assert_eq!(tail(b"", 3), b"");
        assert_eq!(tail(b"\xff\xfe\nok\n", 1), b"ok\n");
    }

    #[test]
    fn only_complete_lines_are_printed_unless_flushed() {
        let mut out = Vec::new();
        let used = print_lines(&mut out, "web-0/app | ", b"one\ntwo\nthr", false);
        assert_eq!(used, 8);
        assert_eq!(
            String::from_utf8(out).expect("UTF-8"),
            "web-0/app | one\nweb-0/app | two\n"
        );
        let mut out = Vec::new();
        assert_eq!(print_lines(&mut out, "", b"thr", true), 3);
        assert_eq!(String::from_utf8(out).expect("UTF-8"), "thr\n");
    }
}
