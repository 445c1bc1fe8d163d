"""torchvision's ResNet-18 trained on a synthstream stream, in a plain PyTorch loop.

    python examples/train_resnet18.py configs/smoke.toml                    # one process
    torchrun --nproc_per_node 2 examples/train_resnet18.py configs/smoke.toml   # DDP, Gloo (CPU)

The stream gives every image of the config once (train.total_images, batches of train.batch_size
split across the ranks); the recipe (SGD, warm-up then cosine, weight decay) is the config's.
--resume continues a killed run from its checkpoint exactly once. Ends with top-1 on the config's
real evaluation set (eval.source).
"""
import argparse
import math
import os

import torch
import torch.nn.functional as F
import torchvision

import synthstream

p = argparse.ArgumentParser()
p.add_argument("config")
p.add_argument("--set", action="append", default=[], help="section.key=value, as stream-train --set")
p.add_argument("--checkpoint", default="", help="save model + stream here after each step; resume from it")
p.add_argument("--indices-out", default="", help="write the indices this rank trained on to FILE.<rank>")
p.add_argument("--no-eval", action="store_true")
args = p.parse_args()

ddp = int(os.environ.get("WORLD_SIZE", 1)) > 1
if ddp:
    torch.distributed.init_process_group("gloo")
torch.manual_seed(0)
stream = synthstream.Stream(args.config, overrides=args.set)
cfg = stream.config
model = torchvision.models.resnet18(num_classes=cfg.num_classes)
net = torch.nn.parallel.DistributedDataParallel(model) if ddp else model
steps = math.ceil(cfg.total_images / cfg.batch_size)
opt = torch.optim.SGD(model.parameters(), lr=0.2 * cfg.batch_size / 256, momentum=0.9, weight_decay=5e-4)
warmup = max(1, steps // 20)  # 5% warm-up, then cosine to zero (Goyal et al. 2017; Loshchilov & Hutter 2017)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup))))
ckpt = f"{args.checkpoint}.rank{stream.rank}" if ddp and args.checkpoint else args.checkpoint
if ckpt and os.path.exists(ckpt):
    saved = torch.load(ckpt)
    model.load_state_dict(saved["model"]), opt.load_state_dict(saved["opt"]), sched.load_state_dict(saved["sched"])
    stream.load_state_dict(saved["stream"])
trained = []
net.train()
for step, (images, labels, indices) in enumerate(stream, 1):
    x = synthstream.crops(images, indices, cfg)[0]  # the config's augmentation, as stream-train's
    loss = F.cross_entropy(net(x), labels)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    trained += indices.tolist()
    if ckpt:  # every rank keeps its stream state (its ledger) beside the common model
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                    "stream": stream.state_dict()}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)
    if step % 10 == 0:
        print(f"{stream.position}/{cfg.total_images} images, loss {loss.item():.4f}", flush=True)
print(f"{stream.position}/{cfg.total_images} images, done", flush=True)
if args.indices_out:
    with open(f"{args.indices_out}.{stream.rank}", "w") as f:
        f.write(" ".join(map(str, trained)))
if not args.no_eval and (not ddp or torch.distributed.get_rank() == 0):
    test = synthstream.eval_dataset(args.config, args.set)
    model.eval()
    correct = 0
    with torch.no_grad():
        for lo in range(0, len(test), 500):
            ids = range(lo, min(lo + 500, len(test)))
            x = synthstream.eval_images(torch.stack([test.image(i) for i in ids]), cfg)
            correct += (model(x).argmax(1) == torch.tensor([test.label(i) for i in ids])).sum().item()
    print(f"top-1 on {len(test)} real evaluation images: {100 * correct / len(test):.2f}%")
if ddp:
    torch.distributed.destroy_process_group()
