"""The architecture, checked on the source (README "What is here" has the tree):

- no import circle among the project's packages (calm_studio, curation, training,
  solver_sandbox);
- the Django-free packages (curation/engine with engine/serving, solver_sandbox,
  training/scripts) import neither Django nor the apps (calm_studio, curation outside engine,
  training outside scripts): read from every module's source, and seen by importing each
  module in a fresh interpreter, after which neither django nor celery is loaded;
- the app (curation/, training/ outside scripts/) never imports an entry-point script
  (training/scripts/{sft,grpo,evaluate,bench}.py and any module with
  ``if __name__ == "__main__":``); a script's helpers live in modules both can import.

How imports are read: with ``ast``, every ``import`` and ``from ... import`` naming a module,
at module level AND inside functions. A function-local import still ties the two modules
together: one that only defers an import to dodge a circle at import time is still a circle
(``curation/engine/answers.py`` and ``answer_rules.py`` were one), and a Django-free module that
imports Django inside a function still needs Django to run. Only imports under
``if TYPE_CHECKING:`` are left out: they never run. ``from package import name`` is an import
of ``package.name`` when that is a module, else of ``package``; importing ``a.b.c`` also runs
``a/__init__.py`` and ``a/b/__init__.py``, so the Django-free check reads those too.
"""

from __future__ import annotations

import ast
import itertools
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("calm_studio", "curation", "training", "solver_sandbox")
DJANGO_FREE = ("curation.engine", "solver_sandbox", "training.scripts")
ENTRY_POINT_SCRIPTS = {f"training.scripts.{name}" for name in ("sft", "grpo", "evaluate", "bench")}
# The sandbox's Celery face: the one task module of the sandbox queue. It imports Celery (the
# library; kombu then loads django.utils opportunistically) but neither Django's settings nor
# the apps, and it starts no Celery app: calm_studio's app finds its task by name.
CELERY_FACES = {"solver_sandbox.tasks"}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported module (a project module, or any other name as written)
    line: int

    def where(self) -> str:
        return f"{module_path(self.source)}:{self.line}"


@cache
def project_modules() -> dict[str, Path]:
    """Every module of the project's packages by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def module_path(name: str) -> str:
    return str(project_modules()[name].relative_to(REPO))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _is_main_guard(node: ast.stmt) -> bool:
    """``if __name__ == "__main__":`` at module level."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = [s for s in sides if isinstance(s, ast.Name) and s.id == "__name__"]
    texts = [s for s in sides if isinstance(s, ast.Constant) and s.value == "__main__"]
    return bool(names and texts)


@cache
def _tree(name: str) -> ast.Module:
    path = project_modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


