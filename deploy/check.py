#!/usr/bin/env python3
"""`make deploy-check`: renders every overlay and checks what an operator would apply.

For each overlay under deploy/overlays:
  1. `kubectl kustomize` renders it;
  2. `kubernetes-validate --strict` checks every object against the Kubernetes schemas, offline;
  3. every Keyplane process is checked for what the platform promises: a hardened pod,
     requests and limits, probes, a grace period longer than the drain, a disruption budget,
     autoscaling for the gateway and identity, deny-all network policies;
  4. `keyplane serve --target X --check` runs with exactly the environment the Deployment
     gives its container (ConfigMaps and generated Secrets resolved; Secrets the operator
     creates stand in with placeholders), so a variable the binary requires cannot be missing.

Usage: deploy/check.py --bin target/debug/keyplane --validator <kubernetes-validate>
"""

import argparse
import base64
import pathlib
import subprocess
import sys
import tempfile

import yaml

KUBERNETES_VERSION = "1.33.0"
DEPLOY = pathlib.Path(__file__).resolve().parent
TARGETS = {"identity", "keys", "orgs", "usage", "advisors", "families", "gateway"}
WITH_DATABASE = TARGETS - {"gateway"}
# The keys of the Secret the operator creates in production (the README lists them), and
# what stands in for each while checking.
HEX_SECRET = "ab" * 32
OPERATOR_SECRET = {
    "database-url": "postgres://keyplane@postgres.example:5432/keyplane",
    "redis-url": "redis://redis.example:6379",
    "smtp-url": "smtp://mail.example:587",
    "internal-secret": HEX_SECRET,
    "dataplane-secret": HEX_SECRET,
    "encryption-key": HEX_SECRET,
}


class Problems:
    def __init__(self):
        self.lines = []

    def add(self, where, what):
        self.lines.append(f"{where}: {what}")


def render(overlay):
    return subprocess.run(
        ["kubectl", "kustomize", str(overlay)], check=True, capture_output=True, text=True
    ).stdout


def validate(validator, text, problems, overlay):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as rendered:
        rendered.write(text)
        rendered.flush()
        run = subprocess.run(
            [validator, "--strict", "--quiet", "-k", KUBERNETES_VERSION, rendered.name],
            capture_output=True,
            text=True,
        )
    said = (run.stdout + run.stderr).replace(rendered.name, "rendered").strip()
    if run.returncode != 0 or "ERROR" in said or "WARN" in said:
        problems.add(overlay, f"kubernetes-validate (exit {run.returncode}): {said}")


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def secret_value(secrets, ref, overlay, problems, where):
    secret = secrets.get(ref["name"])
    if secret is None:
        # Created by the operator (production): a placeholder of the right shape, for a key
        # the README tells the operator to create.
        if ref["key"] not in OPERATOR_SECRET:
            problems.add(f"{overlay} {where}", f"secret {ref['name']} key {ref['key']} is not one the operator creates")
            return None
        return OPERATOR_SECRET[ref["key"]]
    data = secret.get("data", {})
    if ref["key"] in data:
        return base64.b64decode(data[ref["key"]]).decode()
    if not ref.get("optional"):
        problems.add(f"{overlay} {where}", f"secret {ref['name']} has no key {ref['key']}")
    return None


def environment(container, docs, overlay, problems, where):
    """The variables the container starts with, as the kubelet would resolve them."""
    configs, secrets = by_kind(docs, "ConfigMap"), by_kind(docs, "Secret")
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = configs.get(source["configMapRef"]["name"])
            if config is None:
                problems.add(f"{overlay} {where}", f"no ConfigMap {source['configMapRef']['name']}")
                continue
            env.update(config.get("data", {}))
        if "secretRef" in source:
            secret = secrets.get(source["secretRef"]["name"], {})
            env.update({k: base64.b64decode(v).decode() for k, v in secret.get("data", {}).items()})
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var.get("valueFrom", {})
        if "secretKeyRef" in source:
            value = secret_value(secrets, source["secretKeyRef"], overlay, problems, where)
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            value = configs.get(ref["name"], {}).get("data", {}).get(ref["key"])
            if value is None and not ref.get("optional"):
                problems.add(f"{overlay} {where}", f"ConfigMap {ref['name']} has no key {ref['key']}")
        else:
            value = None
        if value is not None:
            env[var["name"]] = value
    return env


def target_of(container):
    args = container.get("args", [])
    if args[:2] == ["serve", "--target"] and len(args) > 2:
        return args[2]
    return None


