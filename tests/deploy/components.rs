//! Deploy checks of the kustomize components an overlay picks from:
//! - components/replicas: two replicas with a PodDisruptionBudget and topology spread
//!   in the production overlays, one shared session-key Secret that no overlay renders
//!   (so it is never committed) and that `just deploy` creates when missing without
//!   printing it, and a shutdown that cuts no call (preStop pause, drain, grace);
//! - the README's custom overlay (base + network-policy, auth-kubernetes, policy,
//!   replicas) renders and validates;
//! - components/monitoring: a ServiceMonitor that selects the gateway's Service and
//!   port, valid against the ServiceMonitor CRD's schema, composed with every overlay;
//! - every component is in the README and in a combination (COMBINATIONS) that renders
//!   and validates at every KUBERNETES_VERSIONS, with the invariants each promises
//!   (TokenReview rights only with the kubernetes mode, a deny-all policy with any
//!   auth mode, no DaemonSet and an optional static token with gateway-only); an auth
//!   component without the policy does not start; auth-oauth's documented patch sets
//!   its settings;
//! - components/otlp-tracing: the gateway and the node servers export to the endpoint
//!   of its ConfigMap (its documented patch sets it), the NetworkPolicy lets the
//!   gateway reach OTLP/HTTP, and without it nothing is traced.

use super::*;

/// The overlays that run in production, with two replicas.
const REPLICATED: &[&str] = &["kubernetes", "openshift", "gateway-only"];

fn session_keys_secret() -> String {
    run(just().args(["--evaluate", "SESSION_KEYS_SECRET"]))
        .trim()
        .to_string()
}

fn pod_labels(deployment: &Value) -> &serde_json::Map<String, Value> {
    deployment["spec"]["template"]["metadata"]["labels"]
        .as_object()
        .expect("pod labels")
}

/// Whether `selector.matchLabels` selects pods with `labels`.
fn selects(selector: &Value, labels: &serde_json::Map<String, Value>) -> bool {
    selector["matchLabels"]
        .as_object()
        .is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn the_production_overlays_run_two_spread_replicas_that_share_a_session_key() {
    let secret = session_keys_secret();
    for name in REPLICATED {
        let objects = overlay(name);
        let d = find(&objects, "Deployment", GATEWAY_SERVICE);
        assert_eq!(d["spec"]["replicas"], 2, "{name}");
        let labels = pod_labels(d);
        let pdb = find(&objects, "PodDisruptionBudget", GATEWAY_SERVICE);
        assert!(selects(&pdb["spec"]["selector"], labels), "{name}: {pdb}");
        assert_eq!(
            pdb["spec"]["minAvailable"], 1,
            "{name}: one replica at a time"
        );
        let spread = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
            .as_array()
            .unwrap_or_else(|| panic!("{name}: no topology spread"));
        let keys: BTreeSet<&str> = spread
            .iter()
            .inspect(|c| {
                assert!(selects(&c["labelSelector"], labels), "{name}: {c}");
                assert_eq!(c["maxSkew"], 1, "{name}");
            })
            .map(|c| str_of(&c["topologyKey"]))
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from(["topology.kubernetes.io/zone", "kubernetes.io/hostname"]),
            "{name}"
        );
        // SESSION_KEYS_FILE is a file of the mounted Secret, mounted as a directory
        // (no subPath) so a rotation reaches the pod.
        let c = container(d, GATEWAY_SERVICE);
        let env = env_map(c);
        let file = str_of(&env["SESSION_KEYS_FILE"]["value"]);
        let volumes = d["spec"]["template"]["spec"]["volumes"].as_array().unwrap();
        let mount = c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| file.starts_with(&format!("{}/", str_of(&m["mountPath"]))))
            .unwrap_or_else(|| panic!("{name}: {file} is on no mount"));
        assert!(mount.get("subPath").is_none(), "{name}: {mount}");
        assert_eq!(mount["readOnly"], true, "{name}");
        let volume = volumes
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        assert_eq!(volume["secret"]["secretName"], secret, "{name}");
        let key = Path::new(file).file_name().unwrap().to_str().unwrap();
        let items = volume["secret"]["items"].as_array();
        assert!(
            items.is_none_or(|i| i.iter().any(|i| i["path"] == key)),
            "{name}: {volume}"
        );
    }
    // The dev overlay stays one replica with a random key: nothing to share.
    let dev = overlay("dev");
    let d = find(&dev, "Deployment", GATEWAY_SERVICE);
    assert_eq!(d["spec"]["replicas"], 1);
    assert!(!env_map(container(d, GATEWAY_SERVICE)).contains_key("SESSION_KEYS_FILE"));
    assert!(of_kind(&dev, "PodDisruptionBudget").is_empty());
    // No overlay renders the key Secret (or any Secret): keys are never committed.
    for (name, objects) in rendered() {
        assert!(
            of_kind(&objects, "Secret").is_empty(),
            "{name} renders a Secret"
        );
    }
}

