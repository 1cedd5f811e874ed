#!/usr/bin/env python3
"""Finds module circles within each crate: a module that names (through
`crate::` or `super::`) a module that names it back, directly or through
others. Prints each circle and exits 1 if there is one; CI runs it from the
repository root. Test modules (after `#[cfg(test)]`) and comments are
left out: a test may reach anywhere."""
from __future__ import annotations

import glob
import os
import re
import sys
from typing import Dict, List, Optional, Set, Tuple


def modules(src_dir: str) -> Dict[str, Set[str]]:
    """Module path ("cuda/session") -> the module paths its code names."""
    files: Dict[str, str] = {}
    for f in glob.glob(os.path.join(src_dir, "**", "*.rs"), recursive=True):
        rel = os.path.relpath(f, src_dir)[:-3]
        rel = rel[: -len("/mod")] if rel.endswith("/mod") else rel
        if rel not in ("lib", "main"):
            files[rel] = f

    def resolve(parts: List[str]) -> Optional[str]:
        # The longest prefix of `parts` that is a module of the crate.
        for n in range(len(parts), 0, -1):
            candidate = "/".join(parts[:n])
            if candidate in files:
                return candidate
        return None

    graph: Dict[str, Set[str]] = {}
    for module, f in files.items():
        code = open(f, encoding="utf-8").read().split("#[cfg(test)]")[0]
        code = re.sub(r"//.*", "", code)
        named: Set[Optional[str]] = set()
        for path in re.findall(r"crate((?:::[a-z_][a-z0-9_]*)+)", code):
            named.add(resolve(path.strip(":").split("::")))
        parent = module.split("/")[:-1]
        for path in re.findall(r"super((?:::[a-z_][a-z0-9_]*)+)", code):
            named.add(resolve(parent + path.strip(":").split("::")))
        for child in re.findall(r"\b([a-z_][a-z0-9_]*)::", code):
            if f"{module}/{child}" in files:
                named.add(f"{module}/{child}")
        graph[module] = {m for m in named if m and m != module and not module.startswith(m + "/")}
    return graph


def circles(graph: Dict[str, Set[str]]) -> Set[Tuple[str, ...]]:
    found: Set[Tuple[str, ...]] = set()

    def walk(node: str, stack: List[str]) -> None:
        for nxt in graph.get(node, ()):
            if nxt in stack:
                loop = stack[stack.index(nxt):]
                i = loop.index(min(loop))
                found.add(tuple(loop[i:] + loop[:i]))
            elif len(stack) < len(graph):
                walk(nxt, stack + [nxt])

    for start in graph:
        walk(start, [start])
    return found


def main() -> None:
    bad = False
    for src_dir in sorted(glob.glob("crates/*/src")):
        for loop in sorted(circles(modules(src_dir))):
            print(f"{src_dir}: " + " -> ".join(loop + (loop[0],)))
            bad = True
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
