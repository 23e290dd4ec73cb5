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
from dataclasses import dataclass
from typing import Any

import torch

_PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj")
_NAME = re.compile(r"^model\.layers\.(\d+)\.self_attn\.(q_proj|k_proj|v_proj|o_proj)\.weight$")


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

    def destinations(self) -> dict[str, torch.Tensor]:
        """Parameter name (`model.layers.{l}.self_attn.{q,k,v,o}_proj.weight`) -> the view of the
        stacks that is that layer's weight."""
        out = {}
        for l in range(self.o.shape[0]):
            base = f"model.layers.{l}.self_attn."
            out[base + "q_proj.weight"] = self.q[l]
            out[base + "k_proj.weight"] = self.k[l]
            out[base + "v_proj.weight"] = self.v[l]
            out[base + "o_proj.weight"] = _o_weight(self.o[l])
        return out

    def current(self, model: Any) -> bool:
        """Does every layer's projection weight still view its slice of the stacks? (Read by
        attribute, which a bridge around the model forwards to it.)"""
        return all(_views(_attribute(model, name), target) for name, target in self.destinations().items())


def _attribute(model: Any, dotted: str) -> Any:
    obj = model
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def _views(param: torch.Tensor | None, target: torch.Tensor) -> bool:
    return (param is not None and param.data_ptr() == target.data_ptr() and param.shape == target.shape
            and param.stride() == target.stride() and param.dtype == target.dtype)


def _o_weight(o_layer: torch.Tensor) -> torch.Tensor:
    """(H, r, D) -> the o_proj weight (D, H * r) as a transposed view."""
    H, r, D = o_layer.shape
    return o_layer.reshape(H * r, D).T


def d_head_of(config: Any) -> int | None:
    """A config's head width: `head_dim`, else hidden size / query heads (None when unknown)."""
    config = getattr(config, "text_config", None) or config
    width = getattr(config, "head_dim", None)
    if width:
        return int(width)
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return int(hidden) // int(heads) if hidden and heads else None


def planned(shapes: dict[str, tuple[int, ...]], d_head: int | None, dtype: torch.dtype = torch.float32,
            device: torch.device | str = "cpu") -> tuple[Stacks, dict[str, torch.Tensor]] | None:
    """Empty stacks for the attention projections among `shapes` (name -> shape, the names of
    `Stacks.destinations`), and where each of those tensors goes in them: a reader fills the
    views, and the model is assigned them, so the weights are never held twice. None when the
    names or shapes do not stack (a projection missing, layers of different widths). The stacks
    are allocated untouched: their pages take memory as the views are filled."""
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

    def empty(*shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=dtype, device=device)
    stacks = Stacks(q=empty(L, *q), k=empty(L, *k), v=empty(L, *v), o=empty(L, H, d_head, D))
    return stacks, stacks.destinations()


def stack_projections(model: Any, d_head: int | None = None) -> Stacks | None:
    """Move a decoder's attention projections (`model.model.layers[i].self_attn.{q,k,v,o}_proj`)
    into stacks and point each layer's weight at its slice, in place; kept on the model as
    `_sadlang_stacks`. None (the model untouched) for other layouts, shapes that do not stack,
    or projections of different dtypes or devices. A layer's old weight is freed (when nothing
    else holds it) as its slice fills."""
    kept = getattr(model, "_sadlang_stacks", None)
    if kept is not None and kept.current(model):     # read into stacks already (`planned`)
        return kept
    params = dict(model.named_parameters())
    attn = [p for name, p in params.items() if _NAME.match(name)]
    if not attn or any(p.dtype != attn[0].dtype or p.device != attn[0].device or p.is_meta for p in attn):
        return None
    found = planned({name: tuple(p.shape) for name, p in params.items()},
                    d_head or d_head_of(getattr(model, "config", None)), attn[0].dtype, attn[0].device)
    if found is None:
        return None
    stacks, into = found
    with torch.no_grad():
        for name, target in into.items():
            target.copy_(params[name])
            params[name].data = target       # the parameter (same object) now views the stack
    model._sadlang_stacks = stacks
    return stacks