#[test]
fn a_rollout_cuts_no_call_in_flight() {
    for (name, objects) in rendered() {
        let d = find(&objects, "Deployment", GATEWAY_SERVICE);
        let c = container(d, GATEWAY_SERVICE);
        let env = env_map(c);
        let seconds = |k: &str| -> u64 {
            str_of(&env[k]["value"])
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {k}"))
        };
        let pause = c["lifecycle"]["preStop"]["sleep"]["seconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: no preStop sleep"));
        assert!(pause >= 1, "{name}");
        let drain = seconds("SHUTDOWN_DRAIN_SECONDS");
        assert!(
            drain >= seconds("CALL_TIMEOUT_SECONDS"),
            "{name}: the drain must outlast the longest call"
        );
        let grace = d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or(30);
        assert!(
            grace > pause + drain,
            "{name}: grace {grace} <= {pause} + {drain}"
        );
        let strategy = &d["spec"]["strategy"];
        assert_eq!(strategy["type"], "RollingUpdate", "{name}");
        assert_eq!(strategy["rollingUpdate"]["maxUnavailable"], 0, "{name}");
    }
}

/// A stand-in kubectl that logs every call (arguments, and stdin of `create
/// secret`), knows no namespace and no Secret, and succeeds at everything else.
const FAKE_KUBECTL: &str = r#"#!/usr/bin/env bash
log="$(dirname "$0")/calls.log"
echo "ARGS $*" >> "$log"
case "$*" in
  *"get namespace"*|*"get secret"*) exit 1 ;;
  *"create secret"*) echo "STDIN $(cat)" >> "$log" ;;
esac
exit 0
"#;

