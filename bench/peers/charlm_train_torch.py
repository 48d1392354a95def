#!/usr/bin/python3
"""charlm_train_torch.py - `loom train`'s training run, in PyTorch.

The same model, data scheme and schedule as cli/train.c, so that the two
final validation losses can be compared:

  vocabulary   the bytes present in the file, sorted; ids are their ranks
  split        the last floor(n * val_frac) bytes are held out
  training     the training part cut into --batch contiguous streams of
               floor((n_train - 1) / B) bytes; step j of an epoch reads the
               j-th --seq-len bytes of every stream (whole chunks only); the
               LSTM state is carried from step to step, detached, and zeroed
               at each epoch's start
  model        Embedding(V, H) -> LSTM(H, H, L) -> Linear(H, V), PyTorch's
               default initialisation under torch.manual_seed(--seed)
  loss         cross-entropy, mean over the T x B targets; Adam(lr); the
               global gradient norm clipped to --clip
  validation   the first --val-chars bytes of the held-out part, cut into
               min(32, (n - 1) / 4T) streams (the last ones shorter), T
               bytes per call, the state carried; the mean loss over every
               target

Prints a line per validation and, last, one JSON object.
Run it with /usr/bin/python3 (Debian's python3-torch).
"""
import argparse
import json
import math
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--seq-len", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--val-every", type=int, default=200)
    ap.add_argument("--val-frac", type=float, default=0.1)
    ap.add_argument("--val-chars", type=int, default=1 << 18)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()

    import torch
    import torch.nn as nn

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    with open(a.data, "rb") as f:
        text = f.read()
    vocab = sorted(set(text))
    rank = {b: i for i, b in enumerate(vocab)}
    ids = torch.tensor([rank[b] for b in text], dtype=torch.long)
    n = len(ids)
    n_val = int(n * a.val_frac)
    n_train = n - n_val
    B, T, H, V = a.batch, a.seq_len, a.hidden, len(vocab)

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(V, H)
            self.rnn = nn.LSTM(H, H, a.layers)
            self.head = nn.Linear(H, V)

        def forward(self, x, state):
            out, state = self.rnn(self.emb(x), state)
            return self.head(out), state

    model = Model()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr)
    loss_fn = nn.CrossEntropyLoss()

    # training streams: whole chunks only
    length = (n_train - 1) // B
    chunks = length // T
    starts = torch.arange(B) * length

    def chunk(k):
        idx = starts[None, :] + k * T + torch.arange(T)[:, None]  # [T, B]
        return ids[idx], ids[idx + 1]

    def zero():
        z = torch.zeros(a.layers, B, H)
        return (z, z.clone())

    def validate():
        nv = min(n_val, a.val_chars) if a.val_chars > 0 else n_val
        v = ids[n_train:n_train + nv]
        pairs = nv - 1
        B = max(1, min(32, pairs // (4 * T)))  # as charlm_eval_batch
        vlen = (pairs + B - 1) // B
        vchunks = (vlen + T - 1) // T
        total, count = 0.0, 0
        z = torch.zeros(a.layers, B, H)
        state = (z, z.clone())
        model.eval()
        with torch.no_grad():
            for k in range(vchunks):
                x = torch.zeros(T, B, dtype=torch.long)
                y = torch.full((T, B), -100, dtype=torch.long)
                for b in range(B):
                    begin = b * vlen
                    end = min(begin + vlen, pairs)
                    lo = begin + k * T
                    hi = min(lo + T, end)
                    if hi > lo:
                        x[: hi - lo, b] = v[lo:hi]
                        y[: hi - lo, b] = v[lo + 1:hi + 1]
                logits, state = model(x, state)
                total += nn.functional.cross_entropy(logits.reshape(T * B, V), y.reshape(-1), ignore_index=-100,
                                                     reduction="sum").item()
                count += int((y != -100).sum())
        model.train()
        return total / count

    print(f"torch {torch.__version__}: {n} bytes, vocabulary {V}, {n_train} for training "
          f"({chunks} steps per epoch), {n_val} held out; H={H} L={a.layers} B={B} T={T}, {a.threads} thread(s)",
          flush=True)
    state = zero()
    t0 = time.time()
    vals = []
    loss = float("nan")
    for step in range(1, a.steps + 1):
        j = (step - 1) % chunks
        if j == 0:
            state = zero()
        x, y = chunk(j)
        state = (state[0].detach(), state[1].detach())
        logits, state = model(x, state)
        l = loss_fn(logits.reshape(T * B, V), y.reshape(-1))
        opt.zero_grad()
        l.backward()
        if a.clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), a.clip)
        opt.step()
        loss = l.item()
        if step % a.val_every == 0 or step == a.steps:
            v = validate()
            vals.append((step, v))
            print(f"step {step}: loss {loss:.4f}, val loss {v:.4f} ({time.time() - t0:.0f} s)", flush=True)
    print(json.dumps({"peer": "torch-" + torch.__version__, "steps": a.steps, "loss": loss,
                      "val": [[s, v] for s, v in vals], "seconds": time.time() - t0}))


if __name__ == "__main__":
    sys.exit(main())
