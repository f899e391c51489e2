"""Stable, balanced shard assignment."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from forecasting.data.sharding import assign_shards, shard_of

# Fixed points: a change of hash function or byte order must break these.
IDS = ["1_1", "10_77", "s0", "", "é-ü"]
EXPECTED_8 = [5, 5, 1, 4, 1]
EXPECTED_1000 = [965, 925, 513, 876, 129]


def test_fixed_values():
    assert [shard_of(uid, 8) for uid in IDS] == EXPECTED_8
    assert [shard_of(uid, 1000) for uid in IDS] == EXPECTED_1000


def test_assign_shards_matches_shard_of_for_every_input_kind():
    expected = np.array(EXPECTED_8)
    for ids in (IDS, tuple(IDS), pd.Series(IDS), pd.Index(IDS), np.array(IDS), iter(IDS)):
        result = assign_shards(ids, 8)
        assert result.dtype == np.int64
        np.testing.assert_array_equal(result, expected)


def test_repeated_ids_and_non_str_ids():
    result = assign_shards(pd.Series(["1_1", "s0", "1_1", "s0"]), 8)
    np.testing.assert_array_equal(result, [5, 1, 5, 1])
    assert assign_shards([1, 2], 7).tolist() == [shard_of("1", 7), shard_of("2", 7)]


def test_stable_across_processes():
    code = "from forecasting.data.sharding import shard_of; print([shard_of(u, 1000) for u in ['1_1', '10_77', 's0']])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # str hashes differ from this process's
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(EXPECTED_1000[:3])


def test_in_range_and_roughly_balanced():
    ids = [f"{store}_{dept}" for store in range(200) for dept in range(100)]
    for n_shards in (1, 7, 16, 64):
        shards = assign_shards(ids, n_shards)
        assert shards.min() >= 0 and shards.max() < n_shards
        counts = np.bincount(shards, minlength=n_shards)
        expected = len(ids) / n_shards
        assert counts.min() > 0.8 * expected and counts.max() < 1.2 * expected


def test_empty_and_invalid():
    assert assign_shards([], 4).shape == (0,)
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="n_shards"):
            shard_of("a", bad)
        with pytest.raises(ValueError, match="n_shards"):
            assign_shards(["a"], bad)
