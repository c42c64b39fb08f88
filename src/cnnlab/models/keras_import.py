"""Import Keras models saved as ``.h5`` (``model.save("my_cnn.h5")``) into cnnlab, weights included.

A Sequential or functional CNN made of the common layers is rebuilt as a :class:`KerasGraph`: a
torch module that runs the same graph in NCHW, with kernels transposed, TF 'same' padding, Keras
BatchNorm epsilons and a channels-last ``Flatten`` so ``Dense`` weights apply unchanged. The graph is
kept as plain data (``create_model("keras_graph", graph=...)`` rebuilds it), so the imported model
can be evaluated, fine-tuned, exported and visualised like any cnnlab model. A final softmax is
removed (cnnlab models output logits; softmax is applied when probabilities are asked for).

``load_keras_weights`` loads a weights-only file (such as Keras' ImageNet ``mobilenet_*_no_top.h5``)
into a cnnlab model whose module names match the Keras layer names (e.g. ``mobilenet_v1``).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cnnlab.errors import UserError, first_line
from cnnlab.io import plain_data
from cnnlab.models.tf_layers import ChannelsLastFlatten, TFAvgPool2d, TFSamePad, pair

SUPPORTED = {
    "InputLayer", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "Flatten",
    "Dropout", "SpatialDropout2D", "Activation", "ReLU", "LeakyReLU", "ELU", "Softmax", "ZeroPadding2D",
    "Add", "Concatenate", "Multiply", "Average", "Maximum", "Rescaling",
}
_PASS_THROUGH = {"GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization"}

PREPROCESS = {  # Keras preprocessing conventions -> (mean, std) on the [0, 1] scale, per channel
    "scale": (0.0, 1.0),          # x / 255
    "tf": (0.5, 0.5),             # x / 127.5 - 1 (MobileNet, Inception, Xception, ResNetV2)
    "torch": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "raw": (0.0, 1.0 / 255.0),    # pixels 0..255 fed as they are
}


# ----------------------------------------------------------------------------- h5 reading
def _open_h5(path: str | Path):
    import h5py

    path = Path(path)
    if not path.is_file():
        raise UserError(f"Keras file not found: {path}")
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"{path}: not a readable HDF5/Keras file ({first_line(e)})") from None


def _text(v: Any) -> str:
    return v.decode("utf-8") if isinstance(v, bytes) else str(v)


def read_layer_weights(weights_group) -> dict[str, dict[str, np.ndarray]]:
    """``{layer_name: {"kernel": array, "bias": array, ...}}`` from a Keras h5 weights group."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for lname in (_text(n) for n in weights_group.attrs.get("layer_names", [])):
        g = weights_group[lname]
        arrays: dict[str, np.ndarray] = {}
        for wname in (_text(n) for n in g.attrs.get("weight_names", [])):
            key = wname.split("/")[-1].split(":")[0]
            arrays[key] = np.asarray(g[wname])
        out[lname] = arrays
    return out


# ----------------------------------------------------------------------------- graph spec
def _inbound_names(layer: dict) -> list[str]:
    """Names of the layers feeding ``layer`` (Keras 2 and Keras 3 config formats)."""
    nodes = layer.get("inbound_nodes") or []
    if not nodes:
        return []
    names: list[str] = []

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            hist = obj.get("config", {}).get("keras_history") if obj.get("class_name") == "__keras_tensor__" \
                else None
            if hist:
                names.append(hist[0])
                return
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):  # Keras 2 node ref
                names.append(obj[0])
                return
            for v in obj:
                walk(v)

    node = nodes[0]
    walk(node.get("args", node) if isinstance(node, dict) else node)
    return names


def _io_names(spec: Any) -> list[str]:
    if not spec:
        return []
    if isinstance(spec[0], str):
        return [spec[0]]
    return [s[0] for s in spec]


def _input_shape(layer_cfg: dict) -> list[int] | None:
    shape = layer_cfg.get("batch_shape") or layer_cfg.get("batch_input_shape")
    return list(shape[1:]) if shape else None


