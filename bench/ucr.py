#!/usr/bin/env python3
"""What the PyTorch accuracy scripts share (cnn1d_vowels.py, transformer_vowels.py,
lstm_vowels.py): the UCR/UEA classification sets in data/ with their per-set
options, loading, z-score statistics, padded and masked mini-batches, the
training loop with MATLAB's options as seqnet has them, test accuracy, and the
command line (--data SET --seeds 0,1,2 --epochs N --threads N).

The per-set options must agree with examples/common/mod.rs, seqnet's side.

MATLAB's training options as seqnet has them, and how they are done here:
- L2 regularization adds l2 * w to the gradient of each learnable with L2
  factor 1 before the solver step: Adam's `weight_decay` does exactly that
  (not AdamW's decoupled decay); learnables with L2 factor 0 (MATLAB's biases)
  go in a group without it.
- GradientThreshold with MATLAB's default method 'l2norm' rescales each
  learnable's gradient whose own L2 norm exceeds the threshold (not the
  global norm torch.nn.utils.clip_grad_norm_ takes over all of them), after
  the L2 term is added, as MATLAB does.
- The last mini-batch of an epoch is dropped when it would be partial
  (MATLAB's default for trainNetwork); shuffling is a fresh permutation each
  epoch; sequences are right-padded to the longest of the mini-batch.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import read_ts  # noqa: E402  (the .ts reader the benchmark uses)

HERE = os.path.dirname(os.path.abspath(__file__))

# name -> (folder, longest sequence, mini-batch, epochs of cnn1d/transformer);
# the same as DATA_SETS in examples/common/mod.rs.
DATA_SETS = {
    "JapaneseVowels": ("japanese_vowels", 32, 27, 60),
    "BasicMotions": ("basic_motions", 100, 10, 100),
    "GunPoint": ("gun_point", 150, 10, 100),
}


def data_set(name):
    """The canonical name of a set (case-insensitive, or its folder)."""
    for key, (folder, *_rest) in DATA_SETS.items():
        if name.lower() == key.lower() or name == folder:
            return key
    raise SystemExit(f"--data {name}: not a data set in data/ (known: {list(DATA_SETS)})")


def load(torch, name):
    """Train and test sets as lists of float32 [T, C] tensors and label lists."""
    folder = DATA_SETS[name][0]
    path = os.path.join(HERE, "..", "data", folder, f"{name}_{{}}.ts")
    train, train_y, k = read_ts(path.format("TRAIN"))
    test, test_y, _ = read_ts(path.format("TEST"))
    train = [torch.tensor(s, dtype=torch.float32) for s in train]
    test = [torch.tensor(s, dtype=torch.float32) for s in test]
    return train, train_y, test, test_y, k


def zscore_stats(torch, seqs):
    """Per-channel mean and population standard deviation over every step of
    `seqs` (computed in float64, as seqnet's ChannelStats does)."""
    allsteps = torch.cat([s.double() for s in seqs])
    return allsteps.mean(dim=0).float(), allsteps.std(dim=0, unbiased=False).float()


def batch(torch, seqs, idx, mean, std):
    """The sequences `idx`, z-scored, right-padded with zeros: x [B, C, T] and
    mask [B, 1, T] (1 at real steps)."""
    lengths = [len(seqs[i]) for i in idx]
    t = max(lengths)
    x = torch.zeros(len(idx), seqs[idx[0]].shape[1], t)
    mask = torch.zeros(len(idx), 1, t)
    for j, i in enumerate(idx):
        x[j, :, : lengths[j]] = ((seqs[i] - mean) / std).T
        mask[j, 0, : lengths[j]] = 1.0
    return x, mask


def clip_each(params, threshold):
    """MATLAB's 'l2norm' gradient threshold: each learnable on its own."""
    for p in params:
        if p.grad is not None:
            norm = p.grad.norm()
            if norm > threshold:
                p.grad.mul_(threshold / norm)


def train_and_test(torch, net, data, opts, seed):
    """Trains `net` (called as net(x [B, C, T], mask [B, 1, T]) -> [B, K]
    scores) and returns (correct, tested, train seconds, last loss).

    opts: mini_batch, epochs, zscore (bool), shuffle (bool; else the order
    `sort` gives), sort (bool: train sorted by length), l2, no_decay (a
    predicate on parameter names: L2 factor 0), threshold (None or float),
    on_loss (optional: called with each mini-batch's loss)."""
    train, train_y, test, test_y = data
    if opts["zscore"]:
        mean, std = zscore_stats(torch, train)
    else:
        c = train[0].shape[1]
        mean, std = torch.zeros(c), torch.ones(c)
    ty = torch.tensor(train_y)
    decay, plain = [], []
    for name, p in net.named_parameters():
        if p.requires_grad:
            (plain if opts["no_decay"](name) else decay).append(p)
    opt = torch.optim.Adam(
        [{"params": decay, "weight_decay": opts["l2"]}, {"params": plain, "weight_decay": 0.0}],
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    threshold = opts.get("threshold")
    if threshold is not None:
        # Clip after the L2 term, as MATLAB does: fold it into the gradient here.
        for g in opt.param_groups:
            g["fold"], g["weight_decay"] = g["weight_decay"], 0.0
    gen = torch.Generator().manual_seed(seed)
    order = list(range(len(train)))
    if opts.get("sort"):
        order.sort(key=lambda i: len(train[i]))
    m = opts["mini_batch"]
    t0 = time.perf_counter()
    net.train()
    loss = None
    for _ in range(opts["epochs"]):
        if opts["shuffle"]:
            order = torch.randperm(len(train), generator=gen).tolist()
        for b0 in range(0, len(order) - m + 1, m):
            idx = order[b0 : b0 + m]
            x, mask = batch(torch, train, idx, mean, std)
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x, mask), ty[idx])
            loss.backward()
            if threshold is not None:
                with torch.no_grad():
                    for g in opt.param_groups:
                        for p in g["params"]:
                            if g["fold"]:
                                p.grad.add_(p, alpha=g["fold"])
                clip_each(net.parameters(), threshold)
            opt.step()
            if opts.get("on_loss"):
                opts["on_loss"](loss.item())
    train_time = time.perf_counter() - t0
    net.eval()
    correct = 0
    with torch.no_grad():
        for b0 in range(0, len(test), m):
            idx = list(range(b0, min(b0 + m, len(test))))
            x, mask = batch(torch, test, idx, mean, std)
            pred = net(x, mask).argmax(dim=1)
            correct += sum(int(p) == test_y[i] for p, i in zip(pred.tolist(), idx))
    return correct, len(test), train_time, loss.item()


def main(doc, build, options):
    """The command line of an accuracy script.

    build(torch, channels, classes, set_name) -> the network (after
    torch.manual_seed(seed)); options(set_name, epochs or None) -> the opts of
    train_and_test."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--data", default="JapaneseVowels", help=", ".join(DATA_SETS))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=None, help="default: the set's")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    name = data_set(a.data)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch)", file=sys.stderr)
        return 2
    torch.set_num_threads(a.threads)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads, {name}")
    train, train_y, test, test_y, k = load(torch, name)
    opts = options(name, a.epochs)
    for seed in [int(s) for s in a.seeds.split(",") if s]:
        torch.manual_seed(seed)
        net = build(torch, train[0].shape[1], k, name)
        correct, n, secs, loss = train_and_test(
            torch, net, (train, train_y, test, test_y), opts, seed
        )
        print(
            f"seed={seed} test_accuracy={100.0 * correct / n:.2f}% ({correct}/{n}) "
            f"train_s={secs:.1f} final_loss={loss:.4f}",
            flush=True,
        )
    return 0
