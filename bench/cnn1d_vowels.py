#!/usr/bin/env python3
"""Japanese Vowels (or --data SET) with Wang et al.'s FCN in PyTorch: the network and options of
examples/cnn1d_japanese_vowels.rs, for comparing test accuracies.

Network (the `cnn1d` template): per-channel z-score of the input (population
statistics over every real step of the training set), three blocks of
Conv1d('same'; 128, 256, 128 filters of 8, 5, 3 steps) -> BatchNorm1d -> ReLU,
mean over each sequence's real steps, Linear(classes); cross-entropy.

Masked as seqnet masks a padded mini-batch, so that each sequence gets what it
gets alone: every convolution reads zeros past a sequence's end (its input is
multiplied by the mask), batch normalization takes its statistics over real
steps only (the running variance gets the unbiased one, momentum 0.1, eps
1e-5), and the pooling averages real steps only.

Options (MATLAB's defaults as seqnet has them): Glorot-uniform weights (fans
K*C_in and K*C_out for convolutions), zero biases; Adam, learning rate 1e-3,
betas 0.9/0.999, eps 1e-8; L2 1e-4 added to the gradients of the weights and
of batch normalization's scale and offset (MATLAB's L2 factors: 1 for those,
0 for biases); shuffled every epoch, right padding to the longest sequence
of the mini-batch; mini-batch 27 and 60 epochs on Japanese Vowels (the other
sets' in bench/ucr.py); prediction with the running statistics.

    python3 bench/cnn1d_vowels.py [--data JapaneseVowels|BasicMotions|GunPoint]
        [--seeds 0,1,2] [--epochs N] [--threads 1]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ucr  # noqa: E402  (data sets, mini-batches, training loop, command line)


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


def options(name, epochs):
    _folder, _longest, mini_batch, set_epochs = ucr.DATA_SETS[name]
    return {
        "mini_batch": mini_batch,
        "epochs": epochs or set_epochs,
        "zscore": True,
        "shuffle": True,
        "l2": 1e-4,
        # MATLAB's L2 factor 0: the convolutions' and fc's biases (not batch
        # normalization's offset, named bias too).
        "no_decay": lambda n: n.endswith(".bias") and not n.startswith("bns."),
    }


if __name__ == "__main__":
    sys.exit(ucr.main(__doc__, lambda torch, c, k, _name: build(torch, c, k), options))