def graph_from_config(model_config: dict) -> dict:
    """Turn a Keras ``model_config`` (Sequential or functional) into cnnlab's plain graph spec."""
    cls = model_config.get("class_name")
    cfg = model_config.get("config", {})
    if cls == "Sequential":
        layers_cfg = cfg["layers"] if isinstance(cfg, dict) else cfg
        build = cfg.get("build_input_shape") if isinstance(cfg, dict) else None
        input_shape = list(build[1:]) if build else None
        layers, prev = [], None
        for raw in layers_cfg:
            lc = raw["config"]
            input_shape = input_shape or _input_shape(lc)
            if raw["class_name"] == "InputLayer":
                continue
            layers.append({"name": lc["name"], "class_name": raw["class_name"], "config": lc,
                           "inbound": [prev] if prev else ["input"]})
            prev = lc["name"]
        inputs, outputs = ["input"], [prev]
    elif cls in ("Functional", "Model"):
        layers, input_shape, inputs = [], None, _io_names(cfg.get("input_layers"))
        for raw in cfg["layers"]:
            lc = raw["config"]
            if raw["class_name"] == "InputLayer":
                input_shape = _input_shape(lc)
                continue
            layers.append({"name": raw.get("name", lc.get("name")), "class_name": raw["class_name"],
                           "config": lc, "inbound": _inbound_names(raw)})
        outputs = _io_names(cfg.get("output_layers"))
        if len(inputs) != 1 or len(outputs) != 1:
            raise UserError("only Keras models with one input and one output can be imported")
        layers = [{**ly, "inbound": ["input" if n == inputs[0] else n for n in ly["inbound"]]}
                  for ly in layers]
        inputs = ["input"]
    else:
        raise UserError(f"unsupported Keras model class {cls!r} (expected Sequential or a functional Model)")
    for ly in layers:
        if ly["class_name"] not in SUPPORTED | _PASS_THROUGH:
            raise UserError(f"Keras layer {ly['name']!r} of type {ly['class_name']} is not supported "
                            f"(supported: {', '.join(sorted(SUPPORTED))})")
        # Keras 3 writes the dtype policy as an object: not needed here
        ly["config"] = {k: v for k, v in ly["config"].items() if k != "dtype" or not isinstance(v, dict)}
    if not input_shape or len(input_shape) != 3:
        raise UserError("the Keras model must have an image input of shape (height, width, channels)")
    return {"input_shape": [int(input_shape[2]), int(input_shape[0]), int(input_shape[1])],
            "layers": plain_data(layers, other=str), "outputs": outputs, "logits": True}


# ----------------------------------------------------------------------------- torch modules
def _activation_name(cfg: dict) -> str:
    act = cfg.get("activation", "linear")
    if isinstance(act, dict):  # Keras 3 may serialise activations as objects
        act = act.get("config", {}).get("name") or act.get("class_name", "linear")
    return str(act).lower()


def make_activation(name: str) -> nn.Module:
    """A torch module for a Keras activation name."""
    table = {
        "linear": nn.Identity, "relu": nn.ReLU, "relu6": nn.ReLU6, "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh, "elu": nn.ELU, "selu": nn.SELU, "softplus": nn.Softplus,
        "softsign": nn.Softsign, "swish": nn.SiLU, "silu": nn.SiLU, "gelu": nn.GELU,
        "hard_sigmoid": nn.Hardsigmoid, "mish": nn.Mish, "softmax": functools.partial(nn.Softmax, dim=1),
        "leaky_relu": functools.partial(nn.LeakyReLU, 0.2), "leakyrelu": functools.partial(nn.LeakyReLU, 0.2),
    }
    if name not in table:
        raise UserError(f"Keras activation {name!r} is not supported")
    return table[name]()


