"""Stable assignment of series to shards.

The shard of a series depends only on its id and the number of shards: the first 8 bytes
(big-endian) of the BLAKE2b digest of the UTF-8 id, modulo ``n_shards``. Unlike Python's
``hash()`` (salted per process), this is the same in every process, on every machine and in
every Python version, so a rerun, a retry on another worker and the CLI agree.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

_DIGEST_SIZE = 8


def _check(n_shards: int) -> int:
    if isinstance(n_shards, bool) or int(n_shards) != n_shards or n_shards < 1:
        raise ValueError(f"n_shards must be a positive integer, got {n_shards!r}")
    return int(n_shards)


def _digest(unique_id: str) -> bytes:
    return hashlib.blake2b(unique_id.encode("utf-8"), digest_size=_DIGEST_SIZE).digest()


def shard_of(unique_id: str, n_shards: int) -> int:
    """Shard (0 .. n_shards - 1) of one series id."""
    n_shards = _check(n_shards)
    return int.from_bytes(_digest(str(unique_id)), "big") % n_shards


def assign_shards(ids: pd.Series | Sequence[str] | Iterable[str], n_shards: int) -> np.ndarray:
    """Shard of every id (int64 array, same order and length as ``ids``); ids are cast to str."""
    n_shards = _check(n_shards)
    if isinstance(ids, pd.Series | pd.Index):
        values = ids.to_numpy(dtype=object)
    else:
        values = np.fromiter(ids, dtype=object)
    # Hash each distinct id once (ids repeat in a long frame), then broadcast back.
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    digests = b"".join(_digest(str(u)) for u in uniques)
    hashed = np.frombuffer(digests, dtype=">u8")
    shards = (hashed % np.uint64(n_shards)).astype(np.int64)
    return shards[codes] if len(codes) else np.empty(0, dtype=np.int64)
