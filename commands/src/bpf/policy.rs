use std::path::Path;

use clap::{Subcommand, ValueEnum};
use dpdbg::abi::{self, PolicyKey};
use dpdbg::maps::{Maps, PolicyAdd, PolicyRule, describe_rule};

use super::{parse_proto, proto_name};
use crate::names::{EndpointRef, resolve_one};
use crate::output::{Printer, table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Direction {
    Ingress,
    Egress,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Action {
    Allow,
    Deny,
}

#[derive(Debug, clap::Args)]
pub struct RuleArgs {
    /// The endpoint the rule belongs to: its id or NAMESPACE/POD.
    #[arg(long, value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
    endpoint: EndpointRef,
    /// Peer identity, or "any".
    #[arg(long, default_value = "any", value_parser = parse_identity)]
    identity: u32,
    /// Destination port (needs --proto tcp or udp); 0 = any.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// tcp, udp, icmp, icmpv6 or any.
    #[arg(long, default_value = "any", value_parser = parse_proto)]
    proto: u8,
    /// ingress (traffic to the endpoint) or egress (from it).
    #[arg(long, value_enum)]
    direction: Direction,
}

pub(crate) fn parse_identity(s: &str) -> Result<u32, String> {
    if s == "any" { Ok(0) } else { s.parse().map_err(|_| format!("{s:?}: an identity number or \"any\"")) }
}

impl RuleArgs {
    fn key(&self, maps: &Maps) -> anyhow::Result<PolicyKey> {
        if self.port != 0 && !matches!(self.proto, 6 | 17) {
            crate::usage!("--port {} needs --proto tcp or udp", self.port);
        }
        Ok(PolicyKey {
            endpoint_id: resolve_one(&self.endpoint, maps, "--endpoint")?,
            identity: self.identity,
            dport: self.port,
            proto: self.proto,
            direction: if self.direction == Direction::Egress { abi::DIR_EGRESS } else { abi::DIR_INGRESS },
        })
    }
}

#[derive(Debug, Subcommand)]
pub enum PolicyCmd {
    /// Show the rules (of one endpoint, or all) with their counters.
    Get {
        /// Only this endpoint's rules: its id or NAMESPACE/POD.
        #[arg(value_name = "ENDPOINT", value_parser = crate::names::parse_endpoint)]
        endpoint: Option<EndpointRef>,
    },
    /// Add a rule. Deny wins: an allow where a deny holds the same key is refused.
    Add {
        #[command(flatten)]
        rule: RuleArgs,
        /// allow or deny.
        #[arg(long, value_enum)]
        action: Action,
    },
    /// Delete a rule.
    Delete {
        #[command(flatten)]
        rule: RuleArgs,
    },
}

/// A rule with the names of its numbers: `bpf policy get`'s row and
/// document (the rule's fields, then `endpoint_name` and
/// `identity_labels` when there are any).
#[derive(serde::Serialize)]
struct NamedRule<'a> {
    #[serde(flatten)]
    rule: &'a PolicyRule,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_name: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    identity_labels: Vec<String>,
}

impl<'a> NamedRule<'a> {
    fn new(rule: &'a PolicyRule, names: &dpdbg::maps::Names) -> NamedRule<'a> {
        NamedRule {
            rule,
            endpoint_name: names.pods.get(&rule.endpoint_id).map(|p| p.to_string()),
            // Any identity (0) has no labels.
            identity_labels: if rule.identity == 0 { vec![] } else { names.labels_of(rule.identity) },
        }
    }
}

impl PolicyCmd {
    pub fn run(self, bpffs: &Path, p: &Printer) -> anyhow::Result<()> {
        let maps = Maps::open(bpffs)?;
        match self {
            PolicyCmd::Get { endpoint } => {
                let endpoint = endpoint.map(|e| resolve_one(&e, &maps, "endpoint")).transpose()?;
                let rules: Vec<PolicyRule> =
                    maps.policy_rules()?.into_iter().filter(|r| endpoint.is_none_or(|e| e == r.endpoint_id)).collect();
                // Names beside numbers: the endpoint's pod, the peer identity's labels.
                let names = maps.names().unwrap_or_default();
                let rules: Vec<NamedRule> = rules.iter().map(|r| NamedRule::new(r, &names)).collect();
                p.print(&rules, || {
                    if rules.is_empty() {
                        eprintln!("No entries found.");
                        return String::new();
                    }
                    let mut t = table(&[
                        "ENDPOINT",
                        "NAME",
                        "DIRECTION",
                        "IDENTITY",
                        "LABELS",
                        "PORT/PROTO",
                        "ACTION",
                        "PACKETS",
                        "BYTES",
                    ]);
                    for NamedRule { rule: r, endpoint_name, identity_labels } in &rules {
                        t.add_row(vec![
                            r.endpoint_id.to_string(),
                            endpoint_name.clone().unwrap_or_default(),
                            r.direction.to_string(),
                            if r.identity == 0 { "ANY".into() } else { r.identity.to_string() },
                            identity_labels.join(","),
                            if r.port == 0 {
                                proto_name(r.proto)
                            } else {
                                format!("{}/{}", r.port, proto_name(r.proto))
                            },
                            r.action.to_string(),
                            r.packets.to_string(),
                            r.bytes.to_string(),
                        ]);
                    }
                    t.to_string()
                })
            }
            PolicyCmd::Add { rule, action } => {
                let key = rule.key(&maps)?;
                let a = if action == Action::Deny { abi::POLICY_DENY } else { abi::POLICY_ALLOW };
                let outcome = maps.policy_add(key, a)?;
                p.print(&serde_json::json!({"result": outcome, "rule": describe_rule(&key)}), || {
                    match outcome {
                        PolicyAdd::Added => "Rule added.",
                        PolicyAdd::Unchanged => "Rule already present: kept it and its counters.",
                        PolicyAdd::Replaced => "Rule replaced: the deny now takes the place of the allow.",
                    }
                    .into()
                })
            }
            PolicyCmd::Delete { rule } => {
                let key = rule.key(&maps)?;
                if !maps.policy_list()?.iter().any(|(k, _)| *k == key) {
                    anyhow::bail!("no such rule (see `dpdbg bpf policy get {}`)", key.endpoint_id);
                }
                maps.policy_delete(key)?;
                p.print(&serde_json::json!({"deleted": true}), || "Rule deleted.".into())
            }
        }
    }
}
