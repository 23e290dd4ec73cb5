"""TransformerLens imported without its data stack (models/lean_import.py): the audit that makes
the stand-ins safe, re-run on the installed source, and the stand-ins at work in fresh
interpreters (the import state of this one is whatever earlier tests left)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from sadlang.models import lean_import

TL_ROOT = Path(metadata.distribution("transformer-lens").locate_file("transformer_lens"))


def _executed(tree: ast.AST):
    """The nodes Python runs when the module is imported: all but function bodies."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and child in node.body:
                continue
            if isinstance(node, ast.Lambda) and child is node.body:
                continue
            stack.append(child)


def _annotations(tree: ast.AST) -> set[int]:
    """ids of every node inside an annotation."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        roots = []
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        for root in roots:
            inside.update(id(n) for n in ast.walk(root))
    return inside


def audit(path: Path) -> list[str]:
    """What in `path` the stand-ins would not serve correctly: an import of the data stack at
    import time that no stand-in covers, or a deferred name used other than in a (postponed)
    annotation, as the function of a call, or as the class of an isinstance/issubclass check."""
    source = path.read_text()
    if "datasets" not in source and "pandas" not in source:
        return []
    tree = ast.parse(source)
    problems: list[str] = []
    bound: set[str] = set()
    for node in _executed(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                and node.module.partition(".")[0] in lean_import.PACKAGES:
            names = lean_import.DEFERRED.get(node.module)
            for alias in node.names:
                if names is None or alias.name not in names:
                    problems.append(f"{path}:{node.lineno}: from {node.module} import {alias.name}")
                bound.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] in lean_import.PACKAGES and alias.name not in lean_import.DEFERRED:
                    problems.append(f"{path}:{node.lineno}: import {alias.name}")
    if not bound:
        return problems
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                    and any(a.name == "annotations" for a in n.names) for n in tree.body)
    in_annotation = _annotations(tree) if postponed else set()
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            allowed.add(id(node.func))
            if isinstance(node.func, ast.Name) and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2:
                cls = node.args[1]
                allowed.update(id(n) for n in (cls.elts if isinstance(cls, ast.Tuple) else [cls]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in bound and id(node) not in allowed | in_annotation:
            problems.append(f"{path}:{node.lineno}: {node.id} used other than in a call or annotation")
    return problems


def test_the_audit_holds_for_the_installed_version():
    files = sorted(TL_ROOT.rglob("*.py"))
    assert len(files) > 100, TL_ROOT
    problems = [p for f in files for p in audit(f)]
    assert problems == [], "\n".join(problems)
    # the audit reads what it should: it sees TransformerLens' imports from the data stack
    assert audit(TL_ROOT / "utilities" / "hf_utils.py") == []
    assert "from datasets.arrow_dataset import Dataset" in (TL_ROOT / "utilities" / "hf_utils.py").read_text()


def test_the_audit_fails_on_uses_the_stand_ins_would_not_serve(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from datasets.arrow_dataset import Dataset\nfrom datasets import Features\n"
                   "import datasets.config\nclass Mine(Dataset):\n    pass\n")
    problems = audit(bad)
    assert any("import Features" in p for p in problems)
    assert any("import datasets.config" in p for p in problems)
    assert any(":4: Dataset used" in p for p in problems)
    fine = tmp_path / "fine.py"
    fine.write_text("from __future__ import annotations\nimport pandas as pd\n"
                    "from datasets.arrow_dataset import Dataset\n"
                    "def f(d: Dataset) -> pd.DataFrame:\n    return isinstance(d, Dataset) and Dataset(d)\n")
    assert audit(fine) == []


def test_the_installed_transformer_lens_is_the_audited_one():
    assert metadata.version("transformer-lens") == lean_import.PROVEN, (
        "re-run tests/test_lean_import.py's audit on this TransformerLens and move PROVEN to it")


def _fresh(code: str, tmp_path: Path) -> dict:
    env = {"HF_DATASETS_CACHE": str(tmp_path / "datasets"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=Path(__file__).parents[1], timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


STAND_INS_AT_WORK = """
import json, sys
from sadlang.models import lean_import
from sadlang.models.lean_import import import_bridge
seen = {}
bridge = import_bridge()
seen["bridge"] = bridge.__name__
seen["loaded"] = sorted(m for m in ("datasets", "pandas", "pyarrow") if m in sys.modules)
seen["finder_left"] = any(f is lean_import._FINDER for f in sys.meta_path)
import transformer_lens.patching as patching, transformer_lens.utilities.hf_utils as hf_utils
frame = patching.pd.DataFrame({"a": [1, 2]})       # a name TransformerLens reads from pandas
import pandas
seen["pandas_real"] = type(frame) is pandas.DataFrame and pandas is sys.modules["pandas"]
path = __import__("os").path.join(__import__("tempfile").mkdtemp(), "rows.json")
open(path, "w").write('{"a": 1, "b": 2}\\n{"a": 3, "b": 4}\\n')
rows = hf_utils.load_dataset("json", data_files=path, split="train")   # a forwarder, called
import datasets
seen["dataset_real"] = type(rows) is datasets.Dataset and datasets is sys.modules["datasets"]
seen["checks"] = [isinstance(rows, hf_utils.Dataset), isinstance(rows, hf_utils.IterableDataset),
                  issubclass(datasets.Dataset, hf_utils.Dataset)]
seen["column"] = hf_utils.keep_single_column(rows, "a").column_names
with lean_import.deferred_data_stack() as again:      # all imported now: nothing to defer
    seen["again"] = again
print(json.dumps(seen))
"""


def test_transformer_lens_imports_without_the_data_stack_and_its_helpers_still_work(tmp_path):
    seen = _fresh(STAND_INS_AT_WORK, tmp_path)
    assert seen["bridge"] == "TransformerBridge"
    assert seen["loaded"] == [] and not seen["finder_left"]
    assert seen["pandas_real"] and seen["dataset_real"]
    assert seen["checks"] == [True, False, True]
    assert seen["column"] == ["a"]
    assert seen["again"] is False


OTHER_SUBMODULE = """
import json, sys
from sadlang.models.lean_import import deferred_data_stack
seen = {}
with deferred_data_stack() as deferring:
    seen["deferring"] = deferring
    from datasets import load_dataset                # served by the stand-in
    seen["stand_in"] = type(sys.modules["datasets"]).__name__
    import datasets.config as config                 # no stand-in: the real package comes in
    seen["real"] = [type(sys.modules["datasets"]).__name__, sys.modules["datasets"].config is config,
                    type(config.__spec__.loader).__name__, config is sys.modules["datasets.config"]]
import datasets
seen["after"] = [type(datasets).__name__, datasets.load_dataset is load_dataset]
print(json.dumps(seen))
"""


def test_a_submodule_without_a_stand_in_brings_the_real_package(tmp_path):
    seen = _fresh(OTHER_SUBMODULE, tmp_path)
    assert seen["deferring"] is True
    assert seen["stand_in"] == "_StandIn"
    assert seen["real"] == ["module", True, "SourceFileLoader", True]
    assert seen["after"] == ["module", False]              # the forwarder stays a forwarder
