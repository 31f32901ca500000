#!/usr/bin/env python3
"""Japanese Vowels (or --data SET) with a pre-LN transformer encoder in PyTorch: the network and
options of examples/transformer_japanese_vowels.rs, for comparing test accuracies.

Network (the `transformer` template): per-channel z-score of the input
(population statistics over every real step of the training set), Linear(64)
plus a learned position embedding (positions 0-based from each sequence's
first step, as many as the set's longest sequence: 32 for Japanese Vowels), two blocks of [LayerNorm -> multi-head
self-attention (4 heads, K = V = O = 64, padded keys masked) -> +,
LayerNorm -> Linear(128) -> ReLU -> Linear(64) -> +], mean over each
sequence's real steps, Linear(classes); cross-entropy.

Options (MATLAB's defaults as seqnet has them): Glorot-uniform weights for
every linear map and projection (fans in/out), zero biases, layer norm scale 1
and offset 0, position embedding normal(0, 0.01); Adam, learning rate 1e-3,
betas 0.9/0.999, eps 1e-8; L2 1e-4 added to the gradients of the weights,
layer norm scales and offsets and the position embedding (MATLAB's L2
factors: 1 for those, 0 for biases); shuffled every epoch, right padding to
the longest sequence of the mini-batch; mini-batch 27 and 60 epochs on
Japanese Vowels (the other sets' in bench/ucr.py).

    python3 bench/transformer_vowels.py [--data JapaneseVowels|BasicMotions|GunPoint]
        [--seeds 0,1,2] [--epochs N] [--threads 1]
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ucr  # noqa: E402  (data sets, mini-batches, training loop, command line)


def glorot(nn, lin):
    bound = math.sqrt(6.0 / (lin.in_features + lin.out_features))
    nn.init.uniform_(lin.weight, -bound, bound)
    nn.init.zeros_(lin.bias)
    return lin


def build(torch, channels, classes, d=64, heads=4, blocks=2, ffn=128, max_pos=32):
    nn = torch.nn

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.k, self.v, self.o = (glorot(nn, nn.Linear(d, d)) for _ in range(4))

        def forward(self, x, keep):  # x [B, T, D], keep [B, T] bool
            b, t, _ = x.shape
            split = lambda y: y.view(b, t, heads, d // heads).transpose(1, 2)  # noqa: E731
            q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
            s = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
            s = s.masked_fill(~keep[:, None, None, :], float("-inf"))
            a = torch.softmax(s, dim=-1) @ v
            return self.o(a.transpose(1, 2).reshape(b, t, d))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = Attention()
            self.fc1, self.fc2 = glorot(nn, nn.Linear(d, ffn)), glorot(nn, nn.Linear(ffn, d))

        def forward(self, x, keep):
            x = x + self.attn(self.ln1(x), keep)
            return x + self.fc2(torch.relu(self.fc1(self.ln2(x))))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = glorot(nn, nn.Linear(channels, d))
            self.pos = nn.Parameter(torch.randn(max_pos, d) * 0.01)
            self.blocks = nn.ModuleList(Block() for _ in range(blocks))
            self.fc = glorot(nn, nn.Linear(d, classes))

        def forward(self, x, mask):  # x [B, C, T], mask [B, 1, T]
            keep = mask[:, 0, :] > 0
            h = self.fc_in(x.transpose(1, 2)) + self.pos[: x.shape[2]]
            for blk in self.blocks:
                h = blk(h, keep)
            m = mask[:, 0, :, None]
            return self.fc((h * m).sum(dim=1) / m.sum(dim=1))

    return Net()


def options(name, epochs):
    _folder, _longest, mini_batch, set_epochs = ucr.DATA_SETS[name]
    return {
        "mini_batch": mini_batch,
        "epochs": epochs or set_epochs,
        "zscore": True,
        "shuffle": True,
        "l2": 1e-4,
        # MATLAB's L2 factor 0: the biases of the linear maps and projections
        # (not layer normalization's offset, named bias too).
        "no_decay": lambda n: n.endswith(".bias") and ".ln" not in n,
    }


def build_for(torch, channels, classes, name):
    return build(torch, channels, classes, max_pos=ucr.DATA_SETS[name][1])


if __name__ == "__main__":
    sys.exit(ucr.main(__doc__, build_for, options))
