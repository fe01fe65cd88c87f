#!/usr/bin/python3
"""PyTorch peer for the runner's embedding throughput: MobileNetV2 features at 224x224, forward only.

    bench/train/ensure-pytorch.sh                      # Debian's python3-torch 1.13 + torchvision 0.14 + PIL
    /usr/bin/python3 bench/train/pytorch_embed.py [DATASET_DIR] [--images N] [--threads 2] [--batch 32]

DATASET_DIR is an ImageFolder tree (label/file.jpg), e.g. ../shared/datasets/flowers5: its photos are decoded and
resized with PIL before timing starts, so only the forward passes are timed. When it is missing, random tensors
stand in (the speed of a convolution does not depend on the pixel values). Prints one JSON line per memory format:
    {"engine": "pytorch", "memory_format": "channels_last", "threads": 2, "images": N, "img_per_s": X, ...}

Random weights (weights=None): throughput is what we measure, and nothing may be downloaded here. The forward pass
stops at `model.features` plus global average pooling, the 1280-d embedding the runner trains its head on, not the
ImageNet classifier. Debian's torch defaults to 1 thread on these 2-vCPU machines, hence set_num_threads.
Convolutions run through oneDNN (MKL-DNN 2.6 in this build), so OPENBLAS_CORETYPE does not change these numbers.
Run it alone: with one core busy elsewhere the 2-thread figure falls from about 36 to 5-10 img/s (FACTS.md).
"""
import argparse
import json
import os
import sys
import time

import torch
import torchvision

IMAGE_SIZE = 224
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", nargs="?", default=None, help="ImageFolder directory; random tensors when absent")
    parser.add_argument("--images", type=int, default=None, help="images per timed run (default: every photo, or 320 random)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup-batches", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="timed passes over the images per variant")
    return parser.parse_args()


def load_photos(root, limit):
    """Decodes up to `limit` photos (sorted label/file order) to a float tensor [N, 3, 224, 224], ImageNet-normalised."""
    from PIL import Image

    paths = []
    for label in sorted(os.listdir(root)):
        folder = os.path.join(root, label)
        if os.path.isdir(folder):
            paths += [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.lower().endswith(IMAGE_EXTENSIONS)]
    if limit is not None:
        paths = paths[:limit]
    if not paths:
        sys.exit(f"no images under {root}")
    pixels = torch.empty(len(paths), IMAGE_SIZE, IMAGE_SIZE, 3, dtype=torch.uint8)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            resized = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
        pixels[i] = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8).view(IMAGE_SIZE, IMAGE_SIZE, 3)
    images = pixels.permute(0, 3, 1, 2).float().div_(255)
    return ((images - IMAGENET_MEAN) / IMAGENET_STD).contiguous()


class Embedder(torch.nn.Module):
    """MobileNetV2 backbone: [B, 3, 224, 224] -> [B, 1280] (features, then global average pooling)."""

    def __init__(self):
        super().__init__()
        self.features = torchvision.models.mobilenet_v2(weights=None).features

    def forward(self, x):
        return torch.nn.functional.adaptive_avg_pool2d(self.features(x), 1).flatten(1)


def measure(images, memory_format, args):
    torch.manual_seed(0)
    model = Embedder().eval().to(memory_format=memory_format)
    inputs = images.contiguous(memory_format=memory_format)
    batches = [inputs[i : i + args.batch] for i in range(0, len(inputs), args.batch)]
    with torch.inference_mode():
        for i in range(args.warmup_batches):
            model(batches[i % len(batches)])
        seconds = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for batch in batches:
                embedding = model(batch)
            seconds.append(time.perf_counter() - start)
    assert embedding.shape == (len(batches[-1]), 1280), embedding.shape
    total = sum(seconds)
    return {
        "engine": "pytorch",
        "memory_format": "channels_last" if memory_format is torch.channels_last else "contiguous",
        "threads": torch.get_num_threads(),
        "images": len(images) * args.repeats,
        "img_per_s": round(len(images) * args.repeats / total, 2),
        "seconds": round(total, 3),
        "batch": args.batch,
        "model": "mobilenet_v2",
        "input": args.input_source,
        "torch": torch.__version__,
    }


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    if args.dataset and os.path.isdir(args.dataset):
        started = time.perf_counter()
        images = load_photos(args.dataset, args.images)
        args.input_source = "photos"
        print(f"decoded {len(images)} photos from {args.dataset} in {time.perf_counter() - started:.1f} s (not timed)", file=sys.stderr)
    else:
        if args.dataset:
            print(f"{args.dataset} not found: timing random tensors", file=sys.stderr)
        images = torch.randn(args.images or 320, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
        args.input_source = "random"
    for memory_format in (torch.contiguous_format, torch.channels_last):
        print(json.dumps(measure(images, memory_format, args)), flush=True)


if __name__ == "__main__":
    main()
