"""iw-SFT: the weight function on hand-computed numbers, then a real training step."""

from __future__ import annotations

import math

import pytest

from training.scripts.iw_sft import iw_sft_weights

E = math.e


def _w(*args, **kw):
    return iw_sft_weights(*args, **kw).tolist()


def test_it_weights_by_the_clipped_exp_of_the_mean_token_log_ratio():
    # Sequence 1: mean log-ratio (-2 - -4) / 2 = 1 → e. Sequence 2: 0 → 1.
    assert _w([-2.0, -6.0], [-4.0, -6.0], [2, 3], normalize="none") == pytest.approx([E, 1.0])
    # Temperature 2 doubles the exponent.
    assert _w([-2.0], [-4.0], [2], temperature=2.0, normalize="none") == pytest.approx([E**2])


def test_it_clips_to_the_bounds():
    got = _w([-2.0, -6.0, -9.0], [-4.0, -6.0, -3.0], [2, 3, 3], w_min=0.5, w_max=2.0,
             normalize="none")  # fmt: skip
    # e → 2 (upper clip), 1 stays, exp(-2) = 0.135 → 0.5 (lower clip)
    assert got == pytest.approx([2.0, 1.0, 0.5])


def test_it_normalises_over_the_batch_so_weights_average_one():
    got = _w([-2.0, -6.0], [-4.0, -6.0], [2, 3])
    assert got == pytest.approx([2 * E / (E + 1), 2 / (E + 1)])
    assert sum(got) / 2 == pytest.approx(1.0)
    # One sequence per batch: normalisation leaves nothing to weight.
    assert _w([-2.0], [-4.0], [2]) == pytest.approx([1.0])


def test_it_zeroes_sequences_without_trained_tokens_and_leaves_them_out_of_the_mean():
    assert _w([-2.0, 0.0], [-4.0, 0.0], [2, 0]) == pytest.approx([1.0, 0.0])
    assert _w([-2.0, 0.0], [-4.0, 0.0], [2, 0], normalize="none") == pytest.approx([E, 0.0])


def test_it_multiplies_the_quality_weight_after_normalising():
    got = _w([-2.0, -6.0], [-4.0, -6.0], [2, 3], quality=[0.5, 1.0])
    assert got == pytest.approx([E / (E + 1), 2 / (E + 1)])


def test_it_rejects_bad_settings():
    with pytest.raises(ValueError, match="1-D and of one length"):
        iw_sft_weights([1.0, 2.0], [1.0], [1, 1])
    with pytest.raises(ValueError, match="w_min"):
        iw_sft_weights([1.0], [1.0], [1], w_min=2.0, w_max=1.0)
    with pytest.raises(ValueError, match="normalize"):
        iw_sft_weights([1.0], [1.0], [1], normalize="ema")
