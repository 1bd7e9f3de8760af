#!/usr/bin/env python3
"""unet-ref (issue 7) in PyTorch: the yardstick `sipl bench --torch` times beside sipl.

The same network, loss and optimiser as src/model/unet-ref.ts: conv3 1→16 + ReLU; conv3 stride 2
16→32 + ReLU; conv3 stride 2 32→64 + ReLU; conv3 64→64 + ReLU; convT k2 s2 64→32, concat e2,
conv3 64→32 + ReLU; convT k2 s2 32→16, concat e1, conv3 32→16 + ReLU; conv1 16→4; loss = softmax
cross-entropy (mean over voxels) + 1 − mean soft Dice over the 4 classes; Adam lr 1e-3; batch 1.
PyTorch's default layout (N, C, D, H, W) and initialisation: only the time per step is compared.

Prints one JSON line: {"torch": version, "threads": n, "size": n, "stepMsMedian", "stepMsMin", "stepMs" (every timed step), "steps"}.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class UnetRef(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.e1 = nn.Conv3d(1, 16, 3, padding=1)
        self.e2 = nn.Conv3d(16, 32, 3, stride=2, padding=1)
        self.e3 = nn.Conv3d(32, 64, 3, stride=2, padding=1)
        self.b = nn.Conv3d(64, 64, 3, padding=1)
        self.up2 = nn.ConvTranspose3d(64, 32, 2, stride=2)
        self.d2 = nn.Conv3d(64, 32, 3, padding=1)
        self.up1 = nn.ConvTranspose3d(32, 16, 2, stride=2)
        self.d1 = nn.Conv3d(32, 16, 3, padding=1)
        self.head = nn.Conv3d(16, classes, 1)

    def forward(self, x):
        e1 = F.relu(self.e1(x))
        e2 = F.relu(self.e2(e1))
        b = F.relu(self.b(F.relu(self.e3(e2))))
        d2 = F.relu(self.d2(torch.cat([self.up2(b), e2], 1)))
        d1 = F.relu(self.d1(torch.cat([self.up1(d2), e1], 1)))
        return self.head(d1)


def loss_fn(logits, labels, one_hot):
    ce = F.cross_entropy(logits, labels)
    p = logits.softmax(1)
    dims = (0, 2, 3, 4)
    intersection = (p * one_hot).sum(dims)
    denominator = p.sum(dims) + one_hot.sum(dims)
    dice = (2 * intersection + 1e-5) / (denominator + 1e-5)
    return ce + (1 - dice.mean())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    n = args.size
    net = UnetRef()
    x = torch.randn(1, 1, n, n, n)
    labels = torch.randint(0, 4, (1, n, n, n))
    one_hot = F.one_hot(labels, 4).permute(0, 4, 1, 2, 3).float()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(net(x), labels, one_hot)
        loss.backward()
        optimizer.step()
        loss.item()
        if i >= args.warmup:
            times.append((time.perf_counter() - start) * 1000)
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "size": n,
                "stepMsMedian": statistics.median(times),
                "stepMsMin": min(times),
                "stepMs": times,
                "steps": args.steps,
            }
        )
    )


if __name__ == "__main__":
    main()
