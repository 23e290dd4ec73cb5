"""Import TransformerLens without loading its data-science stack until something uses it.

`import transformer_lens` imports `datasets` (for `load_dataset` in its evals and two helpers)
and `pandas` (for the data frames of its patching helpers), and with them `pyarrow`: 86 MiB
of resident memory and about 0.35 s on this machine, in every process that loads a model.
sadlang never calls those helpers.

`deferred_data_stack()` is a context for that one import. Inside it, `pandas`, `datasets` and
the three `datasets` submodules TransformerLens imports from are stand-in modules:
- a name TransformerLens imports from a stand-in (`Dataset`, `IterableDataset`,
  `load_dataset`: `DEFERRED`) is a forwarder, which imports the real module when it is called,
  instance-checked or read;
- any other name read from a stand-in (`pd.DataFrame`, inside a function) imports the real
  module there and then and returns its attribute;
- a submodule without a stand-in (`datasets.config`) imports the real package.
On leaving, the stand-ins leave `sys.modules`, so a later `import pandas` or `import datasets`
gets the real module. (importlib's LazyLoader is no help here: torch's op registration calls
`inspect.getmodule`, which reads `__file__` of every module in sys.modules and so loads lazy
ones during the very import it should spare.)

It applies only to the TransformerLens release whose imports were audited (`PROVEN`): there,
those names appear only in annotations (`from __future__ import annotations`) and in calls.
tests/test_lean_import.py repeats that audit on the installed source and fails when it no
longer holds, and checks that forwarders and stand-ins reach the real objects.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from typing import Any

# the transformer-lens release whose module-level imports of `datasets` and `pandas` were
# audited (tests/test_lean_import.py::test_the_audit_holds_for_the_installed_version)
PROVEN = "4.3.0"

# stand-in module -> the names TransformerLens imports from it at import time, and their kind
DEFERRED: dict[str, dict[str, str]] = {
    "datasets": {"load_dataset": "function"},
    "datasets.arrow_dataset": {"Dataset": "class"},
    "datasets.iterable_dataset": {"IterableDataset": "class"},
    "datasets.load": {"load_dataset": "function"},
    "pandas": {},
}
PACKAGES = ("datasets", "pandas")

_LOCK = threading.RLock()


def applies() -> bool:
    """Is the installed TransformerLens the audited one, and not imported yet?"""
    if "transformer_lens" in sys.modules:
        return False
    try:
        return importlib.metadata.version("transformer-lens") == PROVEN
    except importlib.metadata.PackageNotFoundError:
        return False


def _real(module: str) -> types.ModuleType:
    """The real `module`, imported now. The stand-ins leave sys.modules first and the finder
    serves no more, for all packages at once: the real ones import each other (datasets and
    pyarrow import pandas)."""
    with _LOCK:
        _FINDER.serving = False
        for name in DEFERRED:
            if isinstance(sys.modules.get(name), _StandIn):
                del sys.modules[name]
        return importlib.import_module(module)


class _DeferredClass(type):
    """Metaclass of a class stand-in: calls, instance and subclass checks and attribute reads
    go to the real class."""

    _module: str
    _name: str

    def real(cls) -> type:
        return getattr(_real(cls._module), cls._name)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        return cls.real()(*args, **kwargs)

    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, cls.real())

    def __subclasscheck__(cls, sub: type) -> bool:
        return issubclass(sub, cls.real())

    def __getattr__(cls, name: str) -> Any:
        return getattr(cls.real(), name)


def _forwarder(module: str, name: str, kind: str) -> Any:
    if kind == "class":
        return _DeferredClass(name, (), {"_module": module, "_name": name, "__module__": module})

    def forward(*args: Any, **kwargs: Any) -> Any:
        return getattr(_real(module), name)(*args, **kwargs)

    forward.__name__ = forward.__qualname__ = name
    forward.__module__ = module
    forward.__doc__ = f"Imports {module} and calls its {name} (sadlang.models.lean_import)."
    return forward


# what the import system and `inspect` read from every module in sys.modules, without using
# the module: a stand-in has none of them (any other name, `__version__` too, is the real one's)
_PROBED = frozenset({"__file__", "__cached__", "__path__", "__wrapped__", "__builtins__"})


class _StandIn(types.ModuleType):
    """A stand-in for a module of `DEFERRED`: its deferred names as forwarders, anything else
    from the real module."""

    def __getattr__(self, name: str) -> Any:
        if name in _PROBED:
            raise AttributeError(name)
        kind = DEFERRED[self.__name__].get(name)
        if kind is None:
            return getattr(_real(self.__name__), name)
        value = _forwarder(self.__name__, name, kind)
        setattr(self, name, value)
        return value


class _StandInLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _StandIn(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        pass


class _Imported(importlib.abc.Loader):
    """Hands the import system a module that `_real` has imported already, and puts the
    module's own spec back."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        module.__spec__ = self.spec
        if self.spec is not None:
            module.__loader__ = self.spec.loader


def _imported_spec(fullname: str) -> importlib.machinery.ModuleSpec:
    """A spec for `fullname`, a submodule without a stand-in: the real package is imported
    now, and the import in progress receives the real submodule. The module leaves
    sys.modules until then, because the import system would run it a second time if it found
    it there while asking finders."""
    module = _real(fullname)
    del sys.modules[fullname]
    return importlib.machinery.ModuleSpec(fullname, _Imported(module))


class _Finder(importlib.abc.MetaPathFinder):
    """Serves the stand-ins while `serving`."""

    serving = False

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package = fullname.partition(".")[0]
        if not self.serving or package not in PACKAGES:
            return None
        if fullname not in DEFERRED:                    # a submodule without a stand-in
            return _imported_spec(fullname)
        return importlib.machinery.ModuleSpec(fullname, _StandInLoader(), is_package=fullname == package)


_FINDER = _Finder()


@contextlib.contextmanager
def deferred_data_stack() -> Iterator[bool]:
    """While inside, `datasets` and `pandas` are stand-ins as the module docstring says (where
    `applies()`, and neither is imported yet); yields whether they are."""
    with _LOCK:
        if not applies() or any(name in sys.modules for name in PACKAGES):
            yield False
            return
        sys.meta_path.insert(0, _FINDER)
        _FINDER.serving = True
        try:
            yield True
        finally:
            _FINDER.serving = False
            sys.meta_path.remove(_FINDER)
            for name in DEFERRED:
                if isinstance(sys.modules.get(name), _StandIn):
                    del sys.modules[name]


def import_bridge() -> Any:
    """`TransformerBridge`, with TransformerLens imported under `deferred_data_stack()`."""
    with deferred_data_stack():
        from transformer_lens.model_bridge import TransformerBridge
    return TransformerBridge
