"""Per-head bilinear forms Omega = W_Q W_K^T and their SVDs, computed once per model.

For query head h of layer l (row-vector convention, D d_model, r d_head):

    Omega = W_Q W_K^T = U diag(S) V^T         U, V: (D, r), S: (r,) descending

Because Omega has rank <= r we factor it without forming the D x D matrix:
W_Q = Qq Rq, W_K = Qk Rk (thin QR), then SVD of the r x r matrix Rq Rk^T = P diag(S) T^T,
so U = Qq P and V = Qk T. The maps from (rotated) query/key vectors to per-singular-direction
coordinates are

    Gq = W_Q^+ U diag(S) = Rq^-1 P diag(S)     a = q_rot @ Gq,  a_k = S_k (x_hat . u_k)
    Gk = W_K^+ V         = Rk^-1 T             b = k_rot @ Gk,  b_k = y_hat . v_k

and q_rot . k_rot = sum_k a_k b_k exactly (Gq Gk^T = I). Every head is verified; a head
that fails is recomputed densely in float64 (SVD of Omega + pseudoinverses); if that fails
too, `DecompositionError` is raised.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from sadlang.errors import DecompositionError
from sadlang.models.weights import ModelWeights

log = logging.getLogger(__name__)

FORMS_VERSION = "2"   # 2: rank-deficient heads of rotary models are completed
RECON_TOL = 1e-4  # max |U S V^T - Omega| <= RECON_TOL * max |Omega|
IDENT_TOL = 1e-3  # max |Gq Gk^T - I|


@dataclass
class HeadForms:
    """SVD factors of every head's QK form (fp32).

    U: (L, H, D, r)  S: (L, H, r)  V: (L, H, D, r)  Gq, Gk: (L, H, r, r)
    WQ_pinv: (L, H, r, D)  WK_pinv: (L, H, r, D)  (key pinv repeated per query head)
    fallback_heads: heads that needed the dense float64 path.
    """

    U: torch.Tensor
    S: torch.Tensor
    V: torch.Tensor
    Gq: torch.Tensor
    Gk: torch.Tensor
    WQ_pinv: torch.Tensor
    WK_pinv: torch.Tensor
    fallback_heads: list[tuple[int, int]]
    rank_deficient: list[tuple[int, int]] = None  # type: ignore[assignment]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).contiguous() for k in ("U", "S", "V", "Gq", "Gk", "WQ_pinv", "WK_pinv")}


def _factored(WQ: torch.Tensor, WK: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """QR route for (H, D, r) stacks, float64. Returns U, S, V, Gq, Gk, WQ+, WK+."""
    Qq, Rq = torch.linalg.qr(WQ)
    Qk, Rk = torch.linalg.qr(WK)
    P, S, Th = torch.linalg.svd(Rq @ Rk.transpose(-1, -2))
    T = Th.transpose(-1, -2)
    Rq_inv = torch.linalg.inv(Rq)
    Rk_inv = torch.linalg.inv(Rk)
    U = Qq @ P
    V = Qk @ T
    Gq = Rq_inv @ P * S[..., None, :]
    Gk = Rk_inv @ T
    return U, S, V, Gq, Gk, Rq_inv @ Qq.transpose(-1, -2), Rk_inv @ Qk.transpose(-1, -2)


def _dense(WQ: torch.Tensor, WK: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Dense float64 route for one head: SVD of Omega, pseudoinverses."""
    r = WQ.shape[-1]
    omega = WQ @ WK.T
    U, S, Vh = torch.linalg.svd(omega)
    U, S, V = U[:, :r], S[:r], Vh[:r].T
    WQp = torch.linalg.pinv(WQ)
    WKp = torch.linalg.pinv(WK)
    return U, S, V, WQp @ U * S[None, :], WKp @ V, WQp, WKp


COMPLETE_EPS = 1e-3  # rank-deficient heads: missing singular values of W_Q/W_K set to this x the largest


def _complete(W: torch.Tensor, eps: float = COMPLETE_EPS) -> torch.Tensor:
    """(D, r) -> (D, r): W with its singular values below eps * max raised to eps * max, so it
    has full rank r; unchanged on its row space up to eps."""
    U, S, Vh = torch.linalg.svd(W, full_matrices=False)
    top = float(S.max()) if float(S.max()) > 0 else 1.0     # an all-zero head: any full-rank basis
    return (U * S.clamp_min(eps * top)) @ Vh


