#!/usr/bin/env python3
"""The peers that `fundus-screen bench` is compared with, on the same machine and network shape.

Plain HRNetV2-W48 + FCN head (mmseg's layout: stem, layer1 of 4 bottlenecks, stages 2-4 of 1/4/3 modules with
BASIC blocks, bilinear fuse-up, 3x3 stride-2 fuse-down, concat head), random weights, eval mode:
  * ONNX Runtime fp32 (the model exported to ONNX), 2 intra-op threads;
  * PyTorch eager fp32 (channels-last), and bf16 autocast;
  * PyTorch training step: batch 2, 512x512 crops, train mode, sigmoid + dice-style loss, backward.
Needs torch and onnxruntime (a virtual environment outside the repository):
    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install torch onnxruntime onnx
    /tmp/peers/bin/python pipelines/peers.py [--runs 3] [--threads 2] [--only ort,torch,bf16,train]
"""
import argparse, os, resource, statistics, sys, tempfile, time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(i, o, k, s=1, relu=True):
    layers = [nn.Conv2d(i, o, k, s, k // 2, bias=False), nn.BatchNorm2d(o)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class Basic(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.a = conv_bn(c, c, 3)
        self.b = conv_bn(c, c, 3, relu=False)

    def forward(self, x):
        return F.relu(self.b(self.a(x)) + x)


class Bottleneck(nn.Module):
    def __init__(self, i, p):
        super().__init__()
        self.a, self.b, self.c = conv_bn(i, p, 1), conv_bn(p, p, 3), conv_bn(p, 4 * p, 1, relu=False)
        self.down = None if i == 4 * p else conv_bn(i, 4 * p, 1, relu=False)

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        return F.relu(self.c(self.b(self.a(x))) + idt)


class HRModule(nn.Module):
    def __init__(self, ch):
        super().__init__()
        n = len(ch)
        self.branches = nn.ModuleList(nn.Sequential(*[Basic(c) for _ in range(4)]) for c in ch)
        self.fuse = nn.ModuleList()
        for i in range(n if n > 1 else 0):
            row = nn.ModuleList()
            for j in range(n):
                if j == i:
                    row.append(nn.Identity())
                elif j > i:
                    row.append(conv_bn(ch[j], ch[i], 1, relu=False))
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        steps.append(conv_bn(ch[j], ch[i] if last else ch[j], 3, 2, relu=not last))
                    row.append(nn.Sequential(*steps))
            self.fuse.append(row)

    def forward(self, xs):
        ys = [b(x) for b, x in zip(self.branches, xs)]
        if len(ys) == 1:
            return ys
        out = []
        for i, row in enumerate(self.fuse):
            acc = ys[i]
            for j, f in enumerate(row):
                if j == i:
                    continue
                t = f(ys[j])
                if j > i:
                    t = F.interpolate(t, size=ys[i].shape[2:], mode="bilinear", align_corners=False)
                acc = acc + t
            out.append(F.relu(acc))
        return out


class HRNetW48(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 64, 3, 2), conv_bn(64, 64, 3, 2))
        self.layer1 = nn.Sequential(Bottleneck(64, 64), *[Bottleneck(256, 64) for _ in range(3)])
        chans = [[48, 96], [48, 96, 192], [48, 96, 192, 384]]
        modules = [1, 4, 3]
        prev = [256]
        self.transitions, self.stages = nn.ModuleList(), nn.ModuleList()
        for ch, m in zip(chans, modules):
            t = nn.ModuleList()
            for i, c in enumerate(ch):
                if i < len(prev):
                    t.append(nn.Identity() if prev[i] == c else conv_bn(prev[i], c, 3))
                else:
                    t.append(conv_bn(prev[-1], c, 3, 2))
            self.transitions.append(t)
            self.stages.append(nn.Sequential(*[HRModule(ch) for _ in range(m)]))  # lists in, lists out
            prev = ch
        self.head = conv_bn(720, 720, 1)
        self.cls = nn.Conv2d(720, classes, 1)

    def forward(self, x):
        ys = [self.layer1(self.stem(x))]
        for t, stage in zip(self.transitions, self.stages):
            xs = [t[i](ys[i] if i < len(ys) else ys[-1]) for i in range(len(t))]
            ys = stage(xs)
        h, w = ys[0].shape[2:]
        cat = torch.cat([ys[0]] + [F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False) for y in ys[1:]], 1)
        return self.cls(self.head(cat))


def timed(fn, runs):
    fn()  # warm-up
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def show(name, seconds, gflop=None):
    med = statistics.median(seconds)
    extra = f", {gflop / med:.0f} GFLOP/s" if gflop else ""
    print(f"{name}: median {med:.3f} s of {len(seconds)} ({', '.join(f'{s:.3f}' for s in seconds)}){extra}", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--height", type=int, default=960)
    ap.add_argument("--width", type=int, default=1440)
    ap.add_argument("--only", default="ort,torch,bf16,train")
    a = ap.parse_args()
    only = set(a.only.split(","))
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"peers: torch {torch.__version__}, {a.threads} threads, load {os.getloadavg()[0]:.2f}", flush=True)
    gflop = 984.0 if (a.height, a.width) == (960, 1440) else None  # ENGINE.md: plain W48 + FCN head at 960x1440
    model = HRNetW48().eval()
    x = torch.randn(1, 3, a.height, a.width)
    if "ort" in only:
        import onnxruntime as ort
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "hrnet.onnx")
            torch.onnx.export(model, x, path, opset_version=17, dynamo=False)
            so = ort.SessionOptions()
            so.intra_op_num_threads = a.threads
            so.inter_op_num_threads = 1
            sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
            feed = {sess.get_inputs()[0].name: x.numpy()}
            show(f"ONNX Runtime {ort.__version__} fp32, plain W48 {a.height}x{a.width}", timed(lambda: sess.run(None, feed), a.runs), gflop)
            del sess
    with torch.no_grad():
        if "torch" in only:
            m = model.to(memory_format=torch.channels_last)
            xc = x.to(memory_format=torch.channels_last)
            show("PyTorch eager fp32 channels-last", timed(lambda: m(xc), a.runs), gflop)
        if "bf16" in only:
            m = model.to(memory_format=torch.channels_last)
            xc = x.to(memory_format=torch.channels_last)
            def run():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    m(xc)
            show("PyTorch bf16 autocast", timed(run, a.runs), gflop)
    if "train" in only:
        m = HRNetW48().train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        xb = torch.randn(2, 3, 512, 512)
        yb = (torch.rand(2, 4, 512, 512) > 0.9).float()
        def step(bf16=False):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = F.interpolate(m(xb), size=(512, 512), mode="bilinear", align_corners=False)
            p = torch.sigmoid(logits.float())
            loss = 1 - (2 * (p * yb).sum() + 1) / (p.sum() + yb.sum() + 1)
            loss.backward()
            opt.step()
        show("PyTorch training step fp32, batch 2, 512x512", timed(step, a.runs))
        show("PyTorch training step bf16 autocast, batch 2, 512x512", timed(lambda: step(True), a.runs))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)
    print(f"peers: peak RSS {rss:.2f} GiB (whole script), load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
