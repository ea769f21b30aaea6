//! Deployment checks: the kustomize manifests in `deploy/`, the `justfile`, the
//! `Containerfile` and `scripts/smoke.sh`, tested against the real binaries.
//!
//! - every overlay renders (`kubectl kustomize`), and every rendered object
//!   validates offline against the Kubernetes OpenAPI schemas (PyPI
//!   `kubernetes-validate`, strict: unknown fields fail), the OpenShift Route
//!   against a schema written from openshift/api's route/v1 CRD;
//! - the manifests agree with the binaries: Service names, namespace and ports
//!   equal the defaults that `k8s-aggregator-mcp --help` and
//!   `node-mcp-server --help` print; every env name set is one the binary reads;
//!   the probe paths are /healthz and /readyz, and the backend answers /healthz;
//! - RBAC: the gateway gets exactly get/list/watch on discovery.k8s.io
//!   endpointslices through a namespaced Role, and `create` on tokenreviews through
//!   one ClusterRoleBinding to the built-in system:auth-delegator only where the
//!   kubernetes auth mode is on (no ClusterRole of our own);
//! - security wiring: the gateway's projected node-mcp-server token, the node
//!   servers' CLIENT_AUTH settings, the gateway's NetworkPolicy, and each overlay's
//!   AUTH_MODE and policy (kubernetes: deny until the operator names a caller);
//! - pods are hardened as deploy/ promises (non-root, no capabilities, ...);
//! - `just --dry-run deploy` / `image` print the expected commands, `just
//!   manifests` applies NAMESPACE, IMAGE_REPO and TAG, every recipe is documented;
//! - the Containerfile builds what `just build` builds, and its dependency-cache
//!   stub step still resolves the workspace;
//! - `scripts/smoke.sh` passes against `k8s-aggregator-mcp demo`;
//! - components (deploy/components.rs): two spread replicas with a PodDisruptionBudget
//!   and a shared session-key Secret that `just deploy` creates, a drain that cuts no
//!   call, the README's custom overlay, the monitoring component's ServiceMonitor, and
//!   every documented combination of the components rendered and validated.
//!
//! Tools come from `.interop/` (`.ci/install-deploy-tools` installs them); a
//! missing tool fails the test with that instruction, it never skips.

use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const INSTALL_HINT: &str = "run `.ci/install-deploy-tools` (installs just, kubectl and kubernetes-validate into .interop/)";
const NAMESPACE: &str = "mcp-server";
const BACKEND_SERVICE: &str = "backend-mcp-service";
const GATEWAY_SERVICE: &str = "k8s-aggregator-mcp";
/// Kubernetes versions every object must validate against: the oldest this
/// project supports and the newest kubernetes-validate knows.
const KUBERNETES_VERSIONS: &[&str] = &["1.29.0", "1.37.0"];
/// Env names read by a library rather than by the binaries' clap settings, or set
/// only for `$(VAR)` expansion in another value (POD_NAMESPACE).
const AMBIENT_ENV: &[&str] = &["RUST_LOG", "POD_NAMESPACE"];
/// Where the gateway's projected node-mcp-server token is mounted.
const NODE_TOKEN_DIR: &str = "/var/run/secrets/node-mcp-server";
/// The audience of that token (the node server's TOKEN_AUDIENCE).
const NODE_TOKEN_AUDIENCE: &str = "node-mcp-server";

#[path = "deploy/components.rs"]
mod components;

// ---------------------------------------------------------------------------
// Tools and processes

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// The pinned tool in .interop/bin, else one on PATH; a missing tool fails.
fn tool(name: &str) -> PathBuf {
    let pinned = root().join(".interop/bin").join(name);
    if pinned.exists() {
        return pinned;
    }
    on_path(name)
        .unwrap_or_else(|| panic!("`{name}` not found in .interop/bin or on PATH: {INSTALL_HINT}"))
}

/// The deploy venv's python, which has PyYAML, jsonschema and kubernetes-validate.
fn venv_python() -> PathBuf {
    let python = root().join(".interop/deploy-venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: {INSTALL_HINT}",
        python.display()
    );
    python
}

/// Run to completion; panic with the command, status and output on failure.
fn run(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// Run and return stdout + stderr (just --dry-run prints commands on stderr).
fn run_all_output(cmd: &mut Command) -> String {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "{cmd:?} failed ({}):\n{text}",
        output.status
    );
    text
}

