"""Check `cnnlab import-keras` against Keras itself: the same inputs through Keras 3 and through the
imported cnnlab model must give the same outputs (Sequential and functional test models with every
supported layer kind, and Keras' ImageNet MobileNet 0.25 weights loaded into cnnlab's mobilenet_v1).

Keras runs in its own virtual environment (benchmarks/_keras_env.py).

    python benchmarks/keras_import_check.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

KERAS_SCRIPT = r'''
import json, sys, numpy as np, os
out = sys.argv[1]
import keras
from keras import layers
keras.utils.set_random_seed(1)
rng = np.random.default_rng(0)

def randomize_bn(m):
    for l in m.layers:
        if isinstance(l, layers.BatchNormalization):
            g, b, mm, mv = l.get_weights()
            l.set_weights([rng.uniform(0.5, 1.5, g.shape), rng.normal(0, .1, b.shape), rng.normal(0, .1, mm.shape), rng.uniform(0.5, 2, mv.shape)])

seq = keras.Sequential([
    keras.Input((33, 31, 3)),
    layers.Conv2D(8, 3, strides=2, padding="same", activation="relu"),
    layers.BatchNormalization(),
    layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
    layers.ReLU(max_value=6.0),
    layers.SeparableConv2D(12, 3, padding="same", activation="elu"),
    layers.AveragePooling2D(3, strides=2, padding="same"),
    layers.Conv2D(16, (3, 5), padding="valid"), layers.LeakyReLU(negative_slope=0.1),
    layers.MaxPooling2D(2, padding="same"),
    layers.Dropout(0.3),
    layers.Flatten(),
    layers.Dense(20, activation="tanh"),
    layers.Dense(7, activation="softmax"),
])
randomize_bn(seq)
inp = keras.Input((24, 24, 3))
a = layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(inp)
b = layers.Conv2D(8, 1, padding="same", name="c2")(inp)
x = layers.Add()([a, b])
x = layers.BatchNormalization(name="bn")(x)
y = layers.Conv2D(4, 3, strides=2, padding="same", activation="swish")(x)
z = layers.MaxPooling2D(3, strides=2, padding="same")(x)
x = layers.Concatenate()([y, z])
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dense(5)(x)
x = layers.Activation("softmax")(x)
fun = keras.Model(inp, x)
randomize_bn(fun)
for name, m in [("seq", seq), ("fun", fun)]:
    m.save(os.path.join(out, f"{name}.h5"))
    shape = m.input_shape[1:]
    xin = rng.uniform(0, 1, (4, *shape)).astype("float32")
    np.save(os.path.join(out, f"{name}_x.npy"), xin)
    np.save(os.path.join(out, f"{name}_y.npy"), m.predict(xin, verbose=0))
if len(sys.argv) > 2:
    mn = keras.applications.MobileNet(input_shape=(224, 224, 3), alpha=0.25, include_top=False, weights=None)
    mn.load_weights(sys.argv[2])
    xin = rng.uniform(-1, 1, (2, 224, 224, 3)).astype("float32")
    np.save(os.path.join(out, "mn_x.npy"), xin)
    np.save(os.path.join(out, "mn_y.npy"), mn.predict(xin, verbose=0))
print(json.dumps({"ok": True, "keras": keras.__version__}))
'''


def keras_reference_forward(model, x_nhwc):
    """Run ``model`` on a channels-last batch as Keras would be fed; returns softmax probabilities."""
    import numpy as np
    import torch

    with torch.no_grad():
        logits = model(torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).float())
        return torch.softmax(logits, dim=1).numpy() if logits.dim() == 2 else logits.numpy()


def check_against_keras(workdir: str | Path) -> list[dict]:
    """Build the Keras models, save them, import them into cnnlab and compare outputs."""
    import numpy as np
    import torch
    from _keras_env import run_in_keras

    from cnnlab.models import create_model
    from cnnlab.models.keras_import import import_keras_model, load_keras_weights
    from cnnlab.paths import data_root

    workdir = Path(workdir)
    mobilenet = data_root() / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
    args = [str(workdir)] + ([str(mobilenet)] if mobilenet.is_file() else [])
    info = run_in_keras(KERAS_SCRIPT, *args)
    rows = []
    for name, what in [("seq", "Sequential: Conv2D/BN/DepthwiseConv2D/ReLU6/SeparableConv2D/AvgPool same/"
                               "LeakyReLU/MaxPool same/Dropout/Flatten/Dense softmax"),
                       ("fun", "functional: Conv2D x2/Add/BN/Conv2D swish stride 2/MaxPool/Concatenate/GAP/Dense")]:
        model = import_keras_model(workdir / f"{name}.h5")
        x, y = np.load(workdir / f"{name}_x.npy"), np.load(workdir / f"{name}_y.npy")
        diff = float(np.abs(keras_reference_forward(model, x) - y).max())
        rows.append({"model": what, "outputs": "softmax probabilities", "max abs diff": diff})
    if mobilenet.is_file():
        model = create_model("mobilenet_v1", num_classes=10, alpha=0.25).eval()
        load_keras_weights(model, mobilenet)
        x, y = np.load(workdir / "mn_x.npy"), np.load(workdir / "mn_y.npy")
        with torch.no_grad():
            feats = model.features(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
        diff = float(np.abs(feats.transpose(0, 2, 3, 1) - y).max())
        rows.append({"model": "Keras ImageNet MobileNet 0.25 (no top) -> cnnlab mobilenet_v1",
                     "outputs": f"7x7x256 features (largest magnitude {np.abs(y).max():.2f})", "max abs diff": diff})
    for r in rows:
        r["keras"] = info["keras"]
    return rows


def main() -> None:
    from _report import markdown_table, write_section

    with tempfile.TemporaryDirectory() as tmp:
        rows = check_against_keras(tmp)
    body = ("The same random inputs through Keras 3 (TensorFlow CPU) and through the model imported by "
            "`cnnlab import-keras` / `load_keras_weights`.\n\n" + markdown_table(rows))
    print(body)
    write_section("keras_import", "Keras import: outputs equal to Keras", body)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main()
