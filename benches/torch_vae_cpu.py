"""Runs ../shared/bench/torch_vae.py unchanged, but also reports images per CPU-second.

The machine is shared, so next to the script's wall-clock images/s this wrapper prints
the process's CPU time (user + system, all threads) over the same timed chunks, as
`benches/train_step.rs` does for vae-rs:

    .venv-torch/bin/python benches/torch_vae_cpu.py --threads 2 --steps 30 --warmup 3

(all arguments go to torch_vae.py; run from the project root). Lines starting with
`cpu,` give framework, mode, threads, batch, images per CPU-second.
"""
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "shared", "bench"))
import torch_vae  # noqa: E402

_timed = torch_vae.timed_chunks


def timed_chunks(fn, steps, chunk, batch):
    c0 = time.process_time()
    rates = _timed(fn, steps, chunk, batch)
    cpu = max(time.process_time() - c0, 1e-9)
    mode = "infer" if batch == ARGS.infer_batch else "train"
    print(f"cpu,pytorch,{mode},{ARGS.threads},{batch},{steps * batch / cpu:.0f}", flush=True)
    return rates


class _Args:
    threads = 1
    infer_batch = 256


ARGS = _Args()
for i, a in enumerate(sys.argv):
    if a == "--threads":
        ARGS.threads = int(sys.argv[i + 1])
    if a == "--infer-batch":
        ARGS.infer_batch = int(sys.argv[i + 1])
torch_vae.timed_chunks = timed_chunks
torch_vae.main()
