#!/usr/bin/env python3
"""The workloads of bench/WORKLOADS.md in PyTorch (and ONNX Runtime where it is
installed), on 2 threads, printing seqnet's line format:

    workload=<name> median_ms=<float> [gflop_per_s=<float>] peer=<peer> ...

With --seqnet FILE (the output of `seqnet bench`, or of the bench example) it
then prints, per workload, seqnet's median over the fastest peer's and over
PyTorch's default path, and the issue's target for that ratio.

Used by bench/compare.sh; needs torch (and optionally onnxruntime + onnx).
"""

import argparse
import os
import statistics
import sys
import time
import warnings

THREADS = 2


def reset_peak_memory():
    """Resets the process's peak resident size (Linux), so that the next
    `emit` reports the workload's own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def timeit(fn, warmup, reps):
    reset_peak_memory()
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def median(v):
    s = sorted(v)
    return s[len(s) // 2]


def lstm_flop(t, b, f, h):
    return 8.0 * t * b * h * (f + h)


def emit(name, times, peer, flop=None, extra=""):
    med = median(times)
    s = f"workload={name} median_ms={med:.4f}"
    if flop is not None:
        s += f" gflop_per_s={flop / (med * 1e-3) / 1e9:.1f}"
    s += f" reps={len(times)} min_ms={min(times):.4f} peer={peer}"
    peak = peak_memory_mb()
    if peak is not None:
        s += f" peak_rss_mb={peak:.1f}"
    if extra:
        s += " " + extra
    print(s, flush=True)
    return med


def read_ts(path):
    """The UEA .ts file: list of ([T, C] lists, class index)."""
    seqs, labels, classes = [], [], None
    in_data = False
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                low = line.lower()
                if low.startswith("@classlabel"):
                    classes = line.split()[2:]
                if low.startswith("@data"):
                    in_data = True
                continue
            if not in_data:
                continue
            parts = line.split(":")
            dims = [[float(v) for v in p.split(",")] for p in parts[:-1]]
            t = len(dims[0])
            seqs.append([[dims[c][i] for c in range(len(dims))] for i in range(t)])
            labels.append(classes.index(parts[-1].strip()))
    return seqs, labels, len(classes)


class SeqToLabel:
    """lstm(H, last) -> fc(K) as a torch module factory (softmax inside the loss)."""

    @staticmethod
    def make(torch, f, h, k):
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = nn.LSTM(f, h)
                self.fc = nn.Linear(h, k)

            def forward(self, x, lengths=None):
                y, _ = self.lstm(x)  # [T, B, H]
                if lengths is None:
                    last = y[-1]
                else:
                    idx = (lengths - 1).view(1, -1, 1).expand(1, y.shape[1], y.shape[2])
                    last = y.gather(0, idx)[0]
                return self.fc(last)

        return Net()


def vowels(torch, data_dir, label):
    nn = torch.nn
    seqs, labels, k = read_ts(os.path.join(data_dir, "JapaneseVowels_TRAIN.ts"))
    xs = [torch.tensor(s, dtype=torch.float32) for s in seqs]
    ys = torch.tensor(labels)
    torch.manual_seed(0)
    net = SeqToLabel.make(torch, 12, 100, k)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    batches = [list(range(i, i + 27)) for i in range(0, len(xs) - 26, 27)]

    def epoch():
        for idx in batches:
            x = nn.utils.rnn.pad_sequence([xs[i] for i in idx])  # [T, B, C], right padding
            lengths = torch.tensor([xs[i].shape[0] for i in idx])
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x, lengths), ys[idx])
            loss.backward()
            for p in net.parameters():  # gradient threshold 1, L2 norm per learnable
                nn.utils.clip_grad_norm_([p], 1.0)
            opt.step()

    flop = sum(
        3 * lstm_flop(max(xs[i].shape[0] for i in idx), 27, 12, 100) for idx in batches
    )
    return emit("vowels-epoch", timeit(epoch, 2, 15), label, flop)


def lstm_train_step(torch, label):
    nn = torch.nn
    torch.manual_seed(0)
    net = SeqToLabel.make(torch, 128, 256, 10)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(50, 32, 128) * 2 - 1
    y = torch.randint(0, 10, (32,))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return emit(
        "lstm-train-step", timeit(step, 3, 21), label, 3 * lstm_flop(50, 32, 128, 256)
    )


def lstm_infer(torch, label):
    torch.manual_seed(0)
    net = SeqToLabel.make(torch, 128, 256, 10).eval()
    x = torch.rand(50, 32, 128) * 2 - 1

    def run():
        with torch.inference_mode():
            torch.softmax(net(x), dim=1)

    return emit("lstm-infer", timeit(run, 3, 31), label, lstm_flop(50, 32, 128, 256))


class SeqToLabelRnn:
    """gru(H, last) or bilstm(H, last) -> fc(K), batch 32, T = 50 (the GRU with
    one trained bias: bias_hh fixed at 0, MATLAB's after-multiplication mode;
    the BiLSTM's 'last' is y[-1], both halves at step T)."""

    @staticmethod
    def make(torch, kind, f, h, k):
        nn = torch.nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                if kind == "gru":
                    self.rnn = nn.GRU(f, h)
                    self.rnn.bias_hh_l0.data.zero_()
                    self.rnn.bias_hh_l0.requires_grad_(False)
                    out = h
                else:
                    self.rnn = nn.LSTM(f, h, bidirectional=True)
                    out = 2 * h
                self.fc = nn.Linear(out, k)

            def forward(self, x):
                y, _ = self.rnn(x)  # [T, B, D·H]
                return self.fc(y[-1])

        return Net()


def gru_flop(t, b, f, h):
    return 6.0 * t * b * h * (f + h)


def rnn_train_step(torch, label, kind):
    nn = torch.nn
    torch.manual_seed(0)
    net = SeqToLabelRnn.make(torch, kind, 128, 256, 10)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-3)
    x = torch.rand(50, 32, 128) * 2 - 1
    y = torch.randint(0, 10, (32,))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    flop = 3 * (gru_flop(50, 32, 128, 256) if kind == "gru" else 2 * lstm_flop(50, 32, 128, 256))
    return emit(f"{kind}-train-step", timeit(step, 3, 21), label, flop)


