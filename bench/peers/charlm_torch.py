#!/usr/bin/python3
"""charlm_torch.py - the PyTorch peer of `loom-bench charlm` and `cells`.

Times one training step of the same model loom-bench times, in PyTorch, and
prints one JSON line on stdout:

  charlm  embedding(65, H) -> nn.LSTM(H, H, L) -> nn.Linear(H, 65) ->
          cross-entropy (mean over T*B), torch.optim.Adam(lr=2e-3);
          a step = zero_grad, forward, backward, Adam.
  lstm    nn.LSTM(H, H, L) alone: forward + backward of sum(out * R),
  gru     nn.GRU likewise; gradients of every weight and of the input.
  generate  the charlm model without the loss, stepped one character at a
          time at B = 1 (torch.inference_mode, the LSTM state carried,
          argmax and .item() per character): the time per character, and
          the ids of --greedy characters generated from id 0 and a zero
          state (loom-bench aot compares them with its own).

Token ids come from splitmix64 with the seed given, the same stream
loom-bench draws, so both sides train on the same data. With --init FILE
(a safetensors file loom wrote before its first step) the model starts from
loom's weights, and the first two losses must agree with loom's.

Threads: torch.set_num_threads(--threads). The BLAS, its thread count and
glibc's malloc are set by the environment loom-bench gives this process
(LD_LIBRARY_PATH, OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MALLOC_*); the
BLAS actually loaded is read back from /proc/self/maps and reported.
Run it with /usr/bin/python3: Debian's torch imports only there.
"""
import argparse
import json
import os
import statistics
import struct
import sys
import time

VOCAB = 65
MASK64 = (1 << 64) - 1


def splitmix64_ids(seed, n, vocab):
    """n ids in [0, vocab): splitmix64(seed), high bits mod vocab (as bench_charlm.c)."""
    out, state = [], seed & MASK64
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        z ^= z >> 31
        out.append((z >> 33) % vocab)
    return out


def load_safetensors(path, torch):
    """{name: tensor} from a safetensors file (f32 tensors only)."""
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        lo, hi = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[lo:hi]), dtype=torch.float32)
        out[name] = t.reshape(info["shape"]).clone()
    return out


def blas_loaded():
    """Which libopenblas (or other BLAS) this process mapped."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        return "unknown"
    for tag in ("openblas-openmp", "openblas-pthread", "openblas-serial"):
        if "/" + tag + "/" in maps:
            return tag
    if "libopenblas" in maps:
        return "openblas"
    if "libblas" in maps:
        return "blas"
    return "none"


def median_time(step, min_time, max_reps):
    """Times the first call, warms up with two more, then the median of
    enough calls to fill min_time (at least 5)."""
    t0 = time.perf_counter()
    step()
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    step()
    step()
    once = (time.perf_counter() - t0) / 2
    reps = max(5, min(max_reps, int(min_time / once) if once > 0 else 5))
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return first * 1e3, statistics.median(times) * 1e3, min(times) * 1e3, reps


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mode", choices=("charlm", "lstm", "gru", "generate"), default="charlm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=0.2)
    ap.add_argument("--max-reps", type=int, default=50)
    ap.add_argument("--init", help="safetensors file with loom's initial weights (charlm, generate)")
    ap.add_argument("--greedy", type=int, default=200, help="characters generated for the check (generate)")
    a = ap.parse_args()

    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError as e:
        print(json.dumps({"error": "no torch: %s" % e}))
        return 1
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    T, B, H, L = a.seq, a.batch, a.hidden, a.layers
    result = {"peer": "torch-" + torch.__version__.split("+")[0], "blas": blas_loaded(),
              "mode": a.mode, "hidden": H, "layers": L, "threads": torch.get_num_threads(),
              "mkldnn": torch.backends.mkldnn.is_available()}

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(VOCAB, H)
            self.lstm = nn.LSTM(H, H, L)
            self.head = nn.Linear(H, VOCAB)

        def forward(self, ids):
            out, _ = self.lstm(self.emb(ids))  # [T, B, H]
            return self.head(out.reshape(T * B, H))

    model = CharLM() if a.mode in ("charlm", "generate") else None
    if model is not None and a.init:
        state = load_safetensors(a.init, torch)
        want = model.state_dict()
        missing = [k for k in want if k not in state]
        if missing:
            print(json.dumps({"error": "weights missing from %s: %s" % (a.init, missing)}))
            return 1
        model.load_state_dict({k: state[k] for k in want})

    if a.mode == "generate":
        model.eval()
        gen = {"id": 0, "state": None}

        def one(ident, state):
            """One character: the likeliest next id and the new state."""
            x = torch.tensor([[ident]], dtype=torch.long)
            out, state = model.lstm(model.emb(x), state)
            return int(model.head(out[0]).argmax()), state

        def step():
            with torch.inference_mode():
                gen["id"], gen["state"] = one(gen["id"], gen["state"])

        ids, state, ident = [], None, 0
        with torch.inference_mode():
            for _ in range(a.greedy):
                ident, state = one(ident, state)
                ids.append(ident)
        first, med, best, reps = median_time(step, a.min_time, a.max_reps)
        result.update(first_ms=round(first, 4), median_ms=round(med, 5), min_ms=round(best, 5), reps=reps, ids=ids)
        print(json.dumps(result))
        return 0

    if a.mode == "charlm":
        ids = torch.tensor(splitmix64_ids(a.seed, (T + 1) * B, VOCAB), dtype=torch.long).reshape(T + 1, B)
        inputs, targets = ids[:T], ids[1:].reshape(T * B)
        opt = torch.optim.Adam(model.parameters(), lr=2e-3)
        losses = []

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(inputs), targets)
            loss.backward()
            opt.step()
            if len(losses) < 2:
                losses.append(loss.item())
    else:
        rnn = (nn.LSTM if a.mode == "lstm" else nn.GRU)(H, H, L)
        x = torch.randn(T, B, H, requires_grad=True)
        r = torch.randn(T, B, H)
        params = list(rnn.parameters())
        losses = []

        def step():
            out, _ = rnn(x)
            loss = (out * r).sum()
            torch.autograd.grad(loss, params + [x])
            if not losses:
                losses.append(loss.item())

    first, med, best, reps = median_time(step, a.min_time, a.max_reps)
    result.update(first_ms=round(first, 3), median_ms=round(med, 4), min_ms=round(best, 4), reps=reps,
                  losses=losses)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
