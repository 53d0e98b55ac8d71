"""GramAccumulator.merge_group: groups accumulated apart (other shifts, other batches) and merged give the spectra of
one accumulator fed everything, within float64 rounding (the ranks of a distributed trace merge this way)."""
from __future__ import annotations

import numpy as np
import pytest

from spinal_nb.errors import InputError
from spinal_nb.scores import GramAccumulator


def _feed(acc, x, g, parts):
    for idx in np.array_split(np.arange(len(x)), parts):
        acc.update(0, x[idx], g[idx])


@pytest.mark.parametrize("n_rows", [400, 60])  # groups stored as Grams (>= d rows each), or as rows
def test_merged_groups_give_the_spectra_of_one_accumulator(n_rows):
    rng = np.random.default_rng(7)
    d, G = 24, 4
    x = rng.standard_normal((n_rows, d)) * np.arange(1, d + 1) ** -0.6 + 40.0
    g = np.arange(n_rows) % G
    whole = GramAccumulator(1, d, G)
    _feed(whole, x, g, 3)
    ranks = [GramAccumulator(1, d, G) for _ in range(2)]
    for r, acc in enumerate(ranks):  # rank r holds groups g % 2 == r, in its own batches: its own shift
        keep = g % 2 == r
        _feed(acc, x[keep][::-1], g[keep][::-1], 2 + r)
    assert not np.array_equal(ranks[0].shift.numpy(), ranks[1].shift.numpy())
    merged = GramAccumulator(1, d, G)
    for grp in range(G):
        src = ranks[grp % 2]
        merged.merge_group(grp, dict(src.group_arrays(grp)), src.colsum[:, grp].numpy(), src.count[:, grp].numpy(),
                           src.shift.numpy())
    assert merged.count.tolist() == whole.count.tolist()
    assert np.array_equal(merged.shift.numpy(), ranks[0].shift.numpy())  # group 0's owner's shift, taken as is
    a_full, a_out = merged.spectra(0, list(range(G)))
    b_full, b_out = whole.spectra(0, list(range(G)))
    for a, b in zip([a_full, *a_out], [b_full, *b_out], strict=True):
        assert a.shape == b.shape
        assert np.max(np.abs(a**2 - b**2)) <= 1e-12 * b[0] ** 2
    with pytest.raises(InputError, match="already holds rows"):
        merged.merge_group(0, dict(ranks[0].group_arrays(0)), ranks[0].colsum[:, 0].numpy(),
                           ranks[0].count[:, 0].numpy(), ranks[0].shift.numpy())
