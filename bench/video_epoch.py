"""PyTorch reference for the `video-epoch` workload: whole training epochs of the seed's video network on a datastore folder (labels.csv + uint8 .npy videos [T, 28, 28, 1]), packed sequences, no evaluation.
Usage: python video_epoch.py TRAIN_DIR EPOCHS [mkldnn 0|1]

Copied unchanged (but for this note) from the project's shared benchmark folder
(shared/bench/video_epoch.py), which defines the workload."""
import sys, csv, time, os
import numpy as np, torch
torch.set_num_threads(2)
if len(sys.argv) > 3 and sys.argv[3] == "0":
    torch.backends.mkldnn.enabled = False
def load(d):
    rows = list(csv.DictReader(open(os.path.join(d, "labels.csv"))))
    return [np.load(os.path.join(d, r["file"])).astype(np.float32) / 255.0 for r in rows], [r["label"] for r in rows]
tr, ytr = load(sys.argv[1]); epochs = int(sys.argv[2])
classes = sorted(set(ytr)); idx = {c: i for i, c in enumerate(classes)}
torch.manual_seed(0)
conv = torch.nn.Conv2d(1, 20, 5); bn = torch.nn.BatchNorm2d(20); lstm = torch.nn.LSTM(24 * 24 * 20, 200, batch_first=True); fc = torch.nn.Linear(200, len(classes))
mods = [conv, bn, lstm, fc]; params = [p for m in mods for p in m.parameters()]
opt = torch.optim.Adam(params, 1e-3)
def fwd(vs):
    lens = torch.tensor([len(v) for v in vs]); B = len(vs); T = int(lens.max())
    x = torch.zeros(B, T, 1, 28, 28)
    for b, v in enumerate(vs): x[b, :len(v)] = torch.tensor(v).permute(0, 3, 1, 2)
    a = torch.relu(bn(conv(x.reshape(B * T, 1, 28, 28)))).reshape(B, T, -1)
    packed = torch.nn.utils.rnn.pack_padded_sequence(a, lens, batch_first=True, enforce_sorted=False)
    _, (h, _) = lstm(packed)
    return fc(h[-1])
times = []
for ep in range(epochs):
    t0 = time.time()
    perm = np.random.default_rng(ep).permutation(len(tr))
    for s in range(0, len(tr) - 15, 16):
        b = perm[s:s + 16]
        loss = torch.nn.functional.cross_entropy(fwd([tr[i] for i in b]), torch.tensor([idx[ytr[i]] for i in b]))
        opt.zero_grad(); loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 2.0); opt.step()
    times.append(time.time() - t0)
print(f"workload=video-epoch engine=torch epoch_s={' '.join(f'{t:.2f}' for t in times)} median_s={sorted(times)[len(times)//2]:.2f}")
