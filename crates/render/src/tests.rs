//! Unit tests over in-memory stores (the integration test runs a `ResourceSet` against
//! apiserver-sim).

use std::collections::BTreeMap;
use std::sync::Arc;

use compact_object::CompactObject;
use memory_store::{KeyTuple, MemoryStore, Snapshot};
use minijinja::Value;
use serde_json::json;
use store_types::Objects;

use crate::{Lookup, RenderError, Renderer, TypedSnapshots, Undefined, compact_value};

/// Compact snapshots by name; `broken` resources fail every lookup.
struct Snapshots {
    stores: BTreeMap<String, Snapshot<CompactObject>>,
    broken: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
#[error("lookup of {0} failed")]
struct Failed(String);

impl Lookup for Snapshots {
    type Object = CompactObject;
    type Error = Failed;

    fn resource_names(&self) -> Vec<String> {
        self.stores.keys().chain(&self.broken).cloned().collect()
    }

    async fn list(&self, resource: &str) -> Result<Objects<CompactObject>, Failed> {
        self.stores.get(resource).map(Snapshot::list).ok_or_else(|| Failed(resource.to_owned()))
    }

    async fn fetch(&self, resource: &str, keys: &[&str]) -> Result<Objects<CompactObject>, Failed> {
        let store = self.stores.get(resource).ok_or_else(|| Failed(resource.to_owned()))?;
        store.get(keys).map_err(|e| Failed(format!("{resource}: {e}")))
    }