def gru_infer(torch, label):
    torch.manual_seed(0)
    net = SeqToLabelRnn.make(torch, "gru", 128, 256, 10).eval()
    x = torch.rand(50, 32, 128) * 2 - 1

    def run():
        with torch.inference_mode():
            torch.softmax(net(x), dim=1)

    return emit("gru-infer", timeit(run, 3, 31), label, gru_flop(50, 32, 128, 256))


def video_train_step(torch, label):
    nn = torch.nn
    torch.manual_seed(0)

    class Video(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 20, 5)
            self.bn = nn.BatchNorm2d(20)
            self.lstm = nn.LSTM(20 * 24 * 24, 200)
            self.fc = nn.Linear(200, 10)

        def forward(self, x):  # [T, B, 1, 28, 28]
            t, b = x.shape[:2]
            f = torch.relu(self.bn(self.conv(x.reshape(t * b, 1, 28, 28))))
            y, _ = self.lstm(f.reshape(t, b, -1))
            return self.fc(y[-1])

    net = Video()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(16, 8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return emit("video-train-step", timeit(step, 2, 11), label)


def cnn1d_train_step(torch, label):
    """Wang et al.'s FCN: conv1d(8, 128, 'same') -> bn -> relu -> conv1d(5, 256) -> bn -> relu
    -> conv1d(3, 128) -> bn -> relu -> mean over time -> fc(9); batch 32, T = 128."""
    nn = torch.nn
    torch.manual_seed(0)
    blocks, c_in = [], 12
    for n, k in ((128, 8), (256, 5), (128, 3)):
        blocks += [nn.Conv1d(c_in, n, k, padding="same"), nn.BatchNorm1d(n), nn.ReLU()]
        c_in = n
    body = nn.Sequential(*blocks)
    fc = nn.Linear(128, 9)
    params = list(body.parameters()) + list(fc.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    x = torch.rand(32, 12, 128) * 2 - 1  # [B, C, T]
    y = torch.randint(0, 9, (32,))

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(fc(body(x).mean(dim=2)), y)
        loss.backward()
        opt.step()

    flop = 3 * sum(2.0 * 32 * 128 * n * c * k for n, c, k in ((128, 12, 8), (256, 128, 5), (128, 256, 3)))
    return emit("cnn1d-train-step", timeit(step, 3, 21), label, flop)


def transformer_net(torch):
    """fc(64 -> 128) + learned position embedding (256) -> 2 pre-LN blocks
    (nn.TransformerEncoderLayer: 4 heads, feed-forward 512, ReLU, no dropout)
    -> mean over time -> fc(10), as seqnet's `transformer` template."""
    nn = torch.nn
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = nn.Linear(64, 128)
            self.pos = nn.Parameter(torch.randn(256, 128) * 0.01)
            self.blocks = nn.ModuleList(
                nn.TransformerEncoderLayer(
                    128, 4, dim_feedforward=512, dropout=0.0, norm_first=True, batch_first=True
                )
                for _ in range(2)
            )
            self.fc = nn.Linear(128, 10)

        def forward(self, x):  # [B, T, 64]
            h = self.fc_in(x) + self.pos[: x.shape[1]]
            for blk in self.blocks:
                h = blk(h)
            return self.fc(h.mean(dim=1))

    return Net()


def transformer_flop():
    b, t, f, d, ff, blocks, c = 32, 128, 64, 128, 512, 2, 10
    return 2.0 * b * t * (f * d + blocks * (4 * d * d + 2 * t * d + 2 * d * ff)) + 2.0 * b * d * c


def transformer_train_step(torch, label):
    """`transformer-train-step`: one adam step, batch 32, T = 128."""
    net = transformer_net(torch)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.rand(32, 128, 64) * 2 - 1
    y = torch.randint(0, 10, (32,))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(x), y)
        loss.backward()
        opt.step()

    return emit("transformer-train-step", timeit(step, 3, 11), label, 3 * transformer_flop())


def transformer_infer(torch, label):
    """`transformer-infer`: one forward pass without gradients (eval mode: the
    encoder layers' fast path), batch 32, T = 128."""
    net = transformer_net(torch).eval()
    x = torch.rand(32, 128, 64) * 2 - 1

    def run():
        with torch.no_grad():
            net(x)

    return emit("transformer-infer", timeit(run, 3, 15), label, transformer_flop())


def video_epoch(label, folder, mkldnn):
    """bench/video_epoch.py in its own process (its peak memory is its own):
    5 epochs after a warm-up epoch on the folder seqnet's `video-epoch` wrote."""
    import shutil
    import subprocess

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "video_epoch.py")
    timer = ["/usr/bin/time", "-f", "maxrss_kb=%M"] if shutil.which("time") else []
    out = subprocess.run(
        timer + [sys.executable, script, folder, "6", "1" if mkldnn else "0"],
        capture_output=True, text=True, check=True,
    )
    kv = dict(p.split("=", 1) for p in (out.stdout + " " + out.stderr).split() if "=" in p)
    epochs = [float(t) * 1e3 for t in out.stdout.split("epoch_s=")[1].split("median_s")[0].split()][1:]
    med = median(epochs)
    s = f"workload=video-epoch median_ms={med:.4f} reps={len(epochs)} min_ms={min(epochs):.4f} peer={label}"
    if "maxrss_kb" in kv:
        s += f" peak_rss_mb={int(kv['maxrss_kb']) / 1024.0:.1f}"
    print(s, flush=True)
    return med