def check_hardening(spec, container, where, problems):
    pod = spec.get("securityContext", {})
    own = container.get("securityContext", {})
    if not pod.get("runAsNonRoot"):
        problems.add(where, "the pod must run as non-root")
    if pod.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        problems.add(where, "the pod needs seccomp RuntimeDefault")
    if not own.get("readOnlyRootFilesystem"):
        problems.add(where, "the root filesystem must be read-only")
    if own.get("allowPrivilegeEscalation") is not False:
        problems.add(where, "privilege escalation must be off")
    if own.get("capabilities", {}).get("drop") != ["ALL"]:
        problems.add(where, "every capability must be dropped")
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(resources.get(kind, {})):
            problems.add(where, f"cpu and memory {kind} are required")


def check_config(binary, target, env, where, problems):
    database = env.get("KEYPLANE_DATABASE_URL") or env.get(f"KEYPLANE_{target.upper()}_DATABASE_URL")
    if target in WITH_DATABASE and not (database or "").startswith(("postgres://", "postgresql://")):
        problems.add(where, "needs a PostgreSQL KEYPLANE_DATABASE_URL (SQLite is for `keyplane up`)")
    run = subprocess.run(
        [binary, "serve", "--target", target, "--check"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
    )
    if run.returncode != 0:
        problems.add(where, "`keyplane serve --check` refuses the configuration:\n" + run.stderr.strip())


def check_overlay(overlay, binary, validator, problems):
    name = overlay.name
    text = render(overlay)
    validate(validator, text, problems, name)
    docs = [d for d in yaml.safe_load_all(text) if d]
    deployments = by_kind(docs, "Deployment")
    budgets = {tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in by_kind(docs, "PodDisruptionBudget").values()}
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in by_kind(docs, "HorizontalPodAutoscaler").values()}
    seen = set()
    for deployment in deployments.values():
        spec = deployment["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name} deployment/{deployment['metadata']['name']} {container['name']}"
            target = target_of(container)
            args = container.get("args", [])
            if target is None and args[:1] != ["migrate"]:
                continue  # not ours (the development PostgreSQL and Redis)
            check_hardening(spec, container, where, problems)
            env = environment(container, docs, name, problems, where)
            if args[:1] == ["migrate"]:
                if not env.get("KEYPLANE_DATABASE_URL", "").startswith("postgres"):
                    problems.add(where, "waits for migrations without a PostgreSQL KEYPLANE_DATABASE_URL")
                continue
            seen.add(target)
            check_config(binary, target, env, where, problems)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                if probe not in container:
                    problems.add(where, f"no {probe}")
            if target not in ("gateway", "families") and "grpc" not in container.get("readinessProbe", {}):
                problems.add(where, "a gRPC service's readiness is the gRPC health protocol")
            drain = int(env.get("KEYPLANE_GATEWAY_TIMEOUT_SECS", "30"))
            pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
            if spec.get("terminationGracePeriodSeconds", 30) <= drain + pause:
                problems.add(where, f"terminationGracePeriodSeconds must exceed the drain ({drain} s + {pause} s)")
            labels = tuple(sorted(deployment["spec"]["selector"]["matchLabels"].items()))
            if labels not in budgets:
                problems.add(where, "no PodDisruptionBudget selects it")
    for missing in sorted(TARGETS - seen):
        problems.add(name, f"no Deployment runs `serve --target {missing}`")
    for target in ("gateway", "identity"):
        if target not in scaled:
            problems.add(name, f"no HorizontalPodAutoscaler for {target}")
    jobs = [j for j in by_kind(docs, "Job").values() if j["spec"]["template"]["spec"]["containers"][0].get("args", [])[:1] == ["migrate"]]
    if not jobs:
        problems.add(name, "no migrations Job")
    for job in jobs:
        spec = job["spec"]["template"]["spec"]
        where = f"{name} job/{job['metadata']['name']}"
        check_hardening(spec, spec["containers"][0], where, problems)
        env = environment(spec["containers"][0], docs, name, problems, where)
        if not env.get("KEYPLANE_DATABASE_URL", "").startswith("postgres"):
            problems.add(where, "migrates without a PostgreSQL KEYPLANE_DATABASE_URL")
    deny = [p for p in by_kind(docs, "NetworkPolicy").values() if p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"} and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    if not deny:
        problems.add(name, "no deny-all NetworkPolicy")
    return len(docs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True, help="the keyplane binary")
    parser.add_argument("--validator", required=True, help="the kubernetes-validate command")
    args = parser.parse_args()
    problems = Problems()
    overlays = sorted(p for p in (DEPLOY / "overlays").iterdir() if (p / "kustomization.yaml").exists())
    for overlay in overlays:
        count = check_overlay(overlay, args.bin, args.validator, problems)
        print(f"deploy-check: {overlay.name}: {count} objects rendered and checked")
    if problems.lines:
        print("deploy-check found problems:", *problems.lines, sep="\n  ", file=sys.stderr)
        sys.exit(1)
    print(f"deploy-check: {len(overlays)} overlays valid against Kubernetes {KUBERNETES_VERSION}")


if __name__ == "__main__":
    main()
