//! VM instances end to end, for real: a real control plane, the local provider, QEMU (TCG on
//! hosts whose KVM does not work), taps on a bridge in the Location's namespace, a NoCloud
//! seed, disks on two storage tiers. The guest is the tiny direct-kernel image that
//! `tools/vm-image.sh` builds (Debian's kernel, a busybox initramfs that applies the seed's
//! addresses, prints `DATUM-VM-READY` and answers on port 8080). Runs as root; every probe
//! runs inside a namespace the provider or the test made.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{address, eventually, location, qemus_under, running};
use datum_api::compute::Instance;
use datum_api::provider_config::local::{DiskFormat, InstanceTypeResources};
use datum_provider_local::{LocalProvider, names};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const IMAGE: &str = "datumcloud/datum-test-vm";

/// The test image's directory, built (or found in the cache) by `tools/vm-image.sh`.
fn vm_image() -> PathBuf {
    if let Ok(dir) = std::env::var("DATUM_VM_IMAGE") {
        return PathBuf::from(dir);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tools/vm-image.sh");
    let out = Command::new(&script)
        .output()
        .expect("tools/vm-image.sh runs");
    assert!(
        out.status.success(),
        "tools/vm-image.sh builds the VM image: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    PathBuf::from(dir.lines().last().unwrap_or_default())
}

fn vm(name: &str, location: &str, network: &str) -> Instance {
    serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": {
            "name": name,
            "annotations": { "compute.datumapis.com/ssh-keys": "alice:ssh-ed25519 AAAAC3Nza alice@example" },
        },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-micro" },
                "virtualMachine": { "volumeAttachments": [
                    { "name": "boot" }, { "name": "fast" }, { "name": "slow" },
                ] },
            },
            "volumes": [
                { "name": "boot", "disk": { "template": { "spec": {
                    "populator": { "image": { "name": IMAGE } } } } } },
                { "name": "fast", "disk": { "template": { "spec": {
                    "type": "pd-ssd", "resources": { "requests": { "storage": "64Mi" } } } } } },
                { "name": "slow", "disk": { "template": { "spec": {
                    "type": "local-standard", "resources": { "requests": { "storage": "32Mi" } } } } } },
            ],
            "networkInterfaces": [{ "network": { "name": network } }],
            "location": { "name": location },
            "controller": { "templateHash": "h1" },
        },
    }))
    .expect("a valid VM Instance")
}

fn container(name: &str, location: &str, network: &str, image: &str) -> Instance {
    serde_json::from_value(json!({
        "apiVersion": "compute.datumapis.com/v1alpha",
        "kind": "Instance",
        "metadata": { "name": name },
        "spec": {
            "runtime": {
                "resources": { "instanceType": "datumcloud/d1-micro" },
                "sandbox": { "containers": [{
                    "name": "app", "image": image,
                    "command": ["/bin/sh", "-c", "exec sleep 100000"],
                }] },
            },
            "networkInterfaces": [{ "network": { "name": network } }],
            "location": { "name": location },
            "controller": { "templateHash": "h1" },
        },
    }))
    .expect("a valid Instance")
}

