"""The bridge's hook registry is the same whether TransformerLens walks the modules or sadlang's
faster walk does (models/hook_scan.py): every name, every hook point, every hook's own name."""

from __future__ import annotations

from importlib import metadata

import pytest

from sadlang.models import hook_scan, load_model
from sadlang.models.families import tiny_models

FAMILIES = [*tiny_models(), "planted-neox"]


def _registry(model) -> list[tuple[str, str, int]]:
    """(registry name, the hook's own name, which hook object) for every entry; objects are
    numbered by first appearance so two bridges compare."""
    order: dict[int, int] = {}
    rows = []
    for name, hook in sorted(model.bridge._hook_registry.items()):
        rows.append((name, hook.name, order.setdefault(id(hook), len(order))))
    return rows


@pytest.mark.parametrize("name", FAMILIES)
def test_the_fast_walk_builds_the_registry_transformer_lens_builds(name, monkeypatch):
    if not hook_scan.applies():
        pytest.skip("this TransformerLens' walk is not the one fast_scan was proven against")
    fast = load_model(name, reuse=False)
    hook_scan.applies.cache_clear()
    monkeypatch.setattr(hook_scan, "applies", lambda: False)
    own = load_model(name, reuse=False)
    assert _registry(fast) == _registry(own)
    assert sorted(fast.bridge.hook_dict) == sorted(own.bridge.hook_dict)
    assert len(_registry(fast)) > 10 * fast.info.n_layers


def test_one_walk_over_a_booted_bridge_matches_transformer_lens():
    """From the same state (a booted bridge, its registry emptied and hook names cleared), both
    walks register the same names to the same objects and name the hooks alike."""
    from transformer_lens.model_bridge.transformer_bridge import TransformerBridge

    bridge = load_model("tiny-llama", reuse=False).bridge
    hooks = {id(h): h for h in bridge._hook_registry.values()}

    def walk(scan) -> tuple[dict[str, int], dict[int, str | None]]:
        for h in hooks.values():
            h.name = None
        bridge._hook_registry = {}
        scan(bridge, bridge, "")
        return ({k: id(v) for k, v in bridge._hook_registry.items()},
                {i: h.name for i, h in hooks.items()})

    assert walk(hook_scan.fast_scan) == walk(TransformerBridge._scan_existing_hooks)


def test_the_pinned_transformer_lens_takes_the_fast_walk_and_others_keep_their_own(monkeypatch):
    """constraints.txt pins the version fast_scan was proven against: a bump that changes
    TransformerLens' walk fails here until the walk is compared again and PROVEN updated."""
    from transformer_lens.model_bridge.transformer_bridge import TransformerBridge

    original = TransformerBridge.__dict__["_scan_existing_hooks"]
    if metadata.version("transformer-lens") == "4.3.0":
        assert hook_scan.applies()
    with hook_scan.scanning() as fast:
        assert (TransformerBridge.__dict__["_scan_existing_hooks"] is hook_scan.fast_scan) == fast
    assert TransformerBridge.__dict__["_scan_existing_hooks"] is original
    monkeypatch.setattr(hook_scan, "source_digest", lambda: "0" * 16)
    hook_scan.applies.cache_clear()
    try:
        assert not hook_scan.applies()
        with hook_scan.scanning() as fast:
            assert not fast
            assert TransformerBridge.__dict__["_scan_existing_hooks"] is original
    finally:
        monkeypatch.undo()
        hook_scan.applies.cache_clear()


@pytest.mark.bundled
def test_the_bundled_models_registry_is_the_same_under_both_walks(monkeypatch):
    if not hook_scan.applies():
        pytest.skip("this TransformerLens' walk is not the one fast_scan was proven against")
    fast = load_model("smollm2-135m", reuse=False)
    monkeypatch.setattr(hook_scan, "applies", lambda: False)
    own = load_model("smollm2-135m", reuse=False)
    assert _registry(fast) == _registry(own)
