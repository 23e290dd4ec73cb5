"""The attention projections of every layer in one tensor per projection, shared by the model and
the decomposition, so the decomposition's per-head weights are not a second copy.

The decomposition reads W_Q, W_K, W_V (L, heads, D, r) and W_O (L, H, r, D); a bridge stacks them
from the layers on every read, a copy of the four projections (106 MB on the bundled model).
`stack_projections` moves each layer's projection weight into a slice of one stacked tensor and
points the layer's parameter at that slice; `Stacks.per_head` then gives the decomposition's
tensors as views:

    q, k, v  (L, heads * r, D)  the layers' own layout (row h * r + j of layer l is head h's
                                 j-th output); W_Q = q.view(L, H, r, D).transpose(2, 3)
    o        (L, H, r, D)        the decomposition's W_O; layer l's o_proj weight (D, H * r) is
                                 o[l].reshape(H * r, D).T, a transposed view that `F.linear`
                                 multiplies without copying

Values are unchanged (tests/test_stacking.py compares every view with the bridge's own stacking,
and logits before and after). Anything that later replaces a layer's weight (a dtype cast, the
bridge's own processing) breaks the sharing; `Stacks.current` says whether it still holds, and
the weights reader stacks a copy otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class Stacks:
    """One model's stacked attention projections (see the module docstring for the layouts)."""

    q: torch.Tensor      # (L, H * r, D)
    k: torch.Tensor      # (L, K * r, D)
    v: torch.Tensor      # (L, K * r, D)
    o: torch.Tensor      # (L, H, r, D)

    def per_head(self) -> dict[str, torch.Tensor]:
        """{"W_Q": (L, H, D, r), "W_K": (L, K, D, r), "W_V": (L, K, D, r), "W_O": (L, H, r, D)},
        views of the stacks."""
        L, _, r, D = self.o.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(L, t.shape[1] // r, r, D).transpose(2, 3)
        return {"W_Q": heads(self.q), "W_K": heads(self.k), "W_V": heads(self.v), "W_O": self.o}

    def current(self, model: Any) -> bool:
        """Does every layer's projection weight still view its slice of the stacks?"""
        layers = _layers(model)
        if layers is None or len(layers) != self.o.shape[0]:
            return False
        for l, (q, k, v, o) in enumerate(_weights(layers)):
            if not (_views(q, self.q[l]) and _views(k, self.k[l]) and _views(v, self.v[l])
                    and _views(o, _o_weight(self.o[l]))):
                return False
        return True


def _views(param: torch.Tensor, target: torch.Tensor) -> bool:
    return (param.data_ptr() == target.data_ptr() and param.shape == target.shape
            and param.stride() == target.stride() and param.dtype == target.dtype)


def _o_weight(o_layer: torch.Tensor) -> torch.Tensor:
    """(H, r, D) -> the o_proj weight (D, H * r) as a transposed view."""
    H, r, D = o_layer.shape
    return o_layer.reshape(H * r, D).T


def _layers(model: Any) -> Any:
    body = getattr(model, "model", None)
    layers = getattr(body, "layers", None)
    if layers is None:
        return None
    if not all(all(hasattr(getattr(layer, "self_attn", None), p) for p in _PROJECTIONS) for layer in layers):
        return None
    return layers


def _weights(layers: Any) -> Iterator[tuple[torch.nn.Parameter, ...]]:
    for layer in layers:
        attn = layer.self_attn
        yield tuple(getattr(attn, p).weight for p in _PROJECTIONS)


def d_head_of(config: Any) -> int | None:
    """A config's head width: `head_dim`, else hidden size / query heads (None when unknown)."""
    config = getattr(config, "text_config", None) or config
    width = getattr(config, "head_dim", None)
    if width:
        return int(width)
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return int(hidden) // int(heads) if hidden and heads else None


def stack_projections(model: Any, d_head: int | None = None) -> Stacks | None:
    """Move a decoder's attention projections (`model.model.layers[i].self_attn.{q,k,v,o}_proj`)
    into stacks and point each layer's weight at its slice, in place; kept on the model as
    `_sadlang_stacks`. None (the model untouched) for other layouts or shapes that do not
    stack (layers of different widths). A layer's old weight is freed when nothing else holds
    it, so the stacks cost one projection's worth of memory while they fill."""
    kept = getattr(model, "_sadlang_stacks", None)
    if kept is not None and kept.current(model):     # read into stacks already (`planned`)
        return kept
    layers = _layers(model)
    d_head = d_head or d_head_of(getattr(model, "config", None))
    if layers is None or len(layers) == 0 or not d_head:
        return None
    found = list(_weights(layers))
    q0, k0, v0, o0 = found[0]
    D = q0.shape[1]
    if any(w.ndim != 2 for w in found[0]) or q0.shape[0] % d_head or k0.shape[0] % d_head or \
            o0.shape != (D, q0.shape[0]) or v0.shape != k0.shape or k0.shape[1] != D:
        return None
    if any(tuple(w.shape for w in ws) != tuple(w.shape for w in found[0]) or
           any(w.dtype != q0.dtype or w.device != q0.device or w.is_meta for w in ws) for ws in found):
        return None
    L, H = len(found), q0.shape[0] // d_head

    def stacked(index: int, shape: tuple[int, ...], place: Any) -> torch.Tensor:
        out = torch.empty((L, *shape), dtype=q0.dtype, device=q0.device)
        for l, ws in enumerate(found):
            target = place(out[l])
            with torch.no_grad():
                target.copy_(ws[index])
            ws[index].data = target         # the parameter (same object) now views the stack
        return out

    same = lambda t: t  # noqa: E731
    stacks = Stacks(q=stacked(0, tuple(q0.shape), same), k=stacked(1, tuple(k0.shape), same),
                    v=stacked(2, tuple(v0.shape), same), o=stacked(3, (H, d_head, D), _o_weight))
    model._sadlang_stacks = stacks
    return stacks


_NAME = re.compile(r"^model\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.weight$")


def planned(shapes: dict[str, tuple[int, ...]], d_head: int | None,
            dtype: torch.dtype = torch.float32) -> tuple[Stacks, dict[str, torch.Tensor]] | None:
    """Empty stacks for a checkpoint's attention projections, and where each of its tensors
    (`model.layers.{l}.self_attn.{q,k,v,o}_proj.weight`, by name -> shape) goes in them: a
    reader fills those views, and the model is assigned them, so the weights are never held
    twice. None when the names or shapes do not stack."""
    found: dict[tuple[int, str], tuple[int, ...]] = {}
    for name, shape in shapes.items():
        m = _NAME.match(name)
        if m:
            found[(int(m.group(1)), m.group(2))] = tuple(shape)
    L = 1 + max((l for l, _ in found), default=-1)
    if not d_head or L == 0 or len(found) != 4 * L:
        return None
    q, k, v, o = (found[(0, p)] for p in _PROJECTIONS)
    if any(found[(l, p)] != found[(0, p)] for l in range(L) for p in _PROJECTIONS) or len(q) != 2 or \
            q[0] % d_head or k != v or len(k) != 2 or k[1] != q[1] or o != (q[1], q[0]) or k[0] % d_head:
        return None
    H, D = q[0] // d_head, q[1]
    stacks = Stacks(q=torch.empty((L, *q), dtype=dtype), k=torch.empty((L, *k), dtype=dtype),
                    v=torch.empty((L, *v), dtype=dtype), o=torch.empty((L, H, d_head, D), dtype=dtype))
    into = {}
    for l in range(L):
        base = f"model.layers.{l}.self_attn."
        into[base + "q_proj.weight"] = stacks.q[l]
        into[base + "k_proj.weight"] = stacks.k[l]
        into[base + "v_proj.weight"] = stacks.v[l]
        into[base + "o_proj.weight"] = _o_weight(stacks.o[l])
    return stacks, into
