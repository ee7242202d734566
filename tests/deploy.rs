//! The deployment files (Dockerfile, deploy/ manifests) must agree with what the binary really
//! accepts: every IVT_* variable they set is a real flag's env var, the ports are the flags'
//! defaults, the probes name the real health service, and the commands parse. This keeps them from
//! drifting when flags change. (Schema validation: scripts/validate-deploy.sh, run by CI.)

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use ivt::cli::Cli;

fn read(p: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(p))
        .unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Env vars accepted by `ivt serve` (its flags, the flattened model flags and global flags).
fn serve_env_vars() -> BTreeSet<String> {
    let mut cmd = Cli::command();
    cmd.build();
    let serve = cmd.find_subcommand("serve").expect("serve subcommand");
    serve
        .get_arguments()
        .chain(cmd.get_arguments())
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect()
}

/// Default of a `serve` flag, as clap shows it.
fn serve_default(flag: &str) -> String {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").expect("serve subcommand");
    let arg = serve
        .get_arguments()
        .find(|a| a.get_long() == Some(flag))
        .unwrap_or_else(|| panic!("--{flag}"));
    arg.get_default_values()[0].to_string_lossy().into_owned()
}

/// `IVT_*` names mentioned in a text (keys, env entries, patch paths, ENV lines).
fn ivt_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("IVT_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // "IVT_*" in prose names the family, not a variable.
        if name.len() > "IVT_".len() {
            out.insert(name);
        }
    }
    out
}

/// `KEY: value` pairs of the ConfigMap's data.
fn configmap() -> Vec<(String, String)> {
    read("deploy/base/configmap.yaml")
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| !l.starts_with(' ') && !l.starts_with('#'))
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_string(), v.trim_matches('"').to_string()))
        .collect()
}

fn port_of(addr: &str) -> String {
    addr.rsplit(':').next().unwrap_or_default().to_string()
}

#[test]
fn every_ivt_variable_in_the_deployment_files_is_a_real_flag() {
    let known = serve_env_vars();
    for file in [
        "Dockerfile",
        "deploy/base/configmap.yaml",
        "deploy/base/deployment.yaml",
        "deploy/overlays/gpu/kustomization.yaml",
        "deploy/overlays/milvus/kustomization.yaml",
        "deploy/overlays/milvus/deployment-milvus.yaml",
        "deploy/overlays/milvus/job-index-build-milvus.yaml",
        "deploy/overlays/replicas/kustomization.yaml",
        "deploy/overlays/replicas/deployment-replicas.yaml",
    ] {
        for var in ivt_vars(&read(file)) {
            assert!(
                known.contains(&var),
                "{file} sets {var}, which `ivt serve` does not read"
            );
        }
    }
}

#[test]
fn the_configmap_is_a_valid_serve_configuration() {
    let vars = configmap();
    assert!(vars.iter().any(|(k, _)| k == "IVT_MODEL"));
    for (k, v) in &vars {
        // This test binary runs in its own process; no other test reads these.
        std::env::set_var(k, v);
    }
    use clap::Parser;
    if let Err(e) = Cli::try_parse_from(["ivt", "serve"]) {
        panic!("ivt serve rejects the ConfigMap: {e}");
    }
}

#[test]
fn ports_and_probes_match_the_server() {
    let grpc = port_of(&serve_default("addr"));
    let metrics = port_of(&serve_default("metrics-addr"));
    let http = port_of(&serve_default("http-addr"));
    let dep = read("deploy/base/deployment.yaml");
    assert!(dep.contains(&format!("containerPort: {grpc}")));
    assert!(dep.contains(&format!("containerPort: {metrics}")));
    assert!(dep.contains(&format!("containerPort: {http}")));
    assert_eq!(
        dep.matches(&format!("port: {grpc}")).count(),
        3,
        "three gRPC probes"
    );
    let readiness = format!("service: {}", ivt::proto::retrieval_server::SERVICE_NAME);
    assert_eq!(
        dep.matches(&readiness).count(),
        2,
        "startup and readiness name the model service"
    );
    assert!(
        dep.contains("service: \"\""),
        "liveness checks the whole server"
    );
    let svc = read("deploy/base/service.yaml");
    assert!(svc.contains(&format!("port: {grpc}")) && svc.contains(&format!("port: {metrics}")));
    assert!(svc.contains(&format!("port: {http}")));
    let docker = read("Dockerfile");
    assert!(docker.contains(&format!("EXPOSE {grpc} {metrics} {http}")));
    for (k, v) in configmap() {
        match k.as_str() {
            "IVT_ADDR" => assert_eq!(port_of(&v), grpc),
            "IVT_METRICS_ADDR" => assert_eq!(port_of(&v), metrics),
            "IVT_HTTP_ADDR" => assert_eq!(port_of(&v), http),
            _ => {}
        }
    }
}

/// `ivt` followed by the `args:` list of the (first) container in a Job manifest.
fn job_argv(job: &str) -> Vec<String> {
    let args = job
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("args:"))
        .skip(1)
        .map_while(|l| l.trim_start().strip_prefix("- ").map(String::from));
    std::iter::once("ivt".to_string()).chain(args).collect()
}