def _completed(WQ: torch.Tensor, WK: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Forms of a head whose W_Q or W_K has rank < r, on a model whose queries/keys leave the row
    spaces (RoPE rotates them out of it, biases add to it). The factors come from completed
    weights (`_complete`), so Gq Gk^T = I holds on all of r-space and a . b equals q_rot . k_rot
    for any vector; U S V^T is Omega up to the completion (the extra directions have the
    smallest singular values)."""
    parts = _factored(_complete(WQ)[None], _complete(WK)[None])
    return tuple(t[0] for t in parts)


def _check(WQ: torch.Tensor, WK: torch.Tensor, U: torch.Tensor, S: torch.Tensor, V: torch.Tensor,
           Gq: torch.Tensor, Gk: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    omega = WQ @ WK.transpose(-1, -2)
    recon = (U * S[..., None, :]) @ V.transpose(-1, -2)
    scale = omega.abs().amax(dim=(-1, -2)).clamp_min(1e-30)
    rel = ((recon - omega).abs().amax(dim=(-1, -2)) / scale)
    eye = torch.eye(Gq.shape[-1], dtype=Gq.dtype)
    ident = (Gq @ Gk.transpose(-1, -2) - eye).abs().amax(dim=(-1, -2))
    return rel, ident


def compute_forms(weights: ModelWeights) -> HeadForms:
    """SVD of every head's QK form, one layer at a time, batched over heads."""
    L = weights.n_layers
    out: dict[str, list[torch.Tensor]] = {k: [] for k in ("U", "S", "V", "Gq", "Gk", "WQ_pinv", "WK_pinv")}
    fallback: list[tuple[int, int]] = []
    rank_deficient: list[tuple[int, int]] = []
    for layer in range(L):
        WQ = weights.W_Q[layer].double().cpu()                                     # (H, D, r)
        WK = weights.W_K[layer].double().cpu().repeat_interleave(weights.group, 0)  # (H, D, r)
        try:
            parts = list(_factored(WQ, WK))
            rel, ident = _check(WQ, WK, *parts[:5])
        except RuntimeError:  # a singular R: some head is rank deficient, go dense for all
            parts = [torch.stack(x) for x in zip(*(_dense(WQ[h], WK[h]) for h in range(WQ.shape[0])))]
            rel, ident = _check(WQ, WK, *parts[:5])
            rel = torch.full_like(rel, float("inf"))
        bad = ((rel > RECON_TOL) | (ident > IDENT_TOL) | ~torch.isfinite(rel) | ~torch.isfinite(ident))
        for h in torch.nonzero(bad).flatten().tolist():
            dense = _dense(WQ[h], WK[h])
            rel_h, ident_h = _check(WQ[h:h + 1], WK[h:h + 1], *(t[None] for t in dense[:5]))
            if not rel_h.item() <= RECON_TOL:
                raise DecompositionError(
                    f"head {layer}.{h}: the QK form could not be factored "
                    f"(reconstruction error {rel_h.item():.2e} even with the dense float64 SVD)")
            if not ident_h.item() <= IDENT_TOL:
                # W_Q or W_K has rank < d_head. Without RoPE and biases the query/key vectors stay
                # in the row spaces, where the dense terms are exact; with them (Gemma-3's QK-norm
                # gains can be 0 on a dimension that RoPE then fills), complete the weights.
                rank_deficient.append((layer, h))
                if weights.rotary or bool(weights.b_Q[layer].any() or weights.b_K[layer].any()):
                    dense = _completed(WQ[h], WK[h])
            for part, value in zip(parts, dense):
                part[h] = value
            fallback.append((layer, h))
            log.info("head %d.%d used the dense SVD fallback", layer, h)
        for key, value in zip(out, parts):
            out[key].append(value.float())
    dev = weights.W_Q.device
    stacked = {k: torch.stack(v).to(dev) for k, v in out.items()}
    return HeadForms(**stacked, fallback_heads=fallback, rank_deficient=rank_deficient)
