"""Check deploy/kubernetes and deploy/compose with real tools.

    tests/deploy/.venv/bin/python tests/deploy/check_manifests.py REPO ROOMCAST_BINARY

For each kustomization (the base, the default with monitoring, the example
overlay, the cluster overlay with Redis): `kubectl kustomize` renders it; every object validates against the
Kubernetes JSON schemas offline (kubernetes-validate, strict: unknown fields
are errors) for the oldest and newest Kubernetes versions we support; and the
objects agree with each other and with roomcast (probes, ports, mounts, the
drain budget, selectors, the restricted Pod Security profile, scripts that
compile). The compose file's services (two roomcast nodes and their Redis), mounts
and provisioning are checked against the files they name; so is the Redis
Cluster compose file (six cluster-enabled servers, the one-shot create, two
nodes in cluster mode whose environment passes `roomcast check`). Prints "manifests ok" last, or exits 1 listing
every problem.
"""

import pathlib
import os
import subprocess
import sys
import tempfile
import tomllib

import kubernetes_validate
import yaml

# preStop `sleep` needs 1.30 (beta, on by default); 1.37 is the newest schema.
K8S_VERSIONS = ["1.30.0", "1.37.0"]
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}

repo = pathlib.Path(sys.argv[1]).resolve()
binary = sys.argv[2]
problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


def render(path):
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        problem(path, f"kubectl kustomize failed: {out.stderr.strip()}")
        return []
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def duration_seconds(text):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix) and text[: -len(suffix)].replace(".", "").isdigit():
            return float(text[: -len(suffix)]) * units[suffix]
    raise ValueError(f"not a duration: {text}")


def code_of(rhai):
    """A Rhai script without its comments (good enough to look for calls)."""
    out = []
    for line in rhai.splitlines():
        out.append(line.split("//", 1)[0])
    text = "\n".join(out)
    while "/*" in text:
        start = text.index("/*")
        end = text.find("*/", start)
        text = text[:start] + (text[end + 2:] if end >= 0 else "")
    return text


def subset(small, big):
    return all(big.get(k) == v for k, v in small.items())


def restricted(where, spec):
    """The restricted Pod Security Standard, and a read-only root, for every container."""
    psc = spec.get("securityContext", {})
    for c in spec.get("containers", []):
        at = f"{where}: container {c.get('name')}"
        csc = c.get("securityContext", {})
        if not (psc.get("runAsNonRoot") or csc.get("runAsNonRoot")):
            problem(at, "runAsNonRoot is not set")
        if (csc.get("runAsUser", psc.get("runAsUser")) or 0) == 0:
            problem(at, "runs as uid 0")
        seccomp = csc.get("seccompProfile", psc.get("seccompProfile", {})).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problem(at, f"seccompProfile is {seccomp}")
        if csc.get("allowPrivilegeEscalation") is not False:
            problem(at, "allowPrivilegeEscalation is not false")
        if csc.get("capabilities", {}).get("drop") != ["ALL"]:
            problem(at, "capabilities are not dropped")
        if csc.get("capabilities", {}).get("add"):
            problem(at, "capabilities are added")
        if csc.get("privileged"):
            problem(at, "privileged")
        if csc.get("readOnlyRootFilesystem") is not True:
            problem(at, "the root filesystem is writable")
        res = c.get("resources", {})
        if not res.get("requests", {}).get("cpu") or not res.get("requests", {}).get("memory"):
            problem(at, "no cpu/memory requests")
        if not res.get("limits", {}).get("memory"):
            problem(at, "no memory limit")
    if spec.get("automountServiceAccountToken") is not False:
        problem(where, "a service account token is mounted")


