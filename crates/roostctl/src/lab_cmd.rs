//! `roostctl lab ...`: the whole router in network namespaces on this machine.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};
use roost_lab::{Lab, LabOptions, Status, VmOptions};

#[derive(Debug, Args)]
pub(crate) struct LabArgs {
    /// Namespace prefix of this lab instance (`roost` makes roost-fw, roost-isp, ...).
    #[arg(long, default_value = "roost", global = true, value_parser = parse_prefix)]
    prefix: String,
    /// State directory (views, tokens, logs, daemon state); default /var/lib/roost-lab/PREFIX.
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    /// Where the daemon binaries are; default the directory roostctl is in.
    #[arg(long, global = true)]
    bin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Make the lab (or repair it) and start every daemon; returns when all are healthy.
    Up {
        /// Settings file; default the one the instance last ran with, else examples/roost.toml.
        #[arg(long)]
        settings: Option<PathBuf>,
        /// Run each service (the firewall, dns, dhcp, mqtt, web, and the VoIP VM with [voip]) in
        /// its own aarch64 VM (qemu, TCG) inside its namespace; needs `scripts/vm-assets` first (cache: $ROOST_VM_CACHE, default
        /// /var/cache/roost-lab-vm). See docs/adr/0010-lab-microvms.md.
        #[arg(long)]
        vm: bool,
    },
    /// Show namespaces, addresses, daemons and their health.
    Status {
        /// As JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a command inside one of the lab's namespaces (e.g. `client-lan`, `fw`, `isp`).
    Exec {
        /// Namespace, short (`client-lan`) or full (`roost-client-lan`).
        name: String,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Stop everything and remove every namespace the instance made.
    Down {
        /// Also delete the state directory (leases, tokens, logs).
        #[arg(long)]
        purge: bool,
    },
}

fn parse_prefix(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 12
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    ok.then(|| s.to_owned())
        .ok_or_else(|| "a prefix is 1-12 lowercase letters, digits or hyphens".to_owned())
}

pub(crate) fn run(args: LabArgs) -> anyhow::Result<ExitCode> {
    let state_dir = args
        .state_dir
        .unwrap_or_else(|| PathBuf::from("/var/lib/roost-lab").join(&args.prefix));
    let bin_dir = match args.bin_dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("finding roostctl's own directory")?
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default(),
    };
    let explicit = match &args.command {
        LabCommand::Up { settings, .. } => settings.clone(),
        _ => None,
    };
    let settings = explicit
        .or_else(|| roost_lab::recorded_settings(&state_dir))
        .unwrap_or_else(|| PathBuf::from("examples/roost.toml"));
    let settings = std::path::absolute(&settings).unwrap_or(settings);
    let mut lab = Lab::new(LabOptions {
        prefix: args.prefix,
        state_dir,
        bin_dir,
        settings,
    })?;
    match args.command {
        LabCommand::Up { vm, .. } => {
            if vm {
                lab = lab.with_vms(VmOptions {
                    cache: roost_lab::vm::default_cache(),
                });
            }
            let started = Instant::now();
            let status = lab.up()?;
            print_status(&status);
            println!("\nup in {:.1} s", started.elapsed().as_secs_f64());
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Status { json } => {
            let status = lab.status()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(ExitCode::SUCCESS)
        }
        LabCommand::Exec { name, command } => {
            let status = lab.exec(&name, &command)?;
            Ok(ExitCode::from(
                status.code().map_or(1, |c| c.clamp(0, 255) as u8),
            ))
        }
        LabCommand::Down { purge } => {
            lab.down(purge)?;
            eprintln!("lab {} removed", lab.plan().prefix);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_status(status: &Status) {
    println!(
        "lab `{}` (state in {})",
        status.prefix,
        status.state_dir.display()
    );
    println!("\nnamespaces:");
    for ns in &status.namespaces {
        let mut addrs = Vec::new();
        for iface in ns.interfaces.as_array().into_iter().flatten() {
            let name = iface["ifname"].as_str().unwrap_or("?");
            if name == "lo" {
                continue;
            }
            for a in iface["addr_info"].as_array().into_iter().flatten() {
                if a["family"] == "inet" {
                    addrs.push(format!(
                        "{name} {}/{}",
                        a["local"].as_str().unwrap_or("?"),
                        a["prefixlen"]
                    ));
                }
            }
        }
        let state = if ns.exists { "" } else { " (missing)" };
        println!("  {:<22}{state} {}", ns.name, addrs.join(", "));
    }
    println!("\nprocesses:");
    for p in &status.processes {
        let pid = p.pid.map_or("dead".to_owned(), |p| format!("pid {p}"));
        let health = match p.healthy {
            Some(true) => " healthy",
            Some(false) => " UNHEALTHY",
            None => "",
        };
        let vm = p.vm.map_or(String::new(), |vm| {
            let boot = vm
                .boot_ms
                .map_or("?".to_owned(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
            let rss = vm
                .rss_kib
                .map_or("?".to_owned(), |kib| format!("{} MiB", kib / 1024));
            format!(
                "  VM: booted in {boot}, host RSS {rss}, guest {} MiB",
                vm.memory_mib
            )
        });
        println!(
            "  {:<12} {:<22} {pid}{health}{vm}  log {}",
            p.name,
            p.netns,
            p.log.display()
        );
    }
    println!("\nISP test names:");
    for (name, addr) in &status.isp_names {
        println!("  {name} -> {addr}");
    }
    println!("ISP servers:");
    for s in &status.isp_servers {
        println!("  {s}");
    }
    println!(
        "\nrun a command in a namespace: roostctl lab exec client-lan -- curl http://198.51.100.80/"
    );
}