#[test]
fn just_deploy_creates_the_missing_key_secret_without_printing_the_key() {
    let dir = tempdir("fake-kubectl");
    let kubectl = dir.join("kubectl");
    std::fs::write(&kubectl, FAKE_KUBECTL).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&kubectl, std::fs::Permissions::from_mode(0o755)).unwrap();
    // In a copy of the justfile, so the kustomization it writes under .interop/render/
    // does not race the tests that render the repository's own.
    let work = dir.join("repo");
    std::fs::create_dir_all(&work).unwrap();
    for f in ["justfile", "Cargo.toml"] {
        std::fs::copy(root().join(f), work.join(f)).unwrap();
    }
    let mut cmd = Command::new(tool("just"));
    for var in ["NAMESPACE", "OVERLAY", "KUBECTL", "IMAGE_REPO", "TAG"] {
        cmd.env_remove(var);
    }
    let out = run_all_output(
        cmd.current_dir(&work)
            .arg("--justfile")
            .arg(work.join("justfile"))
            .arg("--working-directory")
            .arg(&work)
            .arg(format!("KUBECTL={}", kubectl.display()))
            .args(["NAMESPACE=team-b", "deploy"]),
    );
    let log = std::fs::read_to_string(dir.join("calls.log")).unwrap();
    let calls: Vec<&str> = log
        .lines()
        .filter_map(|l| l.strip_prefix("ARGS "))
        .collect();
    let at = |want: &str| {
        calls
            .iter()
            .position(|c| c.contains(want))
            .unwrap_or_else(|| panic!("no `{want}` in {calls:?}"))
    };
    let secret = session_keys_secret();
    let create = at(&format!(
        "-n team-b create secret generic {secret} --from-file=keys=/dev/stdin"
    ));
    assert!(at("create namespace team-b") < create);
    assert!(create < at("apply -k"), "the Secret exists before the pods");
    let key = log
        .lines()
        .find_map(|l| l.strip_prefix("STDIN "))
        .expect("the key went to kubectl on stdin");
    let bytes = base64::Engine::decode(&base64::engine::general_purpose::STANDARD, key.trim())
        .expect("a base64 key");
    assert_eq!(bytes.len(), 32, "a 32-byte key");
    mcp_protocol::seal::Sealer::from_text(key).expect("a key the gateway reads");
    assert!(!out.contains(key.trim()), "the key is never printed");
    assert!(
        calls.iter().all(|c| !c.contains(key.trim())),
        "the key is never an argument"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn the_readme_custom_overlay_renders_and_validates() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let after = readme
        .split_once("A custom overlay that picks")
        .expect("the README's custom overlay")
        .1;
    let block = after
        .split_once("```yaml\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("a yaml block")
        .0;
    assert!(block.lines().count() <= 10, "ten lines at most:\n{block}");
    // Beside a copy of deploy/, as the README places it beside the repository's.
    let objects = render_beside_deploy("readme-overlay", block);
    let d = find(&objects, "Deployment", GATEWAY_SERVICE);
    assert_eq!(d["metadata"]["namespace"], "my-ns");
    assert_eq!(d["spec"]["replicas"], 2);
    find(&objects, "PodDisruptionBudget", GATEWAY_SERVICE);
    // Locked down as the text says: fenced, Kubernetes tokens, the deny-all policy.
    assert_eq!(auth_modes(d), ["kubernetes"]);
    find(&objects, "NetworkPolicy", GATEWAY_SERVICE);
    find(&objects, "ConfigMap", "k8s-aggregator-mcp-policy");
    let mut all = serde_json::Map::new();
    all.insert("readme".into(), Value::Array(objects));
    validate("readme-validate", &all);
}

/// A kustomization beside a copy of deploy/ (paths are relative, as in a user's
/// repository), rendered.
fn render_beside_deploy(tag: &str, kustomization: &str) -> Vec<Value> {
    let dir = tempdir(tag);
    copy_tree(&root().join("deploy"), &dir.join("deploy"));
    std::fs::create_dir_all(dir.join("my-overlay")).unwrap();
    std::fs::write(dir.join("my-overlay/kustomization.yaml"), kustomization).unwrap();
    let objects = kustomize(&dir.join("my-overlay"));
    let _ = std::fs::remove_dir_all(dir);
    objects
}

#[test]
fn the_monitoring_component_scrapes_the_gateway_with_every_overlay() {
    let mut all = serde_json::Map::new();
    for overlay_name in ["kubernetes", "openshift", "gateway-only", "dev"] {
        let objects = render_beside_deploy(
            &format!("monitoring-{overlay_name}"),
            &format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
                 namespace: {NAMESPACE}\n\
                 resources: [../deploy/overlays/{overlay_name}]\n\
                 components: [../deploy/components/monitoring]\n"
            ),
        );
        let monitor = find(&objects, "ServiceMonitor", GATEWAY_SERVICE);
        assert_eq!(
            monitor["metadata"]["namespace"], NAMESPACE,
            "{overlay_name}"
        );
        let service = find(&objects, "Service", GATEWAY_SERVICE);
        let labels = service["metadata"]["labels"].as_object().unwrap();
        assert!(
            selects(&monitor["spec"]["selector"], labels),
            "{overlay_name}"
        );
        let ports: Vec<&Value> = service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .collect();
        for e in monitor["spec"]["endpoints"].as_array().unwrap() {
            assert!(
                ports.iter().any(|p| p["name"] == e["port"]),
                "{overlay_name}: {e}"
            );
            assert_eq!(e["path"], "/metrics");
        }
        // Prometheus reads /metrics without a token: the overlay must not require one.
        let d = find(&objects, "Deployment", GATEWAY_SERVICE);
        let env = env_map(container(d, GATEWAY_SERVICE));
        assert!(
            env.get("METRICS_AUTH").is_none_or(|v| v["value"] == "none"),
            "{overlay_name}"
        );
        all.insert(format!("monitoring+{overlay_name}"), Value::Array(objects));
    }
    validate("monitoring-validate", &all);
}

/// Every component under deploy/components (README, "Deploy", lists each).
const COMPONENTS: &[&str] = &[
    "auth-kubernetes",
    "auth-oauth",
    "gateway-only",
    "monitoring",
    "network-policy",
    "otlp-tracing",
    "policy",
    "replicas",
];