def check_kustomization(rel, expect_monitor):
    where = f"deploy/kubernetes/{rel}".rstrip("/")
    objs = render(repo / where)
    if not objs:
        return
    for obj in objs:
        name = f"{where}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if obj.get("kind") in CRD_KINDS:
            continue
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                problem(name, f"invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
            except Exception as e:  # schema missing for a kind: also a problem
                problem(name, f"cannot validate for Kubernetes {version}: {e}")

    by_kind = {}
    for obj in objs:
        by_kind.setdefault(obj["kind"], []).append(obj)

    def one(kind):
        found = by_kind.get(kind, [])
        if len(found) != 1:
            problem(where, f"expected one {kind}, found {len(found)}")
            return None
        return found[0]

    deploy, pdb, hpa = one("Deployment"), one("PodDisruptionBudget"), one("HorizontalPodAutoscaler")
    # roomcast's Service is the one selecting its pods (a cluster adds Redis's).
    svc = None
    if deploy:
        pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
        mine = [s for s in by_kind.get("Service", []) if subset(s["spec"].get("selector", {}), pod_labels)]
        if len(mine) != 1:
            problem(where, f"expected one Service selecting roomcast's pods, found {len(mine)}")
        else:
            svc = mine[0]
    services = {s["metadata"]["name"]: s for s in by_kind.get("Service", [])}
    monitors = by_kind.get("ServiceMonitor", [])
    if expect_monitor and len(monitors) != 1:
        problem(where, "expected a ServiceMonitor")
    rules = by_kind.get("PrometheusRule", [])
    if expect_monitor and len(rules) != 1:
        problem(where, "expected a PrometheusRule")
    if not expect_monitor and (monitors or rules):
        problem(where, "the base must not need the prometheus-operator's CRDs")
    # The operator's rules are the ones promtool checks and tests.
    alerts = yaml.safe_load((repo / "deploy/prometheus/alerts.yml").read_text())
    for rule in rules:
        if rule.get("spec", {}).get("groups") != alerts["groups"]:
            problem(where, "PrometheusRule groups differ from deploy/prometheus/alerts.yml")
    for sts in by_kind.get("StatefulSet", []):
        restricted(f"{where}: StatefulSet/{sts['metadata']['name']}", sts["spec"]["template"]["spec"])
        sel = sts["spec"]["selector"]["matchLabels"]
        if not subset(sel, sts["spec"]["template"]["metadata"]["labels"]):
            problem(where, f"StatefulSet/{sts['metadata']['name']} selector does not match its pods")
        if sts["spec"].get("serviceName") not in services:
            problem(where, f"StatefulSet/{sts['metadata']['name']} names Service {sts['spec'].get('serviceName')}, which is not rendered")
    if not all([deploy, svc, pdb, hpa]):
        return
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}

    pod = deploy["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"]["labels"]
    if not subset(deploy["spec"]["selector"]["matchLabels"], labels):
        problem(where, "Deployment selector does not match its pod labels")
    if "replicas" in deploy["spec"]:
        problem(where, "Deployment sets replicas: the HPA owns the count, apply would reset it")
    containers = spec["containers"]
    if len(containers) != 1:
        problem(where, "expected one container")
        return
    c = containers[0]
    ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}

    restricted(where, spec)

    # Probes hit roomcast's endpoints on the declared port.
    for probe, path in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")]:
        got = c.get(probe, {}).get("httpGet", {})
        if got.get("path") != path or got.get("port") not in ports:
            problem(where, f"{probe} is {got}, expected {path} on a declared port")

    # Config and scripts: mounted whole, from ConfigMaps that exist.
    mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    env = {e["name"]: e.get("value") for e in c.get("env", [])}
    mounted = {}
    for vname, m in mounts.items():
        if "subPath" in m:
            problem(where, f"volume {vname} uses subPath: it would never see ConfigMap updates")
        cm = volumes.get(vname, {}).get("configMap", {}).get("name")
        if cm is not None:
            if cm not in configmaps:
                problem(where, f"volume {vname} names ConfigMap {cm}, which is not rendered")
            else:
                mounted[m["mountPath"]] = configmaps[cm]
    config_path = env.get("ROOMCAST_CONFIG", "")
    config_dir, _, config_file = config_path.rpartition("/")
    config_cm = mounted.get(config_dir)
    if config_cm is None or config_file not in config_cm.get("data", {}):
        problem(where, f"ROOMCAST_CONFIG={config_path} is not a mounted ConfigMap file")
        return
    config = tomllib.loads(config_cm["data"][config_file])
    if config_cm["metadata"]["name"] == "roomcast-config":
        problem(where, "the config ConfigMap has no hash suffix: editing it would not roll the pods")
    scripts_dir = config.get("scripts", {}).get("dir")
    scripts_cm = mounted.get(scripts_dir)
    if scripts_cm is None:
        problem(where, f"scripts.dir {scripts_dir} is not a mounted ConfigMap")
        return
    if scripts_cm["metadata"]["name"] != "roomcast-scripts":
        problem(where, "the scripts ConfigMap is renamed by a hash: edits would roll pods, not hot-reload")
    if config.get("scripts", {}).get("watch") is not True:
        problem(where, "scripts.watch is off: ConfigMap edits would not be picked up")
    listen_port = int(config.get("listen", "127.0.0.1:3000").rsplit(":", 1)[1])
    if listen_port not in ports.values():
        problem(where, f"roomcast listens on {listen_port}, the container declares {ports}")
    if config.get("listen", "").startswith("127."):
        problem(where, "roomcast listens on loopback: probes and the Service cannot reach it")

    # The scripts in the ConfigMap compile and define what the config's routes need.
    with tempfile.TemporaryDirectory() as tmp:
        for fname, text in scripts_cm.get("data", {}).items():
            (pathlib.Path(tmp) / fname).write_text(text)
        (pathlib.Path(tmp) / "roomcast.toml").write_text(config_cm["data"][config_file])
        out = subprocess.run(
            [binary, "--config", f"{tmp}/roomcast.toml", "--scripts", tmp, "check"],
            capture_output=True, text=True, check=False,
        )
        if out.returncode != 0:
            problem(where, f"roomcast check: {out.stdout}{out.stderr}".strip())

    # Scaling out splits rooms: only routes that never broadcast may scale.
    routes = config.get("routes") or [
        {"name": n, "script": f"{n}.rhai"} for n in ("echo", "shout", "chat")
    ]
    sharing = [
        r["name"] for r in routes
        if any(w in code_of(scripts_cm["data"].get(r.get("script", ""), "")) for w in ("broadcast", "publish("))
    ]
    # ...unless the replicas are one cluster over Redis (docs/cluster.md).
    env_from = {e["name"]: e.get("valueFrom") for e in c.get("env", [])}
    redis_url = env.get("ROOMCAST_CLUSTER__REDIS_URL") or config.get("cluster", {}).get("redis_url", "")
    clustered = bool(redis_url) or env_from.get("ROOMCAST_CLUSTER__REDIS_URL") is not None
    replicas = hpa["spec"]["maxReplicas"]
    if replicas > 1 and sharing and not clustered:
        problem(where, f"scales to {replicas} replicas with room-sharing routes {sharing} and no cluster.redis_url")
    if clustered:
        if hpa["spec"]["minReplicas"] < 2:
            problem(where, "a cluster with minReplicas < 2: one pod's restart is an outage")
        if env.get("ROOMCAST_CLUSTER__NODE_ID") or config.get("cluster", {}).get("node_id"):
            problem(where, "every replica would have the same cluster.node_id (leave it empty or use the pod name)")
        if (replicas > 1 and config.get("socketio", {}).get("enabled", True)
                and svc["spec"].get("sessionAffinity") != "ClientIP"):
            problem(where, "socket.io long-polling across replicas needs sessionAffinity: ClientIP on the Service")
        # A Redis named by a bare host is a Service of this rendering.
        if redis_url:
            hostport = redis_url.split("://", 1)[1].rsplit("@", 1)[-1].split("/", 1)[0]
            host, _, rport = hostport.partition(":")
            if host == "localhost" or host.startswith("127."):
                problem(where, f"cluster.redis_url {redis_url} is the pod itself")
            elif "." not in host:
                target = services.get(host)
                if target is None:
                    problem(where, f"cluster.redis_url names {host}, which is not a rendered Service")
                elif int(rport or 6379) not in [p["port"] for p in target["spec"]["ports"]]:
                    problem(where, f"Service {host} has no port {rport or 6379}")
    if hpa["spec"]["minReplicas"] > hpa["spec"]["maxReplicas"]:
        problem(where, "HPA minReplicas > maxReplicas")
    if hpa["spec"]["scaleTargetRef"]["name"] != deploy["metadata"]["name"]:
        problem(where, "the HPA targets another Deployment")
    # A PDB that can never be satisfied blocks node drains.
    if pdb["spec"].get("minAvailable", 0) >= hpa["spec"]["minReplicas"]:
        problem(where, "PodDisruptionBudget minAvailable would block every eviction")
    if not subset(pdb["spec"].get("selector", {}).get("matchLabels", {"missing": True}), labels):
        problem(where, "PodDisruptionBudget selector does not match the pods")

    # Drain: preStop, then SIGTERM → Close 1001 and up to drain_timeout.
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    drain = duration_seconds(config.get("shutdown", {}).get("drain_timeout", "10s"))
    grace = spec.get("terminationGracePeriodSeconds", 30)
    if grace < pre_stop + drain + 1:
        problem(where, f"terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain {drain} + 1")
    if pre_stop < 1:
        problem(where, "no preStop pause before SIGTERM")

    # The Service reaches the pods; the ServiceMonitor reaches the Service.
    if not subset(svc["spec"]["selector"], labels):
        problem(where, "Service selector does not match the pods")
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for p in svc_ports.values():
        if p["targetPort"] not in ports and p["targetPort"] not in ports.values():
            problem(where, f"Service port {p['name']} targets {p['targetPort']}, not a container port")
    for mon in monitors:
        if not subset(mon["spec"]["selector"]["matchLabels"], svc["metadata"].get("labels", {})):
            problem(where, "ServiceMonitor selector does not match the Service")
        for ep in mon["spec"]["endpoints"]:
            if ep.get("port") not in svc_ports or ep.get("path", "/metrics") != "/metrics":
                problem(where, f"ServiceMonitor endpoint {ep} is not the Service's /metrics")
        if mon["metadata"].get("namespace") != svc["metadata"].get("namespace"):
            problem(where, "ServiceMonitor and Service are in different namespaces")
        # Targets found by a ServiceMonitor get job=<Service name>, and the
        # alerts select up{job="roomcast"}.
        if not mon["spec"].get("jobLabel") and svc["metadata"]["name"] != "roomcast":
            problem(where, f"scrape job would be {svc['metadata']['name']}, alerts expect roomcast")
    for rule in rules:
        if rule["metadata"].get("namespace") != svc["metadata"].get("namespace"):
            problem(where, "PrometheusRule and Service are in different namespaces")

    for ns in by_kind.get("Namespace", []):
        if ns["metadata"].get("labels", {}).get("pod-security.kubernetes.io/enforce") != "restricted":
            problem(where, f"namespace {ns['metadata']['name']} does not enforce the restricted profile")


