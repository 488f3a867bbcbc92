"""Masks are pure functions of the key; ToD layers route keys through a context."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tod_cleanse.layers import TurnOverDropout, insert_tod, tod_context, tod_modules
from tod_cleanse.masks import hash32, key_mask, keys_to_int64

SNIPPET = (
    "import torch, hashlib;"
    "from tod_cleanse.masks import key_mask, keys_to_int64;"
    "k = torch.tensor([0, 1, 2**40 + 5, -3, 123456789]);"
    "m = key_mask(k, 300, 0.3, layer_seed=2, seed=11);"
    "print(hashlib.sha256(m.numpy().tobytes()).hexdigest(), keys_to_int64(['a', 'b']).tolist())"
)


def _local_digest():
    import hashlib

    k = torch.tensor([0, 1, 2**40 + 5, -3, 123456789])
    m = key_mask(k, 300, 0.3, layer_seed=2, seed=11)
    return hashlib.sha256(m.numpy().tobytes()).hexdigest(), keys_to_int64(["a", "b"]).tolist()


def test_masks_identical_across_processes():
    outs = [
        subprocess.run([sys.executable, "-c", SNIPPET], capture_output=True, text=True, check=True)
        .stdout.split(" ", 1)
        for _ in range(2)
    ]
    digest, keys = _local_digest()
    for out_digest, out_keys in outs:
        assert out_digest == digest
        assert out_keys.strip() == str(keys)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.8])
def test_mask_density_matches_p(p):
    m = key_mask(torch.arange(2000), width=512, p=p, layer_seed=0)
    dropped = 1 - m.float().mean().item()
    # 1M Bernoulli draws: standard error ~5e-4
    assert abs(dropped - p) < 0.005
    # per-unit and per-key densities are not degenerate either
    assert abs(1 - m.float().mean(0).mean().item() - p) < 0.005
    assert m.float().mean(1).std().item() < 0.05


def test_masks_differ_across_keys_layers_and_seeds():
    keys = torch.arange(64)
    a = key_mask(keys, 256, 0.5, layer_seed=0)
    assert not torch.equal(a, key_mask(keys, 256, 0.5, layer_seed=1))
    assert not torch.equal(a, key_mask(keys, 256, 0.5, layer_seed=0, seed=1))
    # rows are pairwise different (agreement near 50% for p = 0.5)
    agree = (a[:, None, :] == a[None, :, :]).float().mean(-1)
    off = agree[~torch.eye(64, dtype=torch.bool)]
    assert off.max().item() < 0.7


def test_mask_does_not_depend_on_batch_position():
    keys = torch.tensor([5, 9, 2])
    m = key_mask(keys, 100, 0.4, 3)
    m_perm = key_mask(keys[[2, 0, 1]], 100, 0.4, 3)
    assert torch.equal(m[[2, 0, 1]], m_perm)


def test_mask_groups_share_masks():
    m = key_mask(torch.arange(500), 64, 0.5, 0, n_groups=4)
    assert torch.unique(m, dim=0).shape[0] <= 4


def test_hash32_stays_in_32_bits_and_matches_reference():
    x = torch.tensor([0, 1, 2, 2**32 - 1, 123456])

    def ref(v):  # pure-Python lowbias32
        v ^= v >> 16
        v = (v * 0x7FEB352D) & 0xFFFFFFFF
        v ^= v >> 15
        v = (v * 0x846CA68B) & 0xFFFFFFFF
        v ^= v >> 16
        return v

    assert hash32(x).tolist() == [ref(v) for v in x.tolist()]


def test_keys_to_int64_rejects_bad_keys():
    with pytest.raises(ValueError, match="missing value"):
        keys_to_int64(np.array(["a", None], dtype=object))
    with pytest.raises(TypeError, match="non-integral"):
        keys_to_int64([0.5, 1.0])
    with pytest.raises(ValueError, match="one-dimensional"):
        keys_to_int64(np.zeros((2, 2), dtype=int))


def test_seen_and_flipped_are_complementary_with_own_scaling():
    layer = TurnOverDropout(p=0.3, layer_seed=1).eval()
    x = torch.ones(8, 1000)
    keys = torch.arange(8)
    with tod_context(keys, "seen"):
        seen = layer(x)
    with tod_context(keys, "flipped"):
        flipped = layer(x)
    with tod_context(None, "full"):
        full = layer(x)
    assert torch.equal((seen > 0) ^ (flipped > 0), torch.ones_like(x, dtype=torch.bool))
    assert torch.allclose(seen[seen > 0], torch.tensor(1 / 0.7))
    assert torch.allclose(flipped[flipped > 0], torch.tensor(1 / 0.3))
    assert torch.equal(full, x)
    # each sub-network preserves the expected activation
    assert abs(seen.mean().item() - 1) < 0.05 and abs(flipped.mean().item() - 1) < 0.05


def test_cycle_batches_reuse_keys():
    layer = TurnOverDropout(p=0.5, layer_seed=0).eval()
    x = torch.randn(6, 20)
    keys = torch.tensor([3, 4])
    with tod_context(keys, "seen", cycle=True):
        y = layer(x)
    with tod_context(keys.repeat(3), "seen"):
        y_ref = layer(x)
    assert torch.equal(y, y_ref)
    with tod_context(keys, "seen"), pytest.raises(RuntimeError, match="2 keys"):
        layer(x)


def test_conv_channel_masks():
    layer = TurnOverDropout(p=0.5, dim=1).eval()
    x = torch.ones(2, 16, 4, 4)
    with tod_context(torch.tensor([0, 1]), "seen"):
        y = layer(x)
    per_channel = y.flatten(2)
    assert torch.equal(per_channel.min(-1).values, per_channel.max(-1).values)


def test_training_without_keys_is_an_error():
    layer = TurnOverDropout(p=0.5).train()
    with pytest.raises(RuntimeError, match="tod_context"):
        layer(torch.ones(2, 3))
    with pytest.raises(ValueError, match="needs the instance keys"):
        with tod_context(None, "seen"):
            pass
    with pytest.raises(ValueError, match="mode must be"):
        with tod_context(None, "other"):
            pass
    with pytest.raises(ValueError, match="p must be"):
        TurnOverDropout(p=0.0)


def test_insert_tod_replaces_dropout_with_distinct_layer_seeds():
    net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.1), nn.Linear(8, 8), nn.Dropout(0.1),
                        nn.Linear(8, 2))
    names = insert_tod(net, p=0.4, seed=3)
    assert names == ["1", "3"]
    mods = tod_modules(net)
    assert [m.layer_seed for m in mods] == [0, 1]
    assert all(m.p == 0.4 and m.seed == 3 for m in mods)
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())


def test_mask_groups_come_in_complementary_pairs():
    """With groups, a flipped sub-network is the seen sub-network of the partner group."""
    keys = torch.arange(2000)
    m = key_mask(keys, 128, 0.5, layer_seed=2, n_groups=6)
    masks = {tuple(row.tolist()) for row in torch.unique(m, dim=0)}
    assert len(masks) == 6
    for row in masks:
        assert tuple(not v for v in row) in masks
