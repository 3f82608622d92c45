"""The plugin API's one import root: a check or sink type reaches the engine only through
`checks.base` / `alerting.base`, which import from `monitor` only `monitor.plugin`; the engine
reaches a plugin only through the registry's import targets, so a plugin can be removed or
replaced without the engine noticing."""

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from monitor.registry import BUILTIN_CHECKS, BUILTIN_SINK_ROUTES, BUILTIN_SINKS

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_MODULES = sorted(
    {target.partition(":")[0] for target in (*BUILTIN_CHECKS.values(), *BUILTIN_SINKS.values())}
)
BASE_MODULES = {ROOT / "checks" / "base.py", ROOT / "alerting" / "base.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def sources(folder: str) -> Iterator[Path]:
    yield from sorted((ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module `path` imports, wherever the statement is (TYPE_CHECKING blocks, functions)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def is_plugin(module: str) -> bool:
    return any(module == plugin or module.startswith(plugin + ".") for plugin in PLUGIN_MODULES)


def test_the_registry_names_every_plugin_this_test_guards() -> None:
    assert {"checks.http", "checks.heartbeat", "checks.postgres", "alerting.slack", "alerting.pagerduty"} <= set(
        PLUGIN_MODULES
    )
    assert all(is_plugin(target.partition(":")[0]) for target in BUILTIN_SINK_ROUTES.values())


def test_check_and_sink_code_imports_the_engine_only_through_the_base_modules() -> None:
    crossings = {}
    for path in (*sources("checks"), *sources("alerting")):
        engine = {name for name in imported(path) if name.split(".")[0] == "monitor"}
        if path in BASE_MODULES:
            engine = {name for name in engine if name.partition(".")[2].split(".")[0] != "plugin"}
        if engine:
            crossings[str(path.relative_to(ROOT))] = sorted(engine)
    assert crossings == {}


def test_the_engine_imports_no_plugin_module() -> None:
    crossings = {
        str(path.relative_to(ROOT)): sorted(name for name in imported(path) if is_plugin(name))
        for path in sources("monitor")
    }
    assert {path: names for path, names in crossings.items() if names} == {}


def test_the_plugin_api_loads_no_plugin_and_no_database_driver() -> None:
    code = (
        "import sys, checks.base, alerting.base, alerting.messages\n"
        f"plugins = {PLUGIN_MODULES!r}\n"
        "loaded = [name for name in sys.modules if name in plugins or name.split('.')[0] in ('sqlite3', 'asyncpg')]\n"
        "print(sorted(loaded))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"
