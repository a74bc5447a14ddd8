#!/usr/bin/env python3
"""Render a Kustomize directory without kustomize, for offline validation.

kubectl/kustomize are not installable on every machine that runs scripts/lint-infra, so this
implements exactly the subset of Kustomize that deploy/k8s uses, and nothing more:

  resources          files and directories (a directory must hold a kustomization.yaml)
  namespace          set on every namespaced object
  labels             `pairs` added to metadata.labels (includeSelectors/includeTemplates: false only)
  configMapGenerator `envs` and `literals`, `behavior: create|merge`, `options.labels`,
                     the content-hash name suffix, and the rewrite of references to it
  images             `name` -> `newName` / `newTag` / `digest` on containers and initContainers
  patches            strategic-merge patches (matched by kind + name) and JSON 6902 patches
                     (a YAML list of operations with a `target`)

Anything else in a kustomization.yaml is an error, so the helper can never silently render
something different from what `kubectl apply -k` would apply. Where kubectl with kustomize v5
is available, scripts/lint-infra renders with both and fails if they differ.

Usage: render.py DIR [--out-dir DIR]   (prints a multi-document YAML stream, or writes one
file per object to --out-dir, named NN-Kind-name.yaml)
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import sys

import yaml

SUPPORTED_KEYS = {
    "apiVersion", "kind", "resources", "namespace", "labels", "configMapGenerator", "images", "patches",
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
                  "PriorityClass", "StorageClass", "IngressClass"}
# Strategic merge: list fields whose items are merged by a key instead of replaced.
MERGE_KEYS = {
    "containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
    "volumeMounts": "mountPath", "ports": "containerPort", "envFrom": None,
}


class RenderError(Exception):
    pass


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as fh:
        return [d for d in yaml.safe_load_all(fh) if d is not None]


def obj_id(o):
    return (o.get("kind"), o.get("metadata", {}).get("name"))


# ---------------------------------------------------------------- configMapGenerator
def parse_env_file(path):
    data = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            if "=" not in line:
                raise RenderError(f"{path}: not KEY=VALUE: {line!r}")
            k, v = line.split("=", 1)
            data[k] = v
    return data


def generator_data(gen, base_dir):
    data = {}
    for env in gen.get("envs", []):
        data.update(parse_env_file(os.path.join(base_dir, env)))
    for lit in gen.get("literals", []):
        k, v = lit.split("=", 1)
        data[k] = v
    unknown = set(gen) - {"name", "envs", "literals", "behavior", "options"}
    if unknown:
        raise RenderError(f"configMapGenerator {gen.get('name')}: unsupported keys {sorted(unknown)}")
    return data


def go_json(value):
    """json.Marshal as Go does it: sorted keys, no spaces, HTML-escaped <, >, &."""
    s = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def kustomize_hash(cm):
    """Kustomize's ConfigMap name suffix (api/hasher): sha256 of the encoded map, 10 chars, re-lettered.

    Kustomize v5 hashes the generated object before it is named, so "name" is empty; checked
    against `kubectl kustomize` (kustomize v5.5.0) on every overlay by scripts/lint-infra.
    """
    encoded = go_json({"kind": "ConfigMap", "name": "", "data": cm.get("data", {})})
    hexdigest = hashlib.sha256(encoded.encode("utf-8")).hexdigest()
    table = {"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}
    return "".join(table.get(c, c) for c in hexdigest[:10])


# ---------------------------------------------------------------- patches
def strategic_merge(target, patch):
    if isinstance(target, dict) and isinstance(patch, dict):
        out = dict(target)
        for k, v in patch.items():
            if v is None:
                out.pop(k, None)
            elif k in out and isinstance(out[k], list) and isinstance(v, list) and MERGE_KEYS.get(k):
                out[k] = merge_list(out[k], v, MERGE_KEYS[k])
            elif k in out:
                out[k] = strategic_merge(out[k], v)
            else:
                out[k] = copy.deepcopy(v)
        return out
    return copy.deepcopy(patch)


def merge_list(current, patch, key):
    out = [copy.deepcopy(i) for i in current]
    for item in patch:
        for idx, existing in enumerate(out):
            if isinstance(existing, dict) and existing.get(key) == item.get(key):
                out[idx] = strategic_merge(existing, item)
                break
        else:
            out.append(copy.deepcopy(item))
    return out


def json_pointer(path):
    if path == "":
        return []
    return [p.replace("~1", "/").replace("~0", "~") for p in path.lstrip("/").split("/")]


def apply_json6902(doc, ops):
    doc = copy.deepcopy(doc)
    for op in ops:
        parts = json_pointer(op["path"])
        parent = doc
        for p in parts[:-1]:
            parent = parent[int(p)] if isinstance(parent, list) else parent[p]
        last = parts[-1]
        kind = op["op"]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if kind == "add":
                parent.insert(idx, op["value"])
            elif kind == "replace":
                parent[idx] = op["value"]
            elif kind == "remove":
                del parent[idx]
            else:
                raise RenderError(f"unsupported JSON patch op {kind}")
        else:
            if kind in ("add", "replace"):
                if kind == "replace" and last not in parent:
                    raise RenderError(f"JSON patch replace: {op['path']} does not exist")
                parent[last] = op["value"]
            elif kind == "remove":
                del parent[last]
            else:
                raise RenderError(f"unsupported JSON patch op {kind}")
    return doc


def target_matches(obj, target):
    if "kind" in target and obj.get("kind") != target["kind"]:
        return False
    if "name" in target and obj.get("metadata", {}).get("name") != target["name"]:
        return False
    unknown = set(target) - {"kind", "name", "group", "version"}
    if unknown:
        raise RenderError(f"patch target: unsupported selectors {sorted(unknown)}")
    return True


# ---------------------------------------------------------------- images
def set_images(node, images):
    if isinstance(node, dict):
        for key in ("containers", "initContainers"):
            for c in node.get(key, []) or []:
                if isinstance(c, dict) and "image" in c:
                    c["image"] = rewrite_image(c["image"], images)
        for v in node.values():
            set_images(v, images)
    elif isinstance(node, list):
        for v in node:
            set_images(v, images)


def rewrite_image(ref, images):
    name, tag, digest = ref, None, None
    if "@" in name:
        name, digest = name.split("@", 1)
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
    for img in images:
        if img["name"] != name:
            continue
        unknown = set(img) - {"name", "newName", "newTag", "digest"}
        if unknown:
            raise RenderError(f"images: unsupported keys {sorted(unknown)}")
        name = img.get("newName", name)
        if "digest" in img:
            return f"{name}@{img['digest']}"
        if "newTag" in img:
            return f"{name}:{img['newTag']}"
    out = name
    if tag:
        out += f":{tag}"
    if digest:
        out += f"@{digest}"
    return out


# ---------------------------------------------------------------- name references
def rename_configmap_refs(node, renames):
    if isinstance(node, dict):
        for key in ("configMapRef", "configMapKeyRef", "configMap"):
            ref = node.get(key)
            if isinstance(ref, dict) and ref.get("name") in renames:
                ref["name"] = renames[ref["name"]]
        for v in node.values():
            rename_configmap_refs(v, renames)
    elif isinstance(node, list):
        for v in node:
            rename_configmap_refs(v, renames)


# ---------------------------------------------------------------- build
def build(directory, top=True):
    kpath = os.path.join(directory, "kustomization.yaml")
    if not os.path.exists(kpath):
        raise RenderError(f"{directory}: no kustomization.yaml")
    with open(kpath, encoding="utf-8") as fh:
        k = yaml.safe_load(fh) or {}
    unknown = set(k) - SUPPORTED_KEYS
    if unknown:
        raise RenderError(f"{kpath}: render.py does not implement {sorted(unknown)}")

    objs = []
    for res in k.get("resources", []):
        path = os.path.normpath(os.path.join(directory, res))
        if os.path.isdir(path):
            objs.extend(build(path, top=False))
        else:
            objs.extend(load_yaml_docs(path))

    for gen in k.get("configMapGenerator", []):
        behavior = gen.get("behavior", "create")
        data = generator_data(gen, directory)
        labels = (gen.get("options") or {}).get("labels", {})
        existing = [o for o in objs if obj_id(o) == ("ConfigMap", gen["name"]) and o.get("__generated__")]
        if behavior == "merge":
            if not existing:
                raise RenderError(f"{kpath}: merge into unknown generated ConfigMap {gen['name']}")
            existing[0]["data"].update(data)
            existing[0]["metadata"].setdefault("labels", {}).update(labels)
        elif behavior == "create":
            if existing:
                raise RenderError(f"{kpath}: ConfigMap {gen['name']} already generated")
            cm = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": gen["name"]}, "data": data, "__generated__": True}
            if labels:
                cm["metadata"]["labels"] = dict(labels)
            objs.append(cm)
        else:
            raise RenderError(f"{kpath}: unsupported generator behavior {behavior}")

    for patch in k.get("patches", []):
        unknown = set(patch) - {"path", "target"}
        if unknown:
            raise RenderError(f"{kpath}: patches entries support only path/target, not {sorted(unknown)}")
        docs = load_yaml_docs(os.path.join(directory, patch["path"]))
        target = patch.get("target")
        if len(docs) == 1 and isinstance(docs[0], list):
            if not target:
                raise RenderError(f"{patch['path']}: a JSON 6902 patch needs a target")
            hits = [i for i, o in enumerate(objs) if target_matches(o, target)]
            if not hits:
                raise RenderError(f"{patch['path']}: target {target} matches nothing")
            for i in hits:
                objs[i] = apply_json6902(objs[i], docs[0])
        else:
            for pdoc in docs:
                sel = target or {"kind": pdoc["kind"], "name": pdoc["metadata"]["name"]}
                hits = [i for i, o in enumerate(objs) if target_matches(o, sel)]
                if not hits:
                    raise RenderError(f"{patch['path']}: {sel} matches nothing")
                for i in hits:
                    body = {kk: vv for kk, vv in pdoc.items() if kk not in ("apiVersion", "kind")}
                    body["metadata"] = {kk: vv for kk, vv in pdoc.get("metadata", {}).items() if kk != "name"}
                    if not body["metadata"]:
                        del body["metadata"]
                    objs[i] = strategic_merge(objs[i], body)

    for entry in k.get("labels", []):
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise RenderError(f"{kpath}: labels with includeSelectors/includeTemplates are not implemented")
        for o in objs:
            o.setdefault("metadata", {}).setdefault("labels", {}).update(entry.get("pairs", {}))

    if "namespace" in k:
        for o in objs:
            if o.get("kind") not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = k["namespace"]

    if k.get("images"):
        for o in objs:
            set_images(o, k["images"])

    if top:
        renames = {}
        for o in objs:
            if o.pop("__generated__", False):
                old = o["metadata"]["name"]
                o["metadata"]["name"] = f"{old}-{kustomize_hash(o)}"
                renames[old] = o["metadata"]["name"]
        for o in objs:
            rename_configmap_refs(o, renames)
    return objs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory")
    ap.add_argument("--out-dir", help="write one file per object here instead of stdout")
    args = ap.parse_args(argv)
    try:
        objs = build(args.directory)
    except (RenderError, KeyError, IndexError, ValueError, OSError) as exc:
        print(f"render.py: {args.directory}: {exc}", file=sys.stderr)
        return 1
    if args.out_dir:
        os.makedirs(args.out_dir, exist_ok=True)
        for i, o in enumerate(objs):
            name = f"{i:02d}-{o['kind']}-{o['metadata']['name']}.yaml"
            with open(os.path.join(args.out_dir, name), "w", encoding="utf-8") as fh:
                yaml.safe_dump(o, fh, sort_keys=True)
    else:
        yaml.safe_dump_all(objs, sys.stdout, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
