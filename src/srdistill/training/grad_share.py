"""How strongly each weighted loss term pulls on the student, next to the reconstruction term.

A loss weight says little by itself: what moves the student is each term's *gradient* on its
parameters. For every weighted term other than the reference (``rec``) this reports

- ``ratio`` = ||g_term|| / ||g_rec||: 0.1 means the term pulls a tenth as hard as reconstruction;
- ``cos`` = cosine(g_term, g_rec): near 1 the term agrees with reconstruction, near 0 it pulls
  sideways, below 0 against it;

and the same for ``others``, the sum of every non-reference term. Gradients are taken on the
student's trainable parameters only (with adapters: only the adapters), flattened over all of
them; projection heads, the temperature and the discriminator do not count, though the
adversarial term's gradient reaches the student *through* the discriminator.

The gradients come from ``torch.autograd.grad`` with the graph retained, so nothing is
accumulated into ``.grad`` and the backward pass of the total that follows is unchanged; the
cost is one extra backward pass per term. Under DDP they are each process's local gradients,
before the all-reduce: fine for a diagnostic, not the synchronised gradient.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from srdistill.counts import check_count
from srdistill.losses.combine import WeightedLoss

REFERENCE = "rec"
OTHERS = "others"


def weighted_terms(loss: WeightedLoss, values: Mapping[str, torch.Tensor]) -> dict:
    """``{name: weight * value}`` of the terms in ``values`` (one step group's, with
    ``loss.step_groups``) that enter the total; logged sub-values are left out, and so are
    terms at weight 0 (``module.balance`` measuring them: no share to report yet)."""
    return {name: w * values[name] for name, w in loss.weights.items() if name in values and w}


def _flat_gradient(value: torch.Tensor, params: Sequence[nn.Parameter]) -> torch.Tensor:
    grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
    return torch.cat(
        [
            (torch.zeros_like(p) if g is None else g).detach().reshape(-1).double()
            for g, p in zip(grads, params, strict=True)
        ]
    )


def _compare(g: torch.Tensor, ref: torch.Tensor, ref_norm: float) -> tuple[float, float]:
    norm = float(torch.linalg.vector_norm(g))
    ratio = norm / ref_norm if ref_norm > 0 else 0.0
    cos = float(torch.dot(g, ref)) / (norm * ref_norm) if norm > 0 and ref_norm > 0 else 0.0
    return ratio, cos


def grad_shares(
    terms: Mapping[str, torch.Tensor],
    params: Sequence[nn.Parameter],
    reference: str = REFERENCE,
) -> dict[str, float]:
    """``{"<term>/ratio": .., "<term>/cos": .., "others/ratio": .., "others/cos": ..}``.

    ``terms`` are the weighted terms (scalars still attached to their graphs), ``params`` the
    student's trainable parameters. Empty when there is no term besides the reference.
    """
    if reference not in terms:
        raise ValueError(f"grad_shares: no reference term {reference!r} among {list(terms)}")
    params = [p for p in params if p.requires_grad]
    others = [name for name in terms if name != reference and "/" not in name]
    if not others or not params:
        return {}
    ref = _flat_gradient(terms[reference], params)
    ref_norm = float(torch.linalg.vector_norm(ref))
    shares: dict[str, float] = {}
    total = torch.zeros_like(ref)
    for name in others:
        g = _flat_gradient(terms[name], params)
        total += g  # the gradient of a sum is the sum of the gradients: no extra backward
        shares[f"{name}/ratio"], shares[f"{name}/cos"] = _compare(g, ref, ref_norm)
    shares[f"{OTHERS}/ratio"], shares[f"{OTHERS}/cos"] = _compare(total, ref, ref_norm)
    return shares


def check_grad_share_every(every: int | None, loss: WeightedLoss) -> None:
    """The option is a positive step count and the loss has the reference term to compare to."""
    if every is None:
        return
    check_count("module.grad_share_every", every, hint="or null: never")
    if REFERENCE not in loss.weights:
        raise ValueError(
            f"module.grad_share_every compares each term with the reconstruction term "
            f"{REFERENCE!r}, which this loss lacks (terms: {', '.join(loss.weights)}); "
            "set module.grad_share_every=null"
        )


class GradShareProbe:
    """Every ``every`` steps (None: never), each term's gradient share on the student, sent
    straight to the loggers and kept in ``history`` for results.json."""

    def __init__(self, every: int | None, loss: WeightedLoss) -> None:
        check_grad_share_every(every, loss)
        self.every, self.loss = every, loss
        self.history: list[dict] = []

    def record(self, step: int, values: Mapping[str, torch.Tensor], params, loggers) -> None:
        """``values``: the unweighted terms of one generator step (one step group's)."""
        # with step groups, only the group holding the reference term is compared with it
        if not self.every or step % self.every or REFERENCE not in values:
            return
        shares = grad_shares(weighted_terms(self.loss, values), params)
        if not shares:
            return
        # straight to the loggers: LightningModule.log would repeat these values on every later
        # step of the epoch (Lightning keeps a step metric until the epoch ends)
        for logger in loggers:
            logger.log_metrics({f"train/grad_share/{k}": v for k, v in shares.items()}, step=step)
        self.history.append({"step": step, **shares})


def summarize(every: int, history: Sequence[Mapping[str, float]]) -> dict:
    """The ``grad_share`` record of results.json: the option, the history, and per term the
    mean and last ratio and cosine."""
    terms = sorted({k.rsplit("/", 1)[0] for record in history for k in record if k != "step"})
    summary = {}
    for term in terms:
        entry = {}
        for stat in ("ratio", "cos"):
            values = [float(r[f"{term}/{stat}"]) for r in history if f"{term}/{stat}" in r]
            entry[f"{stat}_mean"] = statistics.fmean(values)
            entry[f"{stat}_last"] = values[-1]
        summary[term] = entry
    plain = [{k: (int(v) if k == "step" else float(v)) for k, v in r.items()} for r in history]
    return {"every": int(every), "history": plain, "summary": summary}
