"""A faster walk for the bridge's hook registry, equal to TransformerLens' own.

`TransformerBridge` finds its hook points by walking every module and reading every public
attribute `dir()` lists: three walks per boot, about 0.3 s of a 4.5 s warm load of the bundled
model. Most of those attributes are methods, which can never be a `HookPoint`. `fast_scan`
walks the same modules, in the same order, with the same names. It reads only what can hold a
hook point: instance attributes, submodules, and class attributes that are not plain functions
or method descriptors (properties, for example). It assigns hook names in the same order, so
the first name that reaches a shared hook point still wins.

`scanning()` swaps it in while sadlang boots a bridge (models/loader.py). It does so only when
the installed TransformerLens' method has the source `fast_scan` was checked against (`PROVEN`).
Any other version keeps its own walk. tests/test_hook_scan.py checks that both walks build
the same registry on every family, and that the pinned version takes the fast one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import types
from collections.abc import Iterator
from typing import Any

# sha256 prefix of `inspect.getsource(TransformerBridge._scan_existing_hooks)` in
# transformer-lens 4.3.0, whose walk fast_scan reproduces
PROVEN = "580b3efb57d9f19f"

# attributes TransformerLens' walk never reads: the wrapped model, and weight properties
# that build tensors on access
_SKIPPED = frozenset({"original_component", "original_model", "OV", "QK", "W_V", "W_O", "W_Q", "W_K",
                      "W_in", "W_gate", "W_out", "b_V", "b_O", "b_Q", "b_K", "b_in", "b_out"})
_CHILDREN_SKIPPED = frozenset({"original_component", "_original_component", "original_model"})
# what an instance reads from its class as a function or method: never a HookPoint
_INERT = (types.FunctionType, classmethod, staticmethod, types.BuiltinFunctionType,
          types.MethodDescriptorType, types.WrapperDescriptorType)

_CLASSES: dict[type, tuple[frozenset[str], frozenset[str]]] = {}


def source_digest() -> str:
    from transformer_lens.model_bridge.transformer_bridge import TransformerBridge

    return hashlib.sha256(inspect.getsource(TransformerBridge._scan_existing_hooks).encode()).hexdigest()[:16]


def _class_names(cls: type) -> tuple[frozenset[str], frozenset[str]]:
    """(inert, live): the public class attributes of `cls` the walk would read, split into
    functions and method descriptors (`inert`) and everything else (`live`)."""
    known = _CLASSES.get(cls)
    if known is None:
        inert: set[str] = set()
        live: set[str] = set()
        for name in dir(cls):
            if name.startswith("_") or name in _SKIPPED:
                continue
            (inert if isinstance(inspect.getattr_static(cls, name), _INERT) else live).add(name)
        known = _CLASSES[cls] = (frozenset(inert), frozenset(live))
    return known


def _candidates(mod: Any) -> list[str]:
    """The names TransformerLens' walk reads on `mod` (what `dir(mod)` lists, less private and
    skipped names) that could hold a HookPoint, sorted as `dir` sorts them. A name listed by
    the class as a function is read from the class unless the instance shadows it in its
    `__dict__`; nn.Module keeps submodules, parameters and buffers in dicts of their own, so
    those do not shadow it."""
    inert, live = _class_names(type(mod))
    own = mod.__dict__
    names = set(live)
    for store in (own, own.get("_parameters", {}), own.get("_modules", {}), own.get("_buffers", {})):
        for name in store:
            if (name.startswith("_") or name in _SKIPPED or name[:1].isdigit()
                    or (name in inert and name not in own)):
                continue
            names.add(name)
    return sorted(names)


def fast_scan(bridge: Any, module: Any, prefix: str = "") -> None:
    """TransformerBridge._scan_existing_hooks, reading only attributes that can hold a hook point:
    fills `bridge._hook_registry` with every HookPoint reachable from `module` (by `get_hooks()`,
    by attribute, and through children), and names each unnamed one by its first path."""
    from transformer_lens.hook_points import HookPoint

    registry = bridge._hook_registry
    named = {id(hook) for hook in registry.values() if hook.name is not None}
    visited: set[int] = set()

    def register(hook: Any, name: str) -> None:
        if id(hook) not in named:
            hook.name = name
            named.add(id(hook))
        registry[name] = hook

    def walk(mod: Any, path: str) -> None:
        if id(mod) in visited:
            return
        visited.add(id(mod))
        get_hooks = getattr(mod, "get_hooks", None)
        if get_hooks is not None and callable(get_hooks):
            hooks = mod.get_hooks()
            if isinstance(hooks, dict):
                for name, hook in hooks.items():
                    register(hook, f"{path}.{name}" if path else name)
        for name in _candidates(mod):
            try:
                value = getattr(mod, name)
            except (AttributeError, NameError, RuntimeError, TypeError):
                continue
            if isinstance(value, HookPoint):
                register(value, f"{path}.{name}" if path else name)
        for name, child in mod.named_children():
            if name not in _CHILDREN_SKIPPED:
                walk(child, f"{path}.{name}" if path else name)

    walk(module, prefix)


@functools.cache
def applies() -> bool:
    """Is the installed TransformerLens' walk the one fast_scan was proven equal to?"""
    try:
        return source_digest() == PROVEN
    except (OSError, TypeError, ImportError):        # no source to read: keep TransformerLens' own
        return False


@contextlib.contextmanager
def scanning() -> Iterator[bool]:
    """While inside, bridges walk their hooks with `fast_scan` (where `applies()`); yields whether
    it does. TransformerLens' method is put back on leaving."""
    from transformer_lens.model_bridge.transformer_bridge import TransformerBridge

    if not applies():
        yield False
        return
    original = TransformerBridge.__dict__["_scan_existing_hooks"]
    TransformerBridge._scan_existing_hooks = fast_scan      # type: ignore[method-assign,assignment]
    try:
        yield True
    finally:
        TransformerBridge._scan_existing_hooks = original    # type: ignore[method-assign]
