#!/usr/bin/env python3
"""seqnet against PyTorch on the README's sequence-to-sequence runs, with the
same data, network and training options:

1. Waveform labelling: a BiLSTM (64 hidden units per direction) labels every
   step of 300 generated signals as sine, square or sawtooth; 20 epochs of
   adam, learning rate 0.01, mini-batches of 16, gradient threshold 1 (each
   learnable's L2 norm), L2 regularization 1e-4 on the weights, shuffled every
   epoch, the last partial mini-batch kept. Tested per step on 100 signals.
2. Sine-series forecasting: an LSTM (64) -> fully connected (50) -> dropout
   (0.5) -> fully connected (1) predicts the next step of 60 series; 100 epochs
   of adam, learning rate 0.01, mini-batches of 10, the same threshold and L2.
   Tested on 20 series primed on 150 steps, forecasting 49 steps closed loop
   (own predictions fed back) and open loop (true values fed back).

Both sides read the folders `seqnet generate-waveforms` and
`seqnet generate-series` write. PyTorch's network is built as seqnet's
templates are: Glorot input weights, orthogonal recurrent weights, forget-gate
bias 1, other biases 0; the loss is seqnet's (MATLAB's): per observation the
mean over its real steps, then the mean over the mini-batch; padded steps are
packed away (`pack_padded_sequence`), as seqnet's mask leaves them out. The L2
term is added to the gradients before clipping, as MATLAB does.

Usage: python3 bench/seq2seq_compare.py [--seqnet target/release/seqnet]
       [--out out/compare] [--threads 2] [--seed 0]
Prints one line per run and side:
    run=<name> side=<seqnet|pytorch> <metric>=<value> train_s=<seconds>
"""

import argparse
import csv
import math
import os
import re
import subprocess
import sys
import time

import numpy as np

try:
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
except ImportError:  # pragma: no cover
    sys.exit("PyTorch is not installed: pip install torch --index-url https://download.pytorch.org/whl/cpu")


def sh(seqnet, *args):
    """Runs seqnet; returns standard output (and fails loudly)."""
    r = subprocess.run([seqnet, *args], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"seqnet {' '.join(args)} failed:\n{r.stderr}")
    return r.stdout


def value(text, key):
    m = re.findall(rf"{key}=([0-9.eE+-]+)", text)
    return float(m[-1]) if m else float("nan")


def seconds(text):
    m = re.search(r"in ([0-9.]+) s", text)
    return float(m.group(1)) if m else float("nan")


def read_folder(folder):
    """(sequences [T, C] float32, targets) of a datastore folder."""
    xs, ys = [], []
    with open(os.path.join(folder, "labels.csv")) as f:
        for row in list(csv.reader(f))[1:]:
            xs.append(np.load(os.path.join(folder, row[0])).astype(np.float32))
            ys.append(np.load(os.path.join(folder, row[1])))
    return xs, ys


# ---------------------------------------------------------------------------
# Networks, initialized as seqnet's templates are.
# ---------------------------------------------------------------------------


def init_lstm(lstm, hidden):
    for name, p in lstm.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_uniform_(p)
        elif name.startswith("weight_hh"):
            # seqnet (as MATLAB) draws one orthogonal matrix per layer [4H, H].
            nn.init.orthogonal_(p)
        elif name.startswith("bias_ih"):
            nn.init.zeros_(p)
            p.data[hidden : 2 * hidden] = 1.0  # torch's gate order: i, f, g, o
        elif name.startswith("bias_hh"):
            nn.init.zeros_(p)


def linear(i, o):
    fc = nn.Linear(i, o)
    nn.init.xavier_uniform_(fc.weight)
    nn.init.zeros_(fc.bias)
    return fc


class WaveLabeller(nn.Module):
    """sequenceInput(1) -> bilstm(64, sequence) -> fc(3) -> softmax."""

    def __init__(self, hidden=64, classes=3):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True, bidirectional=True)
        init_lstm(self.lstm, hidden)
        self.fc = linear(2 * hidden, classes)

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.fc(out)  # logits [B, T, K]