fn yaml_to_json(yaml: &str) -> Vec<Value> {
    let mut child = Command::new(venv_python())
        .args([
            "-c",
            "import json, sys, yaml\n\
             docs = [d for d in yaml.safe_load_all(sys.stdin) if d is not None]\n\
             json.dump(docs, sys.stdout)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(yaml.as_bytes())
        .expect("write yaml");
    let output = child.wait_with_output().expect("python");
    assert!(
        output.status.success(),
        "YAML parse failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    match serde_json::from_slice(&output.stdout).expect("json from python") {
        Value::Array(docs) => docs,
        other => panic!("expected a list of documents, got {other}"),
    }
}

fn kustomize(dir: &Path) -> Vec<Value> {
    let yaml = run(Command::new(tool("kubectl")).arg("kustomize").arg(dir));
    let objects = yaml_to_json(&yaml);
    assert!(!objects.is_empty(), "{} renders no object", dir.display());
    objects
}

/// deploy/base and every deploy/overlays/* directory, by name.
fn kustomizations() -> Vec<(String, PathBuf)> {
    let mut dirs = vec![("base".to_string(), root().join("deploy/base"))];
    let mut overlays: Vec<_> = std::fs::read_dir(root().join("deploy/overlays"))
        .expect("deploy/overlays")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("kustomization.yaml").exists())
        .collect();
    overlays.sort();
    for path in overlays {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        dirs.push((name, path));
    }
    dirs
}

fn rendered() -> Vec<(String, Vec<Value>)> {
    kustomizations()
        .into_iter()
        .map(|(name, dir)| (name, kustomize(&dir)))
        .collect()
}

fn overlay(name: &str) -> Vec<Value> {
    kustomize(&root().join("deploy/overlays").join(name))
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn gateway_exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_k8s-aggregator-mcp"))
}

/// node-mcp-server is another package's binary: it sits beside the gateway's
/// in the same target directory once the workspace's binaries are built.
fn backend_exe() -> PathBuf {
    let exe =
        gateway_exe().with_file_name(format!("node-mcp-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        exe.exists(),
        "{} is not built: run `cargo build --workspace --bins` before the tests (tests/run-all should)",
        exe.display()
    );
    exe
}

/// `--help` with no setting in the environment, so clap shows the defaults.
fn help_of(exe: &Path) -> String {
    let mut cmd = Command::new(exe);
    cmd.arg("--help").env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    run(&mut cmd)
}

// ---------------------------------------------------------------------------
// clap help parsing

/// Settings listed by a clap `--help` (with the `env` feature): env name ->
/// default value, when shown. Lines wrap freely; an option's text runs from
/// its `-x, --long` line to the next option line.
fn parse_help(help: &str) -> BTreeMap<String, Option<String>> {
    let mut blocks: Vec<String> = Vec::new();
    for line in help.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('-') || blocks.is_empty() {
            blocks.push(String::new());
        }
        let block = blocks.last_mut().expect("a block");
        block.push(' ');
        block.push_str(trimmed);
    }
    let mut settings = BTreeMap::new();
    for block in blocks {
        let block = block.split_whitespace().collect::<Vec<_>>().join(" ");
        let mut rest = block.as_str();
        while let Some(at) = rest.find("[env: ") {
            let after = &rest[at + "[env: ".len()..];
            let end = after.find(['=', ']']).unwrap_or(after.len());
            let name = after[..end].trim().to_string();
            let default = block.find("[default: ").map(|d| {
                let v = &block[d + "[default: ".len()..];
                v[..v.find(']').unwrap_or(v.len())].trim().to_string()
            });
            settings.insert(name, default);
            rest = after;
        }
    }
    settings
}

fn default_of(settings: &BTreeMap<String, Option<String>>, env: &str, binary: &str) -> String {
    settings
        .get(env)
        .unwrap_or_else(|| {
            panic!("{binary} --help lists no [env: {env}=]; settings found: {settings:?}")
        })
        .clone()
        .unwrap_or_else(|| panic!("{binary} --help shows no [default: ...] for {env}"))
}

#[test]
fn help_parser_reads_clap_output() {
    let sample = "\
Kubernetes-native MCP gateway

Usage: k8s-aggregator-mcp [OPTIONS] [COMMAND]

Commands:
  demo  Run a local demo
  help  Print this message or the help of the given subcommand(s)

Options:
      --service-name <SERVICE_NAME>
          Name of the backend headless Service [env: SERVICE_NAME=] [default: backend-mcp-service]
      --service-namespace <SERVICE_NAMESPACE>
          Namespace of the backend Service

          [env: SERVICE_NAMESPACE=]
          [default: mcp-server]
  -p, --frontend-port <FRONTEND_PORT>  Port [env: FRONTEND_PORT=9999] [default: 9029]
      --allowed-origins <ALLOWED_ORIGINS>  Comma list [env: ALLOWED_ORIGINS=]
      --log-format <LOG_FORMAT>  [env: LOG_FORMAT=] [default: text] [possible values: text, json]
  -h, --help  Print help
";
    let s = parse_help(sample);
    assert_eq!(s["SERVICE_NAME"].as_deref(), Some("backend-mcp-service"));
    assert_eq!(s["SERVICE_NAMESPACE"].as_deref(), Some("mcp-server"));
    assert_eq!(s["FRONTEND_PORT"].as_deref(), Some("9029"));
    assert_eq!(s["ALLOWED_ORIGINS"], None);
    assert_eq!(s["LOG_FORMAT"].as_deref(), Some("text"));
    assert_eq!(s.len(), 5, "{s:?}");
}

// ---------------------------------------------------------------------------
// Rendering and schema validation

#[test]
fn every_overlay_renders_with_unique_objects_in_one_namespace() {
    for (name, objects) in rendered() {
        let mut seen = BTreeSet::new();
        for o in &objects {
            let kind = str_of(&o["kind"]);
            let id = format!("{}/{}", kind, str_of(&o["metadata"]["name"]));
            assert!(seen.insert(id.clone()), "{name}: {id} rendered twice");
            let cluster_scoped = matches!(kind, "Namespace" | "ClusterRole" | "ClusterRoleBinding");
            if !cluster_scoped {
                assert_eq!(
                    o["metadata"]["namespace"], NAMESPACE,
                    "{name}: {id} not in {NAMESPACE}"
                );
            }
        }
        assert!(
            seen.contains(&format!("Deployment/{GATEWAY_SERVICE}")),
            "{name}: no gateway Deployment"
        );
    }
}

/// Validates every object of every overlay. The Route and the ServiceMonitor are
/// not Kubernetes types: they are checked against ROUTE_SCHEMA, written from the
/// route/v1 CRD of openshift/api, and SERVICE_MONITOR_SCHEMA, written from the
/// prometheus-operator ServiceMonitor CRD (the fields, enums and bounds this
/// project may use; unknown fields rejected).
const VALIDATE_PY: &str = r##"
import json, sys
import jsonschema
import kubernetes_validate
from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
ROUTE_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "route.openshift.io/v1"},
        "kind": {"const": "Route"},
        "metadata": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "maxLength": 253, "pattern": DNS_SUBDOMAIN},
            "namespace": {"type": "string"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}}}},
        "spec": {"type": "object", "required": ["to"], "additionalProperties": False, "properties": {
            "host": {"type": "string", "maxLength": 253, "pattern": r"^([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9])(\.([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9\-]{0,61}[a-zA-Z0-9]))*$"},
            "subdomain": {"type": "string", "maxLength": 253},
            "path": {"type": "string", "pattern": "^/"},
            "to": {"$ref": "#/$defs/target"},
            "alternateBackends": {"type": "array", "maxItems": 3, "items": {"$ref": "#/$defs/target"}},
            "port": {"type": "object", "required": ["targetPort"], "additionalProperties": False,
                     "properties": {"targetPort": {"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1}]}}},
            "tls": {"type": "object", "required": ["termination"], "additionalProperties": False, "properties": {
                "termination": {"enum": ["edge", "reencrypt", "passthrough"]},
                "insecureEdgeTerminationPolicy": {"enum": ["Allow", "None", "Redirect", ""]},
                "certificate": {"type": "string"}, "key": {"type": "string"},
                "caCertificate": {"type": "string"}, "destinationCACertificate": {"type": "string"},
                "externalCertificate": {"type": "object", "properties": {"name": {"type": "string"}}}}},
            "wildcardPolicy": {"enum": ["None", "Subdomain", ""]},
            "httpHeaders": {"type": "object"}}},
        "status": {"type": "object"}},
    "$defs": {"target": {"type": "object", "required": ["kind", "name"], "additionalProperties": False, "properties": {
        "kind": {"enum": ["Service", ""]},
        "name": {"type": "string", "minLength": 1},
        "weight": {"type": "integer", "minimum": 0, "maximum": 256}}}},
}

# Written from the prometheus-operator monitoring.coreos.com/v1 ServiceMonitor CRD:
# the fields this project uses, with their types and formats; unknown fields rejected.
DURATION = r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": ROUTE_SCHEMA["properties"]["metadata"],
        "spec": {"type": "object", "required": ["selector"], "additionalProperties": False, "properties": {
            "selector": {"type": "object", "additionalProperties": False, "properties": {
                "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
                "matchExpressions": {"type": "array"}}},
            "namespaceSelector": {"type": "object"},
            "jobLabel": {"type": "string"},
            "endpoints": {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
                "port": {"type": "string"},
                "targetPort": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
                "path": {"type": "string"},
                "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                "interval": {"type": "string", "pattern": DURATION},
                "scrapeTimeout": {"type": "string", "pattern": DURATION},
                "honorLabels": {"type": "boolean"},
                "bearerTokenFile": {"type": "string"}}}}}},
        "status": {"type": "object"}},
}
SCHEMAS = {"route.openshift.io/v1": ROUTE_SCHEMA, "monitoring.coreos.com/v1": SERVICE_MONITOR_SCHEMA}

rendered = json.load(open(sys.argv[1]))
versions = sys.argv[2:]
failures, checked = [], 0
for overlay, objects in rendered.items():
    for obj in objects:
        what = "%s: %s/%s" % (overlay, obj.get("kind"), obj.get("metadata", {}).get("name"))
        if obj.get("apiVersion") in SCHEMAS:
            schema = SCHEMAS[obj.get("apiVersion")]
            errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=str)
            failures += ["%s: %s at %s" % (what, e.message, "/".join(map(str, e.path))) for e in errors]
            checked += 1
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
                checked += 1
            except ValidationError as e:
                failures.append("%s (Kubernetes %s): %s at %s" % (what, version, e.message, ".".join(map(str, e.path))))
            except SchemaNotFoundError as e:
                failures.append("%s: no schema: %s" % (what, e.message))
