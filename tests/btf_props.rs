//! Property tests of the BTF JSON decoder and encoder on the types of
//! bpf/test/btf_maps.c (enums, bitfields, char arrays, nested and anonymous
//! structs, unions, arrays, 128-bit integers): any bytes decode without a
//! panic, what was decoded encodes back, and one round trip is a fixpoint;
//! any JSON at all is refused or encoded, never a panic.

use dpdbg::btf::{Btf, EncodeOptions, JsonPlan, encode_with, parse_strict};
use proptest::prelude::*;
use serde_json::Value;

const TYPES: &[&str] = &["rich", "wide", "counters", "inner"];

fn btf() -> Btf {
    Btf::from_elf(dpdbg::test_objects::BTF_MAPS, "btf_maps.o").expect("the test object carries BTF")
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| n.into()),
        any::<u64>().prop_map(|n| n.into()),
        "[a-z0-9x-]{0,12}".prop_map(Value::String),
        prop_oneof![Just("0x"), Just("-0x1"), Just("0xffffffffffffffffffffffffffffffffff"), Just("RED")]
            .prop_map(|s| Value::String(s.into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("id".to_string()),
                    Just("color".to_string()),
                    Just("name".to_string()),
                    Just("small".to_string()),
                    Just("u".to_string()),
                    Just("s".to_string()),
                    "[a-z_]{1,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..Default::default() })]

    #[test]
    fn decode_then_encode_is_a_fixpoint(which in 0..TYPES.len(), bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let btf = btf();
        let (id, size, _) = btf.find_struct(TYPES[which]).expect("type in the test object");
        let plan = JsonPlan::new(&btf, id);
        // Any bytes, even too few, decode to valid JSON.
        let mut out = Vec::new();
        plan.write(&bytes, &mut out);
        let v: Value = serde_json::from_slice(&out).expect("valid JSON");
        // What was decoded is a complete value: it encodes without --partial.
        let b1 = encode_with(&btf, id, &v, EncodeOptions::default()).expect("a decoded value encodes");
        prop_assert_eq!(b1.len(), size as usize);
        let v1 = plan.to_value(&b1);
        let b2 = encode_with(&btf, id, &v1, EncodeOptions::default()).expect("and again");
        prop_assert_eq!(&b1, &b2, "one round trip is a fixpoint for {}", TYPES[which]);
        prop_assert_eq!(v1, plan.to_value(&b2));
    }

    #[test]
    fn any_json_is_refused_or_encoded(which in 0..TYPES.len(), v in json(), partial in any::<bool>()) {
        let btf = btf();
        let (id, size, _) = btf.find_struct(TYPES[which]).expect("type in the test object");
        if let Ok(b) = encode_with(&btf, id, &v, EncodeOptions { partial, ..Default::default() }) {
            prop_assert_eq!(b.len(), size as usize);
        }
    }

    #[test]
    fn strict_json_parser_agrees_with_serde_json(s in "[\\[\\]{}:,\" a-c0-9.-]{0,40}") {
        // Where serde_json accepts the text and no object repeats a key,
        // the strict parser reads the same value; it never panics.
        match (serde_json::from_str::<Value>(&s), parse_strict(&s)) {
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            (Err(_), Ok(b)) => prop_assert!(false, "strict accepted what serde_json refused: {s:?} -> {b}"),
            _ => {}
        }
    }
}

#[test]
fn strict_json_parser_refuses_a_key_twice() {
    assert!(parse_strict(r#"{"a":1,"a":2}"#).unwrap_err().contains("given twice"));
    assert!(parse_strict(r#"{"a":{"b":1,"b":1}}"#).is_err());
    assert_eq!(parse_strict(r#"{"a":[{"b":1},{"b":2}]}"#).unwrap()["a"][1]["b"], 2);
}
