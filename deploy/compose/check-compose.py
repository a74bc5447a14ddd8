#!/usr/bin/env python3
"""Policy checks for compose.yaml that a schema cannot express (run by scripts/lint-infra).

`podman-compose config` proves the file parses and interpolates; this proves the stack keeps
the promises in docs/operations/deploy-compose.md:
  - vantus scales: no container_name, no host ports; Caddy is the only public entry point;
  - vantus waits for `migrate` (service_completed_successfully) and healthy dependencies;
  - every long-running service has a healthcheck, a restart policy, a memory limit and
    rotated logs; one-shot services have restart "no";
  - every depends_on uses a condition; every named volume is declared;
  - no secret is written in the file itself (only ${...} references or env files);
  - the app's memory limit stays in the 64-128 MiB range of a small Rust service.
Exit 1 with one line per finding.
"""
import re
import sys

import yaml

ONE_SHOT = {"migrate", "objectstore-init"}
SECRET_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|PASSPHRASE|_KEY)$")


def mem_bytes(v):
    m = re.fullmatch(r"(\d+)([kKmMgG]?)[bB]?", str(v))
    if not m:
        return None
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]


def main(path):
    with open(path, encoding="utf-8") as fh:
        doc = yaml.safe_load(fh)
    services = doc.get("services", {})
    declared = set((doc.get("volumes") or {}).keys())
    problems = []

    def bad(svc, msg):
        problems.append(f"{path}: service {svc}: {msg}")

    for name, svc in services.items():
        if name == "vantus":
            if "container_name" in svc:
                bad(name, "container_name prevents --scale")
            if svc.get("ports"):
                bad(name, "host ports prevent --scale; Caddy reaches replicas on the network")
            dep = (svc.get("depends_on") or {}).get("migrate", {})
            if dep.get("condition") != "service_completed_successfully":
                bad(name, "must depend on migrate with condition service_completed_successfully")
            limit = mem_bytes(svc.get("deploy", {}).get("resources", {}).get("limits", {}).get("memory"))
            if limit is None or not 64 * 1024**2 <= limit <= 128 * 1024**2:
                bad(name, "memory limit should be 64-128 MiB")
            if not svc.get("read_only"):
                bad(name, "root filesystem should be read_only")
        if name != "caddy" and any(not str(p).startswith("127.0.0.1:") for p in svc.get("ports", []) or []):
            bad(name, "only caddy may publish ports on all interfaces; bind others to 127.0.0.1")
        if name in ONE_SHOT:
            if svc.get("restart") != "no":
                bad(name, 'one-shot service needs restart: "no"')
        else:
            if "healthcheck" not in svc:
                bad(name, "no healthcheck")
            if svc.get("restart") not in ("unless-stopped", "always"):
                bad(name, "no restart policy")
        if "memory" not in (svc.get("deploy", {}).get("resources", {}).get("limits", {}) or {}):
            bad(name, "no memory limit (deploy.resources.limits.memory)")
        logging = svc.get("logging") or {}
        if logging.get("driver") != "json-file" or "max-size" not in (logging.get("options") or {}):
            bad(name, "logs are not rotated (logging.driver json-file with max-size)")
        deps = svc.get("depends_on") or {}
        if isinstance(deps, list):
            bad(name, "depends_on must use the long form with a condition")
        else:
            for dep_name, dep in deps.items():
                if dep_name not in services:
                    bad(name, f"depends on unknown service {dep_name}")
                if dep.get("condition") not in ("service_healthy", "service_completed_successfully"):
                    bad(name, f"depends_on {dep_name} has no health/completion condition")
        for vol in svc.get("volumes", []) or []:
            src = str(vol).split(":", 1)[0]
            if not src.startswith((".", "/", "$")) and src not in declared:
                bad(name, f"named volume {src} is not declared under volumes:")
        env = svc.get("environment") or {}
        items = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env if "=" in e)
        for key, value in items:
            if SECRET_NAME.search(str(key)) and value and not str(value).startswith("$"):
                bad(name, f"{key} has a literal value; secrets belong in the env file")

    if problems:
        print("\n".join(problems))
        return 1
    print(f"{path}: {len(services)} services pass the compose policy checks")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "compose.yaml"))
