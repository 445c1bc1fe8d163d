"""A training script's stream side, killed and resumed by test_stream.py: after each batch it
"trains" (appends the indices to the committed list) and saves the stream state with that list
atomically, as a script saves its model; with --die-after K it SIGKILLs itself after consuming
batch K without saving it (the batch is lost with the process, as an unsaved step is)."""
import argparse
import os
import signal

import torch

import synthstream

p = argparse.ArgumentParser()
p.add_argument("config")
p.add_argument("--state", required=True)
p.add_argument("--die-after", type=int, default=0)
p.add_argument("--set", action="append", default=[])
args = p.parse_args()

stream = synthstream.Stream(args.config, rank=0, world_size=1, overrides=args.set)
committed = []
if os.path.exists(args.state):
    saved = torch.load(args.state)
    stream.load_state_dict(saved["stream"])
    committed = saved["committed"]
for step, (images, labels, indices) in enumerate(stream, 1):
    if step == args.die_after:
        os.kill(os.getpid(), signal.SIGKILL)
    committed += indices.tolist()
    torch.save({"stream": stream.state_dict(), "committed": committed}, args.state + ".tmp")
    os.replace(args.state + ".tmp", args.state)
print("done", stream.position, stream.ledger())