    fn to_value(object: &Arc<CompactObject>) -> Value {
        compact_value(object)
    }
}

fn store(objects: &[serde_json::Value], keys: impl Fn(&serde_json::Value) -> Vec<String>) -> Snapshot<CompactObject> {
    let n = objects.first().map_or(2, |o| keys(o).len());
    let store = MemoryStore::<CompactObject>::new(n).unwrap();
    for o in objects {
        store.add(Arc::new(CompactObject::from_value(o).unwrap()), KeyTuple::new(keys(o))).unwrap();
    }
    store.snapshot()
}

fn ns_name(o: &serde_json::Value) -> Vec<String> {
    vec![o["metadata"]["namespace"].as_str().unwrap().to_owned(), o["metadata"]["name"].as_str().unwrap().to_owned()]
}

fn fixture() -> Arc<Snapshots> {
    let ingresses = [
        json!({"metadata": {"namespace": "default", "name": "web", "labels": {"app": "web", "tier": "front"}},
               "spec": {"tls": [{"hosts": ["web.example"], "secretName": "web-tls"}],
                        "rules": [{"host": "web.example", "http": {"paths": [
                            {"path": "/", "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                            {"path": "/api", "backend": {"service": {"name": "api", "port": {"number": 8080}}}}]}}]}}),
        json!({"metadata": {"namespace": "shop", "name": "cart"},
               "spec": {"rules": [{"host": "cart.example"}]}}),
    ];
    let slices = [
        json!({"metadata": {"namespace": "default", "name": "web-a", "labels": {"kubernetes.io/service-name": "web"}},
               "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]}], "ports": [{"port": 8080}]}),
        json!({"metadata": {"namespace": "default", "name": "web-b", "labels": {"kubernetes.io/service-name": "web"}},
               "endpoints": [{"addresses": ["10.0.0.3"], "conditions": {"ready": false}}], "ports": [{"port": 8080}]}),
    ];
    let secrets = [json!({"metadata": {"namespace": "default", "name": "web-tls"}, "type": "kubernetes.io/tls",
                          "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}})];
    let mut stores = BTreeMap::new();
    stores.insert("ingresses".to_owned(), store(&ingresses, ns_name));
    stores.insert(
        "endpoints".to_owned(),
        store(&slices, |o| {
            vec![
                o["metadata"]["namespace"].as_str().unwrap().to_owned(),
                o["metadata"]["labels"]["kubernetes.io/service-name"].as_str().unwrap().to_owned(),
            ]
        }),
    );
    stores.insert("secrets".to_owned(), store(&secrets, ns_name));
    Arc::new(Snapshots { stores, broken: vec!["broken".to_owned()] })
}

async fn render(undefined: Undefined, source: &str) -> Result<String, RenderError> {
    let mut r = Renderer::new(undefined);
    r.add_template("t.j2", source)?;
    r.render("t.j2", fixture()).await
}

#[tokio::test]
async fn lazy_objects_read_fields_arrays_and_maps() {
    let out = render(
        Undefined::Strict,
        "{% for ing in resources.ingresses.list() %}{{ ing.metadata.namespace }}/{{ ing.metadata.name }}:\
         {% for r in ing.spec.rules %}{{ r.host }}{% if r.http %}{% for p in r.http.paths %} {{ p.path }}={{ p.backend.service.name }}:{{ p.backend.service.port.number + 1 }}{% endfor %}{% endif %}{% endfor %};{% endfor %}",
    )
    .await
    .unwrap();
    assert_eq!(out, "default/web:web.example /=web:81 /api=api:8081;shop/cart:cart.example;");

    let out = render(
        Undefined::Strict,
        "{% set ing = resources.ingresses.list()[0] %}{{ ing.spec.rules[0].http.paths[1].path }} \
         {{ ing.metadata.labels|length }} {% for k in ing.metadata.labels %}{{ k }},{% endfor %} \
         {% for k, v in ing.metadata.labels|items %}{{ k }}={{ v }},{% endfor %} {{ ing.metadata['labels']['app'] }} \
         {{ ing.spec.rules|length }} {{ ing.spec.tls[0].hosts|join('+') }} {{ ing.metadata is mapping }} {{ ing.spec.rules is sequence }}",
    )
    .await
    .unwrap();
    assert_eq!(out, "/api 2 app,tier, app=web,tier=front, web 1 web.example True True");
}

#[tokio::test]
async fn iteration_fetch_and_get_single() {
    let out = render(
        Undefined::Strict,
        "{% for ing in resources.ingresses %}{{ ing.metadata.name }},{% endfor %} \
         {{ resources.endpoints.fetch('default', 'web')|length }} {{ resources.endpoints.fetch('default')|length }} \
         {{ resources.endpoints.fetch('default', 'nothing')|length }} \
         {% for s in resources.endpoints.fetch('default', 'web') %}{% for e in s.endpoints %}{{ e.addresses[0] }}{% if e.conditions and not e.conditions.ready %}(down){% endif %} {% endfor %}{% endfor %}\
         {{ resources.secrets.get_single('default', 'web-tls').type }} \
         {{ resources.secrets.get_single('default', 'missing') is none }} \
         {{ resources.endpoints.get_single('default', 'web') is none }} \
         {% for name in resources %}{{ name }},{% endfor %}",
    )
    .await
    .unwrap();
    assert_eq!(
        out,
        "web,cart, 2 2 0 10.0.0.1 10.0.0.2 10.0.0.3(down) kubernetes.io/tls True True endpoints,ingresses,secrets,broken,"
    );
}

#[tokio::test]
async fn a_missing_field_is_undefined_or_a_strict_error_naming_template_line_and_key() {
    // Lenient: empty, false, iterates as nothing; lookups with an undefined key match nothing.
    let src = "{% set ing = resources.ingresses.list()[1] %}[{{ ing.spec.nope }}]{% if ing.spec.tls %}tls{% endif %}\
               {% for t in ing.spec.tls %}x{% endfor %}{{ resources.secrets.get_single('shop', ing.spec.tlsName) is none }}";
    assert_eq!(render(Undefined::Lenient, src).await.unwrap(), "[]True");
    // Chainable: a field of an undefined value is undefined too.
    assert_eq!(
        render(Undefined::Chainable, "{% set ing = resources.ingresses.list()[1] %}[{{ ing.spec.tls.secretName }}]")
            .await
            .unwrap(),
        "[]"
    );
    // Lenient: a field of an undefined value is an error, not a panic.
    assert!(render(Undefined::Lenient, "{{ resources.ingresses.list()[1].spec.tls.secretName }}").await.is_err());

    let err =
        render(Undefined::Strict, "line one\n{% set ing = resources.ingresses.list()[1] %}\n{{ ing.spec.tlss }}\n")
            .await
            .unwrap_err();
    let RenderError::Template { template, line, expression, .. } = &err else { panic!("{err:?}") };
    assert_eq!((template.as_str(), *line, expression.as_deref()), ("t.j2", Some(3), Some("ing.spec.tlss")));
    let text = err.to_string();
    assert!(text.contains("\"t.j2\" line 3") && text.contains("ing.spec.tlss"), "{text}");

    // Strict: an undefined lookup key is an error too.
    let err =
        render(Undefined::Strict, "{{ resources.secrets.get_single('shop', resources.ingresses.list()[1].spec.x) }}")
            .await
            .unwrap_err();
    assert!(err.to_string().contains("key 2 is undefined"), "{err}");
}

#[tokio::test]
async fn bad_templates_and_calls_are_named_errors() {
    let err = render(Undefined::Lenient, "ok\n{% for x in %}").await.unwrap_err();
    assert!(matches!(&err, RenderError::Template { line: Some(2), .. }), "{err:?}");

    for (src, needle) in [
        ("{{ resources.ingresses.fetch() }}", "needs 1 or more keys"),
        ("{{ resources.ingresses.fetch(['a']) }}", "key 1 is a seq"),
        ("{{ resources.ingresses.fetch('a', 'b', 'c') }}", "failed"),
        ("{{ resources.ingresses.list(1) }}", "takes no arguments"),
        ("{{ resources.ingresses.frobnicate() }}", "no method"),
        ("{{ resources.broken.list() }}", "lookup of broken failed"),
    ] {
        let err = render(Undefined::Lenient, src).await.unwrap_err();
        assert!(err.to_string().contains(needle), "{src}: {err}");
    }
    // An unknown resource is undefined (an error in strict mode).
    assert_eq!(render(Undefined::Lenient, "[{{ resources.nope }}]").await.unwrap(), "[]");
    assert!(render(Undefined::Strict, "[{{ resources.nope }}]").await.is_err());
    // A lookup that fails while iterating (where minijinja takes no error) fails the render.
    let err = render(Undefined::Lenient, "{% for x in resources.broken %}{% endfor %}").await.unwrap_err();
    assert!(matches!(&err, RenderError::Lookup { message, .. } if message.contains("broken")), "{err:?}");
    // A missing template.
    let r = Renderer::default();
    assert!(matches!(r.render("none.j2", fixture()).await, Err(RenderError::Template { .. })));
}

#[tokio::test]
async fn extra_context_and_numbers() {
    let objects = [json!({"metadata": {"namespace": "n", "name": "x"}, "n": -3, "u": 18446744073709551615u64,
                          "f": 1.5, "b": true, "z": null, "s": "é"})];
    let mut stores = BTreeMap::new();
    stores.insert("things".to_owned(), store(&objects, ns_name));
    let lookup = Arc::new(Snapshots { stores, broken: vec![] });
    let mut r = Renderer::new(Undefined::Strict);
    r.add_template("t", "{{ title }} {% set o = resources.things.list()[0] %}{{ o.n }} {{ o.u }} {{ o.f }} {{ o.b }} {{ o.z is none }} {{ o.s }}")
        .unwrap();
    let out = r.render_with("t", lookup, BTreeMap::from([("title", "T")])).await.unwrap();
    assert_eq!(out, "T -3 18446744073709551615 1.5 True True é");
}

#[tokio::test]
async fn typed_stores_render_through_serialize() {
    use k8s_openapi::api::networking::v1::{Ingress, IngressRule, IngressSpec};
    let store = MemoryStore::<Ingress>::new(2).unwrap();
    let mut ing = Ingress::default();
    ing.metadata.namespace = Some("default".into());
    ing.metadata.name = Some("web".into());
    ing.spec = Some(IngressSpec {
        rules: Some(vec![IngressRule { host: Some("web.example".into()), ..Default::default() }]),
        ..Default::default()
    });
    store.add(Arc::new(ing), KeyTuple::new(["default", "web"])).unwrap();
    let lookup = Arc::new(TypedSnapshots::new().with("ingresses", store.snapshot()));
    let mut r = Renderer::new(Undefined::Strict);
    r.add_template("t", "{% for i in resources.ingresses %}{{ i.metadata.name }} {{ i.spec.rules[0].host }}{% endfor %} {{ resources.ingresses.get_single('default', 'web').metadata.namespace }}")
        .unwrap();
    assert_eq!(r.render("t", lookup.clone()).await.unwrap(), "web web.example default");
    r.add_template("u", "{{ resources.ingresses.fetch('a', 'b', 'c') }}").unwrap();
    assert!(r.render("u", lookup).await.unwrap_err().to_string().contains("ingresses"));
}

#[test]
fn renders_on_a_multi_thread_runtime_too() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
    let out = rt.block_on(render(Undefined::Strict, "{{ resources.ingresses.list()|length }}")).unwrap();
    assert_eq!(out, "2");
}