def check_compose():
    where = "deploy/compose/compose.yaml"
    base = repo / "deploy/compose"
    compose = yaml.safe_load((base / "compose.yaml").read_text())
    services = compose.get("services", {})
    missing = [n for n in ("redis", "prometheus", "grafana") if n not in services]
    if missing:
        problem(where, f"no {missing} service")
        return
    # Two roomcast nodes or more, one cluster: the same Redis, their own names.
    nodes = sorted(n for n, svc in services.items() if "build" in svc)
    if len(nodes) < 2:
        problem(where, f"expected two roomcast nodes, found {nodes}")
        return
    redis_port = 6379  # the redis image's
    ids = set()
    for n in nodes:
        env = services[n].get("environment", {})
        if env.get("ROOMCAST_CLUSTER__REDIS_URL") != f"redis://redis:{redis_port}":
            problem(where, f"{n} does not join the cluster at redis://redis:{redis_port}")
        ids.add(env.get("ROOMCAST_CLUSTER__NODE_ID"))
        if "redis" not in services[n].get("depends_on", []):
            problem(where, f"{n} does not start after redis")
    if len(ids) != len(nodes) or None in ids:
        problem(where, f"the nodes need distinct ROOMCAST_CLUSTER__NODE_IDs, found {ids}")
    host_ports = [str(p).rsplit(":", 1)[0] for svc in services.values() for p in svc.get("ports", [])]
    if len(set(host_ports)) != len(host_ports):
        problem(where, f"two services publish the same host port: {host_ports}")
    mounts = {}
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            src, dst = vol.split(":")[:2]
            if not (base / src).exists():
                problem(where, f"{name} mounts {src}, which does not exist")
            mounts[(name, dst)] = (base / src).resolve()
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problem(where, f"{name} publishes {port} beyond loopback")
        if not svc.get("image"):
            problem(where, f"{name} has no image")
    image_config = tomllib.loads((repo / "deploy/docker/roomcast.toml").read_text())
    port = image_config["listen"].rsplit(":", 1)[1]
    for n in nodes:
        build = services[n]["build"]
        dockerfile = base / build["context"] / build["dockerfile"]
        if not dockerfile.is_file():
            problem(where, f"no Dockerfile at {dockerfile}")
        # roomcast in the image: its config's scripts dir is what compose mounts.
        if mounts.get((n, image_config["scripts"]["dir"])) != (repo / "scripts").resolve():
            problem(where, f"{n}: the scripts mount is not the image's scripts.dir")
        if not any(str(p).endswith(f":{port}") for p in services[n].get("ports", [])):
            problem(where, f"{n} does not publish the image's port {port}")

    # Prometheus: the shipped config, its rule file next to it, scraping roomcast.
    prom_cfg_path = services["prometheus"]["command"][0].split("=", 1)[1]
    prom_cfg = mounts.get(("prometheus", prom_cfg_path))
    if prom_cfg != (repo / "deploy/prometheus/prometheus.yml").resolve():
        problem(where, "Prometheus does not run deploy/prometheus/prometheus.yml")
    else:
        cfg = yaml.safe_load(prom_cfg.read_text())
        for rule in cfg.get("rule_files", []):
            dst = str(pathlib.PurePosixPath(prom_cfg_path).parent / rule)
            if ("prometheus", dst) not in mounts:
                problem(where, f"rule file {rule} is not mounted at {dst}")
        targets = [t for sc in cfg["scrape_configs"] for s in sc["static_configs"] for t in s["targets"]]
        for n in nodes:
            if f"{n}:{port}" not in targets:
                problem(where, f"Prometheus does not scrape {n}:{port} (targets {targets})")

    # Grafana: the datasource is the compose Prometheus; the dashboard is provisioned.
    prov = mounts.get(("grafana", "/etc/grafana/provisioning"))
    if prov is None:
        problem(where, "Grafana provisioning is not mounted")
        return
    ds = yaml.safe_load((prov / "datasources/prometheus.yml").read_text())["datasources"][0]
    if ds["url"] != "http://prometheus:9090" or ds["type"] != "prometheus":
        problem(where, f"the Grafana datasource is {ds['url']}")
    provider = yaml.safe_load((prov / "dashboards/roomcast.yml").read_text())["providers"][0]
    dash_dir = provider["options"]["path"]
    dash = [d for (s, d) in mounts if s == "grafana" and d.startswith(dash_dir + "/")]
    if not dash or mounts[("grafana", dash[0])] != (repo / "deploy/grafana/roomcast.json").resolve():
        problem(where, "deploy/grafana/roomcast.json is not mounted where the provider looks")
    home = services["grafana"].get("environment", {}).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home and ("grafana", home) not in mounts:
        problem(where, f"the home dashboard {home} is not mounted")


