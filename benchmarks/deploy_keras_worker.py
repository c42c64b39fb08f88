"""Keras side of benchmarks/deploy_eval.py: runs inside its own venv (keras + tensorflow-cpu), not cnnlab's.

Builds the textbook MNIST CNN (conv32-conv64-maxpool-dropout-dense128-dropout-dense10) in Keras 3,
loads the PyTorch weights given (converted to Keras layouts), and times
``model.evaluate(x, y, batch_size=1)`` over the whole test set.

    python deploy_keras_worker.py DATA.npz WEIGHTS.npz OUT.json [THREADS]
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def build(keras, num_classes: int, input_shape: tuple[int, int, int]):
    layers = keras.layers
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(num_classes),
    ])


def main(data_path: str, weights_path: str, out_path: str, threads: str = "0") -> None:
    import tensorflow as tf

    if int(threads) > 0:  # must happen before TensorFlow creates its thread pools
        tf.config.threading.set_intra_op_parallelism_threads(int(threads))
        tf.config.threading.set_inter_op_parallelism_threads(int(threads))
    import keras
    import numpy as np

    data = np.load(data_path)
    x, y = data["x"], data["y"]  # x: N x H x W x C float32, normalised as for PyTorch
    w = np.load(weights_path)     # already in Keras layouts (see deploy_eval.py)
    model = build(keras, int(w["dense2_kernel"].shape[1]), tuple(x.shape[1:]))
    model.set_weights([w["conv1_kernel"], w["conv1_bias"], w["conv2_kernel"], w["conv2_bias"],
                       w["dense1_kernel"], w["dense1_bias"], w["dense2_kernel"], w["dense2_bias"]])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.evaluate(x[:200], y[:200], batch_size=1, verbose=0)  # warm-up: traces the graph once
    start = time.perf_counter()
    loss, acc = model.evaluate(x, y, batch_size=1, verbose=0)
    seconds = time.perf_counter() - start
    result = {"keras": keras.__version__, "tensorflow": tf.__version__, "backend": keras.backend.backend(),
              "images": int(len(x)), "seconds": seconds, "images_per_s": len(x) / seconds,
              "accuracy": float(acc), "loss": float(loss), "params": int(model.count_params()),
              "threads": {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                          "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
