#!/usr/bin/env python3
"""Japanese Vowels with Wang et al.'s FCN in PyTorch: the network and options of
examples/cnn1d_japanese_vowels.rs, for comparing test accuracies.

Network (the `cnn1d` template): per-channel z-score of the input (population
statistics over every real step of the training set), three blocks of
Conv1d('same'; 128, 256, 128 filters of 8, 5, 3 steps) -> BatchNorm1d -> ReLU,
mean over each sequence's real steps, Linear(9); cross-entropy.

Masked as seqnet masks a padded mini-batch, so that each sequence gets what it
gets alone: every convolution reads zeros past a sequence's end (its input is
multiplied by the mask), batch normalization takes its statistics over real
steps only (the running variance gets the unbiased one, momentum 0.1, eps
1e-5), and the pooling averages real steps only.

Options (MATLAB's defaults as seqnet has them): Glorot-uniform weights (fans
K*C_in and K*C_out for convolutions), zero biases; Adam, learning rate 1e-3,
betas 0.9/0.999, eps 1e-8; L2 1e-4 added to the gradients of the weights and
of batch normalization's scale and offset (MATLAB's L2 factors: 1 for those,
0 for biases); mini-batch 27, shuffled every epoch, right padding to the
longest sequence of the mini-batch, 60 epochs; prediction with the running
statistics.

    python3 bench/cnn1d_vowels.py [--seeds 0,1,2] [--epochs 60] [--threads 2]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import read_ts  # noqa: E402  (the .ts reader the benchmark uses)


def build(torch, channels, classes, filters=(128, 256, 128), sizes=(8, 5, 3)):
    nn = torch.nn

    class MaskedBatchNorm(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(c))
            self.bias = nn.Parameter(torch.zeros(c))
            self.register_buffer("running_mean", torch.zeros(c))
            self.register_buffer("running_var", torch.ones(c))

        def forward(self, x, mask):  # x [B, C, T], mask [B, 1, T]
            if self.training:
                n = mask.sum()
                mean = (x * mask).sum(dim=(0, 2)) / n
                var = (((x - mean[None, :, None]) * mask) ** 2).sum(dim=(0, 2)) / n
                with torch.no_grad():
                    self.running_mean.mul_(0.9).add_(0.1 * mean)
                    self.running_var.mul_(0.9).add_(0.1 * var * n / (n - 1))
            else:
                mean, var = self.running_mean, self.running_var
            xh = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + 1e-5)
            return (xh * self.weight[None, :, None] + self.bias[None, :, None]) * mask

    class Fcn(nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = nn.ModuleList()
            self.bns = nn.ModuleList()
            c = channels
            for n, k in zip(filters, sizes):
                conv = nn.Conv1d(c, n, k, padding="same")
                bound = (6.0 / (k * c + k * n)) ** 0.5
                nn.init.uniform_(conv.weight, -bound, bound)
                nn.init.zeros_(conv.bias)
                self.convs.append(conv)
                self.bns.append(MaskedBatchNorm(n))
                c = n
            self.fc = nn.Linear(c, classes)
            bound = (6.0 / (c + classes)) ** 0.5
            nn.init.uniform_(self.fc.weight, -bound, bound)
            nn.init.zeros_(self.fc.bias)

        def forward(self, x, mask):  # x [B, C, T] zero at padded steps
            for conv, bn in zip(self.convs, self.bns):
                x = torch.relu(bn(conv(x * mask), mask))
            pooled = (x * mask).sum(dim=2) / mask.sum(dim=2)
            return self.fc(pooled)

    return Fcn()


def batch(torch, seqs, idx, mean, std):
    lengths = [len(seqs[i]) for i in idx]
    t = max(lengths)
    x = torch.zeros(len(idx), seqs[idx[0]].shape[1], t)
    mask = torch.zeros(len(idx), 1, t)
    for j, i in enumerate(idx):
        x[j, :, : lengths[j]] = ((seqs[i] - mean) / std).T
        mask[j, 0, : lengths[j]] = 1.0
    return x, mask


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
        is_bias = name.endswith(".bias") and not name.startswith("bns.")
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