def check_compose_redis_cluster():
    """deploy/compose/redis-cluster.yaml: six cluster-enabled redis-servers, a
    one-shot `redis-cli --cluster create` with a replica per master, and two
    roomcast nodes in cluster mode whose seeds are those servers, started after
    the cluster exists; their environment passes `roomcast check`."""
    where = "deploy/compose/redis-cluster.yaml"
    base = repo / "deploy/compose"
    compose = yaml.safe_load((base / "redis-cluster.yaml").read_text())
    services = compose.get("services", {})
    redis = sorted(n for n, svc in services.items()
                   if "redis-server" in (svc.get("command") or [])[:1])
    if len(redis) != 6:
        problem(where, f"expected six redis-server services, found {redis}")
        return
    for n in redis:
        cmd = services[n]["command"]
        opts = dict(zip(cmd[1::2], cmd[2::2]))
        if opts.get("--cluster-enabled") != "yes":
            problem(where, f"{n} is not cluster-enabled")
        if opts.get("--cluster-require-full-coverage") != "no":
            problem(where, f"{n}: one shard down would stop the whole cluster (cluster-require-full-coverage)")
        if int(opts.get("--cluster-node-timeout", "15000")) > 5000:
            problem(where, f"{n}: a failover would take longer than docs/cluster.md says")
    init = [n for n, svc in services.items() if "--cluster create" in " ".join(svc.get("command") or [])]
    if len(init) != 1:
        problem(where, f"expected one service running `redis-cli --cluster create`, found {init}")
        return
    init_svc = services[init[0]]
    text = " ".join(init_svc["command"])
    if "--cluster-replicas 1" not in text or "for i in 1 2 3 4 5 6" not in text:
        problem(where, "the cluster is not created from all six servers with a replica per master")
    if sorted(init_svc.get("depends_on", [])) != redis or init_svc.get("restart") != "no":
        problem(where, f"{init[0]} must wait for every server and run once")
    nodes = sorted(n for n, svc in services.items() if "build" in svc)
    if len(nodes) < 2:
        problem(where, f"expected two roomcast nodes, found {nodes}")
        return
    ids = set()
    for n in nodes:
        svc = services[n]
        env = {k: str(v) for k, v in svc.get("environment", {}).items()}
        ids.add(env.get("ROOMCAST_CLUSTER__NODE_ID"))
        if env.get("ROOMCAST_CLUSTER__REDIS_MODE") != "cluster":
            problem(where, f"{n} is not in cluster mode")
        seeds = env.get("ROOMCAST_CLUSTER__REDIS_URL", "").split(",")
        for seed in seeds:
            host = seed.split("://", 1)[-1].split(":")[0]
            if host not in redis or not seed.endswith(":6379"):
                problem(where, f"{n}: seed {seed} is not one of the redis-server services")
        dep = svc.get("depends_on", {}).get(init[0], {})
        if dep.get("condition") != "service_completed_successfully":
            problem(where, f"{n} does not start after the cluster is created")
        for vol in svc.get("volumes", []):
            if not (base / vol.split(":")[0]).exists():
                problem(where, f"{n} mounts {vol}, which does not exist")
        for port in svc.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problem(where, f"{n} publishes {port} beyond loopback")
        out = subprocess.run(
            [binary, "--config", str(repo / "deploy/docker/roomcast.toml"), "--scripts", str(repo / "scripts"), "check"],
            capture_output=True, text=True, check=False, env={**os.environ, **env},
        )
        if out.returncode != 0:
            problem(where, f"{n}: roomcast check: {out.stdout}{out.stderr}".strip())
    if len(ids) != len(nodes) or None in ids:
        problem(where, f"the nodes need distinct ROOMCAST_CLUSTER__NODE_IDs, found {ids}")


check_kustomization("base", expect_monitor=False)
check_kustomization("", expect_monitor=True)
check_kustomization("overlays/example", expect_monitor=True)
check_kustomization("overlays/cluster", expect_monitor=True)
check_compose()
check_compose_redis_cluster()

if problems:
    print("\n".join(problems))
    sys.exit(1)
print("manifests ok")
