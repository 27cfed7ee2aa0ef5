//! The realistic fixtures convert losslessly between JSON, `Value`, `DynamicObject` and their
//! typed k8s-openapi form, and expose identity and resourceVersion.

use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kstore_compact_object::CompactObject;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use store_types::KubeObject;

fn check<K>(json: &[u8])
where
    K: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug + KubeObject,
{
    let json = json.trim_ascii_end();
    let value: Value = serde_json::from_slice(json).unwrap();
    let typed: K = serde_json::from_slice(json).unwrap();
    let obj = CompactObject::from_slice(json).unwrap();

    assert_eq!(obj.to_value(), value);
    // Member order is preserved, so the output is byte-identical to the (compact) input.
    assert_eq!(serde_json::to_vec(&obj).unwrap(), json);
    assert_eq!(obj.deserialize_into::<K>().unwrap(), typed);
    assert_eq!(CompactObject::from_serialize(&typed).unwrap().to_value(), serde_json::to_value(&typed).unwrap());

    let dynamic = obj.to_dynamic().unwrap();
    assert_eq!(CompactObject::from_dynamic(&dynamic).unwrap(), obj);

    assert_eq!(obj.identity(), typed.identity());
    assert_eq!(obj.resource_version(), typed.resource_version());
    assert!(obj.identity().unwrap().uid.is_some());
    assert!(obj.heap_size() < json.len(), "{} bytes for {} bytes of JSON", obj.heap_size(), json.len());
}

#[test]
fn ingress() {
    check::<Ingress>(include_bytes!("../fixtures/ingress.json"));
    let obj = CompactObject::from_slice(include_bytes!("../fixtures/ingress.json")).unwrap();
    assert_eq!(obj.pointer("/spec/rules/0/host").and_then(|n| n.as_str()), Some("shop.example.com"));
    let hosts: Vec<&str> = obj.pointer("/spec/tls/0/hosts").unwrap().elements().filter_map(|n| n.as_str()).collect();
    assert_eq!(hosts, ["shop.example.com", "static.shop.example.com"]);
}

#[test]
fn service() {
    check::<Service>(include_bytes!("../fixtures/service.json"));
}

#[test]
fn endpointslice() {
    check::<EndpointSlice>(include_bytes!("../fixtures/endpointslice.json"));
    let obj = CompactObject::from_slice(include_bytes!("../fixtures/endpointslice.json")).unwrap();
    assert_eq!(obj.pointer("/endpoints").unwrap().len(), 20);
}

#[test]
fn configmap() {
    check::<ConfigMap>(include_bytes!("../fixtures/configmap.json"));
}

#[test]
fn secret() {
    check::<Secret>(include_bytes!("../fixtures/secret-tls.json"));
}
