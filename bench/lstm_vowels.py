#!/usr/bin/env python3
"""Japanese Vowels (or --data SET) with MATLAB's LSTM network in PyTorch: the
network and options of examples/japanese_vowels.rs (and `seqnet demo`), for
comparing test accuracies.

Network: no input normalization, LSTM(100) over the sequence (gate order i, f,
g, o as MATLAB's and seqnet's), each sequence's last real step, Linear(classes);
cross-entropy.

Options (MATLAB's defaults as seqnet has them): input weights Glorot-uniform
(fans C and 4H), recurrent weights orthogonal, bias 'unit-forget-gate' (1 on
the forget gate's quarter, 0 elsewhere; PyTorch's second bias bias_hh is held
at zero so that the one learnable bias is MATLAB's), fully connected
Glorot-uniform with zero bias; Adam, learning rate 1e-3, betas 0.9/0.999, eps
1e-8; L2 1e-4 on the weights (L2 factor 0 for biases); gradient threshold 1
per learnable (MATLAB's 'l2norm' method); 100 epochs; training set sorted by
length, no shuffling; mini-batch 27 on Japanese Vowels (the other sets' in
bench/ucr.py).

    python3 bench/lstm_vowels.py [--data JapaneseVowels|BasicMotions|GunPoint]
        [--seeds 0,1,2] [--epochs 100] [--threads 1]
"""

import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ucr  # noqa: E402  (data sets, mini-batches, training loop, command line)


def build(torch, channels, classes, _name, hidden=100):
    nn = torch.nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(channels, hidden, batch_first=True)
            h4 = 4 * hidden
            bound = math.sqrt(6.0 / (channels + h4))
            nn.init.uniform_(self.lstm.weight_ih_l0, -bound, bound)
            nn.init.orthogonal_(self.lstm.weight_hh_l0)
            with torch.no_grad():
                self.lstm.bias_ih_l0.zero_()
                self.lstm.bias_ih_l0[hidden : 2 * hidden] = 1.0
                self.lstm.bias_hh_l0.zero_()
            self.lstm.bias_hh_l0.requires_grad_(False)
            self.fc = nn.Linear(hidden, classes)
            bound = math.sqrt(6.0 / (hidden + classes))
            nn.init.uniform_(self.fc.weight, -bound, bound)
            nn.init.zeros_(self.fc.bias)

        def forward(self, x, mask):  # x [B, C, T] right-padded, mask [B, 1, T]
            y, _ = self.lstm(x.transpose(1, 2))  # [B, T, H]
            last = mask[:, 0, :].sum(dim=1).long() - 1
            return self.fc(y[torch.arange(y.shape[0]), last])

    return Net()


def options(name, epochs):
    _folder, _longest, mini_batch, _epochs = ucr.DATA_SETS[name]
    return {
        "mini_batch": mini_batch,
        "epochs": epochs or 100,
        "zscore": False,
        "shuffle": False,
        "sort": True,
        "l2": 1e-4,
        "no_decay": lambda n: "bias" in n,
        "threshold": 1.0,
    }


if __name__ == "__main__":
    sys.exit(ucr.main(__doc__, build, options))
