"""The package's structure: no import cycles, no reaching into another module's private names,
and a covariance family that is one module.

Imports are read from the source (every ``import`` statement, at module level or inside a
function, except those under ``if TYPE_CHECKING:``), so a cycle hidden in a function-level
import is found too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import jaxmix
from jaxmix.models.families import FAMILIES, Family

PACKAGE = Path(jaxmix.__file__).parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, names taken from it, line)`` for every import statement."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.append((alias.name, [], node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")
                parent = parent[: len(parent) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.append((base, [a.name for a in node.names], node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _edges(module: str) -> set[str]:
    """The jaxmix modules ``module`` imports (``from pkg import submodule`` names the
    submodule)."""
    out = set()
    for target, names, _ in _imports(module):
        if not target.startswith("jaxmix"):
            continue
        subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
        out.update(subs)
        if len(subs) < len(names) or not names:
            out.add(target)
    out.discard(module)
    return out


def test_there_is_no_import_cycle():
    graph = {m: _edges(m) for m in MODULES}
    unknown = {t for targets in graph.values() for t in targets if t not in MODULES}
    assert not unknown, f"imports of modules that do not exist: {sorted(unknown)}"
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycle = stack[stack.index(t) :] + [t]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if t not in state:
                walk(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            walk(m)


def test_no_private_name_is_imported_from_another_module():
    """A private module of the package (``jaxmix._validate``) may be imported; a private name
    defined in another module may not."""
    offenders = []
    for module in MODULES:
        for target, names, line in _imports(module):
            if not target.startswith("jaxmix"):
                continue
            for name in names:
                private = name.startswith("_") and name != "__version__"
                if private and f"{target}.{name}" not in MODULES:
                    offenders.append(f"{module}:{line} imports {name} from {target}")
    assert not offenders, "\n".join(offenders)


def test_the_public_api_lists_only_what_exists():
    for name in jaxmix.__all__:
        assert hasattr(jaxmix, name), name


def _layer(module: str) -> int:
    """The layer of a module, in the order of ARCHITECTURE.md (lower imports nothing higher)."""
    order = [
        ("jaxmix._", 0),
        ("jaxmix.params", 0),
        ("jaxmix.data", 1),
        ("jaxmix.models", 2),
        ("jaxmix.results", 3),
        ("jaxmix.inference", 4),
        ("jaxmix.posterior", 5),
        ("jaxmix.evaluation", 6),
    ]
    if module == "jaxmix.__main__":
        return 7
    for prefix, layer in order:
        if module.startswith(prefix):
            return layer
    return 7  # simulate, persistence, cli, testing, the package itself


def test_layers_import_only_downwards():
    offenders = []
    for module in MODULES:
        for target in _edges(module):
            if _layer(target) > _layer(module):
                offenders.append(f"{module} (layer {_layer(module)}) imports {target}")
    assert not offenders, "\n".join(offenders)


def test_the_family_is_known_only_to_its_module():
    """Outside ``jaxmix/models/families/`` no code compares with a family's name."""
    names = {f'"{name}"' for name in FAMILIES} | {f"'{name}'" for name in FAMILIES}
    offenders = []
    for module, path in MODULES.items():
        if module.startswith("jaxmix.models.families") or module.startswith("jaxmix.cli"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if any(f"== {n}" in code or f"!= {n}" in code for n in names):
                offenders.append(f"{module}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_family_implements_the_whole_interface(name):
    family = FAMILIES[name]
    assert family.name == name
    assert getattr(family.cov_type, "family", None) == name
    missing = [
        attr
        for attr, value in vars(Family).items()
        if callable(value)
        and not attr.startswith("_")
        and getattr(type(family), attr) is value
        and _raises_not_implemented(value)
    ]
    assert not missing, f"{name} does not implement {missing}"


def _raises_not_implemented(fn) -> bool:
    source = ast.parse(_dedent(fn))
    return any(
        isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Name | ast.Call)
        and "NotImplementedError" in ast.dump(node.exc)
        for node in ast.walk(source)
    )


def _dedent(fn) -> str:
    import inspect
    import textwrap

    return textwrap.dedent(inspect.getsource(fn))