#[test]
fn the_index_build_job_command_parses() {
    use clap::Parser;
    let argv = job_argv(&read("deploy/base/job-index-build.yaml"));
    assert!(argv.len() > 4, "{argv:?}");
    if let Err(e) = Cli::try_parse_from(argv) {
        panic!("the Job's command does not parse: {e}");
    }
}

#[test]
fn the_image_serves_the_demo_model_with_no_volume() {
    let docker = read("Dockerfile");
    // The demo model is copied to where `demo_model_dir` looks in the image...
    assert!(docker.contains("COPY models/ /opt/ivt/models/"));
    assert!(Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(ivt::model::DEMO_MODEL)
        .join("config.json")
        .is_file());
    assert!(!read(".dockerignore")
        .lines()
        .any(|l| l.trim_start_matches('/').starts_with("models")));
    // ...and no model or index is preset, so a bare `docker run` uses the demo model and
    // gallery, cached in a directory the unprivileged user owns.
    let env: String = docker
        .lines()
        .skip_while(|l| !l.starts_with("ENV IVT_"))
        .take_while(|l| l.starts_with("ENV") || l.starts_with("    "))
        .collect();
    assert!(env.contains("IVT_CACHE_DIR=/data/cache"), "{env}");
    assert!(
        !env.contains("IVT_MODEL=") && !env.contains("IVT_INDEX="),
        "{env}"
    );
    assert!(docker.contains("/data/cache") && docker.contains("chown -R ivt:ivt /data"));
}

/// `op`/`path`/`value` of the ConfigMap patch in an overlay's kustomization.
fn configmap_patch(overlay: &str) -> Vec<(String, String, Option<String>)> {
    let text = read(&format!("deploy/overlays/{overlay}/kustomization.yaml"));
    let mut ops = Vec::new();
    let mut lines = text.lines().map(str::trim).peekable();
    while let Some(line) = lines.next() {
        let Some(op) = line.strip_prefix("- op: ") else {
            continue;
        };
        let path = lines
            .next()
            .and_then(|l| l.strip_prefix("path: "))
            .unwrap_or_default();
        let Some(key) = path.strip_prefix("/data/") else {
            continue;
        };
        let value = lines
            .peek()
            .and_then(|l| l.strip_prefix("value: "))
            .map(|v| v.trim_matches('"').to_string());
        ops.push((op.to_string(), key.to_string(), value));
    }
    ops
}

#[test]
fn the_milvus_overlay_configures_serve_and_the_build_job_for_milvus() {
    use clap::Parser;
    use ivt::cli::common::BackendKind;
    use ivt::cli::Command;
    let mut vars = configmap();
    for (op, key, value) in configmap_patch("milvus") {
        vars.retain(|(k, _)| *k != key);
        if op != "remove" {
            vars.push((key, value.expect("a value")));
        }
    }
    assert!(vars.iter().all(|(k, _)| k != "IVT_INDEX"));
    let known = serve_env_vars();
    for (k, v) in &vars {
        assert!(
            !k.starts_with("IVT_") || known.contains(k),
            "the overlay sets {k}, which `ivt serve` does not read"
        );
        // This test binary runs in its own process; the other test setting variables only
        // checks that parsing succeeds.
        std::env::set_var(k, v);
    }
    match Cli::try_parse_from(["ivt", "serve"]).map(|c| c.command) {
        Ok(Command::Serve(args)) => {
            assert_eq!(args.backend.gallery_backend, BackendKind::Milvus);
            assert!(args.backend.milvus_uri.ends_with(":19530"));
        }
        other => panic!("ivt serve rejects the Milvus overlay's ConfigMap: {other:?}"),
    }
    let job = read("deploy/overlays/milvus/job-index-build-milvus.yaml");
    assert!(job.contains("configMapRef") && job.contains("--resume"));
    match Cli::try_parse_from(job_argv(&job)).map(|c| c.command) {
        Ok(Command::Index(ivt::cli::index::IndexCommand::Build(b))) => {
            assert_eq!(b.backend.gallery_backend, BackendKind::Milvus);
        }
        other => panic!("the Milvus Job's command does not parse: {other:?}"),
    }
}

#[test]
fn the_replicas_overlay_serves_read_only_from_several_replicas() {
    use clap::Parser;
    use ivt::cli::Command;
    let mut vars = configmap();
    for (op, key, value) in configmap_patch("replicas") {
        vars.retain(|(k, _)| *k != key);
        if op != "remove" {
            vars.push((key, value.expect("a value")));
        }
    }
    for (k, v) in &vars {
        std::env::set_var(k, v);
    }
    match Cli::try_parse_from(["ivt", "serve"]).map(|c| c.command) {
        Ok(Command::Serve(args)) => assert!(args.read_only, "replicas must serve --read-only"),
        other => panic!("ivt serve rejects the replicas overlay's ConfigMap: {other:?}"),
    }
    let deployment = read("deploy/overlays/replicas/deployment-replicas.yaml");
    let replicas: u32 = deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix("replicas: "))
        .and_then(|n| n.parse().ok())
        .expect("a replica count");
    assert!(replicas > 1);
    assert!(deployment.contains("readOnly: true") && deployment.contains("RollingUpdate"));
}