print("validated %d object/version pairs" % checked)
if failures:
    print("\n".join(failures))
    sys.exit(1)
"##;

/// Validates rendered objects (by overlay name) at every KUBERNETES_VERSIONS.
fn validate(tag: &str, all: &serde_json::Map<String, Value>) {
    let dir = tempdir(tag);
    let file = dir.join("rendered.json");
    std::fs::write(&file, serde_json::to_vec(all).unwrap()).unwrap();
    let out = run(Command::new(venv_python())
        .arg("-c")
        .arg(VALIDATE_PY)
        .arg(&file)
        .args(KUBERNETES_VERSIONS));
    assert!(out.contains("validated"), "{out}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn every_rendered_object_validates_against_the_kubernetes_schemas() {
    let all: serde_json::Map<String, Value> = rendered()
        .into_iter()
        .map(|(name, objects)| (name, Value::Array(objects)))
        .collect();
    validate("validate", &all);
}

#[test]
fn the_validator_rejects_a_broken_object() {
    // The schema check is only worth something if it can fail.
    let mut objects = overlay("openshift");
    for o in &mut objects {
        if o["kind"] == "DaemonSet" {
            o["spec"]["template"]["spec"]["hostPIDD"] = json!(true);
        }
        if o["kind"] == "Route" {
            o["spec"]["tls"]["termination"] = json!("edge-ish");
        }
    }
    let monitor_yaml = root().join("deploy/components/monitoring/servicemonitor.yaml");
    let mut monitor = yaml_to_json(&std::fs::read_to_string(monitor_yaml).unwrap()).remove(0);
    monitor["spec"]["endpoints"][0]["interval"] = json!("every-30s");
    objects.push(monitor);
    let dir = tempdir("validate-broken");
    let file = dir.join("rendered.json");
    std::fs::write(
        &file,
        serde_json::to_vec(&json!({ "broken": objects })).unwrap(),
    )
    .unwrap();
    let output = Command::new(venv_python())
        .arg("-c")
        .arg(VALIDATE_PY)
        .arg(&file)
        .arg(KUBERNETES_VERSIONS[0])
        .output()
        .expect("python");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success(),
        "broken objects passed validation:\n{text}"
    );
    assert!(
        text.contains("hostPIDD"),
        "unknown DaemonSet field not reported:\n{text}"
    );
    assert!(
        text.contains("edge-ish"),
        "bad Route termination not reported:\n{text}"
    );
    assert!(
        text.contains("every-30s"),
        "bad ServiceMonitor interval not reported:\n{text}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deploy-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

// ---------------------------------------------------------------------------
// Consistency with the binaries

fn container<'a>(workload: &'a Value, name: &str) -> &'a Value {
    workload["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no container {name}"))
}

