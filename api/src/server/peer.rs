//! Hubble's `peer.Peer`: the nodes of the fleet, for hubble-relay. The relay
//! calls Notify on one node, takes every node as PEER_ADDED and the changes
//! after, keys them by name, and dials each one's Observer at its address.
//! This node knows the others from `--peer NAME=ADDR` (a static fleet) or
//! from `--peers-dns HOST:PORT` (a headless Service's name resolved again
//! and again, each address a peer whose name is asked from the peer
//! itself). The node itself is always one of them. A peer that does not
//! answer is still listed (under its address until it says its name): the
//! relay shows it as unavailable instead of not at all.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::peer::peer_server::Peer;
use crate::peer::{ChangeNotification, ChangeNotificationType, NotifyRequest, Tls};

/// How this node learns the others.
#[derive(Clone, Debug, Default)]
pub struct PeerOptions {
    /// This node's Observer address for the others (its TCP listener).
    pub self_address: Option<String>,
    /// `--peer NAME=ADDR`.
    pub fixed: Vec<(String, String)>,
    /// `--peers-dns HOST:PORT`, resolved every `dns_every`.
    pub dns: Option<String>,
    pub dns_every: Duration,
    /// The node serves TLS: each notification names the server name a
    /// peer's certificate carries (see [`tls_server_name`]).
    pub tls: bool,
    /// The cluster's name in those server names (`--cluster-name`).
    pub cluster: String,
}

/// The TLS server name of a node's Hubble listener, as cilium names it:
/// `<node>.<cluster>.hubble-grpc.cilium.io`, dots in either name made dashes
/// so every node sits at the same DNS level. One certificate for
/// `*.<cluster>.hubble-grpc.cilium.io` (cilium's Hubble server certificates)
/// then serves every node, and the name hubble-relay asks the peer service
/// under, `hubble-peer.<cluster>.hubble-grpc.cilium.io`, too.
pub fn tls_server_name(node: &str, cluster: &str) -> String {
    let cluster = if cluster.is_empty() { "default" } else { cluster };
    format!("{}.{}.hubble-grpc.cilium.io", node.replace('.', "-"), cluster.replace('.', "-"))
}

/// The fleet as this node sees it: name → address.
pub(super) struct Peers {
    known: Mutex<BTreeMap<String, String>>,
    changes: broadcast::Sender<ChangeNotification>,
    /// The cluster's name, when the node serves TLS.
    tls: Option<String>,
}

impl Peers {
    pub(super) fn new(o: &PeerOptions) -> Arc<Peers> {
        let (changes, _) = broadcast::channel(256);
        Arc::new(Peers { known: Mutex::new(BTreeMap::new()), changes, tls: o.tls.then(|| o.cluster.clone()) })
    }

    fn note(&self, name: &str, address: &str, kind: ChangeNotificationType) -> ChangeNotification {
        ChangeNotification {
            name: name.to_string(),
            address: address.to_string(),
            r#type: kind as i32,
            tls: self.tls.as_ref().map(|cluster| Tls { server_name: tls_server_name(name, cluster) }),
        }
    }

    /// Makes `now` the fleet, telling subscribers what changed.
    pub(super) fn set(&self, now: BTreeMap<String, String>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let mut told = Vec::new();
        for (name, addr) in known.iter() {
            match now.get(name) {
                None => told.push(self.note(name, addr, ChangeNotificationType::PeerDeleted)),
                Some(a) if a != addr => told.push(self.note(name, a, ChangeNotificationType::PeerUpdated)),
                Some(_) => {}
            }
        }
        for (name, addr) in &now {
            if !known.contains_key(name) {
                told.push(self.note(name, addr, ChangeNotificationType::PeerAdded));
            }
        }
        *known = now;
        for n in told {
            // Nobody listening is fine: a new subscriber gets the whole set.
            let _ = self.changes.send(n);
        }
    }

    /// Every peer as PEER_ADDED, and a receiver of what changes after
    /// (taken under the same lock, so nothing falls between them).
    fn subscribe(&self) -> (Vec<ChangeNotification>, broadcast::Receiver<ChangeNotification>) {
        let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.changes.subscribe();
        let all = known.iter().map(|(n, a)| self.note(n, a, ChangeNotificationType::PeerAdded)).collect();
        (all, rx)
    }
}

#[derive(Clone)]
pub(super) struct PeerService(pub(super) Arc<Peers>);

type Notes = Pin<Box<dyn Stream<Item = Result<ChangeNotification, Status>> + Send>>;

#[tonic::async_trait]
impl Peer for PeerService {
    type NotifyStream = Notes;

    async fn notify(&self, _: Request<NotifyRequest>) -> Result<Response<Notes>, Status> {
        let peers = Arc::clone(&self.0);
        let (first, mut rx) = peers.subscribe();
        let (tx, out) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            for n in first {
                if tx.send(Ok(n)).await.is_err() {
                    return;
                }
            }
            loop {
                let n = match rx.recv().await {
                    Ok(n) => n,
                    // Fell behind: what is known now, again. The relay takes
                    // an ADDED of a peer it has as that peer's news.
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let (all, fresh) = peers.subscribe();
                        rx = fresh;
                        for n in all {
                            if tx.send(Ok(n)).await.is_err() {
                                return;
                            }
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if tx.send(Ok(n)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(out))))
    }
}

/// Checks `--peer NAME=ADDR`: a node name and an address the relay can dial
/// (ip:port, or a bare IP for Hubble's port 4244).
pub fn parse_peer(s: &str) -> Result<(String, String), String> {
    let Some((name, addr)) = s.split_once('=') else {
        return Err(format!("{s:?}: give NAME=ADDR, like node-b=10.0.0.2:4244"));
    };
    if name.is_empty() {
        return Err(format!("{s:?}: the node name before = is empty"));
    }
    let ok = addr.parse::<std::net::SocketAddr>().is_ok() || addr.parse::<std::net::IpAddr>().is_ok();
    if !ok {
        return Err(format!(
            "{s:?}: {addr:?} is not ip:port or an IP address (a name is not dialled as given by the relay)"
        ));
    }
    Ok((name.to_string(), addr.to_string()))
}

/// Checks `--peers-dns HOST:PORT`.
pub fn parse_dns(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0) => Ok(s.to_string()),
        _ => Err(format!("{s:?}: give HOST:PORT, like dpdbg-peers.kube-system.svc.cluster.local:4244")),
    }
}

