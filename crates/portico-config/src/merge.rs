//! Layering of config documents (reference §D.1).

use serde_json::{Map, Value};

/// Puts `overlay` on top of `base`: objects deep-merge, everything else (scalars and arrays)
/// replaces the lower value wholesale, and an explicit `null` removes the key.
///
/// Removing rather than storing `null` is what makes a masked key read as absent with no
/// fallback to a lower layer, while a still-higher layer can set it again. Because the first
/// layer is merged into an empty map too, no `null` survives under any object key; `null`s inside
/// arrays are kept, since arrays are opaque values.
pub(crate) fn merge_into(base: &mut Map<String, Value>, overlay: Map<String, Value>) {
    for (key, value) in overlay {
        match value {
            Value::Null => {
                // `shift_remove` keeps the remaining keys in document order.
                base.shift_remove(&key);
            }
            Value::Object(overlay_object) => {
                let slot = base.entry(key).or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(base_object) = slot {
                    merge_into(base_object, overlay_object);
                }
            }
            replacement => {
                base.insert(key, replacement);
            }
        }
    }
}