class _Merge(nn.Module):
    def __init__(self, op: str, axis: int = -1) -> None:
        super().__init__()
        self.op, self.axis = op, axis

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        reduce = {"add": "sum", "multiply": "prod", "average": "mean", "maximum": "amax"}.get(self.op)
        if reduce:
            return getattr(torch.stack(xs), reduce)(0)
        rank = xs[0].dim()
        axis = self.axis % rank  # position in the channels-last tensor
        dim = axis if rank != 4 else {1: 2, 2: 3, 3: 1}[axis]
        return torch.cat(xs, dim=dim)


class _Rescale(nn.Module):
    def __init__(self, scale: float, offset: float) -> None:
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale + self.offset


class _GlobalPool(nn.Module):
    def __init__(self, kind: str, keepdims: bool) -> None:
        super().__init__()
        self.kind, self.keepdims = kind, keepdims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x.mean((2, 3), keepdim=True) if self.kind == "avg" else x.amax((2, 3), keepdim=True)
        return y if self.keepdims else y.flatten(1)


class _Conv(nn.Module):
    """Conv2D / DepthwiseConv2D with Keras padding and a fused activation."""

    def __init__(self, cin: int, cout: int, cfg: dict, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        k, s = pair(cfg["kernel_size"]), pair(cfg.get("strides", 1))
        d = pair(cfg.get("dilation_rate", 1))
        same = cfg.get("padding", "valid") == "same"
        self.pad = TFSamePad(k, s, d) if same else nn.Identity()
        self.conv = nn.Conv2d(cin, cout, k, stride=s, dilation=d, groups=groups, bias=bias)
        self.act = make_activation(_activation_name(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(self.pad(x)))


class _SeparableConv(nn.Module):
    def __init__(self, cin: int, cout: int, mult: int, cfg: dict) -> None:
        super().__init__()
        self.depthwise = _Conv(cin, cin * mult, {**cfg, "activation": "linear"}, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin * mult, cout, 1, bias=bool(cfg.get("use_bias", True)))
        self.act = make_activation(_activation_name(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pointwise(self.depthwise(x)))


class _Dense(nn.Module):
    def __init__(self, cin: int, cout: int, cfg: dict, activation: str | None = None) -> None:
        super().__init__()
        self.linear = nn.Linear(cin, cout, bias=bool(cfg.get("use_bias", True)))
        self.act = make_activation(activation if activation is not None else _activation_name(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.linear(x))


def _build_layer(ly: dict, shapes: dict[str, list[int]], final: bool) -> nn.Module:
    """The torch module for one Keras layer (``shapes``: the layer's weight shapes)."""
    cls, cfg = ly["class_name"], ly["config"]
    if cls == "Conv2D":
        kh, kw, cin_per_group, cout = shapes["kernel"]
        groups = int(cfg.get("groups", 1))
        return _Conv(cin_per_group * groups, cout, cfg, groups=groups, bias=bool(cfg.get("use_bias", True)))
    if cls == "DepthwiseConv2D":
        kh, kw, cin, mult = shapes["depthwise_kernel"]
        return _Conv(cin, cin * mult, cfg, groups=cin, bias=bool(cfg.get("use_bias", True)))
    if cls == "SeparableConv2D":
        kh, kw, cin, mult = shapes["depthwise_kernel"]
        return _SeparableConv(cin, shapes["pointwise_kernel"][3], mult, cfg)
    if cls == "Dense":
        cin, cout = shapes["kernel"]
        act = _activation_name(cfg)
        return _Dense(cin, cout, cfg, "linear" if final and act == "softmax" else act)
    if cls == "BatchNormalization":
        n = next(iter(shapes.values()))[0]
        axis = cfg.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) else axis
        if axis not in (-1, 3, 1):
            raise UserError(f"BatchNormalization {ly['name']!r}: axis {axis} is not supported")
        return nn.BatchNorm2d(n, eps=float(cfg.get("epsilon", 1e-3)), momentum=1 - float(cfg.get("momentum", 0.99)),
                              affine=True)
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        k = pair(cfg.get("pool_size", 2))
        s = pair(cfg.get("strides") or k)
        same = cfg.get("padding", "valid") == "same"
        if cls == "MaxPooling2D":
            pool = nn.MaxPool2d(k, s)
            return nn.Sequential(TFSamePad(k, s, value=float("-inf")), pool) if same else pool
        return TFAvgPool2d(k, s) if same else nn.AvgPool2d(k, s)
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        return _GlobalPool("avg" if "Average" in cls else "max", bool(cfg.get("keepdims", False)))
    if cls == "Flatten":
        return ChannelsLastFlatten()
    if cls in ("Dropout", "SpatialDropout2D"):
        return nn.Dropout(float(cfg.get("rate", 0.5))) if cls == "Dropout" else nn.Dropout2d(float(cfg["rate"]))
    if cls == "Activation":
        act = _activation_name(cfg)
        return nn.Identity() if final and act == "softmax" else make_activation(act)
    if cls == "Softmax":
        return nn.Identity() if final else nn.Softmax(dim=1)
    if cls == "ReLU":
        mx, slope = cfg.get("max_value"), float(cfg.get("negative_slope", 0.0))
        if slope:
            return nn.LeakyReLU(slope)
        return nn.ReLU6() if mx == 6 else (nn.Hardtanh(0.0, float(mx)) if mx else nn.ReLU())
    if cls == "LeakyReLU":
        return nn.LeakyReLU(float(cfg.get("negative_slope", cfg.get("alpha", 0.3))))
    if cls == "ELU":
        return nn.ELU(float(cfg.get("alpha", 1.0)))
    if cls == "ZeroPadding2D":
        p = cfg.get("padding", 1)
        (t, b), (left, r) = ((p, p), (p, p)) if isinstance(p, int) else \
            [(q, q) if isinstance(q, int) else q for q in p]
        return nn.ZeroPad2d((left, r, t, b))
    if cls in ("Add", "Multiply", "Average", "Maximum"):
        return _Merge(cls.lower())
    if cls == "Concatenate":
        return _Merge("concat", int(cfg.get("axis", -1)))
    if cls == "Rescaling":
        return _Rescale(cfg.get("scale", 1.0), cfg.get("offset", 0.0))
    if cls in _PASS_THROUGH:
        return nn.Identity()
    raise UserError(f"Keras layer type {cls} is not supported")  # pragma: no cover (checked earlier)


class KerasGraph(nn.Module):
    """A Keras graph (plain-data spec) run in PyTorch, NCHW."""

    def __init__(self, graph: dict) -> None:
        super().__init__()
        self.graph = graph
        self.order = [ly["name"] for ly in graph["layers"]]
        self.inbound = {ly["name"]: ly["inbound"] for ly in graph["layers"]}
        self.output = graph["outputs"][0]
        self.layers = nn.ModuleDict()
        self.keys = {}
        for ly in graph["layers"]:
            key = ly["name"].replace(".", "_")
            self.keys[ly["name"]] = key
            self.layers[key] = _build_layer(ly, ly.get("weight_shapes", {}),
                                            final=graph.get("logits", True) and ly["name"] == self.output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {"input": x}
        for name in self.order:
            args = [values[n] for n in self.inbound[name]]
            values[name] = self.layers[self.keys[name]](*args)
        return values[self.output]


# ----------------------------------------------------------------------------- weights
def _to_torch(cls: str, w: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Keras arrays of one layer -> state_dict entries of the matching cnnlab module."""
    t = {k: torch.from_numpy(np.ascontiguousarray(v)).float() for k, v in w.items()}
    out: dict[str, torch.Tensor] = {}
    if "depthwise_kernel" in t:  # (kh, kw, cin, mult) -> (cin * mult, 1, kh, kw)
        kh, kw, cin, mult = t["depthwise_kernel"].shape
        depthwise = t["depthwise_kernel"].permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    if cls == "Conv2D":
        out["conv.weight"] = t["kernel"].permute(3, 2, 0, 1)
    elif cls == "DepthwiseConv2D":
        out["conv.weight"] = depthwise
    elif cls == "SeparableConv2D":
        out["depthwise.conv.weight"] = depthwise
        out["pointwise.weight"] = t["pointwise_kernel"].permute(3, 2, 0, 1)
    elif cls == "Dense":
        out["linear.weight"] = t["kernel"].t()
    elif cls == "BatchNormalization":
        n = t["moving_mean"].shape[0]
        out["weight"] = t.get("gamma", torch.ones(n))
        out["bias"] = t.get("beta", torch.zeros(n))
        out["running_mean"] = t["moving_mean"]
        out["running_var"] = t["moving_variance"]
    bias = {"Conv2D": "conv.bias", "DepthwiseConv2D": "conv.bias", "SeparableConv2D": "pointwise.bias",
            "Dense": "linear.bias"}.get(cls)
    if bias and "bias" in t:
        out[bias] = t["bias"]
    return out


def import_keras_model(path: str | Path) -> KerasGraph:
    """Rebuild the Keras model saved in ``path`` (an .h5 written by ``model.save``) with its weights."""
    from cnnlab.models.registry import create_model

    with _open_h5(path) as f:
        if "model_config" not in f.attrs:
            raise UserError(f"{path}: holds weights only (no model config); load it into a matching cnnlab "
                            "model with load_keras_weights, e.g. mobilenet_v1 for Keras' MobileNet")
        config = json.loads(_text(f.attrs["model_config"]))
        weights = read_layer_weights(f.get("model_weights", f))
    graph = graph_from_config(config)
    for ly in graph["layers"]:
        arrays = weights.get(ly["name"], {})
        if ly["class_name"] == "DepthwiseConv2D" and "kernel" in arrays:  # Keras 3 naming
            arrays["depthwise_kernel"] = arrays.pop("kernel")
        ly["weight_shapes"] = {k: list(v.shape) for k, v in weights.get(ly["name"], {}).items()}
        needs = {"Conv2D": "kernel", "Dense": "kernel", "DepthwiseConv2D": "depthwise_kernel",
                 "SeparableConv2D": "depthwise_kernel", "BatchNormalization": "moving_mean"}.get(ly["class_name"])
        if needs and needs not in ly["weight_shapes"]:
            raise UserError(f"{path}: layer {ly['name']!r} has no saved '{needs}' weights")
    c, h, w = graph["input_shape"]
    out_layer = next(ly for ly in graph["layers"] if ly["name"] == graph["outputs"][0])
    num_classes = out_layer.get("weight_shapes", {}).get("kernel", [0, 0])[-1] or 0
    model = create_model("keras_graph", num_classes=max(int(num_classes), 1), in_chans=c, img_size=h,
                         graph=graph)
    state = {}
    for ly in graph["layers"]:
        for k, v in _to_torch(ly["class_name"], weights.get(ly["name"], {})).items():
            state[f"layers.{model.keys[ly['name']]}.{k}"] = v
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise UserError(f"{path}: weights do not fit the rebuilt model (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    return model.eval()


def load_keras_weights(model: nn.Module, path: str | Path, prefix: str = "features.",
                       strict: bool = True) -> list[str]:
    """Load a Keras weights file into ``model`` by layer name (``<prefix><keras layer name>``).

    Returns the names of the Keras layers loaded. With ``strict``, every Keras layer with weights must
    find its module and every shape must match; a mismatch is a one-line UserError.
    """
    with _open_h5(path) as f:
        weights = read_layer_weights(f.get("model_weights", f))
    modules = dict(model.named_modules())
    loaded: list[str] = []
    state = model.state_dict()
    new_state: dict[str, torch.Tensor] = {}
    for lname, arrays in weights.items():
        if not arrays:
            continue
        mod = modules.get(prefix + lname)
        if mod is None:
            if strict:
                raise UserError(f"{path}: Keras layer {lname!r} has no matching module {prefix + lname!r} in the model")
            continue
        if isinstance(mod, nn.BatchNorm2d):
            cls = "BatchNormalization"
        elif isinstance(mod, nn.Conv2d):
            cls = "DepthwiseConv2D" if mod.groups > 1 else "Conv2D"
            if cls == "DepthwiseConv2D" and "kernel" in arrays:  # Keras 3 naming
                arrays["depthwise_kernel"] = arrays.pop("kernel")
        elif isinstance(mod, nn.Linear):
            cls = "Dense"
        else:
            raise UserError(f"{path}: cannot load Keras layer {lname!r} into a {type(mod).__name__}")
        for key, value in _to_torch(cls, arrays).items():
            key = key.split(".", 1)[1] if key.startswith(("conv.", "linear.")) else key
            full = f"{prefix}{lname}.{key}"
            if full not in state:
                raise UserError(f"{path}: model has no parameter {full!r}")
            have = tuple(state[full].shape)
            if have != tuple(value.shape) and value.dim() == 4 and have[0] == value.shape[0] \
                    and have[2:] == tuple(value.shape[2:]) and getattr(mod, "groups", 1) == 1:
                from timm.models import adapt_input_conv  # e.g. RGB weights for grey images

                value = adapt_input_conv(have[1], value)
            if have != tuple(value.shape):
                raise UserError(f"{path}: shape mismatch for {lname!r}: Keras {tuple(value.shape)} vs "
                                f"model {tuple(state[full].shape)} (wrong width multiplier?)")
            new_state[full] = value
        loaded.append(lname)
    model.load_state_dict(new_state, strict=False)
    return loaded


# ----------------------------------------------------------------------------- run folders
def import_keras(path: str | Path, project: str | Path = "runs", name: str = "exp",
                 classes: list[str] | None = None, preprocess: str = "scale", dataset: str | None = None,
                 exist_ok: bool = False) -> Path:
    """Import a Keras ``.h5`` model into a cnnlab run folder (``runs/classify/<name>``).

    The run holds ``weights/best.pt`` and ``weights/last.pt`` (cnnlab checkpoints) and a
    ``config.yaml``, so ``cnnlab evaluate/predict/export/summary/visualize`` work on it directly.
    ``preprocess`` names how the Keras model expected its pixels: ``scale`` (x/255), ``tf``
    (x/127.5 - 1), ``torch`` (ImageNet mean/std) or ``raw`` (0..255 as they are).
    """
    from cnnlab.engine.checkpoint import save_checkpoint
    from cnnlab.io import write_json
    from cnnlab.runs import new_run_dir, write_run_config

    if preprocess not in PREPROCESS:
        raise UserError(f"unknown preprocessing {preprocess!r}; choose from {', '.join(PREPROCESS)}")
    model = import_keras_model(path)
    spec = model.cnnlab_spec
    c, size, n = spec["in_chans"], spec["img_size"], spec["num_classes"]
    classes = list(classes) if classes else [str(i) for i in range(n)]
    if len(classes) != n:
        raise UserError(f"{len(classes)} class names given but the Keras model has {n} outputs")
    mean, std = (list(v) if isinstance(v, tuple) else [v] * c for v in PREPROCESS[preprocess])
    run = new_run_dir(project, "classify", name, exist_ok=exist_ok)
    config = {"dataset": dataset or "digits", "model": "keras_graph", "model_kwargs": spec["kwargs"],
              "img_size": size, "epochs": 0, "project": str(project), "name": run.name}
    write_run_config(run, config)
    ckpt = {"model_spec": spec, "model": model.state_dict(), "ema": None, "optimizer": None,
            "scheduler": None, "epoch": 0, "rng": None, "config": config, "classes": classes,
            "preprocess": {"mean": mean, "std": std, "img_size": size, "in_chans": c}, "metrics": {}}
    save_checkpoint(run / "weights" / "last.pt", ckpt)
    save_checkpoint(run / "weights" / "best.pt", ckpt)
    write_json(run / "keras_import.json", {"source": str(Path(path).resolve()), "preprocess": preprocess,
                                           "layers": len(spec["kwargs"]["graph"]["layers"]),
                                           "softmax_removed": True})
    return run