def stream_step(torch, label, cell=False):
    nn = torch.nn
    torch.manual_seed(0)
    lstm = nn.LSTMCell(12, 100) if cell else nn.LSTM(12, 100)
    fc = nn.Linear(100, 9)
    xs = [torch.rand(1, 1, 12) * 2 - 1 for _ in range(64)]
    state = [None]
    i = [0]

    def call():
        with torch.inference_mode():
            x = xs[i[0] % 64]
            i[0] += 1
            if cell:
                h, c = lstm(x[0], state[0])
                state[0] = (h, c)
                y = h
            else:
                y, state[0] = lstm(x, state[0])
                y = y[0]
            torch.softmax(fc(y), dim=1)

    t = timeit(call, 200, 4000)
    return emit("stream-step", t, label, extra=f"median_us={median(t) * 1e3:.3f}")


def onnx_runs(torch, results):
    """lstm-infer, stream-step and gru-infer in ONNX Runtime, where it is installed."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        print("# onnxruntime not installed: no ONNX Runtime figures", file=sys.stderr)
        return
    import tempfile

    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    so.inter_op_num_threads = 1
    tmp = tempfile.mkdtemp()
    try:
        torch.manual_seed(0)
        net = SeqToLabel.make(torch, 128, 256, 10).eval()

        class Infer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x):
                return torch.softmax(self.net(x), dim=1)

        p = os.path.join(tmp, "infer.onnx")
        x = torch.rand(50, 32, 128) * 2 - 1
        torch.onnx.export(Infer(), (x,), p, input_names=["x"], dynamo=False)
        sess = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        xn = x.numpy()
        t = timeit(lambda: sess.run(None, {"x": xn}), 3, 31)
        results.setdefault("lstm-infer", []).append(
            ("onnxruntime", emit("lstm-infer", t, "onnxruntime", lstm_flop(50, 32, 128, 256)))
        )

        class Stream(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lstm = torch.nn.LSTM(12, 100)
                self.fc = torch.nn.Linear(100, 9)

            def forward(self, x, h, c):
                y, (h2, c2) = self.lstm(x, (h, c))
                return torch.softmax(self.fc(y[0]), dim=1), h2, c2

        p = os.path.join(tmp, "stream.onnx")
        args = (torch.rand(1, 1, 12), torch.zeros(1, 1, 100), torch.zeros(1, 1, 100))
        torch.onnx.export(
            Stream().eval(), args, p, input_names=["x", "h", "c"], dynamo=False
        )
        sess = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        xs = [np.random.rand(1, 1, 12).astype(np.float32) for _ in range(64)]
        st = [np.zeros((1, 1, 100), np.float32), np.zeros((1, 1, 100), np.float32)]
        i = [0]

        def call():
            _, st[0], st[1] = sess.run(None, {"x": xs[i[0] % 64], "h": st[0], "c": st[1]})
            i[0] += 1

        t = timeit(call, 200, 4000)
        results.setdefault("stream-step", []).append(
            ("onnxruntime", emit("stream-step", t, "onnxruntime", extra=f"median_us={median(t) * 1e3:.3f}"))
        )

        torch.manual_seed(0)
        gru = SeqToLabelRnn.make(torch, "gru", 128, 256, 10).eval()

        class GruInfer(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.net = gru

            def forward(self, x):
                return torch.softmax(self.net(x), dim=1)

        p = os.path.join(tmp, "gru.onnx")
        x = torch.rand(50, 32, 128) * 2 - 1
        torch.onnx.export(GruInfer(), (x,), p, input_names=["x"], dynamo=False)
        sess = ort.InferenceSession(p, so, providers=["CPUExecutionProvider"])
        xn = x.numpy()
        t = timeit(lambda: sess.run(None, {"x": xn}), 3, 31)
        results.setdefault("gru-infer", []).append(
            ("onnxruntime", emit("gru-infer", t, "onnxruntime", gru_flop(50, 32, 128, 256)))
        )
    except Exception as e:  # noqa: BLE001 - a missing exporter must not stop the comparison
        print(f"# ONNX Runtime runs skipped: {e}", file=sys.stderr)


# (target ratio, which peers the target is measured against, what the issue says)
TARGETS = {
    "vowels-epoch": (1 / 3, "pytorch-best", "<= 1/3 of PyTorch's time"),
    "lstm-train-step": (1.0, "pytorch-default", "<= PyTorch's time"),
    "lstm-infer": (1.0, "any", "<= the faster of PyTorch and ONNX Runtime"),
    "video-train-step": (1 / 2, "pytorch-best", "<= 1/2 of PyTorch's best"),
    "video-epoch": (2 / 3, "pytorch-default", "<= 2/3 of PyTorch's epoch (video_epoch.py)"),
    "stream-step": (0.2, "onnxruntime", "<= 1/5 of ONNX Runtime's (~3.5 us)"),
    "cnn1d-train-step": (1.0, "pytorch-best", "<= PyTorch's best path"),
    "transformer-train-step": (1.0, "pytorch-best", "<= PyTorch's best path"),
    "transformer-infer": (1.0, "any", "<= the faster of PyTorch and ONNX Runtime"),
    "gru-train-step": (1.0, "pytorch-best", "<= PyTorch's best path"),
    "bilstm-train-step": (1.0, "pytorch-best", "<= PyTorch's best path"),
    "gru-infer": (1.0, "any", "<= the faster of PyTorch and ONNX Runtime"),
}


def seqnet_field(path, workload, field):
    """A field of seqnet's line for `workload` in its bench output, or None."""
    if not path:
        return None
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if kv.get("workload") == workload:
                return kv.get(field)
    return None


