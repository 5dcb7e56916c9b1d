//! The words the core prints in its documents (a direction, a conntrack
//! state or flag, a reason's text, a program type, a policy action) read
//! back into the `&'static str` its types hold. A document read back with
//! serde holds the core's own words, never a copy of them kept elsewhere; a
//! word the core does not print is an error naming it and the words known.

/// A word of the core's vocabulary. Spelled through this alias in the
/// core's types because serde's derive takes a plain `&'static str` field for
/// text borrowed from the input, which would tie every document to input that
/// lives forever; the field's `deserialize_with` gives it the core's word.
pub type Word = &'static str;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

use crate::abi::{self, Reason};
use crate::maps::ct;

/// The one of `words` that the next string spells.
fn pick<'de, D: Deserializer<'de>>(
    d: D,
    what: &str,
    words: impl Iterator<Item = &'static str> + Clone,
) -> Result<&'static str, D::Error> {
    let s = String::deserialize(d)?;
    one_of(&s, what, words).map_err(D::Error::custom)
}

fn one_of(s: &str, what: &str, words: impl Iterator<Item = &'static str> + Clone) -> Result<&'static str, String> {
    words.clone().find(|w| *w == s).ok_or_else(|| {
        let mut known: Vec<&str> = words.collect();
        known.dedup();
        format!("unknown {what} {s:?} (known: {})", known.join(", "))
    })
}

fn directions() -> impl Iterator<Item = &'static str> + Clone {
    [abi::DIR_INGRESS, abi::DIR_EGRESS].into_iter().map(abi::direction_text)
}

/// `ingress` or `egress`.
pub fn direction<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    pick(d, "direction", directions())
}

/// A conntrack state (`ESTABLISHED`, …), as `bpf ct list` prints it.
pub fn ct_state<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    pick(d, "conntrack state", ct::STATES.iter().copied())
}

/// A conntrack entry's flags (`reply_seen`, …).
pub fn ct_flags<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<&'static str>, D::Error> {
    let names = Vec::<String>::deserialize(d)?;
    names
        .iter()
        .map(|s| one_of(s, "conntrack flag", ct::FLAGS.iter().map(|(_, n)| *n)))
        .collect::<Result<_, _>>()
        .map_err(D::Error::custom)
}

/// A reason's text (`Policy denied`), as [`Reason::text`] gives it.
pub fn reason_text<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    pick(d, "reason", (0..=u8::MAX).map(|r| Reason(r).text()))
}

/// A program type as bpftool names it (`sched_cls`).
pub fn prog_type<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    pick(d, "program type", crate::progs::PROG_TYPE_NAMES.iter().copied().chain(["unknown"]))
}

/// One of the datapath's programs (`from_endpoint`, …).
pub fn datapath_program<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    use crate::pins::{PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM, PROG_TRACE_TO};
    pick(d, "datapath program", [PROG_FROM_ENDPOINT, PROG_TO_ENDPOINT, PROG_TRACE_FROM, PROG_TRACE_TO].into_iter())
}

/// `allow` or `deny`.
pub fn policy_action<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    pick(d, "policy action", [abi::POLICY_ALLOW, abi::POLICY_DENY].into_iter().map(crate::maps::action_text))
}

/// Where the datapath object comes from (`datapath status`'s `object.source`).
pub fn object_source<'de, D: Deserializer<'de>>(d: D) -> Result<&'static str, D::Error> {
    pick(d, "object source", [crate::datapath::OBJECT_SOURCE].into_iter())
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Probe {
        #[serde(deserialize_with = "super::ct_state")]
        state: &'static str,
        #[serde(deserialize_with = "super::ct_flags")]
        flags: Vec<&'static str>,
        #[serde(deserialize_with = "super::direction")]
        direction: &'static str,
        #[serde(deserialize_with = "super::reason_text")]
        reason: &'static str,
    }

    #[test]
    fn words_read_back_as_the_cores_own() {
        let p: Probe = serde_json::from_str(
            r#"{"state":"SYN_SENT","flags":["reply_seen","closing_fwd"],"direction":"egress","reason":"Policy denied"}"#,
        )
        .unwrap();
        assert_eq!((p.state, p.direction, p.reason), ("SYN_SENT", "egress", "Policy denied"));
        assert_eq!(p.flags, ["reply_seen", "closing_fwd"]);
        // The very words the core holds, not copies.
        assert!(std::ptr::eq(p.state, crate::maps::ct::STATES.iter().find(|s| **s == "SYN_SENT").copied().unwrap()));
    }

    #[test]
    fn a_word_the_core_never_prints_is_refused_by_name() {
        // The dashboard's old copy knew REPLIED and EXPIRED; the core never printed them.
        for (doc, word) in [
            (r#"{"state":"REPLIED","flags":[],"direction":"egress","reason":"Forwarded"}"#, "REPLIED"),
            (r#"{"state":"NEW","flags":["expired"],"direction":"egress","reason":"Forwarded"}"#, "expired"),
            (r#"{"state":"NEW","flags":[],"direction":"sideways","reason":"Forwarded"}"#, "sideways"),
        ] {
            let e = serde_json::from_str::<Probe>(doc).unwrap_err().to_string();
            assert!(e.contains(&format!("{word:?}")) && e.contains("known: "), "{e}");
        }
    }
}
