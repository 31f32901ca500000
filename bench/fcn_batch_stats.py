#!/usr/bin/env python3
"""Evaluates a seqnet `cnn1d` model (a .safetensors written by `seqnet train`)
with bench/cnn1d_vowels.py's PyTorch network on a set's training sequences:
in eval mode (batch normalization's running statistics) and with each
mini-batch's own statistics, and compares the running statistics with the
whole training set's. A model that fits in training mode but not in eval mode
leans on batch statistics the running averages do not reproduce.

    seqnet new cnn1d --features 1 --classes 2 --normalization zscore > /tmp/gp.json
    seqnet train --net /tmp/gp.json --data data/gun_point/GunPoint_TRAIN.ts \\
        --out /tmp/gp2.safetensors --epochs 100 --mini-batch-size 10 \\
        --shuffle every-epoch --seed 2
    python3 bench/fcn_batch_stats.py /tmp/gp2.safetensors GunPoint
"""

import copy
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnn1d_vowels  # noqa: E402
import ucr  # noqa: E402


def main():
    import torch
    from safetensors.numpy import load_file

    path, name = sys.argv[1], ucr.data_set(sys.argv[2] if len(sys.argv) > 2 else "GunPoint")
    t = {k: torch.tensor(v) for k, v in load_file(path).items()}
    train, ty, _test, _tey, k = ucr.load(torch, name)
    m = ucr.DATA_SETS[name][2]
    net = cnn1d_vowels.build(torch, train[0].shape[1], k)
    sd = net.state_dict()
    for i in range(3):
        sd[f"convs.{i}.weight"], sd[f"convs.{i}.bias"] = t[f"conv1d_{i + 1}.Weights"], t[f"conv1d_{i + 1}.Bias"]
        b = f"batchnorm_{i + 1}."
        sd[f"bns.{i}.weight"], sd[f"bns.{i}.bias"] = t[b + "Scale"], t[b + "Offset"]
        sd[f"bns.{i}.running_mean"], sd[f"bns.{i}.running_var"] = t[b + "TrainedMean"], t[b + "TrainedVariance"]
    sd["fc.weight"], sd["fc.bias"] = t["fc.Weights"], t["fc.Bias"]
    net.load_state_dict(sd)
    mean, std = t["sequenceinput.Mean"], t["sequenceinput.StandardDeviation"]
    net.eval()
    print(f"eval mode (running statistics): {ucr.evaluate(torch, net, train, ty, m, mean, std)}/{len(train)}")
    batch_mode = copy.deepcopy(net).train()
    print(f"batch statistics (mini-batches of {m}): "
          f"{ucr.evaluate(torch, batch_mode, train, ty, m, mean, std)}/{len(train)}")
    x, mask = ucr.batch(torch, train, list(range(len(train))), mean, std)
    with torch.no_grad():
        for i, (conv, bn) in enumerate(zip(net.convs, net.bns)):
            z = conv(x * mask)
            n = mask.sum()
            mu = (z * mask).sum((0, 2)) / n
            var = (((z - mu[None, :, None]) * mask) ** 2).sum((0, 2)) / n
            shift = (mu - bn.running_mean).abs() / var.sqrt()
            ratio = var / bn.running_var
            print(f"layer {i + 1}: |mean - running| / sd: mean {shift.mean():.3f} max {shift.max():.3f}; "
                  f"variance / running: {ratio.min():.2f}–{ratio.max():.2f}")
            x = torch.relu(bn(z, mask))


if __name__ == "__main__":
    main()