@cache
def imports_of(name: str) -> tuple[Import, ...]:
    """What module ``name`` imports, wherever in it (not under ``if TYPE_CHECKING:``)."""
    modules = project_modules()
    is_package = modules[name].name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for stmt in child.orelse:
                    visit_one(stmt)
            else:
                visit_one(child)

    def visit_one(node: ast.AST) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(name, alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name if is_package else name.rpartition(".")[0]
                for _ in range(node.level - 1):
                    package = package.rpartition(".")[0]
                base = f"{package}.{base}" if base else package
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.append(Import(name, child if child in modules else base, node.lineno))
        else:
            visit(node)

    visit(_tree(name))
    return tuple(found)


def entry_points() -> set[str]:
    """The scripts: the named training scripts, every ``__main__`` module and every module
    with a module-level ``if __name__ == "__main__":``."""
    found = set(ENTRY_POINT_SCRIPTS)
    for name in project_modules():
        if name.endswith(".__main__") or any(_is_main_guard(n) for n in _tree(name).body):
            found.add(name)
    return found


def _within(name: str, packages: tuple[str, ...] | str) -> bool:
    packages = (packages,) if isinstance(packages, str) else packages
    return any(name == p or name.startswith(p + ".") for p in packages)


def _is_app(name: str) -> bool:
    """A module of the apps or of the project package: what the Django-free code must not
    import. The engine is plain Python inside curation, the scripts inside training: the bare
    ``curation`` and ``training`` packages hold both sides (their ``__init__`` runs before
    any engine module or script, and is read by the source check like one)."""
    if name in ("curation", "training"):
        return False
    return _within(name, PACKAGES) and not _within(name, DJANGO_FREE)


def _django_free_modules() -> list[str]:
    return [name for name in project_modules() if _within(name, DJANGO_FREE)]


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` (its modules in import order, the first repeated at the end)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := walk(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for start in sorted(graph):
        if start not in state and (found := walk(start)):
            return found
    return None


def test_there_is_no_import_circle_among_the_projects_packages():
    modules = project_modules()
    edges: dict[tuple[str, str], Import] = {}
    for name in modules:
        for imp in imports_of(name):
            if imp.target in modules and imp.target != name:
                edges.setdefault((name, imp.target), imp)
    graph: dict[str, set[str]] = {}
    for source, target in edges:
        graph.setdefault(source, set()).add(target)

    circle = _circle(graph)

    assert circle is None, (
        "import circle: "
        + " -> ".join(circle)
        + "\n"
        + "\n".join(f"  {edges[a, b].where()} imports {b}" for a, b in itertools.pairwise(circle))
    )


def test_the_django_free_packages_import_neither_django_nor_the_apps():
    checked = set(_django_free_modules())
    # Importing a module runs its packages' __init__ first (curation/, training/): read too.
    for name in list(checked):
        parts = name.split(".")
        checked.update(".".join(parts[:i]) for i in range(1, len(parts)))
    wrong = []
    for name in sorted(checked):
        for imp in imports_of(name):
            top = imp.target.split(".")[0]
            celery = top == "celery" and name not in CELERY_FACES
            if top == "django" or celery or _is_app(imp.target):
                wrong.append(f"{imp.where()} imports {imp.target}")
    assert not wrong, "a Django-free module imports Django or the apps:\n" + "\n".join(
        dict.fromkeys(wrong)
    )


# Run in a fresh interpreter per module: import it, say what came with it.
_IMPORT_ONE = """
import json, sys
sys.path.insert(0, sys.argv[1])
__import__(sys.argv[2])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("django", "celery", *sys.argv[3:]))
settings = sys.modules.get("django.conf")
configured = bool(settings and settings.settings.configured)
print(json.dumps({"loaded": loaded, "django_settings": configured}))
"""


def _import_alone(name: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _IMPORT_ONE, str(REPO), name, *PACKAGES],
        capture_output=True, text=True, cwd=REPO, timeout=300, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_a_django_free_module_loads_neither_django_nor_celery():
    # A __main__ module runs its program when imported: its package stands for it here (the
    # source check above reads the module itself).
    names = sorted({n.removesuffix(".__main__") for n in _django_free_modules()})
    with ThreadPoolExecutor(max_workers=4) as pool:
        seen = dict(zip(names, pool.map(_import_alone, names), strict=True))

    wrong = {}
    for name, got in seen.items():
        if "error" in got:
            wrong[name] = got["error"]
            continue
        apps = [m for m in got["loaded"] if _is_app(m)]
        libraries = [m for m in got["loaded"] if m.split(".")[0] in ("django", "celery")]
        if name in CELERY_FACES:  # Celery comes with it; Django's settings and the apps do not
            bad = apps + (["django settings configured"] if got["django_settings"] else [])
        else:
            bad = apps + sorted({m.split(".")[0] for m in libraries})
        if bad:
            wrong[name] = bad
    assert not wrong, "importing a Django-free module alone loaded:\n" + "\n".join(
        f"{name}: {', '.join(bad)}" for name, bad in wrong.items()
    )


def test_the_app_never_imports_an_entry_point_script():
    scripts = entry_points()
    assert set(project_modules()) >= ENTRY_POINT_SCRIPTS, "a named training script moved"
    app = [
        name
        for name in project_modules()
        if _within(name, ("curation", "training")) and not _within(name, DJANGO_FREE)
    ]
    wrong = [
        f"{imp.where()} imports the script {imp.target}"
        for name in app
        for imp in imports_of(name)
        if imp.target in scripts and imp.target != name
    ]
    assert not wrong, "the app imports an entry-point script:\n" + "\n".join(dict.fromkeys(wrong))
