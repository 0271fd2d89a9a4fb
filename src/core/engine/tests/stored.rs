//! Stored data: records written by earlier versions still load, unchanged.

use super::*;

/// Records written by the code before the engine was split into `core/engine/` (captured from
/// a run of this harness: runs, environments and event logs, one `kind<TAB>json` line each, as
/// the store keeps them) still load, and are written back byte for byte.
#[test]
fn records_stored_by_earlier_versions_load_and_are_written_back_unchanged() {
    let text = include_str!("../../../../tests/fixtures/stored_records.tsv");
    let mut kinds = BTreeMap::new();
    for line in text.lines() {
        let (kind, json) = line.split_once('\t').expect("kind<TAB>json");
        let again = match kind {
            "run" => serde_json::to_string(&serde_json::from_str::<Run>(json).unwrap()),
            "env" => serde_json::to_string(&serde_json::from_str::<EnvState>(json).unwrap()),
            "event" => {
                let e = serde_json::from_str::<Event>(json).unwrap();
                // Every sentence today's engine writes reads back as its typed kind.
                assert!(!matches!(e.what, What::Other(_)), "untyped: {json}");
                serde_json::to_string(&e)
            }
            other => panic!("unknown record kind {other}"),
        }
        .unwrap();
        assert_eq!(again, json, "{kind} record changed shape");
        *kinds.entry(kind).or_insert(0) += 1;
    }
    assert_eq!(kinds.len(), 3, "{kinds:?}");
}
