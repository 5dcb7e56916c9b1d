//! `observe --pcapng FILE|-`: the packets of the flows `dpdbg serve` still
//! holds, written after the fact. Hubble's flows carry no packet bytes, so
//! the records come through dpdbg.v1.Events/Stored, chosen by the same
//! request GetFlows would answer (--last, --first, time bounds, filters,
//! -f), and are written here, on the client, with the comments `monitor
//! --pcapng` writes.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use dpdbg::flow::Flow;
use dpdbg_api::events::events_client::EventsClient;
use dpdbg_api::observer::GetFlowsRequest;

/// What was written, for the line on stderr at the end.
#[derive(Default)]
struct Counts {
    packets: u64,
    drops: u64,
    lost: u64,
    undecodable: u64,
    cut: u64,
}

pub(crate) fn run(server: &str, req: GetFlowsRequest, path: &Path) -> anyhow::Result<()> {
    let to_stdout = path == Path::new("-");
    let shown = if to_stdout { "stdout".to_string() } else { path.display().to_string() };
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().context("the async runtime")?;
    let follow = req.follow;
    // Dialled and asked before the file is made: a refusal leaves no empty file behind.
    let mut stream = rt.block_on(async {
        let mut client = EventsClient::new(dpdbg_api::client::connect(server).await?);
        let stream = client.stored(req).await.map_err(|s| refused(server, &s))?.into_inner();
        anyhow::Ok(stream)
    })?;
    let out: Box<dyn Write> = if to_stdout {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(std::fs::File::create(path).with_context(|| format!("--pcapng: creating {}", path.display()))?)
    };
    // The server's snap length is not known here: 0 is pcapng's "no limit".
    let mut w = crate::pcapng::Writer::new(BufWriter::new(out), 0).context("writing the pcapng section header")?;
    crate::stop::install();
    let mut n = Counts::default();
    let result = rt.block_on(async {
        while !crate::stop::requested() {
            // Woken now and then to see Ctrl-C while a follow waits.
            let msg = match tokio::time::timeout(Duration::from_millis(250), stream.message()).await {
                Ok(m) => m.map_err(|s| refused(server, &s))?,
                Err(_) => continue,
            };
            let Some(r) = msg else { break };
            if r.lost > 0 {
                n.lost += r.lost;
                eprintln!("EVENTS LOST: {} records", r.lost);
            }
            if r.record.is_empty() {
                continue;
            }
            let Ok(ev) = dpdbg::events::view(&r.record) else {
                n.undecodable += 1;
                continue;
            };
            let f = Flow::from_event(ev);
            let cx = crate::pcapng::Context {
                interface: nonempty(&r.interface),
                endpoint: nonempty(&r.endpoint_name),
                wall_offset_ns: r.wall_offset_ns as i128,
            };
            n.cut += w.write(ev, &f, cx).with_context(|| format!("writing {shown}"))? as u64;
            n.packets += 1;
            n.drops += (ev.hdr.verdict == dpdbg::abi::VERDICT_DROPPED) as u64;
            if follow {
                w.get_mut().flush().with_context(|| format!("writing {shown}"))?;
            }
        }
        anyhow::Ok(())
    });
    let flushed = w.into_inner().into_inner().map_err(|e| e.into_error()).and_then(|mut f| f.flush());
    match (result, flushed) {
        (Err(e), _) if is_broken_pipe(&e) => {}
        (Err(e), _) => return Err(e),
        (Ok(()), Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        (Ok(()), Err(e)) => return Err(e).with_context(|| format!("writing {shown}")),
        (Ok(()), Ok(())) => {}
    }
    let mut extra = String::new();
    for (k, what) in [(n.lost, "lost"), (n.undecodable, "undecodable"), (n.cut, "cut short (damaged records)")] {
        if k > 0 {
            extra.push_str(&format!(", {k} {what}"));
        }
    }
    eprintln!("Wrote {} packets ({} dropped) to {shown}{extra}", n.packets, n.drops);
    Ok(())
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
}

/// A status the server ended Stored with, in its own words. INVALID_ARGUMENT
/// is a filter it could not take: a usage error, as for GetFlows.
fn refused(server: &str, s: &dpdbg_api::tonic::Status) -> anyhow::Error {
    let message = format!("dpdbg.v1.Events/Stored at {server}: {}", dpdbg_api::client::status_text(s));
    if s.code() == dpdbg_api::tonic::Code::InvalidArgument {
        anyhow::Error::new(crate::output::UsageError(message))
    } else {
        anyhow::anyhow!(message)
    }
}