/// `busybox nc` from inside `netns` to `ip:8080`: what the guest answered.
fn ask(netns: &str, ip: &str) -> Option<String> {
    let out = Command::new("nsenter")
        .arg(format!(
            "--net={}",
            datum_provider_local::netns::path(netns).display()
        ))
        .args(["busybox", "nc", "-w", "3", ip, "8080"])
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

fn links_in(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-o", "link", "show"])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| Some(l.split(": ").nth(1)?.split('@').next()?.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_vm_boots_is_reachable_keeps_its_disks_survives_a_restart_and_leaves_nothing() {
    let image = vm_image();
    let host = common::host("vm").await;
    let host_links_before = common::host_links();
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-vm")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    let cfg = format!("{ns}-cfg");
    let mut config = host.config(&cfg, None);
    config
        .spec
        .image_map
        .insert(IMAGE.to_owned(), image.display().to_string());
    let (ssd, standard) = (host.dir.join("ssd"), host.dir.join("standard"));
    for (class, dir) in [("local-ssd", &ssd), ("local-standard", &standard)] {
        let c = config
            .spec
            .storage_classes
            .get_mut(class)
            .expect("the default classes");
        c.directory = Some(dir.display().to_string());
    }
    config.spec.instance_types.insert(
        "datumcloud/d1-micro".to_owned(),
        InstanceTypeResources {
            cpu: Quantity("1".to_owned()),
            memory: Quantity("256Mi".to_owned()),
        },
    );
    assert_eq!(
        config.spec.storage_classes["local-ssd"].format,
        DiskFormat::Raw
    );
    assert_eq!(
        config.spec.storage_classes["local-standard"].format,
        DiskFormat::Qcow2
    );
    host.apply_config(&config).await;
    let first = host.start(LocalProvider::default(), &cfg, &ns);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);

    // The VM and a container on the same network, to talk to it from.
    let created = Instant::now();
    let uid = instances
        .create(&PostParams::default(), &vm("vm-0", &loc, "net"))
        .await
        .expect("the VM Instance is created")
        .uid()
        .expect("a uid");
    let busybox = format!("{}/datum/busybox:v1", host.registry);
    let peer_uid = instances
        .create(
            &PostParams::default(),
            &container("c-0", &loc, "net", &busybox),
        )
        .await
        .expect("the container Instance is created")
        .uid()
        .expect("a uid");
    let ready = eventually("the VM runs with an address", || async {
        instances
            .get("vm-0")
            .await
            .ok()
            .filter(|i| running(i) && address(i).is_some())
    })
    .await;
    let boot_to_running = created.elapsed();
    eprintln!("VM boot: create to Running in {boot_to_running:?}");
    let external = format!("datum-{uid}");
    let ip = address(&ready).expect("an address");
    let status = ready.status.clone().unwrap_or_default();
    assert_eq!(
        status.provider_id.as_deref(),
        Some(format!("local://{external}").as_str())
    );

    // Usage from QEMU's process: a CPU rate once two observations are in, and resident
    // memory against the instance type's 256Mi.
    let usage =
        eventually("the VM reports CPU and memory usage", || async {
            instances.get("vm-0").await.ok()?.status?.usage.filter(|u| {
                u.cpu_utilization.is_some() && u.memory_utilization.is_some_and(|m| m > 0)
            })
        })
        .await;
    eprintln!("VM usage: {usage:?}");

    // The VM is listed, so a sweep finds it should its Instance ever vanish.
    let listed = host.local_host().external_names().await.expect("lists");
    assert_eq!(
        listed.iter().filter(|n| **n == external).count(),
        1,
        "{listed:?}"
    );

    // QEMU runs, daemonized, with the VM's files in its instance directory.
    let dir = host.dir.join("state/instances").join(&external);
    let pid: i32 = std::fs::read_to_string(dir.join("qemu.pid"))
        .expect("a pidfile")
        .trim()
        .parse()
        .expect("a pid");
    assert_eq!(qemus_under(&host.dir), vec![pid], "exactly one QEMU");
    let modified = |name: &str| {
        std::fs::metadata(dir.join(name))
            .and_then(|m| m.modified())
            .expect("a file of the VM")
    };
    if let Ok(boot) = modified("ready").duration_since(modified("qemu.pid")) {
        eprintln!("VM boot: QEMU started to guest ready (as observed) in {boot:?}");
    }
    let own_net = std::fs::read_link("/proc/self/ns/net").expect("own netns");
    let its_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).expect("its netns");
    assert_ne!(own_net, its_net, "QEMU runs in the Location's namespace");

    // The guest read its seed, configured its address, saw both disks and is up.
    let log = std::fs::read_to_string(dir.join("serial.log")).expect("a serial log");
    assert!(log.contains("DATUM-VM-READY"), "{log}");
    assert!(log.contains(&format!("DATUM-VM-SEED {external}")), "{log}");
    assert!(log.contains(&format!("DATUM-VM-ADDR eth0 {ip}/")), "{log}");
    assert!(
        log.contains(&format!("{} {}", "DATUM-VM-DISK vda", (64u64 << 20) / 512)),
        "{log}"
    );
    assert!(
        log.contains(&format!("{} {}", "DATUM-VM-DISK vdb", (32u64 << 20) / 512)),
        "{log}"
    );
    let seed = std::fs::read_to_string(dir.join("seed/user-data")).expect("user-data");
    assert!(
        seed.contains("ssh-ed25519 AAAAC3Nza alice@example"),
        "{seed}"
    );

    // Reachable from a container on the same network.
    let peer_netns =
        names::HostNames::new(&host.prefix).instance_netns(&format!("datum-{peer_uid}"));
    eventually("the container runs", || async {
        instances.get("c-0").await.ok().filter(running)
    })
    .await;
    let answer = eventually("the guest answers on port 8080", || async {
        ask(&peer_netns, &ip)
    })
    .await;
    assert_eq!(answer, "datum-vm-ok");
    eprintln!(
        "VM boot: create to answering on 8080 in {:?}",
        created.elapsed()
    );

    // The extra disks: files of their storage classes, in their formats, at their sizes.
    let fast = ssd.join(format!("{external}-fast.raw"));
    let slow = standard.join(format!("{external}-slow.qcow2"));
    assert_eq!(
        std::fs::metadata(&fast).expect("the ssd disk").len(),
        64 << 20
    );
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&slow)
        .output()
        .expect("qemu-img runs");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("qemu-img info");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 32u64 << 20);
    let tap = names::tap(&external, 0);
    let location_netns = names::HostNames::new(&host.prefix).location_netns(&loc);
    assert!(
        links_in(&location_netns).contains(&tap),
        "the tap is in the Location's namespace"
    );
    assert!(
        !common::host_links().contains(&tap),
        "and not in the host's"
    );

    // A restarted provider adopts the running VM: same QEMU, no second one.
    first.crash();
    let second = host.start(LocalProvider::default(), &cfg, &ns);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(running(&instances.get("vm-0").await.expect("still there")));
    assert_eq!(qemus_under(&host.dir), vec![pid], "the same QEMU, adopted");

    // The VM stops (its QEMU dies) and is started again; its disks stay.
    let inode = std::fs::metadata(&fast).expect("the ssd disk").ino();
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    let restarted = eventually("the VM runs again", || async {
        let pids = qemus_under(&host.dir);
        let i = instances.get("vm-0").await.ok()?;
        match pids.as_slice() {
            [new] if *new != pid && running(&i) => Some(*new),
            _ => None,
        }
    })
    .await;
    assert_ne!(restarted, pid);
    assert_eq!(
        std::fs::metadata(&fast).expect("kept").ino(),
        inode,
        "the same disk"
    );
    assert!(slow.exists());
    eventually("the restarted guest answers", || async {
        ask(&peer_netns, &ip)
    })
    .await;

    // Delete: no QEMU, tap, seed, disk or directory is left.
    for name in ["vm-0", "c-0"] {
        instances
            .delete(name, &DeleteParams::default())
            .await
            .expect("deletes");
    }
    common::all_gone(&instances).await;
    assert_eq!(qemus_under(&host.dir), Vec::<i32>::new(), "no QEMU left");
    assert!(
        !dir.exists(),
        "no instance directory (seed, logs, sockets) left"
    );
    assert!(!fast.exists() && !slow.exists(), "no disk left");
    assert_eq!(
        host.namespaces(),
        Vec::<String>::new(),
        "no namespace (so no tap) left"
    );
    assert_eq!(
        common::host_links(),
        host_links_before,
        "the host's own links are untouched"
    );
    assert!(
        host.local_host()
            .external_names()
            .await
            .expect("lists")
            .is_empty(),
        "nothing left to sweep"
    );
    second.stop().await;
}