/// The documented combinations beside the overlays: a name, what they build on
/// (under deploy/) and the components they compose, in order.
const COMBINATIONS: &[(&str, &str, &[&str])] = &[
    ("open", "base", &[]),
    ("replicas", "base", &["replicas"]),
    ("traces", "base", &["otlp-tracing"]),
    (
        "kubernetes-auth",
        "base",
        &["network-policy", "auth-kubernetes", "policy"],
    ),
    ("oauth", "base", &["network-policy", "auth-oauth", "policy"]),
    (
        "both-auth",
        "base",
        &["auth-kubernetes", "auth-oauth", "policy"],
    ),
    (
        "everything",
        "base",
        &[
            "network-policy",
            "auth-kubernetes",
            "auth-oauth",
            "policy",
            "replicas",
            "monitoring",
            "otlp-tracing",
        ],
    ),
    ("own-servers-open", "base/frontend", &["gateway-only"]),
    (
        "own-servers",
        "base/frontend",
        &[
            "gateway-only",
            "network-policy",
            "auth-kubernetes",
            "policy",
            "replicas",
            "monitoring",
            "otlp-tracing",
        ],
    ),
];

/// With both auth components, the overlay names both modes (as overlays/openshift
/// and the components' comments say): each component alone sets its own.
const BOTH_MODES_PATCH: &str = "patches:
  - patch: |-
      apiVersion: apps/v1
      kind: Deployment
      metadata: {name: k8s-aggregator-mcp}
      spec:
        template:
          spec:
            containers:
              - name: k8s-aggregator-mcp
                env: [{name: AUTH_MODE, value: \"oauth,kubernetes\"}]
";

/// A kustomization in NAMESPACE on `on` (under deploy/) with `components`, and
/// `extra` appended (patches), rendered beside a copy of deploy/.
fn render_combination(tag: &str, on: &str, components: &[&str], extra: &str) -> Vec<Value> {
    let list: Vec<String> = components
        .iter()
        .map(|c| format!("../deploy/components/{c}"))
        .collect();
    render_beside_deploy(
        tag,
        &format!(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             namespace: {NAMESPACE}\nresources: [../deploy/{on}]\n\
             components: [{}]\n{extra}",
            list.join(", ")
        ),
    )
}

/// The names of the ConfigMaps and Secrets the gateway's pod refers to, with
/// whether each reference is optional.
fn referenced(deploy: &Value, kind: &str) -> Vec<(String, bool)> {
    let pod = &deploy["spec"]["template"]["spec"];
    let mut out = Vec::new();
    for v in pod["volumes"].as_array().into_iter().flatten() {
        let (source, key) = match kind {
            "ConfigMap" => (&v["configMap"], "name"),
            _ => (&v["secret"], "secretName"),
        };
        if source.is_object() {
            out.push((str_of(&source[key]).to_string(), source["optional"] == true));
        }
    }
    let field = match kind {
        "ConfigMap" => "configMapKeyRef",
        _ => "secretKeyRef",
    };
    for e in container(deploy, GATEWAY_SERVICE)["env"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let r = &e["valueFrom"][field];
        if r.is_object() {
            out.push((str_of(&r["name"]).to_string(), r["optional"] == true));
        }
    }
    out
}

#[test]
fn every_component_is_documented_and_in_a_tested_combination() {
    let mut dirs: Vec<String> = std::fs::read_dir(root().join("deploy/components"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(
        dirs, COMPONENTS,
        "a new component: list it here and in README"
    );
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    for c in COMPONENTS {
        assert!(
            readme.contains(&format!("`components/{c}`")),
            "README does not describe components/{c}"
        );
        assert!(
            COMBINATIONS.iter().any(|(_, _, cs)| cs.contains(c)),
            "{c} is in no tested combination"
        );
    }
}

#[test]
fn every_documented_combination_renders_and_validates() {
    use k8s_aggregator_mcp::policy::Policy;
    let mut all = serde_json::Map::new();
    for (name, on, components) in COMBINATIONS {
        let both = components.contains(&"auth-kubernetes") && components.contains(&"auth-oauth");
        let extra = if both { BOTH_MODES_PATCH } else { "" };
        let objects = render_combination(&format!("combination-{name}"), on, components, extra);
        let mut seen = BTreeSet::new();
        for o in &objects {
            let id = format!("{}/{}", str_of(&o["kind"]), str_of(&o["metadata"]["name"]));
            assert!(seen.insert(id.clone()), "{name}: {id} rendered twice");
            if !matches!(str_of(&o["kind"]), "Namespace" | "ClusterRoleBinding") {
                assert_eq!(o["metadata"]["namespace"], NAMESPACE, "{name}: {id}");
            }
        }
        let d = find(&objects, "Deployment", GATEWAY_SERVICE);
        let env = env_map(container(d, GATEWAY_SERVICE));
        let modes = auth_modes(d);
        let expected: &[&str] = match (
            components.contains(&"auth-oauth"),
            components.contains(&"auth-kubernetes"),
        ) {
            (true, true) => &["oauth", "kubernetes"],
            (true, false) => &["oauth"],
            (false, true) => &["kubernetes"],
            (false, false) => &[],
        };
        assert_eq!(modes, expected, "{name}: AUTH_MODE");
        // Every ConfigMap the pod needs is rendered (a missing one keeps it from
        // starting); Secrets are the ones created outside the repository.
        for (cm, optional) in referenced(d, "ConfigMap") {
            assert!(!optional, "{name}: {cm}");
            find(&objects, "ConfigMap", &cm);
        }
        for (secret, optional) in referenced(d, "Secret") {
            match secret.as_str() {
                "k8s-aggregator-mcp-session-keys" => assert!(components.contains(&"replicas")),
                "k8s-aggregator-mcp-backend-token" => assert!(optional, "{name}: {secret}"),
                other => panic!("{name}: unexpected Secret {other}"),
            }
        }
        // TokenReview rights exactly with the kubernetes mode.
        let crbs = of_kind(&objects, "ClusterRoleBinding");
        let kubernetes = modes.iter().any(|m| m == "kubernetes");
        assert_eq!(crbs.len(), usize::from(kubernetes), "{name}");
        assert!(of_kind(&objects, "ClusterRole").is_empty(), "{name}");
        // Authenticated callers see only what the policy allows, and it allows nothing.
        if modes.is_empty() {
            assert!(!env.contains_key("POLICY_FILE"), "{name}");
        } else {
            let cm = find(&objects, "ConfigMap", "k8s-aggregator-mcp-policy");
            let policy = Policy::parse(str_of(&cm["data"]["policy.yaml"])).unwrap();
            assert_eq!(policy.rule_count(), 0, "{name}");
            assert!(env.contains_key("POLICY_FILE"), "{name}");
        }
        if modes.iter().any(|m| m == "oauth") {
            for setting in ["OAUTH_ISSUER", "OAUTH_RESOURCE"] {
                assert!(
                    env[setting]["valueFrom"]["configMapKeyRef"].is_object(),
                    "{name}: {setting}"
                );
            }
        }
        assert_eq!(
            of_kind(&objects, "NetworkPolicy").len(),
            usize::from(components.contains(&"network-policy")),
            "{name}"
        );
        assert_traces(name, &objects, components.contains(&"otlp-tracing"));
        if components.contains(&"gateway-only") {
            assert!(of_kind(&objects, "DaemonSet").is_empty(), "{name}");
            assert!(of_kind(&objects, "Namespace").is_empty(), "{name}");
            let pod = &d["spec"]["template"]["spec"];
            assert!(
                pod["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|v| v["projected"].is_null()),
                "{name}: no node-mcp-server token for servers we did not write"
            );
            let file = str_of(&env["BACKEND_TOKEN_FILE"]["value"]);
            let mount = container(d, GATEWAY_SERVICE)["volumeMounts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| file.starts_with(&format!("{}/", str_of(&m["mountPath"]))))
                .unwrap_or_else(|| panic!("{name}: {file} is on no mount"));
            let volume = pod["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == mount["name"])
                .unwrap();
            assert_eq!(
                volume["secret"]["secretName"], "k8s-aggregator-mcp-backend-token",
                "{name}"
            );
        } else {
            find(&objects, "DaemonSet", "node-mcp-server");
        }
        all.insert(format!("combination {name}"), Value::Array(objects));
    }
    validate("combinations-validate", &all);
}

/// With components/otlp-tracing, the gateway and the node servers (where rendered)
/// export to the endpoint of its ConfigMap, each under its own service name, and a
/// NetworkPolicy (where rendered) lets the gateway reach OTLP/HTTP; without it no
/// OTEL_ setting is rendered (tracing stays off).
fn assert_traces(name: &str, objects: &[Value], on: bool) {
    let mut workloads = vec![("Deployment", GATEWAY_SERVICE)];
    if !of_kind(objects, "DaemonSet").is_empty() {
        workloads.push(("DaemonSet", "node-mcp-server"));
    }
    for (kind, workload) in workloads {
        let env = env_map(container(find(objects, kind, workload), workload));
        let endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT");
        if !on {
            assert!(
                env.keys().all(|k| !k.starts_with("OTEL_")),
                "{name}: {workload}"
            );
            continue;
        }
        let from = &endpoint.unwrap_or_else(|| panic!("{name}: {workload}"))["valueFrom"]["configMapKeyRef"];
        assert_eq!(
            from["name"], "k8s-aggregator-mcp-otlp",
            "{name}: {workload}"
        );
        assert_eq!(from["key"], "endpoint", "{name}: {workload}");
        assert_eq!(env["OTEL_SERVICE_NAME"]["value"], workload, "{name}");
    }
    if on {
        let cm = find(objects, "ConfigMap", "k8s-aggregator-mcp-otlp");
        assert!(
            str_of(&cm["data"]["endpoint"]).starts_with("http://"),
            "{name}"
        );
    }
    for policy in of_kind(objects, "NetworkPolicy") {
        let otlp = policy["spec"]["egress"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|rule| {
                rule["ports"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|p| p["port"] == 4318)
            });
        assert_eq!(otlp, on, "{name}: egress to OTLP/HTTP");
    }
}

#[test]
fn the_otlp_endpoint_is_set_by_the_patch_its_component_documents() {
    let patch = documented_patch("otlp-tracing");
    assert!(patch.contains("endpoint:"), "no documented patch:\n{patch}");
    let objects = render_combination("otlp-settings", "base", &["otlp-tracing"], &patch);
    let cm = find(&objects, "ConfigMap", "k8s-aggregator-mcp-otlp");
    assert_eq!(
        cm["data"]["endpoint"], "http://otel-collector.observability.svc:4318",
        "{patch}"
    );
    assert_eq!(cm["data"]["sampler-ratio"], "0.25");
}

/// The commented `patches:` block of a component's kustomization.yaml, uncommented.
fn documented_patch(component: &str) -> String {
    let doc = std::fs::read_to_string(
        root().join(format!("deploy/components/{component}/kustomization.yaml")),
    )
    .unwrap();
    doc.lines()
        .filter_map(|l| l.strip_prefix("# "))
        .skip_while(|l| !l.starts_with("  patches:"))
        .take_while(|l| l.starts_with("  "))
        .map(|l| format!("{}\n", &l[2..]))
        .collect()
}

#[test]
fn an_auth_component_without_the_policy_component_does_not_run_open() {
    // Forgetting components/policy leaves the pod waiting for its ConfigMap: it
    // never serves with AUTH_MODE on and no policy (which would allow everything).
    for auth in ["auth-kubernetes", "auth-oauth"] {
        let objects = render_combination(&format!("no-policy-{auth}"), "base", &[auth], "");
        let d = find(&objects, "Deployment", GATEWAY_SERVICE);
        let env = env_map(container(d, GATEWAY_SERVICE));
        assert!(env.contains_key("POLICY_FILE"), "{auth}");
        let refs = referenced(d, "ConfigMap");
        assert!(
            refs.contains(&("k8s-aggregator-mcp-policy".to_string(), false)),
            "{auth}: {refs:?}"
        );
        assert!(
            of_kind(&objects, "ConfigMap")
                .iter()
                .all(|cm| cm["metadata"]["name"] != "k8s-aggregator-mcp-policy"),
            "{auth}"
        );
    }
}

#[test]
fn the_oauth_settings_are_set_by_the_patch_its_component_documents() {
    let patch = documented_patch("auth-oauth");
    assert!(patch.contains("issuer:"), "no documented patch:\n{patch}");
    let objects = render_combination("oauth-settings", "base", &["auth-oauth", "policy"], &patch);
    let cm = find(&objects, "ConfigMap", "k8s-aggregator-mcp-oauth");
    assert_eq!(
        cm["data"]["issuer"], "https://sso.example.com/realms/agents",
        "{patch}"
    );
    assert_eq!(cm["data"]["resource"], "https://mcp.example.com/mcp");
    let d = find(&objects, "Deployment", GATEWAY_SERVICE);
    assert_eq!(auth_modes(d), ["oauth"]);
}
