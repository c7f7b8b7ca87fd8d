//! Times ADD and DEL of a CNI plugin, executed as a runtime executes it.
//!
//!   cni-bench PLUGIN CONFIG NETNS ROUNDS
//!
//! Each round runs ADD then DEL with CNI_IFNAME=net1 and its own container
//! id; CNI_PATH comes from the environment. Prints min, median, mean and
//! max wall time of each, in milliseconds.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

fn run(
    plugin: &str,
    command: &str,
    container: &str,
    netns: &str,
    config: &[u8],
) -> Result<Duration, String> {
    let start = Instant::now();
    let mut child = Command::new(plugin)
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", container)
        .env("CNI_NETNS", netns)
        .env("CNI_IFNAME", "net1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("run {plugin}: {e}"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin")?
        .write_all(config)
        .map_err(|e| e.to_string())?;
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    let elapsed = start.elapsed();
    if !output.status.success() {
        return Err(format!(
            "{command} failed: {}",
            String::from_utf8_lossy(&output.stdout)
        ));
    }
    Ok(elapsed)
}

fn summary(name: &str, mut times: Vec<Duration>) -> String {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let mean = times.iter().map(|d| ms(*d)).sum::<f64>() / times.len() as f64;
    format!(
        "{name}: min {:.1} ms, median {:.1} ms, mean {mean:.1} ms, max {:.1} ms ({} runs)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        times.len()
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [plugin, config, netns, rounds] = &args[..] else {
        eprintln!("usage: cni-bench PLUGIN CONFIG NETNS ROUNDS");
        return ExitCode::FAILURE;
    };
    let (config, rounds) = match (std::fs::read(config), rounds.parse::<usize>()) {
        (Ok(config), Ok(rounds)) if rounds > 0 => (config, rounds),
        _ => {
            eprintln!("cni-bench: cannot read {config:?} or {rounds:?} is not a round count");
            return ExitCode::FAILURE;
        }
    };
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let container = format!("bench-{round}");
        let timed = run(plugin, "ADD", &container, netns, &config)
            .and_then(|add| Ok((add, run(plugin, "DEL", &container, netns, &config)?)));
        match timed {
            Ok((add, del)) => {
                adds.push(add);
                dels.push(del);
            }
            Err(e) => {
                eprintln!("cni-bench: round {round}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}", summary("ADD", adds));
    println!("{}", summary("DEL", dels));
    ExitCode::SUCCESS
}