class Forecaster(nn.Module):
    """sequenceInput(1) -> lstm(64, sequence) -> fc(50) -> dropout(0.5) -> fc(1)."""

    def __init__(self, hidden=64):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden, batch_first=True)
        init_lstm(self.lstm, hidden)
        self.fc1 = linear(hidden, 50)
        self.drop = nn.Dropout(0.5)
        self.fc2 = linear(50, 1)

    def head(self, h):
        return self.fc2(self.drop(self.fc1(h)))

    def forward(self, x, lengths):
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return self.head(out)

    def step(self, x, state):
        out, state = self.lstm(x, state)
        return self.head(out), state


# ---------------------------------------------------------------------------
# Training with seqnet's (MATLAB's) options.
# ---------------------------------------------------------------------------


def pad(seqs):
    lengths = torch.tensor([len(s) for s in seqs])
    t = int(lengths.max())
    x = torch.zeros(len(seqs), t, seqs[0].shape[1])
    for i, s in enumerate(seqs):
        x[i, : len(s)] = torch.from_numpy(s)
    return x, lengths


def mask_of(lengths, t):
    return (torch.arange(t)[None, :] < lengths[:, None]).float()


def train(model, loss_fn, xs, ys, epochs, batch, lr, seed, l2=1e-4, threshold=1.0):
    """Adam; L2 on weights (not biases) added to the gradients, then each
    learnable's gradient clipped to L2 norm `threshold`; shuffled every epoch;
    the last partial mini-batch kept."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    rng = np.random.default_rng(seed)
    n = len(xs)
    model.train()
    for _ in range(epochs):
        order = rng.permutation(n)
        for start in range(0, n, batch):
            idx = order[start : start + batch]
            x, lengths = pad([xs[i] for i in idx])
            loss = loss_fn(model(x, lengths), [ys[i] for i in idx], lengths)
            opt.zero_grad()
            loss.backward()
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if "bias" not in name:
                        p.grad += l2 * p
                    norm = p.grad.norm()
                    if norm > threshold:
                        p.grad *= threshold / norm
            opt.step()


def classification_loss(logits, ys, lengths):
    """Per observation the mean cross-entropy over its real steps, then the mean."""
    t = logits.shape[1]
    y = torch.zeros(len(ys), t, dtype=torch.long)
    for i, v in enumerate(ys):
        y[i, : len(v)] = torch.from_numpy(v.astype(np.int64))
    ce = nn.functional.cross_entropy(logits.transpose(1, 2), y, reduction="none")
    m = mask_of(lengths, t)
    return ((ce * m).sum(1) / lengths).mean()


def regression_loss(pred, ys, lengths):
    """Per observation half the squared error summed over responses, averaged
    over its real steps, then the mean over the mini-batch."""
    y, _ = pad([v.reshape(len(v), -1).astype(np.float32) for v in ys])
    m = mask_of(lengths, pred.shape[1])
    se = 0.5 * ((pred - y) ** 2).sum(2)
    return ((se * m).sum(1) / lengths).mean()


# ---------------------------------------------------------------------------
# The two runs.
# ---------------------------------------------------------------------------


def waveforms(args, out):
    train_dir, test_dir = os.path.join(out, "waves/train"), os.path.join(out, "waves/test")
    s = args.seqnet
    sh(s, "generate-waveforms", "--out", train_dir, "--count", "300", "--seed", "1")
    sh(s, "generate-waveforms", "--out", test_dir, "--count", "100", "--seed", "2")
    net = os.path.join(out, "waves.json")
    with open(net, "w") as f:
        f.write(sh(s, "new", "seq2seq-class", "--features", "1", "--classes", "3",
                   "--layer", "bilstm", "--hidden", "64"))
    model = os.path.join(out, "waves.safetensors")
    trained = sh(s, "train", "--net", net, "--data", train_dir, "--epochs", "20",
                 "--mini-batch-size", "16", "--learn-rate", "0.01", "--gradient-threshold", "1",
                 "--shuffle", "every-epoch", "--seed", str(args.seed), "--quiet", "--out", model)
    predicted = sh(s, "predict", "--model", model, "--data", test_dir,
                   "--out", os.path.join(out, "waves.csv"))
    print(f"run=waveforms side=seqnet accuracy={value(predicted, 'accuracy'):.4f} "
          f"n={int(value(predicted, 'n'))} train_s={seconds(trained):.1f}", flush=True)

    torch.manual_seed(args.seed)
    xs, ys = read_folder(train_dir)
    m = WaveLabeller()
    t0 = time.perf_counter()
    train(m, classification_loss, xs, ys, epochs=20, batch=16, lr=0.01, seed=args.seed)
    took = time.perf_counter() - t0
    tx, ty = read_folder(test_dir)
    m.eval()
    right = total = 0
    with torch.no_grad():
        for start in range(0, len(tx), 16):
            x, lengths = pad(tx[start : start + 16])
            pred = m(x, lengths).argmax(2)
            for i, y in enumerate(ty[start : start + 16]):
                right += int((pred[i, : len(y)].numpy() == y).sum())
                total += len(y)
    print(f"run=waveforms side=pytorch accuracy={right / total:.4f} n={total} "
          f"train_s={took:.1f}", flush=True)


def forecast_torch(m, tx, prime, steps, open_loop):
    """RMSE over the known forecast steps, primed on `prime` steps."""
    m.eval()
    se, n = 0.0, 0
    with torch.no_grad():
        for x in tx:
            seq = torch.from_numpy(x[None, :prime])
            out, state = m.step(seq, None)
            nxt = out[:, -1:, :]
            truth = x[prime : prime + steps]
            for j in range(steps):
                if j < len(truth):
                    se += float(((nxt[0, 0] - torch.from_numpy(truth[j])) ** 2).sum())
                    n += truth.shape[1]
                if j + 1 == steps:
                    break
                feed = torch.from_numpy(truth[j][None, None]) if open_loop and j < len(truth) else nxt
                nxt, state = m.step(feed, state)
    return math.sqrt(se / n), n


def series(args, out):
    train_dir, test_dir = os.path.join(out, "series/train"), os.path.join(out, "series/test")
    s = args.seqnet
    sh(s, "generate-series", "--out", train_dir, "--count", "60", "--seed", "1")
    sh(s, "generate-series", "--out", test_dir, "--count", "20", "--seed", "2")
    net = os.path.join(out, "series.json")
    with open(net, "w") as f:
        f.write(sh(s, "new", "seq2seq-regress", "--features", "1", "--responses", "1",
                   "--hidden", "64"))
    model = os.path.join(out, "series.safetensors")
    trained = sh(s, "train", "--net", net, "--data", train_dir, "--epochs", "100",
                 "--mini-batch-size", "10", "--learn-rate", "0.01", "--gradient-threshold", "1",
                 "--shuffle", "every-epoch", "--seed", str(args.seed), "--quiet", "--out", model)
    results = {}
    for mode in ["closed-loop", "open-loop"]:
        f = sh(s, "forecast", "--model", model, "--data", test_dir, "--prime", "150",
               "--steps", "49", "--mode", mode, "--out", os.path.join(out, f"{mode}.csv"))
        results[mode] = (value(f, "rmse"), int(value(f, "n")))
    for mode, (rmse, n) in results.items():
        print(f"run=forecast-{mode} side=seqnet rmse={rmse:.4f} n={n} "
              f"train_s={seconds(trained):.1f}", flush=True)

    torch.manual_seed(args.seed)
    xs, ys = read_folder(train_dir)
    m = Forecaster()
    t0 = time.perf_counter()
    train(m, regression_loss, xs, ys, epochs=100, batch=10, lr=0.01, seed=args.seed)
    took = time.perf_counter() - t0
    tx, _ = read_folder(test_dir)
    for mode, open_loop in [("closed-loop", False), ("open-loop", True)]:
        rmse, n = forecast_torch(m, tx, 150, 49, open_loop)
        print(f"run=forecast-{mode} side=pytorch rmse={rmse:.4f} n={n} train_s={took:.1f}",
              flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seqnet", default="target/release/seqnet")
    ap.add_argument("--out", default="out/compare")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", choices=["waveforms", "forecast"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    print(f"# torch {torch.__version__}, {args.threads} threads", flush=True)
    if args.only in (None, "waveforms"):
        waveforms(args, args.out)
    if args.only in (None, "forecast"):
        series(args, args.out)


if __name__ == "__main__":
    main()
