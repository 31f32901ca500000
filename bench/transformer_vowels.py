#!/usr/bin/env python3
"""Japanese Vowels with a pre-LN transformer encoder in PyTorch: the network and
options of examples/transformer_japanese_vowels.rs, for comparing test accuracies.

Network (the `transformer` template): per-channel z-score of the input
(population statistics over every real step of the training set), Linear(64)
plus a learned position embedding (positions 0-based from each sequence's
first step, 32 of them), two blocks of [LayerNorm -> multi-head
self-attention (4 heads, K = V = O = 64, padded keys masked) -> +,
LayerNorm -> Linear(128) -> ReLU -> Linear(64) -> +], mean over each
sequence's real steps, Linear(9); cross-entropy.

Options (MATLAB's defaults as seqnet has them): Glorot-uniform weights for
every linear map and projection (fans in/out), zero biases, layer norm scale 1
and offset 0, position embedding normal(0, 0.01); Adam, learning rate 1e-3,
betas 0.9/0.999, eps 1e-8; L2 1e-4 added to the gradients of the weights,
layer norm scales and offsets and the position embedding (MATLAB's L2
factors: 1 for those, 0 for biases); mini-batch 27, shuffled every epoch,
right padding to the longest sequence of the mini-batch, 60 epochs.

    python3 bench/transformer_vowels.py [--seeds 0,1,2] [--epochs 60] [--threads 2]
"""

import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import read_ts  # noqa: E402  (the .ts reader the benchmark uses)
from cnn1d_vowels import batch  # noqa: E402  (z-scored, padded [B, C, T] and mask)


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


def run(torch, data_dir, seed, epochs):
    train, train_y, k = read_ts(os.path.join(data_dir, "JapaneseVowels_TRAIN.ts"))
    test, test_y, _ = read_ts(os.path.join(data_dir, "JapaneseVowels_TEST.ts"))
    train = [torch.tensor(s, dtype=torch.float64) for s in train]
    test = [torch.tensor(s, dtype=torch.float64) for s in test]
    allsteps = torch.cat(train)
    mean, std = allsteps.mean(dim=0), allsteps.std(dim=0, unbiased=False)
    train = [s.float() for s in train]
    test = [s.float() for s in test]
    mean, std = mean.float(), std.float()
    ty = torch.tensor(train_y)
    torch.manual_seed(seed)
    net = build(torch, train[0].shape[1], k)
    decay, plain = [], []
    for name, p in net.named_parameters():
        is_bias = name.endswith(".bias") and ".ln" not in name
        (plain if is_bias else decay).append(p)
    opt = torch.optim.Adam(
        [{"params": decay, "weight_decay": 1e-4}, {"params": plain, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    net.train()
    for _ in range(epochs):
        order = torch.randperm(len(train), generator=gen).tolist()
        for b0 in range(0, len(order) - 26, 27):
            idx = order[b0 : b0 + 27]
            x, mask = batch(torch, train, idx, mean, std)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x, mask), ty[idx])
            loss.backward()
            opt.step()
    train_time = time.perf_counter() - t0
    net.eval()
    correct = 0
    with torch.no_grad():
        for b0 in range(0, len(test), 27):
            idx = list(range(b0, min(b0 + 27, len(test))))
            x, mask = batch(torch, test, idx, mean, std)
            pred = net(x, mask).argmax(dim=1)
            correct += sum(int(p) == test_y[i] for p, i in zip(pred.tolist(), idx))
    return correct, len(test), train_time, loss.item()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data-dir", default=os.path.join(here, "..", "data", "japanese_vowels"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads")
    for seed in [int(s) for s in a.seeds.split(",") if s]:
        correct, n, secs, loss = run(torch, a.data_dir, seed, a.epochs)
        print(
            f"seed={seed} test_accuracy={100.0 * correct / n:.2f}% ({correct}/{n}) "
            f"train_s={secs:.1f} final_loss={loss:.4f}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
