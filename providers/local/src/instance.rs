//! Instances as containers: each container of `spec.runtime.sandbox` runs as a containerd
//! task under runc, in the instance's own network namespace (one veth per network
//! interface, attached to its network's bridge), with the image's root filesystem as the
//! lower layer of a per-container overlay, cgroup limits from the instance type, and its
//! output in `<stateDir>/instances/<external name>/logs/<container>.log`.
//!
//! Restart policy: `Always`. A container whose task stopped makes the instance out of date,
//! and update starts it again. A changed spec (the hash of runtime, volumes and interfaces,
//! kept in a container label) replaces the containers in place; the namespace and
//! addresses stay.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use containerd_client::types::Mount;
use containerd_client::types::v1::Status;
use datum_api::compute::{Instance, InstanceSpec, SandboxContainer};
use datum_provider::{
    ExternalClient, ExternalResource, InstanceLive, InterfaceAddresses, Observation, PlatformError,
    PowerState, Usage,
};

use crate::env::field_ref::{InstanceFields, InterfaceFields};
use crate::provider::LocalHost;
use crate::runtime_spec::{self, ContainerSpec};
use crate::{bridge, names, netns, usage};

/// Label: the SDK's external name of the instance a container belongs to.
pub const LABEL_EXTERNAL_NAME: &str = "datum.net/external-name";
/// Label: the hash of the spec a container was made from.
pub const LABEL_SPEC_HASH: &str = "datum.net/spec-hash";
/// Label: the container's position in the instance.
pub const LABEL_INDEX: &str = "datum.net/container-index";
/// Where the cgroup v1/v2 hierarchies are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Errors from running instances.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The instance has neither runtime.
    #[error(
        "the local provider runs containers (spec.runtime.sandbox) and VMs (spec.runtime.virtualMachine); this instance sets neither"
    )]
    NotSandbox,
    /// The instance type is not configured.
    #[error("instance type {0:?} is not in the ProviderConfig's spec.instanceTypes")]
    InstanceType(String),
    /// Sizing failed.
    #[error(transparent)]
    Quantity(#[from] runtime_spec::Error),
    /// A network operation failed.
    #[error(transparent)]
    Network(#[from] crate::network::Error),
    /// A namespace operation failed.
    #[error(transparent)]
    Netns(#[from] netns::Error),
    /// A link operation failed.
    #[error(transparent)]
    Link(#[from] bridge::Error),
    /// Allocating failed.
    #[error(transparent)]
    Ipam(#[from] crate::ipam::Error),
    /// An assigned address does not parse.
    #[error("interface {interface} was assigned {address:?}, which is not an IP address")]
    BadAddress {
        /// The interface's index.
        interface: usize,
        /// The address.
        address: String,
    },
    /// The Subnet an assigned address is in is not programmed yet.
    #[error(
        "waiting for the Subnet of NetworkContext {network_context} that holds {address} to be programmed"
    )]
    SubnetPending {
        /// The address.
        address: String,
        /// `namespace/name` of the NetworkContext.
        network_context: String,
    },
    /// containerd failed.
    #[error(transparent)]
    Containerd(#[from] crate::containerd::Error),
    /// A configMap or secret volume could not be written.
    #[error(transparent)]
    Volume(#[from] crate::volumes::Error),
    /// An image could not be pulled.
    #[error(transparent)]
    Image(#[from] crate::image::Error),
    /// A container's environment could not be resolved.
    #[error(transparent)]
    Env(#[from] crate::env::Error),
    /// A file of the instance could not be made.
    #[error("failed to prepare {path}: {source}")]
    Files {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl From<Error> for PlatformError {
    fn from(e: Error) -> Self {
        let reason = match &e {
            Error::NotSandbox => "RuntimeUnsupported",
            Error::InstanceType(_) | Error::Quantity(_) => "InstanceTypeUnknown",
            Error::Image(_) => "ImagePullFailed",
            Error::Containerd(_) => "ContainerdFailed",
            Error::Volume(_) => "VolumeFailed",
            Error::Env(_) => "EnvFailed",
            Error::BadAddress { .. } => "AddressInvalid",
            Error::SubnetPending { .. } => "SubnetPending",
            _ => "InstanceFailed",
        };
        PlatformError {
            reason: reason.to_owned(),
            message: e.to_string(),
        }
    }
}

fn containers(spec: &InstanceSpec) -> Result<&[SandboxContainer], Error> {
    spec.runtime
        .sandbox
        .as_ref()
        .map(|s| s.containers.as_slice())
        .ok_or(Error::NotSandbox)
}

fn location(spec: &InstanceSpec) -> String {
    spec.location
        .as_ref()
        .map(|l| l.name.clone())
        .unwrap_or_else(|| "default".to_owned())
}

fn network_keys(r: &ExternalResource<'_, Instance>) -> Vec<String> {
    r.spec
        .network_interfaces
        .iter()
        .map(|i| {
            names::network_key(
                i.network.namespace.as_deref().unwrap_or(r.namespace),
                &i.network.name,
            )
        })
        .collect()
}

/// One interface of an instance: its network on the host and its addresses.
#[derive(Clone, Debug)]
pub struct PlannedInterface {
    /// Its position in `spec.networkInterfaces`.
    pub index: usize,
    /// The network (bridge) it attaches to.
    pub network: crate::network::HostNetwork,
    /// Its addresses: IPAM's IPv4 and/or IPv6 (or one from the fallback allocator).
    pub addresses: Vec<PlannedAddress>,
}

/// One address of an interface, in its subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedAddress {
    /// The address.
    pub address: IpAddr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The subnet's gateway (on the bridge).
    pub gateway: IpAddr,
}

/// The hash of what the containers are made from.
pub fn spec_hash(spec: &InstanceSpec) -> String {
    let material = serde_json::json!({
        "runtime": spec.runtime,
        "volumes": spec.volumes,
        "networkInterfaces": spec.network_interfaces,
    });
    names::short_hash(&[&material.to_string()], 16)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Files {
        path: path.to_path_buf(),
        source,
    }
}

impl LocalHost {
    fn instance_dir(&self, external_name: &str) -> PathBuf {
        self.state_dir.join("instances").join(external_name)
    }

    /// The instance's `(cpu millicores, memory bytes)`.
    pub(crate) fn sizing(&self, spec: &InstanceSpec) -> Result<(i64, i64), Error> {
        let name = spec
            .runtime
            .resources
            .instance_type
            .clone()
            .unwrap_or_else(|| "datumcloud/d1-standard-2".to_owned());
        let t = self
            .config
            .instance_types
            .get(&name)
            .ok_or(Error::InstanceType(name))?;
        Ok((
            runtime_spec::quantity(&t.cpu.0, 1000.0)?,
            runtime_spec::quantity(&t.memory.0, 1.0)?,
        ))
    }

    /// The networks (bridges made to exist) and addresses of the instance's interfaces, in
    /// `spec.networkInterfaces` order. Containers attach them with veths, VMs with taps.
    ///
    /// An interface takes the address the control plane's IPAM assigned, in the Subnet the
    /// provider recorded for it; without an assignment, one from the fallback allocator.
    pub async fn plan_interfaces(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Vec<PlannedInterface>, Error> {
        let location = location(r.spec);
        let mut planned = Vec::new();
        for (index, interface) in r.spec.network_interfaces.iter().enumerate() {
            let namespace = interface
                .network
                .namespace
                .as_deref()
                .unwrap_or(r.namespace);
            let key = names::network_key(namespace, &interface.network.name);
            let assigned: Vec<&str> = r
                .assigned
                .get(index)
                .into_iter()
                .flat_map(|a| [a.network_ip.as_deref(), a.network_ipv6.as_deref()])
                .flatten()
                .collect();
            let mut addresses = Vec::new();
            if assigned.is_empty() {
                let range = self.ipam.network(&key)?;
                let address = self
                    .ipam
                    .address(range, &format!("{}/{index}", r.external_name))?;
                addresses.push(PlannedAddress {
                    address: address.into(),
                    prefix: crate::ipam::NetworkRange::PREFIX,
                    gateway: range.gateway().into(),
                });
            }
            let context =
                datum_api::networking::names::network_context(&interface.network.name, &location);
            for ip in assigned {
                let address: IpAddr = ip.parse().map_err(|_| Error::BadAddress {
                    interface: index,
                    address: ip.to_owned(),
                })?;
                // Without IPAM, the status holds what the fallback allocator gave earlier.
                let owner = format!("{}/{index}", r.external_name);
                if let Some(range) = self.ipam.find_network(&key)
                    && self.ipam.find_address(range, &owner).map(IpAddr::from) == Some(address)
                {
                    addresses.push(PlannedAddress {
                        address,
                        prefix: crate::ipam::NetworkRange::PREFIX,
                        gateway: range.gateway().into(),
                    });
                    continue;
                }
                let (gateway, prefix) = self
                    .subnet_for(namespace, &context, address)
                    .and_then(|s| s.gateway())
                    .ok_or_else(|| Error::SubnetPending {
                        address: ip.to_owned(),
                        network_context: format!("{namespace}/{context}"),
                    })?;
                addresses.push(PlannedAddress {
                    address,
                    prefix,
                    gateway,
                });
            }
            let gateways: Vec<(IpAddr, u8)> =
                addresses.iter().map(|a| (a.gateway, a.prefix)).collect();
            let network = self.ensure_network(&location, &key, &gateways).await?;
            planned.push(PlannedInterface {
                index,
                network,
                addresses,
            });
        }
        Ok(planned)
    }

    /// Named ports of the instance's containers or VM, for policies that name them.
    fn named_ports(spec: &InstanceSpec) -> crate::policy::NamedPorts {
        datum_provider::network_policy::named_ports(spec)
            .into_iter()
            .map(|(name, port, protocol)| (name, (port, protocol)))
            .collect()
    }

    /// The policy layers of the instance whose interfaces have `addresses` (per index).
    fn policy_fragment(
        r: &ExternalResource<'_, Instance>,
        addresses: &[(usize, Vec<IpAddr>)],
    ) -> crate::firewall::Fragment {
        let interfaces: Vec<crate::network_policy::Interface<'_>> = addresses
            .iter()
            .filter_map(|(index, addresses)| {
                let spec = r.spec.network_interfaces.get(*index)?;
                let namespace = spec.network.namespace.as_deref().unwrap_or(r.namespace);
                Some(crate::network_policy::Interface {
                    index: *index,
                    network: (namespace.to_owned(), spec.network.name.clone()),
                    addresses: addresses.clone(),
                    policy: spec.network_policy.as_ref(),
                })
            })
            .collect();
        crate::network_policy::fragment(
            &r.external_name,
            r.namespace,
            &interfaces,
            &r.network_policies,
            &Self::named_ports(r.spec),
        )
    }

    /// Loads the instance's policy layers: before the interfaces are attached, so an
    /// instance is never reachable more widely than its policies say.
    pub async fn ensure_policies(
        &self,
        r: &ExternalResource<'_, Instance>,
        planned: &[PlannedInterface],
    ) -> Result<(), Error> {
        let addresses: Vec<(usize, Vec<IpAddr>)> = planned
            .iter()
            .map(|p| (p.index, p.addresses.iter().map(|a| a.address).collect()))
            .collect();
        let fragment = Self::policy_fragment(r, &addresses);
        self.set_policies(&location(r.spec), &r.external_name, &fragment)
            .await?;
        Ok(())
    }

    /// Whether the loaded policy layers are what the instance's interface policies and the
    /// NetworkPolicies selecting it ask for now. Reads the addresses without allocating.
    pub fn policies_current(&self, r: &ExternalResource<'_, Instance>) -> bool {
        let addresses: Vec<(usize, Vec<IpAddr>)> = (0..r.spec.network_interfaces.len())
            .map(|index| (index, self.current_addresses(r, index)))
            .collect();
        let wanted = Self::policy_fragment(r, &addresses);
        self.recorded_policies(&location(r.spec), &r.external_name) == wanted
    }

    /// The addresses interface `index` has (or will have): IPAM's, else the fallback
    /// allocator's if it gave one.
    fn current_addresses(&self, r: &ExternalResource<'_, Instance>, index: usize) -> Vec<IpAddr> {
        let assigned: Vec<IpAddr> = r
            .assigned
            .get(index)
            .into_iter()
            .flat_map(|a| [a.network_ip.as_deref(), a.network_ipv6.as_deref()])
            .flatten()
            .filter_map(|ip| ip.parse().ok())
            .collect();
        if !assigned.is_empty() {
            return assigned;
        }
        let Some(key) = network_keys(r).into_iter().nth(index) else {
            return Vec::new();
        };
        let owner = format!("{}/{index}", r.external_name);
        self.ipam
            .find_network(&key)
            .and_then(|range| self.ipam.find_address(range, &owner))
            .map(|a: Ipv4Addr| vec![IpAddr::V4(a)])
            .unwrap_or_default()
    }

    /// Network namespace, interfaces and addresses: the namespace's name and the interfaces.
    async fn ensure_interfaces(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(String, Vec<PlannedInterface>), Error> {
        let instance_netns = self.names.instance_netns(&r.external_name);
        netns::ensure(&instance_netns)?;
        let planned = self.plan_interfaces(r).await?;
        self.ensure_policies(r, &planned).await?;
        for p in &planned {
            self.attach(p, &r.external_name, &instance_netns).await?;
        }
        Ok((instance_netns, planned))
    }

    /// Makes every container exist and run as the spec says.
    async fn ensure_instance(&self, r: &ExternalResource<'_, Instance>) -> Result<(), Error> {
        let containers = containers(r.spec)?;
        let (cpu_millis, memory_bytes) = self.sizing(r.spec)?;
        let (instance_netns, planned) = self.ensure_interfaces(r).await?;
        let fields = instance_fields(r, &planned);
        let dir = self.instance_dir(&r.external_name);
        let logs = crate::logs::container_logs_dir(&self.state_dir, &r.external_name);
        std::fs::create_dir_all(&logs).map_err(io(&logs))?;
        let volume_dirs = crate::volumes::write_all(
            self.kube.as_ref(),
            r.namespace,
            &dir.join("volumes"),
            r.spec.volumes.as_deref().unwrap_or_default(),
        )
        .await?;
        let hash = spec_hash(r.spec);
        let pull_secrets = r.spec.runtime.sandbox.as_ref();
        let pull_secrets = pull_secrets.and_then(|s| s.image_pull_secrets.as_deref());
        let pull = crate::image::PullSecrets::read(
            self.kube.as_ref(),
            r.namespace,
            pull_secrets.unwrap_or_default(),
        )
        .await?;
        for (index, container) in containers.iter().enumerate() {
            let binds = container
                .volume_attachments
                .iter()
                .flatten()
                .filter_map(|a| {
                    Some(runtime_spec::BindMount {
                        source: volume_dirs.get(&a.name)?.display().to_string(),
                        destination: a.mount_path.clone()?,
                    })
                })
                .collect();
            // Resolved before the container is replaced: a missing ConfigMap or Secret
            // leaves the running one alone.
            let vars = crate::env::resolve(self.kube.as_ref(), &fields, container).await?;
            let id = names::container_id(&r.external_name, &container.name);
            if let Some(existing) = self.containerd.container(&id).await?
                && existing.labels.get(LABEL_SPEC_HASH) != Some(&hash)
            {
                self.containerd.remove_task(&id).await?;
                self.containerd.delete_container(&id).await?;
            }
            let image = self.images.ensure(&container.image, &pull).await?;
            let (args, env, cwd) = process(container, &image.config, vars);
            let spec = runtime_spec::build(&ContainerSpec {
                hostname: r.name.chars().take(63).collect(),
                args,
                env,
                cwd,
                netns_path: netns::path(&instance_netns).display().to_string(),
                cgroups_path: format!("/datum/{id}"),
                memory_bytes: Some(memory_bytes),
                cpu_millis: Some(cpu_millis),
                binds,
            });
            let labels = HashMap::from([
                (LABEL_EXTERNAL_NAME.to_owned(), r.external_name.clone()),
                (LABEL_SPEC_HASH.to_owned(), hash.clone()),
                (LABEL_INDEX.to_owned(), index.to_string()),
            ]);
            self.containerd.create_container(&id, &spec, labels).await?;
            match self.containerd.task(&id).await? {
                Some(t) if t.status == Status::Running as i32 => continue,
                Some(_) => self.containerd.remove_task(&id).await?,
                None => {}
            }
            let layer = dir.join("containers").join(&container.name);
            let (upper, work) = (layer.join("upper"), layer.join("work"));
            std::fs::create_dir_all(&upper).map_err(io(&upper))?;
            std::fs::create_dir_all(&work).map_err(io(&work))?;
            let rootfs = vec![Mount {
                r#type: "overlay".to_owned(),
                source: "overlay".to_owned(),
                options: vec![
                    format!("lowerdir={}", image.rootfs.display()),
                    format!("upperdir={}", upper.display()),
                    format!("workdir={}", work.display()),
                ],
                ..Mount::default()
            }];
            let log = logs.join(format!("{}.log", container.name));
            self.containerd.start_task(&id, rootfs, &log).await?;
        }
        // Containers no longer in the spec.
        for existing in self
            .containerd
            .containers_labelled(LABEL_EXTERNAL_NAME, &r.external_name)
            .await?
        {
            let wanted = containers
                .iter()
                .any(|c| names::container_id(&r.external_name, &c.name) == existing.id);
            if !wanted {
                self.containerd.remove_task(&existing.id).await?;
                self.containerd.delete_container(&existing.id).await?;
            }
        }
        Ok(())
    }

    async fn observe_instance(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Observation<InstanceLive>, Error> {
        let existing = self
            .containerd
            .containers_labelled(LABEL_EXTERNAL_NAME, &r.external_name)
            .await?;
        let instance_netns = self.names.instance_netns(&r.external_name);
        if existing.is_empty() && !netns::exists(&instance_netns) {
            return Ok(Observation::Absent);
        }
        let wanted = containers(r.spec)?;
        let hash = spec_hash(r.spec);
        let mut running = 0;
        let mut stopped = 0;
        let mut counters = usage::Counters::default();
        for c in &existing {
            match self.containerd.task(&c.id).await? {
                Some(t) if t.status == Status::Running as i32 => running += 1,
                Some(t) if t.status == Status::Stopped as i32 => stopped += 1,
                _ => {}
            }
            if let Some(u) = usage::read(Path::new(CGROUP_ROOT), &format!("/datum/{}", c.id)) {
                counters.memory_bytes += u.memory_bytes;
                counters.cpu_nanos += u.cpu_nanos;
            }
        }
        let complete = wanted.iter().all(|w| {
            existing
                .iter()
                .any(|c| c.id == names::container_id(&r.external_name, &w.name))
        }) && existing.len() == wanted.len();
        let current = existing
            .iter()
            .all(|c| c.labels.get(LABEL_SPEC_HASH) == Some(&hash));
        let power = if complete && running == wanted.len() {
            PowerState::Running
        } else if stopped > 0 {
            PowerState::Stopped
        } else {
            PowerState::Starting
        };
        let addresses = network_keys(r)
            .iter()
            .enumerate()
            .map(|(index, key)| InterfaceAddresses {
                network_ip: r
                    .assigned
                    .get(index)
                    .and_then(|a| a.network_ip.clone())
                    .or_else(|| {
                        let range = self.ipam.find_network(key)?;
                        let owner = format!("{}/{index}", r.external_name);
                        self.ipam
                            .find_address(range, &owner)
                            .map(|a: Ipv4Addr| a.to_string())
                    }),
                external_ip: None,
            })
            .collect();
        let usage = match self.sizing(r.spec) {
            Ok((cpu, memory)) if !existing.is_empty() => {
                let (cpu_utilization, memory_utilization) =
                    self.usage
                        .percentages(&r.external_name, counters, cpu, memory);
                Some(Usage {
                    cpu_utilization,
                    memory_utilization,
                })
            }
            _ => None,
        };
        Ok(Observation::Exists {
            id: r.external_name.clone(),
            up_to_date: complete
                && current
                && power == PowerState::Running
                && self.policies_current(r),
            live: InstanceLive {
                provider_id: Some(format!("local://{}", r.external_name)),
                addresses,
                power,
                usage,
            },
        })
    }

    async fn delete_instance(&self, r: &ExternalResource<'_, Instance>) -> Result<(), Error> {
        for c in self
            .containerd
            .containers_labelled(LABEL_EXTERNAL_NAME, &r.external_name)
            .await?
        {
            self.containerd.remove_task(&c.id).await?;
            self.containerd.delete_container(&c.id).await?;
        }
        let location = location(r.spec);
        self.set_policies(&location, &r.external_name, &Default::default())
            .await?;
        let location_netns = self.names.location_netns(&location);
        if netns::exists(&location_netns) {
            let link = bridge::Netlink::open(&location_netns)?;
            for index in 0..r.spec.network_interfaces.len() {
                link.remove_link(&names::host_veth(&r.external_name, index))
                    .await?;
            }
        }
        netns::remove(&self.names.instance_netns(&r.external_name))?;
        self.ipam
            .release_addresses(&format!("{}/", r.external_name))?;
        for key in network_keys(r) {
            self.release_network(&location, &key).await?;
        }
        let dir = self.instance_dir(&r.external_name);
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(&dir)(e)),
            _ => {}
        }
        self.usage.forget(&r.external_name);
        Ok(())
    }

    /// The external names of the instances that exist (one per instance), then of the
    /// recorded NetworkContexts and Subnets.
    pub async fn external_names(&self) -> Result<Vec<String>, PlatformError> {
        let mut out: Vec<String> = self
            .containerd
            .containers_labelled(LABEL_INDEX, "0")
            .await
            .map_err(Error::from)?
            .into_iter()
            .filter_map(|c| c.labels.get(LABEL_EXTERNAL_NAME).cloned())
            .collect();
        out.extend(self.vm_external_names());
        for kind in ["contexts", "subnets"] {
            if let Ok(entries) = std::fs::read_dir(self.state_dir.join(kind)) {
                out.extend(
                    entries
                        .filter_map(Result::ok)
                        .filter_map(|e| e.file_name().into_string().ok()),
                );
            }
        }
        Ok(out)
    }
}

/// What `fieldRef` env reads of the instance: its metadata, and per interface the addresses
/// its status shows (IPAM's, else the fallback allocator's, as observe reports them).
fn instance_fields<'a>(
    r: &'a ExternalResource<'_, Instance>,
    planned: &[PlannedInterface],
) -> InstanceFields<'a> {
    let interfaces = planned
        .iter()
        .map(|p| {
            let assigned = r.assigned.get(p.index);
            InterfaceFields {
                network_ip: assigned
                    .and_then(|a| a.network_ip.clone())
                    .or_else(|| p.addresses.first().map(|a| a.address.to_string())),
                network_ipv6: assigned.and_then(|a| a.network_ipv6.clone()),
            }
        })
        .collect();
    InstanceFields {
        name: r.name,
        namespace: r.namespace,
        uid: r.uid,
        labels: r.labels,
        annotations: r.annotations,
        interfaces,
    }
}

/// argv, env and working directory: Kubernetes semantics over the image's config; `vars`
/// (from [`crate::env::resolve`]) apply in order over the image's `Env`.
fn process(
    container: &SandboxContainer,
    image: &crate::image::ImageConfig,
    vars: Vec<(String, String)>,
) -> (Vec<String>, Vec<String>, String) {
    let args = match (&container.command, &container.args) {
        (Some(command), args) => command
            .iter()
            .chain(args.iter().flatten())
            .cloned()
            .collect(),
        (None, Some(args)) => image.entrypoint.iter().chain(args).cloned().collect(),
        (None, None) => image.entrypoint.iter().chain(&image.cmd).cloned().collect(),
    };
    let mut env = image.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned());
    }
    for (name, value) in vars {
        env.retain(|e| !e.starts_with(&format!("{name}=")));
        env.push(format!("{name}={value}"));
    }
    (args, env, image.working_dir.clone())
}

impl ExternalClient<Instance> for LocalHost {
    async fn observe(
        &self,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<Observation<InstanceLive>, PlatformError> {
        if self.is_vm(r) {
            return Ok(self.observe_vm(r).await?);
        }
        self.require_containerd().await?;
        Ok(self.observe_instance(r).await?)
    }

    async fn create(&self, r: &ExternalResource<'_, Instance>) -> Result<String, PlatformError> {
        if r.spec.runtime.virtual_machine.is_some() {
            self.ensure_vm(r).await?;
        } else {
            self.require_containerd().await?;
            self.ensure_instance(r).await?;
        }
        self.hang_after_create().await;
        Ok(r.external_name.clone())
    }

    async fn update(
        &self,
        _id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        let vm = r.spec.runtime.virtual_machine.is_some();
        if !vm {
            self.require_containerd().await?;
        }
        // Policies first and on their own: a changed NetworkPolicy or peer is enforced even
        // while a registry or a ConfigMap is unavailable, and restarts nothing.
        if !self.policies_current(r) {
            let planned = self.plan_interfaces(r).await?;
            self.ensure_policies(r, &planned).await?;
            if let Observation::Exists {
                up_to_date: true, ..
            } = self.observe(r).await?
            {
                return Ok(());
            }
        }
        if vm {
            return Ok(self.ensure_vm(r).await?);
        }
        Ok(self.ensure_instance(r).await?)
    }

    async fn delete(
        &self,
        _id: &str,
        r: &ExternalResource<'_, Instance>,
    ) -> Result<(), PlatformError> {
        if self.is_vm(r) {
            return Ok(self.delete_vm(r).await?);
        }
        self.require_containerd().await?;
        Ok(self.delete_instance(r).await?)
    }
}
