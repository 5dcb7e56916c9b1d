//! `dpdbg serve` fan-out: flows per second delivered to 1, 4 and 16
//! subscribers over the local socket, with the server's CPU per flow and the
//! losses per subscriber, beside a direct `dpdbg monitor` (text and -o jsonl)
//! reading the same generator in the same run. The generator runs the
//! datapath on a crafted packet with BPF_PROG_TEST_RUN (aggregation none: an
//! event per run), faster than the lab's sender could. Needs root.

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aya::programs::{SchedClassifier, TestRun, TestRunOptions};
use dpdbg::abi::EndpointInfo;
use dpdbg::datapath::{self, Aggregation, Pins, Settings};
use dpdbg::maps::Maps;
use dpdbg_api::observer::GetFlowsRequest;
use dpdbg_api::observer::get_flows_response::ResponseTypes;
use etherparse::PacketBuilder;

mod common;

const WINDOW: Duration = Duration::from_secs(3);

fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer for the calling thread's clock.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// Runs the datapath on one packet over and over until stopped; returns
/// runs and the CPU the generator's thread used.
fn generator(bpffs: &Path, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(u64, u64)> {
    let prog = SchedClassifier::from_pin(Pins::new(bpffs).prog(datapath::PROG_FROM_ENDPOINT)).unwrap();
    let mut pkt = Vec::new();
    PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
        .ipv4([192, 0, 2, 1], [198, 51, 100, 7], 64)
        .udp(4000, 53)
        .write(&mut pkt, &[0u8; 32])
        .unwrap();
    std::thread::spawn(move || {
        common::pin_to_cpu(0);
        let mut runs = 0u64;
        let cpu0 = thread_cpu_ns();
        while !stop.load(Ordering::Relaxed) {
            let mut o = TestRunOptions::new();
            o.data_in = Some(&pkt);
            o.repeat = 20_000;
            prog.test_run(o).unwrap();
            runs += 20_000;
        }
        (runs, thread_cpu_ns() - cpu0)
    })
}

/// A direct monitor for the window: (events received, lost) from its summary.
fn direct(bpffs: &Path, args: &[&str]) -> (u64, u64, u64) {
    monitor(bpffs, args, None)
}

/// A monitor for the window, reading the ring itself or, with `server`,
/// through `dpdbg serve` (which holds the ring): its summary's counts.
fn monitor(bpffs: &Path, args: &[&str], server: Option<&Path>) -> (u64, u64, u64) {
    monitor_of(env!("CARGO_BIN_EXE_dpdbg"), bpffs, args, server)
}

/// As `monitor`, with the dpdbg at `bin`.
fn monitor_of(bin: &str, bpffs: &Path, args: &[&str], server: Option<&Path>) -> (u64, u64, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut cmd = Command::new(bin);
    if let Some(s) = server {
        cmd.env("DPDBG_EVENTS_SOCKET", s);
    }
    let out = cmd
        .arg("--bpffs")
        .arg(bpffs)
        .args(["monitor", "--until", "3s"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let g = generator(bpffs, Arc::clone(&stop));
    let out = out.wait_with_output().unwrap();
    stop.store(true, Ordering::Relaxed);
    let (runs, _) = g.join().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    let summary = text.lines().find(|l| l.starts_with("Received")).unwrap_or("");
    let num = |after: &str| {
        summary
            .split(after)
            .nth(1)
            .and_then(|s| s.split(|c: char| !c.is_ascii_digit()).find(|x| !x.is_empty()))
            .and_then(|x| x.parse().ok())
            .unwrap_or(0)
    };
    (num("Received "), num("lost "), runs)
}

fn main() {
    common::with_bpffs(run);
}

/// Rounds of the direct monitor against the monitor beside the server: the
/// VM's rates move by a third from one window to the next, so the two are
/// measured in turns and the median of their ratios is the figure.
const ROUNDS: usize = 3;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn run(bpffs: &Path) {
    // Readers (monitor, serve, the Rust clients) on CPU 1; the generator pins itself to CPU 0.
    common::pin_to_cpu(1);
    datapath::load(bpffs, &Settings { aggregation: Aggregation::None, ..Settings::default() }).unwrap();
    let maps = Maps::open(bpffs).unwrap();
    let ep = EndpointInfo { endpoint_id: 1, identity: 1000, ifindex: 1, mac: [2, 0, 0, 0, 0, 1], flags: 0 };
    maps.endpoint_upsert(IpAddr::from([192, 0, 2, 1]), ep).unwrap();
    let secs = WINDOW.as_secs_f64();
    // DPDBG_BENCH_ONLY=direct|events|followers runs that part alone (for a
    // profiler to watch); events and followers measure the direct jsonl rate too.
    let only = std::env::var("DPDBG_BENCH_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);

    println!(
        "events from a BPF_PROG_TEST_RUN generator on CPU 0 for {}s, readers on CPU 1, aggregation none, default ring (4 MiB):",
        WINDOW.as_secs()
    );
    let line = |what: &str, (got, lost, runs): (u64, u64, u64), note: &str| {
        println!(
            "  {what:<32}{:>10.0} events/s{note}, {:>9} lost (generator {:.0} events/s)",
            got as f64 / secs,
            lost,
            runs as f64 / secs
        );
        got as f64 / secs
    };
    if part("direct") {
        // Rounds of the three in turns (and of another build's, when
        // DPDBG_BENCH_BASELINE_BIN names one): the generator's rate moves
        // with the machine's load, and what matters is what each loses.
        let before = std::env::var("DPDBG_BENCH_BASELINE_BIN").ok().filter(|b| !b.is_empty());
        let bins: Vec<(&str, String)> = std::iter::once(("", env!("CARGO_BIN_EXE_dpdbg").to_string()))
            .chain(before.map(|b| ("before: ", b)))
            .collect();
        // Per build and kind: (events/s delivered, lost, generator events/s) per round.
        let mut seen: Vec<Vec<Vec<(f64, u64, f64)>>> = vec![vec![Vec::new(); 3]; bins.len()];
        for round in 1..=ROUNDS {
            for (b, (who, bin)) in bins.iter().enumerate() {
                // A monitor whose filter keeps nothing reads and counts every
                // event but decodes and prints none: what reading the ring alone costs.
                let kinds: [(&str, &[&str], &str); 3] = [
                    ("-t drop", &["-t", "drop"], " read (prints none)"),
                    ("text", &[], " delivered"),
                    ("-o jsonl", &["-o", "jsonl"], " delivered"),
                ];
                for (k, (name, args, note)) in kinds.iter().enumerate() {
                    let r = monitor_of(bin, bpffs, args, None);
                    line(&format!("[{round}] {who}direct monitor, {name}"), r, note);
                    seen[b][k].push((r.0 as f64 / secs, r.1, r.2 as f64 / secs));
                }
            }
        }
        for (b, (who, _)) in bins.iter().enumerate() {
            let none = median(seen[b][0].iter().map(|r| r.0).collect());
            for (k, name) in ["-t drop", "text", "-o jsonl"].iter().enumerate() {
                let rate = median(seen[b][k].iter().map(|r| r.0).collect());
                let lost: Vec<u64> = seen[b][k].iter().map(|r| r.1).collect();
                let got: f64 = seen[b][k].iter().map(|r| r.0 * secs).sum();
                let pct = 100.0 * lost.iter().sum::<u64>() as f64 / (got + lost.iter().sum::<u64>() as f64).max(1.0);
                println!(
                    "  {who}direct monitor, {name:<9} median {rate:>9.0} events/s ({:.2}x the -t drop reader), lost {pct:.3} % over {ROUNDS} rounds {lost:?} (target 0)",
                    rate / none.max(1.0)
                );
            }
        }
    }
    if only.as_deref() == Some("direct") {
        return;
    }

    let socket = bpffs.join("..").join(format!("dpdbg-bench-{}.sock", std::process::id()));
    let mut server = start_server(bpffs, &socket);
    let mut direct_rates = Vec::new();
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        // The direct monitor needs the ring to itself: the server stops for it.
        stop_server(&mut server, &socket);
        let direct_rate =
            line(&format!("[{}] direct monitor, -o jsonl", round + 1), direct(bpffs, &["-o", "jsonl"]), " delivered");
        direct_rates.push(direct_rate);
        server = start_server(bpffs, &socket);
        if !part("events") {
            continue;
        }
        // A monitor beside the server: the ring's records through the server's
        // monitor socket, decoded and printed by the monitor as it prints what
        // it reads itself.
        let cpu0 = common::cpu_ns(server.id());
        let via = monitor(bpffs, &["-o", "jsonl"], Some(&socket));
        let cpu = common::cpu_ns(server.id()) - cpu0;
        let ratio = via.0 as f64 / secs / direct_rate.max(1.0);
        ratios.push(ratio);
        line(
            &format!("[{}] serve -> monitor -o jsonl", round + 1),
            via,
            &format!(
                " delivered ({ratio:.2}x the direct jsonl rate), server CPU {:.0} ns per event",
                cpu as f64 / via.0.max(1) as f64
            ),
        );
    }
    let direct_rate = median(direct_rates);
    if !ratios.is_empty() {
        println!(
            "  serve -> monitor -o jsonl: median {:.2}x the direct jsonl rate over {ROUNDS} rounds (target: at least 0.5x)",
            median(ratios)
        );
    }
    if !part("followers") {
        stop_server(&mut server, &socket);
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let at = Followed { bpffs, socket: &socket, server: server.id(), rt: &rt, direct: direct_rate };
    // Names (issue 26): the same follower with the names table empty, with
    // a thousand endpoints and identities named but not the generator's
    // (the lookups alone), and with the generator's endpoint named and its
    // identity labelled too (the names in every flow), in turns. The server
    // reads names once a second: each turn waits for a read.
    for round in 1..=2 {
        for names in [Names::Empty, Names::Others, Names::All] {
            set_names(&maps, names);
            std::thread::sleep(Duration::from_millis(1500));
            let what = match names {
                Names::Empty => "names empty",
                Names::Others => "others named",
                Names::All => "flows named",
            };
            followers(&at, 1, false, &format!(", envelopes, {what} [{round}]"));
            followers(&at, 1, true, &format!(", decoding, {what} [{round}]"));
        }
    }
    for n in [4usize, 16] {
        followers(&at, n, true, ", decoding, flows named");
    }
    set_names(&maps, Names::Empty);
    stop_server(&mut server, &socket);

    // Once more with server and client free to use both cores, the
    // generator's too: what a follower gets where it does not share the
    // server's core (the generator keeps CPU 0 busy all the same).
    std::thread::scope(|s| {
        s.spawn(|| {
            common::unpin();
            let mut server = start_server(bpffs, &socket);
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            let at = Followed { bpffs, socket: &socket, server: server.id(), rt: &rt, direct: direct_rate };
            followers(&at, 1, false, ", envelopes, unpinned");
            followers(&at, 1, true, ", decoding, unpinned");
            stop_server(&mut server, &socket);
        });
    });
}

/// What the names table holds for a turn of the bench.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Names {
    Empty,
    /// 1000 other endpoints (ids from 10001) and identities (1001…) named
    /// and labelled, not the generator's.
    Others,
    /// Those and the generator's endpoint (1, bench/generator) and identity
    /// (1000, app=bench-0 and two more labels).
    All,
}

fn set_names(maps: &Maps, names: Names) {
    use dpdbg::maps::PodName;
    let labels = |i: u32| vec![format!("app=bench-{i}"), "tier=load".to_string(), "team=dpdbg".to_string()];
    for i in 0..=1000u32 {
        let (ep, id) = (if i == 0 { 1 } else { 10_000 + i }, 1000 + i);
        let named = match names {
            Names::Empty => false,
            Names::Others => i > 0,
            Names::All => true,
        };
        if named {
            let pod = if i == 0 { "generator".to_string() } else { format!("other-{i}") };
            maps.endpoint_name_set(ep, &PodName { namespace: "bench".into(), pod }).unwrap();
            maps.identity_set(id, &labels(i)).unwrap();
        } else {
            let _ = maps.endpoint_name_delete(ep);
            let _ = maps.identity_delete(id);
        }
    }
}

fn start_server(bpffs: &Path, socket: &Path) -> std::process::Child {
    let mut server = Command::new(env!("CARGO_BIN_EXE_dpdbg"))
        .arg("--bpffs")
        .arg(bpffs)
        .args(["serve", "--socket"])
        .arg(socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let monitor_socket = dpdbg_api::monitor_socket::path_for(socket);
    // In CI a server that cannot start must fail the run, not hang it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !socket.exists() || !monitor_socket.exists() {
        if let Ok(Some(status)) = server.try_wait() {
            panic!("dpdbg serve exited ({status}) before its sockets appeared");
        }
        assert!(Instant::now() < deadline, "dpdbg serve made no sockets in 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

/// Kills the server and removes what it leaves (a killed server removes nothing).
fn stop_server(server: &mut std::process::Child, socket: &Path) {
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_file(socket);
    let _ = std::fs::remove_file(dpdbg_api::monitor_socket::path_for(socket));
}

/// A GetFlowsResponse read as far as its kind: the flow's bytes are framed
/// and handed over but not decoded. A follower that reads these measures
/// what the server delivers; one that decodes every flow (prost, a dozen
/// Strings each) measures that decoding too, which on a shared core costs
/// more than the server does.
#[derive(Clone, PartialEq, prost::Message)]
struct Envelope {
    #[prost(bytes = "bytes", optional, tag = "1")]
    flow: Option<prost::bytes::Bytes>,
    #[prost(message, optional, tag = "3")]
    lost_events: Option<dpdbg_api::flow::LostEvent>,
}

async fn envelopes(sock: &str, req: GetFlowsRequest) -> dpdbg_api::tonic::Streaming<Envelope> {
    use dpdbg_api::tonic;
    let mut grpc = tonic::client::Grpc::new(dpdbg_api::client::connect(sock).await.unwrap());
    grpc.ready().await.unwrap();
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/observer.Observer/GetFlows");
    let codec = tonic_prost::ProstCodec::<GetFlowsRequest, Envelope>::default();
    grpc.server_streaming(tonic::Request::new(req), path, codec).await.unwrap().into_inner()
}

/// What followers are measured against: the datapath, the server (its
/// socket and pid), the clients' runtime, the direct jsonl rate (events/s).
struct Followed<'a> {
    bpffs: &'a Path,
    socket: &'a Path,
    server: u32,
    rt: &'a tokio::runtime::Runtime,
    direct: f64,
}

/// `n` Observer followers for the window: their rate against `direct`
/// (events/s), the CPU server and clients spent per flow, their losses.
/// `decode_flows`: whether the clients decode each flow or only its envelope.
fn followers(at: &Followed<'_>, n: usize, decode_flows: bool, how: &str) {
    let Followed { bpffs, socket, server, rt, direct } = *at;
    let secs = WINDOW.as_secs_f64();
    let stop = Arc::new(AtomicBool::new(false));
    let cpu0 = common::cpu_ns(server);
    let me0 = common::cpu_ns(std::process::id());
    let seen = || {
        rt.block_on(async {
            let mut c = dpdbg_api::client::observer(&socket.to_string_lossy()).await.unwrap();
            c.server_status(dpdbg_api::observer::ServerStatusRequest {}).await.unwrap().into_inner().seen_flows
        })
    };
    let seen0 = seen();
    let results: (Vec<(u64, u64)>, u64) = rt.block_on(async {
        let mut tasks = Vec::new();
        // The window is the generator's: it starts 200 ms after the subscribers.
        let end = Instant::now() + Duration::from_millis(200) + WINDOW;
        for _ in 0..n {
            let sock = socket.to_string_lossy().into_owned();
            tasks.push(tokio::spawn(async move {
                let req = GetFlowsRequest { follow: true, ..Default::default() };
                let (mut flows, mut lost) = (0u64, 0u64);
                // A timeout only fires once the stream has nothing ready: with a
                // backlog the deadline must be checked by hand, or the window stretches.
                if decode_flows {
                    let mut c = dpdbg_api::client::observer(&sock).await.unwrap();
                    let mut s = c.get_flows(req).await.unwrap().into_inner();
                    while Instant::now() < end
                        && let Ok(Ok(Some(r))) = tokio::time::timeout_at(end.into(), s.message()).await
                    {
                        match r.response_types {
                            Some(ResponseTypes::Flow(_)) => flows += 1,
                            Some(ResponseTypes::LostEvents(l)) => lost += l.num_events_lost,
                            Some(ResponseTypes::NodeStatus(_)) | None => {}
                        }
                    }
                } else {
                    let mut s = envelopes(&sock, req).await;
                    while Instant::now() < end
                        && let Ok(Ok(Some(r))) = tokio::time::timeout_at(end.into(), s.message()).await
                    {
                        if r.flow.is_some() {
                            flows += 1;
                        }
                        lost += r.lost_events.map_or(0, |l| l.num_events_lost);
                    }
                }
                (flows, lost)
            }));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let g = generator(bpffs, Arc::clone(&stop));
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        stop.store(true, Ordering::Relaxed);
        let (_, gen_cpu) = g.join().unwrap();
        (out, gen_cpu)
    });
    let (results, gen_cpu) = results;
    let cpu = common::cpu_ns(server) - cpu0;
    // The bench process is the clients and the generator: the clients' share is the rest.
    let clients_cpu = (common::cpu_ns(std::process::id()) - me0).saturating_sub(gen_cpu);
    let read = seen() - seen0;
    let total: u64 = results.iter().map(|r| r.0).sum();
    assert!(
        results.iter().all(|r| r.0 <= read),
        "a subscriber got more flows ({results:?}) than the server read ({read})"
    );
    let per = total as f64 / n as f64 / secs;
    let lost: Vec<u64> = results.iter().map(|r| r.1).collect();
    println!(
        "  serve -> {n:>2} follower(s){how:<24}{:>10.0} flows/s each ({:.2}x the direct jsonl rate), CPU per flow delivered: server {:.0} ns, Rust clients {:.0} ns; lost per subscriber {:?}",
        per,
        per / direct.max(1.0),
        cpu as f64 / total.max(1) as f64,
        clients_cpu as f64 / total.max(1) as f64,
        lost
    );
}
