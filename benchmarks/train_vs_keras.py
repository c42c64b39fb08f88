"""Training throughput of the textbook CIFAR-10 CNN: cnnlab vs Keras 3 (TensorFlow CPU) `model.fit`.

Same architecture (0.89 M parameters), same data (the CIFAR-10 training set), same batch size (128),
Adam, no augmentation, same number of CPU threads. Each side trains a warm-up epoch on a subset,
then `--epochs` timed epochs over the full set; images/s = images seen / wall time of those epochs.

    python benchmarks/train_vs_keras.py [--epochs 1] [--threads 2] [--subset 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KERAS_SCRIPT = r"""
import json, sys, time
import numpy as np
threads, epochs, batch, path = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(threads)
tf.config.threading.set_inter_op_parallelism_threads(threads)
import keras
from keras import layers
d = np.load(path)
x = d["x"].astype("float32") / 255.0
y = d["y"].astype("int64")
keras.utils.set_random_seed(0)
model = keras.Sequential([
    keras.Input((32, 32, 3)),
    layers.Conv2D(32, 3, activation="relu"), layers.Conv2D(32, 3, activation="relu"),
    layers.MaxPooling2D(), layers.Dropout(0.25),
    layers.Conv2D(64, 3, activation="relu"), layers.Conv2D(64, 3, activation="relu"),
    layers.MaxPooling2D(), layers.Dropout(0.25),
    layers.Flatten(), layers.Dense(512, activation="relu"), layers.Dropout(0.5),
    layers.Dense(10, activation="softmax"),
])
model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
              metrics=["accuracy"])
model.fit(x[:2048], y[:2048], batch_size=batch, epochs=1, verbose=0)  # warm-up (graph tracing)
t = time.perf_counter()
model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
dt = time.perf_counter() - t
print(json.dumps({"images_per_s": len(x) * epochs / dt, "seconds": dt, "params": model.count_params(),
                  "versions": f"keras {keras.__version__}, tensorflow {tf.__version__}"}))
"""


def cnnlab_throughput(images, labels, epochs: int, batch: int, threads: int) -> dict:
    """Images/s of cnnlab's training engine on the same data (a warm-up epoch on a subset first)."""
    import torch

    from cnnlab.config import TrainConfig
    from cnnlab.data import ArrayDataset, make_loader
    from cnnlab.models import count_params, create_model
    from cnnlab.tasks.classify.task import Trainer

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    ds = ArrayDataset(images=images, labels=labels, classes=[str(i) for i in range(10)], name="cifar10",
                      mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    model = create_model("cifar10_cnn", num_classes=10, in_chans=3, img_size=32)
    cfg = TrainConfig(dataset="cifar10", model="cifar10_cnn", optimizer="adam", lr=1e-3, batch=batch,
                      epochs=epochs, verbose=0)
    loader = make_loader(ds, batch_size=batch, shuffle=True, seed=0, num_classes=10)
    trainer = Trainer(model, cfg, loader, num_classes=10)
    warm = make_loader(ds.subset(torch.arange(2048)), batch_size=batch, shuffle=True, seed=0, num_classes=10)
    trainer.train_loader = warm        # the engine's own epoch, on a warm-up subset first
    trainer.train_one_epoch(0)
    trainer.train_loader = loader
    t = time.perf_counter()
    for e in range(epochs):
        loader.set_epoch(e)
        trainer.train_one_epoch(e + 1)
    dt = time.perf_counter() - t
    return {"images_per_s": len(ds) * epochs / dt, "seconds": dt, "params": sum(count_params(model)),
            "versions": f"torch {torch.__version__}"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--subset", type=int, default=0, help="use only the first N training images (0: all)")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    import numpy as np
    from _keras_env import run_in_keras
    from _report import markdown_table, write_section

    from cnnlab.data import load_dataset

    train = load_dataset("cifar10", split="train", data_dir=args.data_dir, download=False)
    images, labels = train.images, train.labels
    if args.subset:
        images, labels = images[: args.subset], labels[: args.subset]

    ours = cnnlab_throughput(images, labels, args.epochs, args.batch, args.threads)
    print(f"cnnlab: {ours['images_per_s']:.0f} images/s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "cifar10_train.npz"
        np.savez(npz, x=images.permute(0, 2, 3, 1).numpy(), y=labels.numpy())
        keras = run_in_keras(KERAS_SCRIPT, str(args.threads), str(args.epochs), str(args.batch), str(npz))
    print(f"keras:  {keras['images_per_s']:.0f} images/s", flush=True)

    rows = [
        {"framework": "cnnlab (PyTorch)", "params": ours["params"], "images/s": round(ours["images_per_s"]),
         "epoch time (s)": round(ours["seconds"] / args.epochs, 1), "versions": ours["versions"]},
        {"framework": "Keras 3 model.fit", "params": keras["params"], "images/s": round(keras["images_per_s"]),
         "epoch time (s)": round(keras["seconds"] / args.epochs, 1), "versions": keras["versions"]},
    ]
    ratio = ours["images_per_s"] / keras["images_per_s"]
    body = (
        f"Textbook CIFAR-10 CNN, batch {args.batch}, Adam, {args.threads} CPU threads, "
        f"{len(images)} training images x {args.epochs} timed epoch(s) after a warm-up.\n\n"
        + markdown_table(rows)
        + f"\n**cnnlab / Keras throughput ratio: {ratio:.2f}x** (aim: >= 1.0x)\n"
    )
    print(body)
    write_section("train_vs_keras", "Training throughput: cnnlab vs Keras 3 (CIFAR-10 textbook CNN)", body)


if __name__ == "__main__":
    main()
