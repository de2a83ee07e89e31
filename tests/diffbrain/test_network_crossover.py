"""``sparse_impl = auto``: the crossover table's lookup, and the operator a network gets from it."""

import numpy as np
import pytest

from diffbrain.network.config import NetworkConfig
from diffbrain.network.crossover import CROSSOVER, Crossover, choose_impl
from diffbrain.network.model import EINetwork


def test_thresholds_interpolate_in_log_size_and_hold_beyond():
    table = Crossover(((100, 0.0), (1000, 0.2)))
    assert table.max_density(50) == 0.0 and table.max_density(10**6) == 0.2
    assert table.max_density(int(np.sqrt(100 * 1000))) == pytest.approx(0.1, abs=1e-3)
    assert table.sparse_wins(1000, 0.2) and not table.sparse_wins(1000, 0.21)


@pytest.mark.parametrize("method", sorted(CROSSOVER))
def test_every_method_has_ascending_rows_and_large_sparse_networks_go_event_driven(method):
    rows = CROSSOVER[method].thresholds
    assert [n for n, _ in rows] == sorted(n for n, _ in rows)
    assert all(0.0 <= d <= 1.0 for _, d in rows)
    assert choose_impl(method, 100_000, 80 / 100_000) == "event"  # 10^5 neurons never go dense


def test_auto_picks_per_size_and_explicit_choices_stay():
    small = EINetwork(NetworkConfig(n_rec=50, conn_method="rand", conn_prob=0.2), 4, 2, method="bptt")
    assert small.sparse_impl == "masked_dense" and small.exc.impl == "masked_dense"
    big = EINetwork(NetworkConfig(n_rec=3000, conn_method="fixed_out", conn_num=20), 4, 2, method="simulation")
    assert big.sparse_impl == "event" and big.exc.weight.value.shape == (big.exc.structure.nnz,)
    forced = EINetwork(NetworkConfig(n_rec=50, conn_method="rand", conn_prob=0.2, sparse_impl="event"), 4, 2)
    assert forced.exc.impl == "event"