/// The name a node at `addr` gives itself, asked through its Observer.
async fn name_of(addr: &str) -> Option<String> {
    let ask = async {
        let mut c = crate::client::observer(addr).await.ok()?;
        let nodes = c.get_nodes(crate::observer::GetNodesRequest {}).await.ok()?.into_inner();
        nodes.nodes.into_iter().next().map(|n| n.name).filter(|n| !n.is_empty())
    };
    tokio::time::timeout(Duration::from_secs(3), ask).await.ok().flatten()
}

/// Keeps the fleet up to date: the fixed peers and this node at once, then
/// the DNS name's addresses on every round. A name that does not resolve
/// is said (once per new error) and tried again; serve keeps running.
pub(super) async fn keep(peers: Arc<Peers>, me: String, opts: PeerOptions) {
    let base = || {
        let mut m: BTreeMap<String, String> = opts.fixed.iter().cloned().collect();
        if let Some(a) = &opts.self_address {
            m.insert(me.clone(), a.clone());
        }
        m
    };
    peers.set(base());
    let Some(dns) = opts.dns.clone() else { return };
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut said: Option<String> = None;
    let mut tick = tokio::time::interval(opts.dns_every);
    loop {
        tick.tick().await;
        let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(dns.as_str()).await {
            Ok(a) => {
                said = None;
                a.collect()
            }
            Err(e) => {
                let e = format!("dpdbg serve: --peers-dns {dns}: {e} (tried again every {:?})", opts.dns_every);
                if said.as_ref() != Some(&e) {
                    eprintln!("{e}");
                    said = Some(e);
                }
                continue;
            }
        };
        let mut now = base();
        for a in addrs {
            let addr = a.to_string();
            // Asked again each round: a node that restarted may call itself otherwise.
            let name = match name_of(&addr).await {
                Some(n) => {
                    names.insert(addr.clone(), n.clone());
                    n
                }
                // Not answering: known under the name it last gave, else its address.
                None => names.get(&addr).cloned().unwrap_or_else(|| addr.clone()),
            };
            now.entry(name).or_insert(addr);
        }
        peers.set(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_told_as_the_relay_reads_them() {
        let peers = Peers::new(&PeerOptions::default());
        let (all, mut rx) = peers.subscribe();
        assert!(all.is_empty());
        let m = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect();
        peers.set(m(&[("a", "10.0.0.1:4244"), ("b", "10.0.0.2:4244")]));
        peers.set(m(&[("a", "10.0.0.9:4244"), ("c", "10.0.0.3:4244")]));
        let mut got = Vec::new();
        while let Ok(n) = rx.try_recv() {
            got.push((n.name, n.address, n.r#type));
        }
        use ChangeNotificationType as T;
        assert_eq!(
            got,
            vec![
                ("a".into(), "10.0.0.1:4244".into(), T::PeerAdded as i32),
                ("b".into(), "10.0.0.2:4244".into(), T::PeerAdded as i32),
                ("a".into(), "10.0.0.9:4244".into(), T::PeerUpdated as i32),
                ("b".into(), "10.0.0.2:4244".into(), T::PeerDeleted as i32),
                ("c".into(), "10.0.0.3:4244".into(), T::PeerAdded as i32),
            ]
        );
        let (all, _) = peers.subscribe();
        assert_eq!(all.iter().map(|n| n.name.as_str()).collect::<Vec<_>>(), ["a", "c"]);
        assert!(all.iter().all(|n| n.tls.is_none()), "no TLS, no server name");
        let tls = Peers::new(&PeerOptions { tls: true, cluster: "prod.eu".into(), ..Default::default() });
        tls.set(m(&[("node-a", "10.0.0.1:4244"), ("ip-10-0-0-2.ec2.internal", "10.0.0.2:4244")]));
        let names: Vec<String> = tls.subscribe().0.into_iter().map(|n| n.tls.unwrap().server_name).collect();
        // Cilium's handler_test spells these for node "name": name.default.hubble-grpc.cilium.io.
        assert_eq!(
            names,
            ["ip-10-0-0-2-ec2-internal.prod-eu.hubble-grpc.cilium.io", "node-a.prod-eu.hubble-grpc.cilium.io"]
        );
        assert_eq!(tls_server_name("name", ""), "name.default.hubble-grpc.cilium.io");
    }

    #[test]
    fn peer_flags_say_what_they_want() {
        assert_eq!(parse_peer("node-b=10.0.0.2:4244").unwrap(), ("node-b".into(), "10.0.0.2:4244".into()));
        assert!(parse_peer("node-b=10.0.0.2").is_ok());
        assert!(parse_peer("node-b").unwrap_err().contains("NAME=ADDR"));
        assert!(parse_peer("=10.0.0.2").is_err());
        assert!(parse_peer("b=host:4244").unwrap_err().contains("not ip:port"));
        assert!(parse_dns("peers.svc:4244").is_ok());
        assert!(parse_dns("peers.svc").is_err());
        assert!(parse_dns("peers.svc:0").is_err());
    }
}
