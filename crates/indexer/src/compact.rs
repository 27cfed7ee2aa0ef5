//! [`Indexable`] for kstore's compact object: paths walk its [`Node`]s directly.

use compact_object::{CompactObject, Node};

use crate::document::{Document, Indexable, NodeKind, NodeRef};

impl<'a> NodeRef<'a> for Node<'a> {
    fn kind(self) -> NodeKind {
        Node::kind(&self)
    }
    fn get(self, key: &str) -> Option<Self> {
        Node::get(&self, key)
    }
    fn index(self, i: usize) -> Option<Self> {
        Node::index(&self, i)
    }
    fn children(self) -> impl Iterator<Item = Self> + 'a {
        // `Node::elements`/`entries` return iterators that borrow the `Node` value itself
        // (edition-2024 capture of `&self`), so they cannot outlive this call: collect the
        // children (only wildcard paths get here).
        let children: Vec<Node<'a>> = self.elements().chain(self.entries().map(|(_, v)| v)).collect();
        children.into_iter()
    }
    fn as_str(self) -> Option<&'a str> {
        Node::as_str(&self)
    }
    fn as_bool(self) -> Option<bool> {
        Node::as_bool(&self)
    }
    fn as_i64(self) -> Option<i64> {
        Node::as_i64(&self)
    }
    fn as_u64(self) -> Option<u64> {
        Node::as_u64(&self)
    }
    fn as_f64(self) -> Option<f64> {
        Node::as_f64(&self)
    }
    fn write_json(self, out: &mut String) {
        // Serializing a compact node to a string cannot fail (keys are strings, floats finite).
        out.push_str(&serde_json::to_string(&self).unwrap_or_default());
    }
}

impl Document for CompactObject {
    type Cursor<'a> = Node<'a>;
    fn root(&self) -> Node<'_> {
        CompactObject::root(self)
    }
}

impl Indexable for CompactObject {
    type Doc<'a> = &'a CompactObject;
    fn document(&self) -> &CompactObject {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FieldSelector, Indexer, LabelSelector, MissingFieldPolicy};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    #[test]
    fn compact_agrees_with_value() {
        let v = json!({
            "metadata": {"namespace": "shop", "name": "web", "labels": {"app": "a", "x.y/z": "q"}},
            "spec": {"rules": [{"host": "h", "port": 80}, {"host": "g"}], "w": 0.5, "on": false, "n": null}
        });
        let c = CompactObject::from_value(&v).unwrap();
        let ix = Indexer::new(
            [
                "metadata.namespace",
                "metadata.labels['app']",
                "metadata.labels['x.y/z']",
                "spec.rules[1].host",
                "spec.rules[*].port",
                "spec.rules[0]",
                "spec.w",
                "spec.on",
                "spec.n",
                "metadata.labels",
            ],
            [""; 0],
        )
        .unwrap();
        assert_eq!(ix.keys(&c).unwrap(), ix.keys(&v).unwrap());
        let sel = FieldSelector::parse("spec.rules[0].port=80,spec.on=false").unwrap();
        assert!(sel.matches(&c) && sel.matches(&v));
        let labels = LabelSelector::parse("app in (a,b),!legacy").unwrap();
        assert!(labels.matches(&c));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            "[a-c]{0,2}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 32, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map("[a-c]", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn compact_and_value_extract_the_same_keys(v in arb_json(), paths in prop::collection::vec("[a-c](\\.[a-c]|\\[[0-2*]\\]){0,3}", 1..4)) {
            let c = CompactObject::from_value(&v).unwrap();
            let ix = Indexer::new(&paths, [""; 0]).unwrap().with_missing_fields(MissingFieldPolicy::Error);
            prop_assert_eq!(ix.keys(&c), ix.keys(&v));
        }
    }
}
