"""The package's shape: imports point only upstream along the data flow.

Each sub-package (or top-level module) of neurovox sits in a layer; a module may import from its own
layer and the layers before it, never from a later one, including imports inside functions (the lazy
ones are how a downstream dependency usually creeps in). `report` is a rendering library (figures,
HTML, tables from plain dicts and arrays), so every stage may use it; it imports no stage.
"""

import ast
from pathlib import Path

import neurovox

LAYERS = [
    {"__init__", "errors", "utils", "dsp", "config", "runs"},  # foundation
    {"io"},
    {"preprocess", "synth", "report"},
    {"simulate", "encoder"},  # simulate computes its ground-truth high gamma with preprocess's filters
    {"decoders"},
    {"diffusion"},
    {"decode"},        # any decoding run -> files (both decoder families)
    {"evaluate"},
    {"realtime"},      # live streams: a causal decoding run frame by frame
    {"cv", "cross", "sweep", "demo", "cli", "commands"},  # drivers: train, decode and evaluate in sequence
]
PACKAGE = Path(neurovox.__file__).parent


def _layer(name: str) -> int:
    for i, layer in enumerate(LAYERS):
        if name in layer:
            return i
    raise AssertionError(f"neurovox.{name} is in no layer of tests/test_architecture.py: add it where the data "
                         "flow puts it.")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, imported neurovox sub-package) of every import in `path`, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("neurovox"):
            parts = node.module.split(".")
            if len(parts) > 1:
                found.append((node.lineno, parts[1]))
            else:  # `from neurovox import dsp, __version__`
                found += [(node.lineno, a.name if (PACKAGE / f"{a.name}.py").exists() or (PACKAGE / a.name).is_dir()
                           else "__init__") for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names
                      if a.name.startswith("neurovox.")]
    return found


def test_every_import_points_upstream():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    downstream = []
    for path in files:
        rel = path.relative_to(PACKAGE)
        here = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for line, target in _imports(path):
            if target != here and _layer(target) > _layer(here):
                downstream.append(f"{rel}:{line} imports neurovox.{target}")
    assert not downstream, "imports pointing downstream:\n" + "\n".join(downstream)


def test_the_check_sees_a_downstream_import(tmp_path):
    """The test above must fail on a lazy import from a later stage (io importing evaluate, in a function)."""
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from neurovox.evaluate.metrics import stoi\n    return stoi\n")
    assert [(2, "evaluate")] == _imports(bad)
    assert _layer("evaluate") > _layer("io")