fn env_map(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .map(|e| (str_of(&e["name"]).to_string(), e.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The gateway's AUTH_MODE, split at commas (empty: the default, none).
fn auth_modes(deployment: &Value) -> Vec<String> {
    env_map(container(deployment, GATEWAY_SERVICE))
        .get("AUTH_MODE")
        .map(|e| str_of(&e["value"]).split(',').map(str::to_string).collect())
        .unwrap_or_default()
}

fn container_port(container: &Value, name: &str) -> i64 {
    container["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no port named {name}"))["containerPort"]
        .as_i64()
        .expect("containerPort")
}

fn service_port(service: &Value) -> (i64, String) {
    let ports = service["spec"]["ports"].as_array().expect("ports");
    assert_eq!(
        ports.len(),
        1,
        "one port expected on {}",
        service["metadata"]["name"]
    );
    (
        ports[0]["port"].as_i64().expect("port"),
        str_of(&ports[0]["targetPort"]).to_string(),
    )
}

#[test]
fn services_and_ports_equal_the_binaries_defaults() {
    let gateway = parse_help(&help_of(&gateway_exe()));
    let backend = parse_help(&help_of(&backend_exe()));
    let service_name = default_of(&gateway, "SERVICE_NAME", "k8s-aggregator-mcp");
    let service_namespace = default_of(&gateway, "SERVICE_NAMESPACE", "k8s-aggregator-mcp");
    let backend_port: i64 = default_of(&gateway, "BACKEND_PORT", "k8s-aggregator-mcp")
        .parse()
        .expect("port");
    let frontend_port: i64 = default_of(&gateway, "FRONTEND_PORT", "k8s-aggregator-mcp")
        .parse()
        .expect("port");
    let backend_own_port: i64 = default_of(&backend, "BACKEND_PORT", "node-mcp-server")
        .parse()
        .expect("port");
    assert_eq!(service_name, BACKEND_SERVICE);
    assert_eq!(service_namespace, NAMESPACE);
    assert_eq!(
        backend_port, backend_own_port,
        "gateway and backend disagree on BACKEND_PORT"
    );

    for name in ["kubernetes", "openshift", "dev"] {
        let objects = overlay(name);
        let headless = find(&objects, "Service", &service_name);
        assert_eq!(
            headless["metadata"]["namespace"], service_namespace,
            "{name}"
        );
        assert_eq!(
            headless["spec"]["clusterIP"], "None",
            "{name}: backend Service must be headless"
        );
        let (port, target) = service_port(headless);
        assert_eq!(port, backend_port, "{name}: backend Service port");
        let ds = find(&objects, "DaemonSet", "node-mcp-server");
        let c = container(ds, "node-mcp-server");
        assert_eq!(
            container_port(c, &target),
            backend_port,
            "{name}: DaemonSet port"
        );
        assert_eq!(
            env_map(c)["BACKEND_PORT"]["value"],
            backend_port.to_string(),
            "{name}"
        );
        // The headless Service selects the DaemonSet's pods.
        let selector = headless["spec"]["selector"].as_object().expect("selector");
        let labels = &ds["spec"]["template"]["metadata"]["labels"];
        for (k, v) in selector {
            assert_eq!(
                &labels[k], v,
                "{name}: backend Service selector {k} does not match the pods"
            );
        }
        if let Some(host_proc) = env_map(c).get("HOST_PROC") {
            assert_eq!(
                host_proc["value"].as_str(),
                backend.get("HOST_PROC").cloned().flatten().as_deref(),
                "{name}: HOST_PROC differs from the backend's default: say why or drop it"
            );
        }
    }
    for name in ["kubernetes", "openshift", "dev", "gateway-only"] {
        let objects = overlay(name);
        let svc = find(&objects, "Service", GATEWAY_SERVICE);
        let (port, target) = service_port(svc);
        assert_eq!(port, frontend_port, "{name}: gateway Service port");
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        let c = container(deploy, GATEWAY_SERVICE);
        assert_eq!(container_port(c, &target), frontend_port, "{name}");
        let env = env_map(c);
        assert_eq!(env["SERVICE_NAME"]["value"], service_name, "{name}");
        assert_eq!(
            env["BACKEND_PORT"]["value"],
            backend_port.to_string(),
            "{name}"
        );
        assert_eq!(
            env["FRONTEND_PORT"]["value"],
            frontend_port.to_string(),
            "{name}"
        );
        assert_eq!(
            env["SERVICE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace",
            "{name}"
        );
    }
}

#[test]
fn env_names_set_in_the_manifests_are_read_by_the_binaries() {
    let gateway = parse_help(&help_of(&gateway_exe()));
    let backend = parse_help(&help_of(&backend_exe()));
    for (name, objects) in rendered() {
        for (kind, workload, settings, binary) in [
            ("DaemonSet", "node-mcp-server", &backend, "node-mcp-server"),
            (
                "Deployment",
                GATEWAY_SERVICE,
                &gateway,
                "k8s-aggregator-mcp",
            ),
        ] {
            let Some(w) = objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == workload)
            else {
                continue;
            };
            for env in env_map(container(w, workload)).keys() {
                assert!(
                    settings.contains_key(env) || AMBIENT_ENV.contains(&env.as_str()),
                    "{name}: {kind} sets {env}, which `{binary} --help` does not list (it lists {:?})",
                    settings.keys().collect::<Vec<_>>()
                );
            }
        }
    }
    // The settings the DaemonSet must provide.
    let ds_env = env_map(container(
        find(&overlay("kubernetes"), "DaemonSet", "node-mcp-server"),
        "node-mcp-server",
    ));
    assert_eq!(
        ds_env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    assert_eq!(ds_env["HOST_ROOT"]["value"], "/host");
    assert_eq!(ds_env["LOG_FORMAT"]["value"], "json");
}

#[test]
fn probes_use_the_health_endpoints() {
    for (name, objects) in rendered() {
        if let Some(ds) = objects.iter().find(|o| o["kind"] == "DaemonSet") {
            let c = container(ds, "node-mcp-server");
            for probe in ["readinessProbe", "livenessProbe"] {
                assert_eq!(
                    c[probe]["httpGet"]["path"], "/healthz",
                    "{name}: backend {probe}"
                );
                assert_eq!(
                    c[probe]["httpGet"]["port"], "mcp",
                    "{name}: backend {probe}"
                );
            }
        }
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        let c = container(deploy, GATEWAY_SERVICE);
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz", "{name}");
        assert_eq!(c["startupProbe"]["httpGet"]["path"], "/healthz", "{name}");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz", "{name}");
        // The startup probe outlasts the gateway's wait for a first backend.
        let env = env_map(c);
        if let Some(wait) = env.get("STARTUP_WAIT_SECONDS") {
            let wait: i64 = str_of(&wait["value"])
                .parse()
                .expect("STARTUP_WAIT_SECONDS");
            let startup = &c["startupProbe"];
            let budget = startup["periodSeconds"].as_i64().unwrap_or(10)
                * startup["failureThreshold"].as_i64().unwrap_or(3);
            assert!(
                budget > wait,
                "{name}: startupProbe allows {budget}s < STARTUP_WAIT_SECONDS {wait}"
            );
        }
        for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
            assert_eq!(
                c[probe]["httpGet"]["port"], "http",
                "{name}: gateway {probe}"
            );
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Status code of `GET path` on 127.0.0.1:port, or None when nothing answers.
fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response.split_whitespace().nth(1)?.parse().ok()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_backend_answers_its_probe_path() {
    let port = free_port();
    let child = Command::new(backend_exe())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BIND_ADDRESS", "127.0.0.1")
        .env("BACKEND_PORT", port.to_string())
        .env("NODE_NAME", "deploy-test-node")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node-mcp-server");
    let mut child = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = http_get_status(port, "/healthz") {
            assert_eq!(status, 200, "GET /healthz on node-mcp-server");
            break;
        }
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "node-mcp-server exited early"
        );
        assert!(
            Instant::now() < deadline,
            "node-mcp-server did not answer /healthz on 127.0.0.1:{port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------
// RBAC and pod security

#[test]
fn the_gateway_may_only_read_endpointslices_in_its_namespace_and_review_tokens() {
    for (name, objects) in rendered() {
        assert!(
            of_kind(&objects, "ClusterRole").is_empty(),
            "{name}: no ClusterRole of our own"
        );
        let crbs = of_kind(&objects, "ClusterRoleBinding");
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        if !auth_modes(deploy).contains(&"kubernetes".to_string()) {
            // TokenReview is the one cluster-wide permission, and only the
            // kubernetes auth mode calls it.
            assert!(
                crbs.is_empty(),
                "{name}: no ClusterRoleBinding without AUTH_MODE=kubernetes"
            );
        } else {
            assert_eq!(
                crbs.len(),
                1,
                "{name}: exactly one ClusterRoleBinding (to system:auth-delegator)"
            );
        }
        for crb in &crbs {
            assert_eq!(
                crb["roleRef"],
                json!({
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "system:auth-delegator"
                }),
                "{name}: the built-in ClusterRole that grants create on tokenreviews"
            );
            assert_eq!(
                crb["subjects"],
                json!([{"kind": "ServiceAccount", "name": GATEWAY_SERVICE, "namespace": NAMESPACE}]),
                "{name}: only the gateway's ServiceAccount reviews tokens"
            );
        }
        let sa = str_of(&deploy["spec"]["template"]["spec"]["serviceAccountName"]).to_string();
        find(&objects, "ServiceAccount", &sa);
        // Every binding naming the gateway's ServiceAccount.
        let bindings: Vec<&Value> = of_kind(&objects, "RoleBinding")
            .into_iter()
            .filter(|b| {
                b["subjects"].as_array().is_some_and(|s| {
                    s.iter()
                        .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa.as_str())
                })
            })
            .collect();
        assert_eq!(
            bindings.len(),
            1,
            "{name}: the gateway's ServiceAccount must have exactly one RoleBinding"
        );
        let binding = bindings[0];
        for s in binding["subjects"].as_array().unwrap() {
            assert_eq!(
                s["namespace"], binding["metadata"]["namespace"],
                "{name}: subject namespace"
            );
        }
        assert_eq!(
            binding["roleRef"]["kind"], "Role",
            "{name}: the gateway is bound to a namespaced Role"
        );
        let role = find(&objects, "Role", str_of(&binding["roleRef"]["name"]));
        assert_eq!(role["metadata"]["namespace"], NAMESPACE, "{name}");
        assert_eq!(
            role["rules"],
            json!([{
                "apiGroups": ["discovery.k8s.io"],
                "resources": ["endpointslices"],
                "verbs": ["get", "list", "watch"]
            }]),
            "{name}: the gateway's Role must grant exactly get/list/watch on endpointslices"
        );
        // Other RoleBindings (OpenShift's SCC use) must not reach the gateway.
        for b in of_kind(&objects, "RoleBinding") {
            if b["roleRef"]["kind"] == "ClusterRole" {
                assert!(
                    str_of(&b["roleRef"]["name"]).starts_with("system:openshift:scc:"),
                    "{name}: unexpected ClusterRole binding {}",
                    b["metadata"]["name"]
                );
                for s in b["subjects"].as_array().unwrap() {
                    assert_ne!(
                        s["name"],
                        sa.as_str(),
                        "{name}: the gateway must not get an SCC"
                    );
                }
            }
        }
    }
}

fn assert_hardened(what: &str, pod: &Value, c: &Value) {
    assert_eq!(
        pod["securityContext"]["runAsNonRoot"], true,
        "{what}: runAsNonRoot"
    );
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}: seccomp"
    );
    let sc = &c["securityContext"];
    assert_eq!(
        sc["allowPrivilegeEscalation"], false,
        "{what}: allowPrivilegeEscalation"
    );
    assert_eq!(
        sc["readOnlyRootFilesystem"], true,
        "{what}: readOnlyRootFilesystem"
    );
    assert_ne!(sc["privileged"], true, "{what}: privileged");
    assert_eq!(
        sc["capabilities"]["drop"],
        json!(["ALL"]),
        "{what}: capabilities.drop"
    );
    assert!(
        sc["capabilities"]["add"].is_null(),
        "{what}: no capability may be added"
    );
    assert!(
        sc["runAsUser"].as_i64() != Some(0)
            && pod["securityContext"]["runAsUser"].as_i64() != Some(0),
        "{what}: root"
    );
    for kind in ["requests", "limits"] {
        for r in ["cpu", "memory"] {
            assert!(
                c["resources"][kind][r].is_string(),
                "{what}: resources.{kind}.{r}"
            );
        }
    }
}

#[test]
fn pods_are_hardened_and_the_backend_reaches_every_node() {
    for (name, objects) in rendered() {
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        // One replica, or two with components/replicas (deploy/replicas.rs).
        assert!(
            matches!(deploy["spec"]["replicas"].as_i64(), Some(1 | 2)),
            "{name}"
        );
        let pod = &deploy["spec"]["template"]["spec"];
        assert_hardened(
            &format!("{name}: gateway"),
            pod,
            container(deploy, GATEWAY_SERVICE),
        );
        for host in ["hostNetwork", "hostPID", "hostIPC"] {
            assert_ne!(pod[host], true, "{name}: gateway {host}");
        }
        // The gateway mounts only its node-mcp-server token, the policy ConfigMap, the
        // session-key Secret, and (gateway-only) the static token for the user's servers.
        for v in pod["volumes"].as_array().into_iter().flatten() {
            let token = v["projected"]["sources"]
                .as_array()
                .is_some_and(|s| s.iter().all(|s| s["serviceAccountToken"].is_object()));
            let policy = v["configMap"]["name"] == "k8s-aggregator-mcp-policy";
            let keys = v["secret"]["secretName"] == "k8s-aggregator-mcp-session-keys";
            let backend = v["secret"]["secretName"] == "k8s-aggregator-mcp-backend-token";
            assert!(
                token || policy || keys || backend,
                "{name}: unexpected gateway volume {v}"
            );
        }
        for m in container(deploy, GATEWAY_SERVICE)["volumeMounts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert_eq!(m["readOnly"], true, "{name}: gateway mount {m}");
            assert!(
                m["subPath"].is_null(),
                "{name}: a subPath mount never updates: {m}"
            );
        }
        assert!(
            pod["terminationGracePeriodSeconds"].as_i64().unwrap_or(30) >= 30,
            "{name}"
        );

        let Some(ds) = objects.iter().find(|o| o["kind"] == "DaemonSet") else {
            assert_eq!(
                name, "gateway-only",
                "only gateway-only may leave the backend out"
            );
            continue;
        };
        let pod = &ds["spec"]["template"]["spec"];
        let c = container(ds, "node-mcp-server");
        assert_hardened(&format!("{name}: backend"), pod, c);
        assert_eq!(pod["hostPID"], true, "{name}: backend hostPID");
        assert_eq!(pod["hostNetwork"], true, "{name}: backend hostNetwork");
        assert_eq!(pod["dnsPolicy"], "ClusterFirstWithHostNet", "{name}");
        assert_eq!(
            pod["automountServiceAccountToken"], true,
            "{name}: the backend reads the service-account issuer's keys with its own token"
        );
        assert!(
            pod["tolerations"].as_array().is_some_and(|t| t
                .iter()
                .any(|t| t["operator"] == "Exists" && t["key"].is_null())),
            "{name}: the backend must tolerate every taint (control-plane nodes included)"
        );
        let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
        assert!(!mounts.is_empty());
        for m in mounts {
            assert_eq!(
                m["readOnly"], true,
                "{name}: every backend mount is read-only: {m}"
            );
        }
        let host = mounts
            .iter()
            .find(|m| m["mountPath"] == "/host")
            .expect("/host mount");
        assert_eq!(host["mountPropagation"], "HostToContainer", "{name}");
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == host["name"])
            .expect("host volume");
        assert_eq!(volume["hostPath"]["path"], "/", "{name}");
        if name == "openshift" {
            assert_eq!(c["securityContext"]["seLinuxOptions"]["type"], "spc_t");
        }
    }
    let ns = find(&overlay("kubernetes"), "Namespace", NAMESPACE).clone();
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "privileged"
    );
}

#[test]
fn the_openshift_route_exposes_the_gateway_with_edge_tls() {
    let objects = overlay("openshift");
    let route = find(&objects, "Route", GATEWAY_SERVICE);
    assert_eq!(
        route["spec"]["to"],
        json!({"kind": "Service", "name": GATEWAY_SERVICE, "weight": 100})
    );
    let svc = find(&objects, "Service", GATEWAY_SERVICE);
    assert_eq!(
        route["spec"]["port"]["targetPort"],
        svc["spec"]["ports"][0]["name"]
    );
    assert_eq!(route["spec"]["tls"]["termination"], "edge");
    assert_eq!(
        route["spec"]["tls"]["insecureEdgeTerminationPolicy"],
        "Redirect"
    );
    let timeout = str_of(&route["metadata"]["annotations"]["haproxy.router.openshift.io/timeout"]);
    let seconds: u64 = timeout
        .trim_end_matches('s')
        .parse()
        .expect("timeout in seconds");
    let call_timeout: u64 = str_of(
        &env_map(container(
            find(&objects, "Deployment", GATEWAY_SERVICE),
            GATEWAY_SERVICE,
        ))["CALL_TIMEOUT_SECONDS"]["value"],
    )
    .parse()
    .expect("CALL_TIMEOUT_SECONDS");
    assert!(
        seconds > call_timeout,
        "the router timeout ({seconds}s) must exceed CALL_TIMEOUT_SECONDS ({call_timeout})"
    );
    for other in ["kubernetes", "dev", "gateway-only"] {
        assert!(
            of_kind(&overlay(other), "Route").is_empty(),
            "{other} has no Route"
        );
    }
}

// ---------------------------------------------------------------------------
// justfile

/// `just` run in the repository with none of the justfile's settings inherited.
fn just() -> Command {
    let mut cmd = Command::new(tool("just"));
    cmd.current_dir(root())
        .arg("--justfile")
        .arg(root().join("justfile"))
        .arg("--working-directory")
        .arg(root());
    for var in [
        "IMAGE_REPO",
        "TAG",
        "NAMESPACE",
        "OVERLAY",
        "CONTAINER_TOOL",
        "BUILD_FLAGS",
        "KUBECTL",
        "KIND_CLUSTER",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

#[test]
fn every_recipe_is_documented_and_the_required_ones_exist() {
    let list = run(just().arg("--list").arg("--unsorted"));
    let mut recipes = BTreeSet::new();
    for line in list.lines().skip(1) {
        let name = line.split_whitespace().next().expect("recipe name");
        assert!(
            line.contains(" # "),
            "recipe `{name}` has no doc comment: {line:?}"
        );
        recipes.insert(name.to_string());
    }
    for required in [
        "build", "test", "image", "push", "deploy", "undeploy", "smoke", "demo", "bench", "logs",
    ] {
        assert!(
            recipes.contains(required),
            "justfile has no `{required}` recipe: {recipes:?}"
        );
    }
    assert!(run_all_output(just().args(["--dry-run", "test"])).contains("tests/run-all"));
}

#[test]
fn just_dry_run_image_prints_both_builds() {
    for tool in ["podman", "docker"] {
        let out = run_all_output(just().args([
            "--dry-run",
            &format!("CONTAINER_TOOL={tool}"),
            "IMAGE_REPO=quay.io/acme",
            "TAG=v9",
            "image",
        ]));
        let lines: Vec<&str> = out.lines().filter(|l| l.contains(" build ")).collect();
        assert_eq!(lines.len(), 2, "two builds expected:\n{out}");
        for (target, image) in [
            ("frontend", "k8s-aggregator-mcp"),
            ("backend", "node-mcp-server"),
        ] {
            let line = lines
                .iter()
                .find(|l| l.contains(&format!("--target {target} ")))
                .unwrap_or_else(|| panic!("no build of target {target}:\n{out}"));
            assert!(line.starts_with(&format!("{tool} build ")), "{line}");
            assert!(line.contains("-f Containerfile"), "{line}");
            assert!(
                line.contains(&format!("-t quay.io/acme/{image}:v9 ")),
                "{line}"
            );
            assert!(line.trim_end().ends_with(" ."), "{line}");
        }
    }
    let out = run_all_output(just().args([
        "--dry-run",
        "CONTAINER_TOOL=podman",
        "IMAGE_REPO=quay.io/acme",
        "TAG=v9",
        "push",
    ]));
    assert!(
        out.contains("podman push quay.io/acme/k8s-aggregator-mcp:v9"),
        "{out}"
    );
    assert!(
        out.contains("podman push quay.io/acme/node-mcp-server:v9"),
        "{out}"
    );
}

#[test]
fn just_dry_run_deploy_prints_the_expected_commands() {
    let out = run_all_output(just().args([
        "--dry-run",
        "IMAGE_REPO=quay.io/acme",
        "TAG=v9",
        "NAMESPACE=team-a",
        "OVERLAY=openshift",
        "deploy",
    ]));
    let expected_in_order = [
        "mkdir -p .interop/render/openshift",
        "> .interop/render/openshift/kustomization.yaml",
        "kubectl apply -k .interop/render/openshift",
        "kubectl -n team-a rollout status daemonset/node-mcp-server",
        "kubectl -n team-a rollout status deployment/k8s-aggregator-mcp",
    ];
    let mut at = 0;
    for want in expected_in_order {
        let found = out[at..]
            .find(want)
            .unwrap_or_else(|| panic!("`{want}` missing (or out of order) in:\n{out}"));
        at += found + want.len();
    }
    for want in [
        "'namespace: team-a'",
        "'  - ../../../deploy/overlays/openshift'",
        "'    newName: quay.io/acme/k8s-aggregator-mcp'",
        "'    newName: quay.io/acme/node-mcp-server'",
        "'    newTag: \"v9\"'",
    ] {
        assert!(out.contains(want), "`{want}` missing in:\n{out}");
    }
    // Settings after the recipe name (`just deploy IMAGE_REPO=... TAG=...`) re-run the
    // recipe with them in front, where just takes overrides.
    let out =
        run_all_output(just().args(["--dry-run", "deploy", "IMAGE_REPO=quay.io/acme", "TAG=v9"]));
    assert!(
        out.contains("IMAGE_REPO=quay.io/acme TAG=v9 deploy"),
        "settings after the recipe are not passed on:\n{out}"
    );
    assert!(
        !out.contains("kubectl apply"),
        "the outer run must not apply with defaults:\n{out}"
    );
    let out = run_all_output(just().args(["--dry-run", "OVERLAY=gateway-only", "deploy"]));
    assert!(
        !out.contains("daemonset"),
        "gateway-only has no DaemonSet to wait for:\n{out}"
    );
    let out = run_all_output(just().args(["--dry-run", "undeploy"]));
    assert!(
        out.contains("kubectl delete -k .interop/render/kubernetes"),
        "{out}"
    );
}

#[test]
fn just_manifests_applies_namespace_and_images_without_touching_the_repo() {
    let kubectl = tool("kubectl");
    let default_repo = run(just().args(["--evaluate", "DEFAULT_IMAGE_REPO"]));
    for overlay_name in ["kubernetes", "openshift", "dev", "gateway-only"] {
        // The defaults the justfile assumes are the ones deploy/ names.
        for (kind, name, image) in [
            ("Deployment", GATEWAY_SERVICE, "k8s-aggregator-mcp"),
            ("DaemonSet", "node-mcp-server", "node-mcp-server"),
        ] {
            let plain = overlay(overlay_name);
            if let Some(w) = plain
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            {
                assert_eq!(
                    container(w, name)["image"],
                    format!("{default_repo}/{image}:latest"),
                    "{overlay_name}: deploy/ and the justfile's DEFAULT_IMAGE_REPO disagree"
                );
            }
        }
        let yaml = run(just().args([
            &format!("KUBECTL={}", kubectl.display()),
            "IMAGE_REPO=registry.example.org/team",
            "TAG=1.2.3",
            "NAMESPACE=team-a",
            &format!("OVERLAY={overlay_name}"),
            "manifests",
        ]));
        let objects = yaml_to_json(&yaml);
        for o in &objects {
            match str_of(&o["kind"]) {
                "Namespace" => assert_eq!(o["metadata"]["name"], "team-a", "{overlay_name}"),
                "ClusterRoleBinding" | "ClusterRole" => {}
                _ => assert_eq!(
                    o["metadata"]["namespace"], "team-a",
                    "{overlay_name}: {}",
                    o["metadata"]["name"]
                ),
            }
            for b in o["subjects"].as_array().into_iter().flatten() {
                assert_eq!(
                    b["namespace"], "team-a",
                    "{overlay_name}: RoleBinding subject"
                );
            }
        }
        for (kind, name, image) in [
            ("Deployment", GATEWAY_SERVICE, "k8s-aggregator-mcp"),
            ("DaemonSet", "node-mcp-server", "node-mcp-server"),
        ] {
            if let Some(w) = objects
                .iter()
                .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            {
                assert_eq!(
                    container(w, name)["image"],
                    format!("registry.example.org/team/{image}:1.2.3"),
                    "{overlay_name}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Security wiring: node-server credential, NetworkPolicy, AUTH_MODE and policy

#[test]
fn the_gateway_proves_itself_to_node_servers_with_a_projected_token() {
    for (name, objects) in rendered() {
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        let pod = &deploy["spec"]["template"]["spec"];
        let c = container(deploy, GATEWAY_SERVICE);
        let env = env_map(c);
        let Some(ds) = objects.iter().find(|o| o["kind"] == "DaemonSet") else {
            // Servers we did not write get no node-mcp-server token (their static
            // token, if any: components/gateway-only, tests/deploy/components.rs).
            assert_eq!(name, "gateway-only");
            assert!(
                !str_of(&env["BACKEND_TOKEN_FILE"]["value"]).starts_with(NODE_TOKEN_DIR),
                "{name}"
            );
            assert!(
                pod["volumes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|v| v["projected"].is_null()),
                "{name}"
            );
            continue;
        };
        let file = env["BACKEND_TOKEN_FILE"]["value"].as_str().unwrap_or("");
        assert_eq!(file, format!("{NODE_TOKEN_DIR}/token"), "{name}");
        let mount = c["volumeMounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["mountPath"] == NODE_TOKEN_DIR))
            .unwrap_or_else(|| panic!("{name}: no mount at {NODE_TOKEN_DIR}"));
        assert_eq!(mount["readOnly"], true);
        let volume = pod["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
            .unwrap_or_else(|| panic!("{name}: no volume {}", mount["name"]));
        let sources = volume["projected"]["sources"]
            .as_array()
            .expect("projected");
        assert_eq!(sources.len(), 1, "{name}");
        let sat = &sources[0]["serviceAccountToken"];
        assert_eq!(sat["audience"], NODE_TOKEN_AUDIENCE, "{name}");
        assert_eq!(sat["path"], "token", "{name}");
        let ttl = sat["expirationSeconds"].as_i64().unwrap_or(3600);
        assert!(
            (600..=3600).contains(&ttl),
            "{name}: expirationSeconds {ttl}"
        );

        // The node server accepts exactly that token from exactly that ServiceAccount.
        let ds_c = container(ds, "node-mcp-server");
        let ds_env = env_map(ds_c);
        assert_eq!(ds_env["CLIENT_AUTH"]["value"], "serviceaccount", "{name}");
        assert_eq!(
            ds_env["TOKEN_AUDIENCE"]["value"], NODE_TOKEN_AUDIENCE,
            "{name}"
        );
        assert_eq!(
            ds_env["ALLOWED_SUBJECTS"]["value"],
            format!("system:serviceaccount:$(POD_NAMESPACE):{GATEWAY_SERVICE}"),
            "{name}: follows the namespace"
        );
        assert_eq!(
            ds_env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"], "metadata.namespace",
            "{name}"
        );
        let names: Vec<&str> = ds_c["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| str_of(&e["name"]))
            .collect();
        let pos = |n: &str| names.iter().position(|x| *x == n).unwrap();
        assert!(
            pos("POD_NAMESPACE") < pos("ALLOWED_SUBJECTS"),
            "{name}: $(POD_NAMESPACE) expands only when defined earlier"
        );
        assert_eq!(ds_env["PROCESS_CMDLINE"]["value"], "redacted", "{name}");
        let sa = find(&objects, "ServiceAccount", "node-mcp-server");
        assert_ne!(sa["automountServiceAccountToken"], false, "{name}");
    }
}

#[test]
fn a_network_policy_fences_the_gateway_pods() {
    for (name, objects) in rendered() {
        if name == "base" {
            // components/network-policy holds it; every overlay composes that.
            assert!(of_kind(&objects, "NetworkPolicy").is_empty());
            continue;
        }
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        let labels = &deploy["spec"]["template"]["metadata"]["labels"];
        let np = find(&objects, "NetworkPolicy", GATEWAY_SERVICE);
        let spec = &np["spec"];
        for (k, v) in spec["podSelector"]["matchLabels"].as_object().unwrap() {
            assert_eq!(&labels[k], v, "{name}: the policy selects the gateway pods");
        }
        assert_eq!(spec["policyTypes"], json!(["Ingress", "Egress"]), "{name}");
        for rule in spec["ingress"].as_array().unwrap() {
            assert_eq!(
                rule["ports"],
                json!([{"protocol": "TCP", "port": 9029}]),
                "{name}: ingress only to MCP"
            );
            assert!(rule["from"].is_array(), "{name}: ingress names its sources");
        }
        let mut ports = BTreeSet::new();
        for rule in spec["egress"].as_array().unwrap() {
            for p in rule["ports"]
                .as_array()
                .expect("every egress rule names ports")
            {
                ports.insert(p["port"].as_i64().unwrap());
            }
        }
        assert_eq!(
            ports,
            BTreeSet::from([53, 443, 5353, 6443, 9028]),
            "{name}: DNS, the API server, the node servers; nothing else"
        );
        if name == "openshift" {
            assert!(
                spec["ingress"].as_array().unwrap().iter().any(|r| {
                    r["from"][0]["namespaceSelector"]["matchLabels"]
                        ["policy-group.network.openshift.io/ingress"]
                        == ""
                }),
                "the router may reach the gateway"
            );
        }
    }
}

#[test]
fn overlays_turn_authentication_on_and_the_kubernetes_policy_denies_until_edited() {
    use k8s_aggregator_mcp::auth::{Caller, CallerSource};
    use k8s_aggregator_mcp::policy::{Policy, ToolFacts};
    for (name, objects) in rendered() {
        let deploy = find(&objects, "Deployment", GATEWAY_SERVICE);
        let env = env_map(container(deploy, GATEWAY_SERVICE));
        let mode = env
            .get("AUTH_MODE")
            .map(|e| str_of(&e["value"]).to_string());
        let expected = match name.as_str() {
            "base" => None,
            "dev" => Some("none"),
            "openshift" => Some("oauth,kubernetes"),
            "kubernetes" | "gateway-only" => Some("kubernetes"),
            other => panic!("new overlay {other}: say here what AUTH_MODE it uses"),
        };
        assert_eq!(mode.as_deref(), expected, "{name}: AUTH_MODE");
        if name == "openshift" {
            for (setting, key) in [("OAUTH_ISSUER", "issuer"), ("OAUTH_RESOURCE", "resource")] {
                let r = &env[setting]["valueFrom"]["configMapKeyRef"];
                assert_eq!(r["key"], key, "{setting}");
                let cm = find(&objects, "ConfigMap", str_of(&r["name"]));
                assert!(
                    str_of(&cm["data"][key]).starts_with("https://"),
                    "{setting}"
                );
            }
        }
        if !matches!(name.as_str(), "kubernetes" | "openshift" | "gateway-only") {
            continue;
        }
        assert_eq!(
            env["TOKEN_REVIEW_AUDIENCES"]["value"], "k8s-aggregator-mcp",
            "{name}"
        );
        let file = str_of(&env["POLICY_FILE"]["value"]);
        let (dir, key) = file.rsplit_once('/').unwrap();
        let c = container(deploy, GATEWAY_SERVICE);
        let mount = c["volumeMounts"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["mountPath"] == dir))
            .unwrap_or_else(|| panic!("{name}: POLICY_FILE's directory is not mounted"));
        let volume = deploy["spec"]["template"]["spec"]["volumes"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["name"] == mount["name"]))
            .unwrap();
        let cm = find(&objects, "ConfigMap", str_of(&volume["configMap"]["name"]));
        let text = str_of(&cm["data"][key]);
        let policy = Policy::parse(text)
            .unwrap_or_else(|e| panic!("{name}: the shipped policy does not parse: {e}"));
        assert_eq!(policy.rule_count(), 0, "{name}: nobody is named yet");
        let agent = Caller {
            source: CallerSource::Kubernetes,
            subject: "system:serviceaccount:agents:any".into(),
            groups: vec![
                "system:serviceaccounts".into(),
                "system:authenticated".into(),
            ],
            scopes: vec![],
        };
        let g = policy.grants(&agent);
        assert!(
            !g.may_see(ToolFacts {
                name: "node_info",
                read_only: true
            }),
            "{name}: the shipped policy must deny until the operator names a caller"
        );
        // The example in the comment works once uncommented.
        let example = text
            .lines()
            .filter_map(|l| {
                let t = l.trim_start();
                t.strip_prefix("# ").or_else(|| (t == "#").then_some(""))
            })
            .skip_while(|l| !l.starts_with("rules:"))
            .take_while(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n");
        let example = Policy::parse(&format!("default: deny\n{example}\n")).unwrap_or_else(|e| {
            panic!("{name}: the commented example does not parse: {e}\n{example}")
        });
        let reader = Caller {
            subject: "system:serviceaccount:agents:node-reader".into(),
            ..agent.clone()
        };
        assert!(example.grants(&reader).may_see(ToolFacts {
            name: "node_info",
            read_only: true
        }));
    }
}

// ---------------------------------------------------------------------------
// Containerfile

fn containerfile() -> String {
    std::fs::read_to_string(root().join("Containerfile")).expect("Containerfile")
}

/// The Containerfile's `RUN` commands, continuation lines joined.
fn run_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(cmd) = current.as_mut() {
            cmd.push(' ');
            cmd.push_str(trimmed.trim_end_matches('\\'));
        } else if let Some(rest) = trimmed.strip_prefix("RUN ") {
            current = Some(rest.trim_end_matches('\\').to_string());
        }
        if !trimmed.ends_with('\\')
            && let Some(cmd) = current.take()
        {
            commands.push(cmd.split_whitespace().collect::<Vec<_>>().join(" "));
        }
    }
    commands
}

#[test]
fn the_containerfile_builds_what_just_build_builds() {
    let text = containerfile();
    let build = run_all_output(just().args(["--dry-run", "build"]));
    let build = build
        .lines()
        .find(|l| l.starts_with("cargo build"))
        .expect("cargo build in just build")
        .trim()
        .to_string();
    let runs = run_commands(&text);
    let cargo_runs: Vec<&String> = runs.iter().filter(|r| r.contains("cargo build")).collect();
    assert_eq!(
        cargo_runs.len(),
        2,
        "the dependency build and the real build: {runs:#?}"
    );
    for r in &cargo_runs {
        assert!(
            r.contains(&build),
            "Containerfile RUN `{r}` does not run `{build}` (just build)"
        );
    }
    for stage in ["AS builder", "AS frontend", "AS backend"] {
        assert!(text.contains(stage), "Containerfile has no stage `{stage}`");
    }
    for label in [
        "org.opencontainers.image.title",
        "org.opencontainers.image.source",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
        "io.k8s.display-name",
        "io.k8s.description",
        "io.openshift.tags",
    ] {
        assert_eq!(
            text.matches(&format!("{label}=")).count(),
            2,
            "label {label} on both images"
        );
    }
    let users: Vec<&str> = text.lines().filter(|l| l.starts_with("USER ")).collect();
    assert_eq!(
        users,
        ["USER 65532:65532", "USER 65532:65532"],
        "both images run as a non-root user"
    );
    for (target, binary) in [
        ("frontend", "k8s-aggregator-mcp"),
        ("backend", "node-mcp-server"),
    ] {
        let stage = text.split(&format!("AS {target}")).nth(1).expect("stage");
        let stage = stage.split("\nFROM ").next().unwrap();
        assert!(
            stage.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]")),
            "{target} runs {binary}"
        );
    }
    let ignore =
        std::fs::read_to_string(root().join(".containerignore")).expect(".containerignore");
    let docker = std::fs::read_to_string(root().join(".dockerignore")).expect(".dockerignore");
    assert_eq!(ignore, docker, ".dockerignore must equal .containerignore");
}

#[test]
fn the_containerfile_copies_every_workspace_member_and_its_stub_step_resolves() {
    let text = containerfile();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // Every workspace member's manifest is copied before the dependency build.
    let metadata: Value =
        serde_json::from_str(&run(Command::new(&cargo).current_dir(root()).args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])))
        .expect("cargo metadata");
    let mut manifests = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let manifest = PathBuf::from(str_of(&package["manifest_path"]));
        let rel = manifest
            .strip_prefix(root())
            .expect("member inside the repo")
            .to_string_lossy()
            .into_owned();
        if rel != "Cargo.toml" {
            assert!(
                text.contains(&format!("COPY {rel} {rel}")),
                "Containerfile does not copy {rel} before the dependency build"
            );
            let dir = rel.trim_end_matches("/Cargo.toml");
            assert!(
                text.contains(&format!("COPY {dir} {dir}")),
                "Containerfile does not copy {dir}/"
            );
        }
        assert!(
            !manifest.with_file_name("build.rs").exists(),
            "{rel}: a build script is not copied by the Containerfile's stub step"
        );
        manifests.push(rel);
    }
    // Replay the stub step on a copy of the manifests and Cargo.lock: cargo
    // must resolve the stubbed workspace with the lock file unchanged.
    let start = text
        .find("# >>> stub-sources")
        .expect("stub-sources marker");
    let end = text
        .find("# <<< stub-sources")
        .expect("stub-sources end marker");
    let block = &text[start..end];
    let script = run_commands(block)
        .into_iter()
        .next()
        .expect("RUN in stub-sources block");
    let dir = tempdir("stub");
    for rel in manifests.iter().map(String::as_str).chain(["Cargo.lock"]) {
        let to = dir.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(root().join(rel), &to).unwrap_or_else(|e| panic!("copy {rel}: {e}"));
    }
    run(Command::new("sh").arg("-c").arg(&script).current_dir(&dir));
    // `cargo tree --locked` resolves the whole graph against the lock file
    // from the local index cache; `--offline`: no network in tests.
    run(Command::new(&cargo)
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .args([
            "tree",
            "--locked",
            "--offline",
            "-e",
            "normal,build",
            "--workspace",
        ])
        .stdout(Stdio::null()));
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// Smoke test against the local demo

#[test]
fn the_smoke_script_passes_against_the_demo() {
    let port = free_port();
    let backend_port = free_port_on_demo_nodes();
    let mut demo = Command::new(gateway_exe());
    demo.arg("demo")
        .env("FRONTEND_PORT", port.to_string())
        .env("BACKEND_PORT", backend_port.to_string())
        .env_remove("SERVICE_NAME")
        .env_remove("STATIC_NODES")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Killed(demo.spawn().expect("start k8s-aggregator-mcp demo"));
    // Collect what the demo prints; it names its URL.
    let (tx, rx) = mpsc::channel::<String>();
    for pipe in [
        child
            .0
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .0
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    let mut printed = String::new();
    let mut url: Option<String> = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready_port = loop {
        while let Ok(line) = rx.try_recv() {
            if url.is_none() {
                url = find_mcp_url(&line);
            }
            printed.push_str(&line);
            printed.push('\n');
        }
        let candidate = url.as_deref().and_then(port_of).unwrap_or(port);
        if http_get_status(candidate, "/healthz") == Some(200) {
            break candidate;
        }
        assert!(
            child.0.try_wait().expect("wait").is_none(),
            "the demo exited:\n{printed}"
        );
        assert!(
            Instant::now() < deadline,
            "the demo did not serve /healthz within 60 s:\n{printed}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let url = url.unwrap_or_else(|| format!("http://127.0.0.1:{ready_port}/mcp"));
    let output = Command::new("bash")
        .arg(root().join("scripts/smoke.sh"))
        .arg(&url)
        .output()
        .expect("run scripts/smoke.sh");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "scripts/smoke.sh {url} failed:\n{text}\ndemo output:\n{printed}"
    );
    assert!(text.contains("smoke: PASS"), "{text}");
    assert!(
        text.contains("demo-node-"),
        "the smoke test should have called a demo node:\n{text}"
    );
}

/// A port free on 127.0.0.2-4, where the demo's three node servers listen.
fn free_port_on_demo_nodes() -> u16 {
    for _ in 0..50 {
        let first = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
        let port = first.local_addr().expect("addr").port();
        let others: Vec<_> = ["127.0.0.3", "127.0.0.4"]
            .iter()
            .map(|ip| TcpListener::bind((*ip, port)))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no port free on 127.0.0.2-4")
}

fn find_mcp_url(line: &str) -> Option<String> {
    let start = line.find("http://127.0.0.1:")?;
    let url: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ')' | ','))
        .collect();
    url.ends_with("/mcp").then_some(url)
}

fn port_of(url: &str) -> Option<u16> {
    url.strip_prefix("http://127.0.0.1:")?
        .split('/')
        .next()?
        .parse()
        .ok()
}

#[test]
fn demo_url_detection() {
    assert_eq!(
        find_mcp_url("gateway listening: http://127.0.0.1:9029/mcp (3 nodes)").as_deref(),
        Some("http://127.0.0.1:9029/mcp")
    );
    assert_eq!(
        find_mcp_url("curl -X POST 'http://127.0.0.1:40000/mcp' -H ..").as_deref(),
        Some("http://127.0.0.1:40000/mcp")
    );
    assert_eq!(
        find_mcp_url("backend on http://127.0.0.1:9028/healthz"),
        None
    );
    assert_eq!(port_of("http://127.0.0.1:40000/mcp"), Some(40000));
}