def parse_lines(path):
    out = {}
    with open(path) as f:
        for line in f:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            if "workload" in kv and "median_ms" in kv:
                out[kv["workload"]] = float(kv["median_ms"])
    return out


def ratios(seqnet_file, results):
    ours = parse_lines(seqnet_file)
    print("\n# seqnet / peer, medians from this run")
    print(f"{'workload':<18} {'seqnet_ms':>10} {'peer':<24} {'peer_ms':>10} {'ratio':>7} {'target':>7}  met")
    for name, (target, which, text) in TARGETS.items():
        if name not in ours or name not in results:
            continue
        peers = results[name]
        if which == "pytorch-default":
            cands = [p for p in peers if p[0] == "pytorch"]
        elif which == "pytorch-best":
            cands = [p for p in peers if p[0].startswith("pytorch")]
        elif which == "onnxruntime":
            cands = [p for p in peers if p[0] == "onnxruntime"] or [
                p for p in peers if p[0].startswith("pytorch")
            ]
        else:
            cands = peers
        if not cands:
            continue
        peer, ms = min(cands, key=lambda p: p[1])
        r = ours[name] / ms
        print(
            f"{name:<18} {ours[name]:>10.4f} {peer:<24} {ms:>10.4f} {r:>7.3f} {target:>7.3f}  "
            f"{'yes' if r <= target else 'no'}  ({text})"
        )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--data-dir", default=os.path.join(here, "..", "data", "japanese_vowels"))
    ap.add_argument("--only", default="", help="comma-separated workload names")
    ap.add_argument("--seqnet", help="seqnet's bench output, to print ratios")
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed (pip install torch): no comparison", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    torch.set_num_threads(THREADS)
    torch.set_num_interop_threads(1)
    print(f"# torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    only = set(filter(None, a.only.split(",")))
    want = lambda n: not only or n in only  # noqa: E731
    results = {}

    def add(name, peer, med):
        results.setdefault(name, []).append((peer, med))

    # PyTorch's default path (oneDNN on), then with oneDNN off.
    for label, mkldnn in (("pytorch", True), ("pytorch-onednn-off", False)):
        torch.backends.mkldnn.enabled = mkldnn
        if want("vowels-epoch"):
            add("vowels-epoch", label, vowels(torch, a.data_dir, label))
        if want("lstm-train-step"):
            add("lstm-train-step", label, lstm_train_step(torch, label))
        if want("lstm-infer"):
            add("lstm-infer", label, lstm_infer(torch, label))
        if want("video-train-step"):
            add("video-train-step", label, video_train_step(torch, label))
        if want("stream-step"):
            add("stream-step", label, stream_step(torch, label))
        if want("cnn1d-train-step"):
            add("cnn1d-train-step", label, cnn1d_train_step(torch, label))
        if want("transformer-train-step"):
            add("transformer-train-step", label, transformer_train_step(torch, label))
        if want("transformer-infer"):
            add("transformer-infer", label, transformer_infer(torch, label))
        for kind in ("gru", "bilstm"):
            if want(f"{kind}-train-step"):
                add(f"{kind}-train-step", label, rnn_train_step(torch, label, kind))
        if want("gru-infer"):
            add("gru-infer", label, gru_infer(torch, label))
        folder = seqnet_field(a.seqnet, "video-epoch", "videos")
        if want("video-epoch") and folder:
            add("video-epoch", label, video_epoch(label, folder, mkldnn))
    torch.backends.mkldnn.enabled = True
    if want("stream-step"):
        add("stream-step", "pytorch-lstmcell", stream_step(torch, "pytorch-lstmcell", cell=True))
    if want("lstm-infer") or want("stream-step") or want("gru-infer"):
        onnx_runs(torch, results)
        if only:
            for k in list(results):
                if k not in only:
                    del results[k]
    if a.seqnet:
        ratios(a.seqnet, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
