#!/usr/bin/env python3
"""PyTorch CPU reference numbers for bench/speed/run.mjs (timing only: random weights, random inputs).

    python3 bench/speed/torch_speed.py extract  --images 512 --batch 32 --size 224 --threads 2
    python3 bench/speed/torch_speed.py finetune --images 640 --epochs 2 --batch 32 --threads 2 [--first 11] [--whole]

extract:  torchvision's MobileNetV2 `features` + global average pooling (1280 features), eval mode,
          no_grad, over `images` random images in batches; every batch is timed, the first included
          (headstart's images/s counts its first batch too).
finetune: the layers of MobileNetV2 from torchvision `features[first]` on (default 11, Keras's
          `block_10_expand`: blocks 10-16, the 1×1 conv to 1280 and its ReLU6) + global average pooling
          + the flagship's head (dense 128 relu, dropout 0.2, dense 10 softmax), trained with Adam 1e-4
          on random boundary tensors of the shape `features[:first]` gives at 96 px (64×6×6 for
          block_9_add), BatchNorm in eval mode (its gamma and beta
          still train, as headstart's frozen BN does), dropout in train mode. One epoch = one pass
          over `images` in shuffled batches; each epoch's seconds are printed. With --whole, the same
          epochs again from random 96 px images through the frozen features[:first] (eval mode, no_grad,
          requires_grad off: backward stops at the boundary, as it does in tfjs) and then the trained
          top: PyTorch's own cached-boundary vs whole-network ratio, the reference for row 3.

Prints one JSON line. torchvision's weights cannot be downloaded here; speed does not depend on them.
"""
import argparse
import json
import time

import torch
import torchvision

# Keras MobileNetV2 `block_N` is torchvision `features[N + 1]` (features[0] is Conv1, features[1] is
# expanded_conv), so the part above block_9_add starts at features[11].
FIRST_ABOVE_BLOCK_9 = 11


def extract(args):
    model = torchvision.models.mobilenet_v2()
    net = torch.nn.Sequential(model.features, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    x = torch.rand(args.images, 3, args.size, args.size)
    times = []
    with torch.no_grad():
        for start in range(0, args.images, args.batch):
            t = time.perf_counter()
            y = net(x[start:start + args.batch])
            times.append(time.perf_counter() - t)
            assert y.shape[1] == 1280
    seconds = sum(times)
    return {"images": args.images, "seconds": seconds, "images_per_second": args.images / seconds,
            "first_batch_seconds": times[0], "batches": len(times)}


def finetune(args):
    model = torchvision.models.mobilenet_v2()
    top = model.features[args.first:]
    net = torch.nn.Sequential(
        top, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(1280, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(128, 10),
    )
    bottom = model.features[:args.first].eval()
    with torch.no_grad():  # the shape headstart trains from: block_9_add at 96 px is 64×6×6
        boundary = tuple(bottom(torch.zeros(1, 3, args.size, args.size)).shape[1:])
    x = torch.rand(args.images, *boundary)
    y = torch.randint(0, 10, (args.images,))
    for parameter in bottom.parameters():
        parameter.requires_grad_(False)
    images = torch.rand(args.images, 3, args.size, args.size) if args.whole else None
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-4)
    loss_fn = torch.nn.CrossEntropyLoss()  # softmax + categorical cross-entropy
    net.train()
    for module in net.modules():  # BatchNorm in inference mode, like headstart's frozen BN
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)

    def boundary_batch(idx, whole):
        if not whole:
            return x[idx]
        with torch.no_grad():
            return bottom(images[idx])

    def epoch(whole=False):
        t = time.perf_counter()
        order = torch.randperm(args.images)
        for start in range(0, args.images, args.batch):
            idx = order[start:start + args.batch]
            optimizer.zero_grad()
            loss = loss_fn(net(boundary_batch(idx, whole)), y[idx])
            loss.backward()
            optimizer.step()
        return time.perf_counter() - t

    cached = [epoch() for _ in range(args.epochs)]
    result = {"images": args.images, "epoch_seconds": cached, "images_per_second": args.images / cached[-1],
              "trainable_params": trainable, "boundary": list(boundary)}
    if args.whole:
        result["whole_epoch_seconds"] = [epoch(whole=True) for _ in range(args.epochs)]
    return result


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["extract", "finetune"])
    parser.add_argument("--images", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=None, help="input size (extract: 224, finetune: 96)")
    parser.add_argument("--first", type=int, default=FIRST_ABOVE_BLOCK_9, help="finetune: the first trained module of features")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--whole", action="store_true", help="finetune: also time epochs through the whole network")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    args.size = args.size or (224 if args.mode == "extract" else 96)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    result = extract(args) if args.mode == "extract" else finetune(args)
    result.update({"torch": torch.__version__, "torchvision": torchvision.__version__, "threads": torch.get_num_threads()})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