/// A one-sector disk image whose boot code prints the ready marker on the serial port and
/// halts: enough to prove a VM boots from its own bootloader through the overlay.
fn boot_sector_image(path: &Path) {
    let msg = b"DATUM-VM-READY\r\n\0";
    let mut code: Vec<u8> = vec![
        0x31, 0xc0, // xor ax, ax
        0x8e, 0xd8, // mov ds, ax
        0xbe, 0x15, 0x7c, // mov si, 0x7c15 (msg)
        0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
        0xac, // lodsb
        0x84, 0xc0, // test al, al
        0x74, 0x03, // jz done
        0xee, // out dx, al
        0xeb, 0xf8, // jmp lodsb
        0xf4, // done: hlt
        0xeb, 0xfd, // jmp done
    ];
    code.extend_from_slice(msg);
    code.resize(510, 0);
    code.extend_from_slice(&[0x55, 0xaa]);
    code.resize(1 << 20, 0);
    std::fs::write(path, code).expect("the boot image is written");
}

/// Also: a host without containerd still runs VMs (and their networks); only container
/// instances need it, and say so.
#[tokio::test]
async fn a_disk_image_boots_from_a_copy_on_write_overlay() {
    let host = common::host("vm-disk").await;
    let ns = host
        .cp
        .fresh_namespace(&host.client, "local-vm-disk")
        .await
        .expect("a namespace");
    let loc = format!("{ns}-loc");
    location(&host.client, &loc).await;
    let cfg = format!("{ns}-cfg");
    let library = host.dir.join("images");
    std::fs::create_dir_all(&library).expect("an image library");
    let image = library.join("boot-sector.raw");
    boot_sector_image(&image);
    let no_containerd = host.dir.join("no-containerd.sock");
    let mut config = host.config(&cfg, Some(&no_containerd.display().to_string()));
    config
        .spec
        .image_map
        .insert(IMAGE.to_owned(), image.display().to_string());
    config.spec.instance_types.insert(
        "datumcloud/d1-micro".to_owned(),
        InstanceTypeResources {
            cpu: Quantity("1".to_owned()),
            memory: Quantity("64Mi".to_owned()),
        },
    );
    host.apply_config(&config).await;
    let provider = host.start(LocalProvider::default(), &cfg, &ns);
    let instances: Api<Instance> = Api::namespaced(host.client.clone(), &ns);
    let mut instance = vm("vm-0", &loc, "net");
    // Boot disk only, on the standard tier, bigger than the image.
    instance.spec.volumes = Some(vec![
        serde_json::from_value(json!({ "name": "boot", "disk": { "template": { "spec": {
            "type": "pd-standard",
            "resources": { "requests": { "storage": "64Mi" } },
            "populator": { "image": { "name": IMAGE } } } } } }))
        .expect("a volume"),
    ]);
    if let Some(vm) = instance.spec.runtime.virtual_machine.as_mut() {
        vm.volume_attachments.truncate(1);
    }
    let uid = instances
        .create(&PostParams::default(), &instance)
        .await
        .expect("the VM Instance is created")
        .uid()
        .expect("a uid");
    eventually("the VM boots from its disk and runs", || async {
        instances.get("vm-0").await.ok().filter(running)
    })
    .await;
    // A container instance on the same host does need containerd: it fails, naming it.
    let busybox = format!("{}/datum/busybox:v1", host.registry);
    instances
        .create(
            &PostParams::default(),
            &container("c-0", &loc, "net", &busybox),
        )
        .await
        .expect("the container Instance is created");
    let message = eventually("c-0 fails for want of containerd", || async {
        let i = instances.get("c-0").await.ok()?;
        let c = i.status?.conditions?.into_iter().find(|c| {
            c.type_ == "Programmed" && c.status == "False" && c.reason == "ContainerdUnreachable"
        })?;
        Some(c.message)
    })
    .await;
    assert!(
        message.contains(&no_containerd.display().to_string()),
        "{message}"
    );
    // Deleting it needs containerd too (to be sure no container is left): give it one.
    config.spec.containerd.socket = host.socket().display().to_string();
    host.apply_config(&config).await;
    instances
        .delete("c-0", &DeleteParams::default())
        .await
        .expect("deletes");
    eventually("c-0 is gone", || async {
        instances.get_opt("c-0").await.ok().filter(Option::is_none)
    })
    .await;
    let external = format!("datum-{uid}");
    let overlay = host
        .dir
        .join("state/disks/local-standard")
        .join(format!("{external}-boot.qcow2"));
    let info = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(&overlay)
        .output()
        .expect("qemu-img runs");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("qemu-img info");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(
        info["virtual-size"],
        64u64 << 20,
        "sized as the volume asks"
    );
    assert_eq!(info["backing-filename"], image.display().to_string());
    assert_eq!(info["backing-filename-format"], "raw");
    let log = std::fs::read_to_string(
        host.dir
            .join("state/instances")
            .join(&external)
            .join("serial.log"),
    )
    .expect("a serial log");
    assert!(log.contains("DATUM-VM-READY"), "{log}");

    instances
        .delete("vm-0", &DeleteParams::default())
        .await
        .expect("deletes");
    eventually("the Instance is gone", || async {
        instances.get_opt("vm-0").await.ok().filter(Option::is_none)
    })
    .await;
    assert_eq!(qemus_under(&host.dir), Vec::<i32>::new(), "no QEMU left");
    assert!(!overlay.exists(), "no overlay left");
    assert_eq!(
        std::fs::metadata(&image).expect("the image stays").len(),
        1 << 20
    );
    assert_eq!(
        host.namespaces(),
        Vec::<String>::new(),
        "no namespace (so no tap) left"
    );
    provider.stop().await;
}
