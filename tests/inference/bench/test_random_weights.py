"""The benchmarks' random weights (inference.bench.random_weights): fast fills of uninitialised layers."""

from __future__ import annotations

from torch import nn


def test_random_weights_fill_linears_and_only_the_tokenizers_embedding_rows():
    from inference.bench.random_weights import fill_layers_, uninitialised_layers

    with uninitialised_layers():
        layers = nn.Sequential(nn.Embedding(4096, 64), nn.Linear(64, 256))
    layers[0].weight.data.fill_(7.0)  # stands for "never touched"
    fill_layers_(layers, seed=3, rows=300, embedding_scale=0.05)
    embedding, linear = layers[0].weight, layers[1].weight
    assert embedding[:300].abs().max() <= 0.05 and (embedding[300:] == 7.0).all()
    assert linear.abs().max() <= 64**-0.5 and linear.std() > 0.3 * 64**-0.5 and (layers[1].bias == 0).all()
    assert nn.Linear(2, 2).weight.abs().sum() > 0  # the patch is gone after the block
