//! Event records as the datapath writes them (include/dpdbg.h's
//! `event_record`: an `event_hdr` and the captured packet bytes) and their
//! decoding. A leaf below both the event readers (`events/`) and the flow
//! decoding (`flow/`): it knows the record's bytes, not where they came from.

use super::EventHdr;

/// A decoding failure: the record is shorter or longer than its header says.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The record is shorter than the fixed header.
    #[error("event record of {len} bytes is shorter than its {need}-byte header")]
    Short { len: usize, need: usize },
    /// cap_len claims more packet bytes than the record holds.
    #[error("event claims {cap_len} captured bytes but the record holds {have}")]
    CapTooLong { cap_len: u32, have: usize },
}

/// One decoded event: the header and the captured packet bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub hdr: EventHdr,
    pub data: Vec<u8>,
}

/// One event that borrows its packet bytes from the record: what a reader
/// that formats and forgets each event uses, without a copy per event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRef<'a> {
    pub hdr: EventHdr,
    pub data: &'a [u8],
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(e: &'a Event) -> EventRef<'a> {
        EventRef { hdr: e.hdr, data: &e.data }
    }
}

impl EventRef<'_> {
    pub fn to_owned(self) -> Event {
        Event { hdr: self.hdr, data: self.data.to_vec() }
    }
}

/// Decodes one record (ringbuf record or perf sample, padding allowed).
pub fn decode(rec: &[u8]) -> Result<Event, DecodeError> {
    view(rec).map(EventRef::to_owned)
}

/// As `decode`, borrowing the packet bytes from the record.
pub fn view(rec: &[u8]) -> Result<EventRef<'_>, DecodeError> {
    let hdr = header(rec)?;
    let need = std::mem::size_of::<EventHdr>();
    Ok(EventRef { hdr, data: &rec[need..need + hdr.cap_len as usize] })
}

/// A record's header, checked against the record's length, without copying
/// its packet bytes: whether `decode` would succeed, for a reader that
/// decodes later or never.
pub fn header(rec: &[u8]) -> Result<EventHdr, DecodeError> {
    let need = std::mem::size_of::<EventHdr>();
    if rec.len() < need {
        return Err(DecodeError::Short { len: rec.len(), need });
    }
    // SAFETY: EventHdr is repr(C) plain integers; rec holds at least its size.
    let hdr: EventHdr = unsafe { std::ptr::read_unaligned(rec.as_ptr().cast()) };
    let have = rec.len() - need;
    if hdr.cap_len as usize > have {
        return Err(DecodeError::CapTooLong { cap_len: hdr.cap_len, have });
    }
    Ok(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_lying_records_are_errors() {
        assert_eq!(decode(&[0u8; 10]).unwrap_err(), DecodeError::Short { len: 10, need: 40 });
        let mut rec = vec![0u8; 50];
        rec[36..40].copy_from_slice(&11u32.to_le_bytes());
        assert_eq!(decode(&rec).unwrap_err(), DecodeError::CapTooLong { cap_len: 11, have: 10 });
        rec[36..40].copy_from_slice(&10u32.to_le_bytes());
        assert_eq!(decode(&rec).unwrap().data.len(), 10);
    }
}
