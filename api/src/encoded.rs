//! A GetFlowsResponse the server encodes once, when the flow is read, and
//! writes as it is to every subscriber: with N followers a flow is encoded
//! once instead of N times, and nothing is cloned per subscriber.

use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{DecodeContext, WireType};

/// The protobuf bytes of one `observer.GetFlowsResponse`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EncodedResponse(pub Bytes);

impl EncodedResponse {
    pub fn new(r: &crate::observer::GetFlowsResponse) -> EncodedResponse {
        EncodedResponse(Bytes::from(prost::Message::encode_to_vec(r)))
    }

    /// Puts a response's encoded bytes at the end of `buf` and splits them
    /// off: responses put one after another into one buffer share its
    /// allocation.
    pub fn into_buf(encoded: &[u8], buf: &mut prost::bytes::BytesMut) -> EncodedResponse {
        buf.extend_from_slice(encoded);
        EncodedResponse(buf.split().freeze())
    }
}

impl prost::Message for EncodedResponse {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.0);
    }

    /// Only ever sent: a decoder skips what it is handed, as for unknown fields.
    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        prost::encoding::skip_field(wire_type, tag, buf, ctx)
    }

    fn encoded_len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0 = Bytes::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::GetFlowsResponse;
    use crate::observer::get_flows_response::ResponseTypes;

    #[test]
    fn decodes_as_the_message_it_holds() {
        let r = GetFlowsResponse {
            node_name: "node-a".into(),
            response_types: Some(ResponseTypes::Flow(crate::flow::Flow {
                node_name: "node-a".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let e = EncodedResponse::new(&r);
        let wire = prost::Message::encode_to_vec(&e);
        assert_eq!(<GetFlowsResponse as prost::Message>::decode(wire.as_slice()).unwrap(), r);
        // Two encoded into one buffer: each slice is its own message.
        let mut buf = prost::bytes::BytesMut::new();
        let other = GetFlowsResponse { node_name: "node-b".into(), ..Default::default() };
        let (a, b) = (
            EncodedResponse::into_buf(&prost::Message::encode_to_vec(&r), &mut buf),
            EncodedResponse::into_buf(&prost::Message::encode_to_vec(&other), &mut buf),
        );
        assert_eq!(a, e);
        assert_eq!(<GetFlowsResponse as prost::Message>::decode(b.0.clone()).unwrap(), other);
    }
}
