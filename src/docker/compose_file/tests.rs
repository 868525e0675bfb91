use super::*;

fn env(k: &str) -> Option<String> {
    match k {
        "TAG" => Some("2".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn interpolates_like_compose() {
    assert_eq!(interpolate("v${TAG}", &env).unwrap(), "v2");
    assert_eq!(interpolate("$TAG-x", &env).unwrap(), "2-x");
    assert_eq!(interpolate("${NOPE:-d}", &env).unwrap(), "d");
    assert_eq!(interpolate("${EMPTY:-d}", &env).unwrap(), "d");
    assert_eq!(interpolate("${EMPTY-d}", &env).unwrap(), "");
    assert_eq!(interpolate("$$HOME", &env).unwrap(), "$HOME");
    assert!(interpolate("${OPEN", &env).is_err());
    let e = interpolate("${NOPE:?set NOPE}", &env).unwrap_err();
    assert!(e.contains("NOPE") && e.contains("set NOPE"), "{e}");
}

#[test]
fn reads_every_build_key() {
    let text = "name: Lab_1\nservices:\n  app:\n    build:\n      context: ./app\n      dockerfile_inline: |\n        FROM scratch\n      target: final\n      args: [\"A=1\", TAG]\n      labels: {x: y}\n      cache_from: [app:cache]\n      network: host\n      extra_hosts: [\"db:10.0.0.2\"]\n      shm_size: 64m\n      secrets: [tok, {source: key, target: k}]\n      ssh: [default]\n      additional_contexts: {extra: ../extra}\n      x-note: ignored\n";
    let f = parse("lab/compose.yml", text, &env).unwrap();
    let b = f.services["app"].build.clone().unwrap();
    assert_eq!(b.context, "lab/app");
    assert_eq!(b.dockerfile_inline.as_deref(), Some("FROM scratch\n"));
    assert_eq!(b.target.as_deref(), Some("final"));
    assert_eq!(b.args["A"], "1");
    assert_eq!(b.args["TAG"], "2");
    assert_eq!(b.labels["x"], "y");
    assert_eq!(b.cache_from, ["app:cache"]);
    assert_eq!(b.extra_hosts, ["db:10.0.0.2"]);
    assert_eq!(b.shm_size, Some(64 << 20));
    assert_eq!(b.secrets, ["tok", "key"]);
    assert_eq!(b.additional_contexts["extra"], "extra");
    assert_eq!(
        b.classic_blockers(),
        ["secrets", "ssh", "additional_contexts"]
    );
    assert_eq!(f.default_project(), "lab_1");
    assert_eq!(
        f.image_name("app", "lab_1", Flavor::V2).as_deref(),
        Some("lab_1-app")
    );
}

#[test]
fn reads_short_forms_and_image_names() {
    let text = "services:\n  a:\n    build: ./svc\n  b:\n    build:\n      context: ../x\n      dockerfile: D\n      args:\n        - K=v\n  c:\n    image: busybox\n    build:\n      context: .\n      args:\n        N: 3\n";
    let f = parse("lab/compose.yml", text, &env).unwrap();
    let b = |s: &str| f.services[s].build.clone().unwrap();
    assert_eq!(b("a").context, "lab/svc");
    assert_eq!(b("b").context, "x");
    assert_eq!(b("b").dockerfile, "D");
    assert_eq!(b("c").args["N"], "3");
    assert_eq!(
        f.image_name("c", "p", Flavor::V2).as_deref(),
        Some("busybox")
    );
    assert_eq!(
        f.image_name("a", "my-lab", Flavor::V1).as_deref(),
        Some("my-lab_a")
    );
    assert_eq!(
        f.image_name("a", "my-lab", Flavor::V2).as_deref(),
        Some("my-lab-a")
    );
    assert!(f.image_name("zz", "p", Flavor::V2).is_none());
}

#[test]
fn unknown_or_malformed_build_keys_name_the_key_and_line() {
    let text =
        "services:\n  app:\n    image: x\n    build:\n      context: .\n      dockerfle: D\n";
    let e = parse("c.yml", text, &env).unwrap_err();
    assert!(
        e.starts_with("c.yml:6: services.app.build.dockerfle: unknown key"),
        "{e}"
    );
    let text = "services:\n  app:\n    build:\n      shm_size: lots\n";
    let e = parse("c.yml", text, &env).unwrap_err();
    assert!(e.contains("c.yml:4: services.app.build.shm_size"), "{e}");
    let text = "services:\n  app:\n    build:\n      context: git@github.com:x/y\n";
    assert!(
        parse("c.yml", text, &env)
            .unwrap_err()
            .contains("remote context")
    );
    let text = "services:\n  app:\n    build: [1]\n";
    assert!(
        parse("c.yml", text, &env)
            .unwrap_err()
            .contains("must be a path or a map")
    );
}

#[test]
fn sizes() {
    assert_eq!(size_bytes("1024").unwrap(), 1024);
    assert_eq!(size_bytes("2gb").unwrap(), 2 << 30);
    assert_eq!(size_bytes("64K").unwrap(), 64 << 10);
    assert!(size_bytes("99999999999999999999g").is_err());
    assert!(size_bytes("-1").is_err());
}
