#!/usr/bin/env python3
"""Checks the module layout the architecture promises (docs/architecture.md):

1. no two .c files of one module call each other both ways (a cycle inside a module);
2. modules depend one way (index knows nothing of storage, storage nothing of the network...);
3. no file outside proto/ uses the generated protobuf-c types (Vectord__V1__*).

Reads the object files of a build (``--build DIR``, default ``build``) with ``nm``: a file
"calls" another when it has an undefined symbol the other defines. Exits 1 naming every
violation, 0 with a one-line summary otherwise.
"""
import argparse
import os
import re
import subprocess
import sys
from collections import defaultdict

# module -> modules it may use (besides itself and common). Outer modules may use inner ones.
ALLOWED = {
    "common": set(),
    "index": set(),
    "storage": {"index"},
    "ingest": {"index"},
    "engine": {"storage", "index"},
    "proto": {"engine", "storage", "index"},
    "daemon": {"proto", "engine", "storage", "index", "ingest"},
}
PRODUCTION = list(ALLOWED)


def symbols(obj):
    out = subprocess.run(["nm", "-P", obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        name, kind = parts[0], parts[1]
        if kind == "U":
            undefined.add(name)
        elif kind.isupper():
            defined.add(name)
    return defined, undefined


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    root = os.path.join(args.build, "obj")
    objs = {}
    for mod in PRODUCTION:
        d = os.path.join(root, mod)
        if not os.path.isdir(d):
            continue
        for f in sorted(os.listdir(d)):
            src = f"{mod}/{f[:-2]}.c"
            if f.endswith(".o") and os.path.exists(src):  # not a stale object of a removed file
                objs[src] = symbols(os.path.join(d, f))
    if not objs:
        print(f"check_layout: no object files under {root}; build first", file=sys.stderr)
        return 2
    owner = {}
    for f, (defined, _) in objs.items():
        for s in defined:
            owner[s] = f
    calls = defaultdict(set)
    for f, (_, undefined) in objs.items():
        for s in undefined:
            if s in owner and owner[s] != f:
                calls[f].add(owner[s])
    problems = []
    for a in sorted(calls):
        for b in sorted(calls[a]):
            ma, mb = a.split("/")[0], b.split("/")[0]
            if ma == mb and a < b and a in calls.get(b, ()):
                problems.append(f"{a} and {b} call each other")
            if ma != mb and mb != "common" and mb not in ALLOWED[ma]:
                problems.append(f"{a} uses {b}: {ma}/ may not depend on {mb}/")
    gen = re.compile(r"\b(Vectord__V1__|VECTORD__V1__|vectord__v1__)")
    for mod in PRODUCTION:
        if mod == "proto" or not os.path.isdir(mod):
            continue
        for dirpath, _, files in os.walk(mod):
            for f in files:
                if f.endswith((".c", ".h")):
                    p = os.path.join(dirpath, f)
                    with open(p, encoding="utf-8") as fh:
                        for n, line in enumerate(fh, 1):
                            if gen.search(line):
                                problems.append(f"{p}:{n} uses a generated protobuf type")
                                break
    for p in problems:
        print("layout:", p)
    edges = sum(len(v) for v in calls.values())
    if problems:
        print(f"check_layout: {len(problems)} problem(s)")
        return 1
    print(f"check_layout: {len(objs)} files, {edges} cross-file call edges, no cycles, "
          f"dependencies one way, generated types only in proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
