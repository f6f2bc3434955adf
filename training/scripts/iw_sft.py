"""Importance-weighted SFT (iw-SFT; Qin & Springenberg, "Supervised Fine Tuning on Curated
Data is Reinforcement Learning (and can be improved)", arXiv 2507.12856, 2025).

SFT on curated data maximises a lower bound on the RL objective; weighting each curated
sequence by the (stop-gradient) likelihood ratio of the current policy to the reference policy
that produced the data tightens that bound. The exact form used here follows the authors'
released trainer (github.com/emmyqin/iw_sft, ``IwSFTLoss`` with ``sum_over_time=True``):

    w(τ) = clip( exp( T · mean_t [log π_θ(a_t|s_t) − log π_ref(a_t|s_t)] ), w_min, w_max )

where the mean runs over the trained tokens of τ (labels != -100), computed without grad, with
T = 1 and [w_min, w_max] = [0, 16] as in their code. Two additions of ours, both settings:

- ``normalize="batch"``: divide by the mean weight over the (micro-)batch so weights average 1
  and the learning rate keeps its meaning. With one sequence per micro-batch this makes every
  weight 1 (plain SFT): use ``normalize="none"`` there, as the authors' code does.
- ``quality``: a per-record quality weight (the export's ``weight``) multiplies the result after
  normalisation, so a 0.5-quality trajectory counts half whatever its batch.

The loss is then Σ_i w_i Σ_t −log π_θ(a_t) / N_tokens, the same token normalisation as TRL's.
"""

from __future__ import annotations

from typing import Any


def iw_sft_weights(
    cur_logp: Any,
    ref_logp: Any,
    lengths: Any,
    *,
    quality: Any = None,
    w_min: float = 0.0,
    w_max: float = 16.0,
    temperature: float = 1.0,
    normalize: str = "batch",
):
    """Per-sequence iw-SFT weights (a 1-D float tensor, no grad).

    ``cur_logp`` / ``ref_logp``: summed log-probabilities of each sequence's trained tokens under
    the current and the reference model; ``lengths``: how many tokens were summed. A sequence
    with no trained token gets weight 0 and is left out of the batch mean.
    """
    import torch

    cur = torch.as_tensor(cur_logp, dtype=torch.float64).detach()
    ref = torch.as_tensor(ref_logp, dtype=torch.float64).detach().to(cur.device)
    n = torch.as_tensor(lengths, dtype=torch.float64).to(cur.device)
    if not (cur.shape == ref.shape == n.shape) or cur.dim() != 1:
        raise ValueError("cur_logp, ref_logp and lengths must be 1-D and of one length")
    if w_min < 0 or w_max < w_min:
        raise ValueError(f"need 0 <= w_min <= w_max, got [{w_min}, {w_max}]")
    if normalize not in ("batch", "none"):
        raise ValueError(f"normalize is 'batch' or 'none', got {normalize!r}")
    valid = n > 0
    mean_diff = (cur - ref) / n.clamp(min=1.0)
    w = torch.exp(temperature * mean_diff).clamp(min=w_min, max=w_max)
    w = torch.where(valid, w, torch.zeros_like(w))
    if normalize == "batch" and bool(valid.any()):
        mean = w[valid].mean()
        if mean > 0:
            w = w / mean
    if quality is not None:
        w = w * torch.as_tensor(quality, dtype=torch.float64).to(cur.device)
    return w.to(torch.float32)
