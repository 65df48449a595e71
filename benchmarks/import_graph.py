"""The import graph of latkit's product code: modules, edges, cycles, back-edges, the longest file.

Reads the source with ``ast`` (nothing is imported), counts every ``import latkit...`` and
``from latkit... import ...`` (inside functions too, since a lazy import is still a dependency),
resolves each to the module it names, and prints:

- modules and edges;
- import cycles (strongly connected components of more than one module), each listed;
- back-edges against DESIGN's one-way data flow: an import from a lower layer into a higher one,
  or between the two independent bottom packages (devices and supernet). Layers, lowest first:
  base (errors, provenance, fileio, cli_args, the package root) < devices | supernet < profiler <
  predictors < search < entry points (cli, demo, __main__);
- the longest product files.

Run: ``python benchmarks/import_graph.py [ROOT]`` (ROOT defaults to the repository root). Exit
status 1 if there is a cycle or a back-edge, so CI could gate on it (import-linter does, in
``make test``; this script is the readable report).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

EXCLUDE = {".venv", "tests", "benchmarks", ".git", "__pycache__", "out", "runs", "build", "data"}
RANK = {"devices": 1, "supernet": 1, "profiler": 2, "predictors": 3, "search": 4,
        "cli": 5, "demo": 5, "__main__": 5}


def product_modules(root: Path) -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if EXCLUDE & set(rel.parts[:-1]):
            continue
        parts = list(rel.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(["latkit", *parts])] = p
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: set[str | None] = set()
            if isinstance(node, ast.Import):
                targets = {_resolve(a.name, mods) for a in node.names if a.name.startswith("latkit")}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("latkit"):
                    # `from pkg import sub` depends on pkg.sub; `from mod import name` on mod
                    targets = {_resolve(f"{node.module}.{a.name}", mods) for a in node.names}
            edges[mod].update(t for t in targets if t and t != mod)
    return edges


def cycles(mods: dict[str, Path], edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in mods:
        if v not in index:
            visit(v)
    return out


def package(mod: str) -> str:
    parts = mod.split(".")
    return parts[1] if len(parts) > 1 else ""


def back_edges(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    out = []
    for src, dsts in edges.items():
        for dst in dsts:
            a, b = package(src), package(dst)
            ra, rb = RANK.get(a, 0), RANK.get(b, 0)
            if ra < rb or (ra == rb == 1 and a != b):
                out.append((src, dst))
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--longest", type=int, default=5, help="how many of the longest files to list")
    args = ap.parse_args(argv)
    root = Path(args.root)
    mods = product_modules(root)
    edges = import_edges(mods)
    cyc = cycles(mods, edges)
    back = back_edges(edges)
    print(f"modules {len(mods)}, edges {sum(map(len, edges.values()))}, "
          f"cycles {len(cyc)}, back-edges {len(back)}")
    for c in cyc:
        print("  cycle: " + " <-> ".join(c))
    for src, dst in back:
        print(f"  back-edge: {src} -> {dst}")
    sizes = sorted(((len(p.read_text().splitlines()), m) for m, p in mods.items()), reverse=True)
    print("longest product files: " + ", ".join(
        f"{mods[m].relative_to(root)} {n}" for n, m in sizes[: args.longest]))
    return 1 if cyc or back else 0


if __name__ == "__main__":
    sys.exit(main())
