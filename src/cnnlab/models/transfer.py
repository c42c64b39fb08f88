"""Transfer learning: a known backbone with a new head, pretrained weights, freezing, parameter groups.

A :class:`TransferNet` takes images on the [0, 1] scale at any size: it resizes them to the backbone's
input size and applies the backbone's own normalisation inside ``forward``, so a 32x32 CIFAR batch
feeds a 224x224 ImageNet network and an exported model carries its preprocessing with it.

Familiar (Keras) names map to timm architectures through :data:`ALIASES`; ``mobilenet`` maps to
cnnlab's own ``mobilenet_v1``, whose layer names match Keras so its ImageNet ``.h5`` loads directly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.errors import ModelError, UserError, first_line

# familiar name (lower case, no separators) -> backbone ("timm/<name>" or a cnnlab model)
ALIASES: dict[str, str] = {
    "vgg16": "timm/vgg16",
    "vgg19": "timm/vgg19",
    "resnet50": "timm/resnet50",
    "resnet50v2": "timm/resnetv2_50",
    "resnet101v2": "timm/resnetv2_101",
    "resnet152v2": "timm/resnetv2_152",
    "inceptionv3": "timm/inception_v3",
    "inceptionresnetv2": "timm/inception_resnet_v2",
    "xception": "timm/legacy_xception",
    "densenet121": "timm/densenet121",
    "densenet169": "timm/densenet169",
    "densenet201": "timm/densenet201",
    "mobilenet": "mobilenet_v1",
    "mobilenetv1": "mobilenet_v1",
    "mobilenet025": "mobilenet_v1_025",
    "mobilenet050": "mobilenet_v1_050",
    "mobilenet075": "mobilenet_v1_075",
    "mobilenetv2": "timm/mobilenetv2_100",
    "mobilenetv3large": "timm/mobilenetv3_large_100",
    "mobilenetv3small": "timm/mobilenetv3_small_100",
    "efficientnetb0": "timm/efficientnet_b0",
    "efficientnetb1": "timm/efficientnet_b1",
}


def resolve_backbone(name: str) -> str:
    """Map a familiar name (``ResNet50V2``, ``EfficientNet-B0``) or ``timm/<name>`` to a backbone id."""
    if name.startswith("timm/"):
        return name
    key = re.sub(r"[\s_\-.]", "", name.lower())
    if key in ALIASES:
        return ALIASES[key]
    from cnnlab.models.registry import timm_names

    if name.split(".", 1)[0] in timm_names():
        return f"timm/{name}"
    import difflib

    close = difflib.get_close_matches(key, list(ALIASES), n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ModelError(f"unknown backbone {name!r}{hint} (familiar names: {', '.join(sorted(ALIASES))}; "
                     "or any timm architecture as timm/<name>)")


def check_backbone(name: str) -> str:
    """The backbone id of ``name`` (see :func:`resolve_backbone`), checked without building it: a
    ``timm/<name>`` timm must know, a cnnlab model must be registered."""
    from cnnlab.models.registry import check_timm_name, get_entry

    backbone = resolve_backbone(name)
    if backbone.startswith("timm/"):
        check_timm_name(backbone[5:])
    else:
        get_entry(backbone)
    return backbone


class TransferNet(nn.Module):
    """Backbone (features, globally pooled) + a new classification head; preprocessing inside."""

    def __init__(self, backbone: str, num_classes: int, in_chans: int = 3, input_size: int | None = None,
                 head_hidden: int = 0, head_dropout: float = 0.0, backbone_kwargs: dict | None = None) -> None:
        super().__init__()
        self.backbone_name = resolve_backbone(backbone)
        kwargs = dict(backbone_kwargs or {})
        if self.backbone_name.startswith("timm/"):
            import timm

            self.backbone = timm.create_model(self.backbone_name[5:], pretrained=False, num_classes=0,
                                              in_chans=in_chans, **kwargs)
            cfg = self.backbone.pretrained_cfg
            mean, std = cfg.get("mean", (0.485, 0.456, 0.406)), cfg.get("std", (0.229, 0.224, 0.225))
            default_size = int(cfg.get("input_size", (3, 224, 224))[-1])
            self.stages = [f["module"] for f in getattr(self.backbone, "feature_info", [])]
        else:
            from cnnlab.models.registry import create_model

            net = create_model(self.backbone_name, num_classes=1, in_chans=in_chans, **kwargs)
            if not hasattr(net, "features"):
                raise ModelError(f"{self.backbone_name} cannot be used as a backbone (no `features`)")
            self.backbone = nn.Sequential(net.features, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.backbone.num_features = net.num_features
            mean, std, default_size = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 224
            self.stages = [f"0.{name}" for name in getattr(net, "stage_starts", [])]
        if in_chans != len(mean):  # grey images on an RGB backbone: average the statistics
            mean, std = (sum(mean) / len(mean),) * in_chans, (sum(std) / len(std),) * in_chans
        self.input_size = int(input_size or default_size)
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)
        feats = self.backbone.num_features
        layers: list[nn.Module] = []
        if head_hidden:
            layers += [nn.Linear(feats, head_hidden), nn.ReLU(inplace=True)]
            feats = head_hidden
        if head_dropout:
            layers.append(nn.Dropout(head_dropout))
        layers.append(nn.Linear(feats, num_classes))
        self.head = nn.Sequential(*layers)
        self.freeze_bn = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.input_size or x.shape[-2] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return self.head(self.backbone((x - self.mean) / self.std))

    def train(self, mode: bool = True) -> TransferNet:
        """Like ``nn.Module.train``, but frozen BatchNorm layers stay in eval mode (``freeze_bn``)."""
        super().train(mode)
        if mode and self.freeze_bn:
            set_frozen_bn_eval(self.backbone)
        return self


# ----------------------------------------------------------------------------- pretrained weights
def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a torch file (weights only, never code)."""
    from cnnlab.io import torch_load_safe

    path = Path(path)
    if not path.is_file():
        raise UserError(f"pretrained weights not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error types
            raise UserError(f"{path}: not a readable safetensors file ({first_line(e)})") from None
    obj = torch_load_safe(path)
    for key in ("state_dict", "model", "model_state_dict"):  # common wrappers, cnnlab checkpoints too
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"{path}: does not hold a state dict of tensors")
    return obj


def load_backbone_weights(model: TransferNet, path: str | Path) -> dict[str, int]:
    """Load pretrained backbone weights from a local file into ``model``.

    Accepts safetensors, a torch state dict (or a cnnlab checkpoint) for timm backbones, and Keras
    ``.h5`` weights for ``mobilenet_v1``. Classifier weights in the file are ignored; the first
    convolution is adapted when the channel count differs (timm's ``adapt_input_conv``); any other
    shape mismatch is a one-line error listing the first mismatches. Returns counts of loaded/skipped.
    """
    path = Path(path)
    if path.suffix in (".h5", ".hdf5"):
        from cnnlab.models.keras_import import load_keras_weights

        if not model.backbone_name.startswith("mobilenet_v1"):
            raise UserError(f"{path}: Keras .h5 weights load into the 'mobilenet' backbones only")
        loaded = load_keras_weights(model.backbone[0], path, prefix="")
        return {"loaded": len(loaded), "skipped": 0}
    state = read_state_dict(path)
    state = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in state.items()}
    own = model.backbone.state_dict()
    head_names = _classifier_prefixes(model.backbone)
    loadable, skipped, mismatched = {}, 0, []
    for k, v in state.items():
        if k not in own:
            skipped += 1
            continue
        if own[k].shape != v.shape:
            if v.dim() == 4 and own[k].dim() == 4 and own[k].shape[0] == v.shape[0] and own[k].shape[2:] == v.shape[2:]:
                from timm.models import adapt_input_conv

                v = adapt_input_conv(own[k].shape[1], v)
            else:
                mismatched.append(f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}")
                continue
        loadable[k] = v
    if mismatched:
        raise UserError(f"{path}: {len(mismatched)} weight shapes do not fit {model.backbone_name} "
                        f"(e.g. {'; '.join(mismatched[:2])})")
    missing = [k for k in own if k not in loadable and not k.endswith("num_batches_tracked")
               and not any(k.startswith(h) for h in head_names)]
    if missing:
        raise UserError(f"{path}: {len(missing)} backbone weights missing for {model.backbone_name} "
                        f"(e.g. {', '.join(missing[:3])}); is it the right architecture?")
    model.backbone.load_state_dict(loadable, strict=False)
    return {"loaded": len(loadable), "skipped": skipped}


def _classifier_prefixes(backbone: nn.Module) -> list[str]:
    clf = backbone.get_classifier() if hasattr(backbone, "get_classifier") else None
    return [n + "." for n, m in backbone.named_modules() if n and m is clf]


HUB_SOURCES = ("hub", "imagenet", "true")


def is_hub_source(source: Any) -> bool:
    """True when ``--pretrained`` asks for the hub's ImageNet weights (``hub``, ``imagenet``)."""
    return str(source).strip().lower() in HUB_SOURCES


def _hub_source(name: str) -> tuple[str, str] | None:
    """Where timm gets the default pretrained weights of ``name``: ``("hf", repo id)``, ``("url", url)``,
    or None when timm has none (timm's own order: the hub first, then the URL)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    if cfg is None:
        return None
    if cfg.hf_hub_id:
        return "hf", cfg.hf_hub_id
    if cfg.url:
        return "url", cfg.url
    return None


def _hub_filenames(name: str) -> list[str]:
    """The files timm reads from a hub repo for ``name`` (safetensors first, as timm does)."""
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name)
    wanted = (cfg.hf_hub_filename if cfg is not None else None) or "pytorch_model.bin"
    if wanted.endswith(".safetensors"):
        return [wanted]
    safe = "model.safetensors" if wanted == "pytorch_model.bin" else wanted.rsplit(".", 1)[0] + ".safetensors"
    return [safe, wanted]


def cached_hub_weights(name: str) -> str | None:
    """The local file holding timm's default pretrained weights for ``name`` (Hugging Face hub cache,
    or torch's hub cache for URL weights), or None; never touches the network."""
    source = _hub_source(name)
    if source is None:
        return None
    kind, where = source
    if kind == "hf":
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = where.partition("@")
        for filename in _hub_filenames(name):
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str) and Path(found).is_file():
                return found
        return None
    from urllib.parse import urlparse

    file = Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(where).path).name
    return str(file) if file.is_file() else None


def hub_offline_reason(url: str = "https://huggingface.co", hf: bool = True) -> str | None:
    """Why a download from ``url`` cannot work right now, or None when it may: ``HF_HUB_OFFLINE`` is
    set (``hf``: a Hugging Face hub download), or a 3 s TCP connection to the host fails (skipped
    behind a proxy, which only a real request can test)."""
    import os
    import socket
    from urllib.parse import urlparse

    if hf and os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    if any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                                       "all_proxy")):
        return None
    parsed = urlparse(url)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError:
        return f"the network is unreachable (no connection to {host})"
    return None


def _not_cached(name: str, why: str) -> UserError:
    """The one line for weights that are neither cached nor downloadable."""
    source = _hub_source(name)
    if source is not None and source[0] == "hf":
        how = f"download them once with `hf download {source[1].partition('@')[0]}`"
    elif source is not None:
        how = f"download {source[1]} once into {Path(torch.hub.get_dir()) / 'checkpoints'}"
    else:
        how = "download them once"
    return UserError(f"pretrained weights for {name} are not in the local cache and {why}; {how} "
                     "or pass a weights file with --pretrained PATH")


def check_hub_weights(backbone: str) -> str | None:
    """Check, before any data or model is loaded, that the hub weights of ``backbone`` (``timm/<name>``)
    can be had: cached locally (returns the file), or downloadable (returns None; the download happens
    when the model is built). Offline without a cached file is one UserError at once."""
    if not backbone.startswith("timm/"):
        raise UserError(f"no hub weights for {backbone}; pass a local file with --pretrained PATH")
    name = backbone[5:]
    source = _hub_source(name)
    if source is None:
        raise UserError(f"timm has no pretrained weights for {name}; train it from scratch (no --pretrained) "
                        "or pass a weights file with --pretrained PATH")
    cached = cached_hub_weights(name)
    if cached is not None:
        return cached
    hf = source[0] == "hf"
    why = hub_offline_reason(_hf_endpoint() if hf else source[1], hf=hf)
    if why is not None:
        raise _not_cached(name, why)
    return None


def _hf_endpoint() -> str:
    import os

    return os.environ.get("HF_ENDPOINT") or "https://huggingface.co"


def _network_error(e: BaseException) -> bool:
    """True when ``e`` (or what caused it) says the hub could not be reached."""
    import socket

    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        names = {c.__name__ for c in type(cur).__mro__}
        if isinstance(cur, (ConnectionError, TimeoutError, socket.gaierror)) or names & {
                "ConnectError", "ConnectTimeout", "ConnectionError", "LocalEntryNotFoundError",
                "OfflineModeIsEnabled", "NameResolutionError", "MaxRetryError"}:
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def _short(text: str, limit: int = 120) -> str:
    """``text`` cut at a word boundary (never mid-word) to at most ``limit`` characters."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(" ,;:.")
    return cut + "..."


def load_hub_weights(model: TransferNet) -> None:
    """Load timm's pretrained weights for the backbone: from the local cache when they are there (no
    network at all), else downloaded once through timm (the hub's retry chatter silenced; a failure
    is one line)."""
    import logging

    cached = check_hub_weights(model.backbone_name)
    import timm

    name = model.backbone_name[5:]
    kwargs: dict[str, Any] = {"num_classes": 0, "in_chans": model.mean.shape[1]}
    if cached is not None:  # timm would ask the hub for a newer copy first (and retry for a minute offline)
        kwargs["pretrained_cfg_overlay"] = {"file": cached, "source": None}
    loggers = [logging.getLogger(n) for n in ("huggingface_hub", "timm")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        ref = timm.create_model(name, pretrained=True, **kwargs)
    except Exception as e:  # network, cache or hub errors: one line, the reason never cut mid-word
        why = ("the network is unreachable" if _network_error(e)
               else f"could not be downloaded ({_short(first_line(e))})")
        raise _not_cached(name, why) from None
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
    model.backbone.load_state_dict(ref.state_dict())


def check_pretrained(model_name: str, model_kwargs: dict[str, Any] | None, source: str) -> None:
    """Check ``--pretrained`` before any data is loaded: ``hub`` needs a transfer backbone with hub
    weights that are cached or downloadable; anything else is a file or run folder that must exist."""
    from cnnlab.models.registry import PRETRAINED_TIMM_ENTRY, check_model

    registry_name, kwargs = check_model(model_name, source, model_kwargs)
    transfer = registry_name == PRETRAINED_TIMM_ENTRY
    if is_hub_source(source):
        if not transfer:
            raise UserError(f"pretrained: {source} loads ImageNet weights into a transfer backbone (e.g. --model "
                            f"ResNet50V2 or timm/<name>); {model_name} takes a weights file or a cnnlab run")
        check_hub_weights(check_backbone(backbone_option(kwargs)))
        return
    path = pretrained_path(source)
    if path.is_dir():
        if transfer:
            raise UserError(f"pretrained: {source} is a folder; a transfer backbone takes a weights file "
                            "(.safetensors, .pt, Keras .h5)")
        from cnnlab.runs import checkpoint_path

        checkpoint_path(path, "best")


def pretrained_path(source: str | Path) -> Path:
    """A ``--pretrained`` file or run folder: the path as given, else a bare file name under the data
    root's ``weights/`` (``cnnlab.paths.find_file``); missing -> one-line UserError."""
    from cnnlab.paths import find_file

    return find_file(source, "weights", what="pretrained weights")


def backbone_option(kwargs: dict[str, Any]) -> str:
    """The backbone a ``transfer`` model with options ``kwargs`` builds (its ``backbone`` default when
    none is given)."""
    import inspect

    from cnnlab.models.registry import PRETRAINED_TIMM_ENTRY, get_entry

    default = inspect.signature(get_entry(PRETRAINED_TIMM_ENTRY).fn).parameters["backbone"].default
    return str(kwargs.get("backbone") or default)


# ----------------------------------------------------------------------------- freezing
def _param_leaves(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in module.named_modules()
            if not list(m.children()) and any(True for _ in m.parameters(recurse=False))]


def split_head(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], list[nn.Module]]:
    """``(body layers in forward order, head modules)``.

    A :class:`TransferNet` has an explicit ``backbone`` and ``head``; for any other model the last
    layer with parameters (its classifier) is the head and every earlier one is the body.
    """
    if isinstance(model, TransferNet):
        return [(n, m) for n, m in _param_leaves(model.backbone) if n], [model.head]
    leaves = _param_leaves(model)
    if not leaves:
        raise UserError("the model has no layers with parameters to freeze")
    return leaves[:-1], [leaves[-1][1]]


def freeze(model: nn.Module, spec: str | int | float | None) -> dict[str, int]:
    """Freeze part of the body (the backbone of a TransferNet); the head always trains.

    ``spec``: ``none`` (train everything), ``all`` (whole body frozen), a fraction such as ``0.5``
    (the first half of the body's layers), an integer N (the first N layers, as Keras'
    ``base.layers[:N]``), ``last`` (all but the last stage) or a module name such as ``stages.3`` /
    ``layer4`` (everything before that module; it and what follows train).
    """
    layers, head = split_head(model)
    cut = freeze_cut(model, spec)
    for i, (_, m) in enumerate(layers):
        for p in m.parameters(recurse=False):
            p.requires_grad = i >= cut
    for h in head:
        for p in h.parameters():
            p.requires_grad = True
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    return {"frozen_layers": cut, "layers": len(layers), "trainable": trainable, "frozen": frozen}


def freeze_cut(model: nn.Module, spec: str | int | float | None) -> int:
    """How many body layers ``spec`` freezes (checks the spec without changing the model)."""
    layers = split_head(model)[0]
    n = len(layers)
    text = str(spec).strip().lower() if spec is not None else "none"
    stages = list(getattr(model, "stages", []) or [])
    if text in ("none", "0", ""):
        return 0
    if text == "all":
        return n
    if re.fullmatch(r"\d+", text):
        return min(int(text), n)
    if re.fullmatch(r"0?\.\d+|1\.0*", text):
        return int(round(float(text) * n))
    stage = stages[-1] if text == "last" and stages else str(spec)
    names = [name for name, _ in layers]
    idx = next((i for i, name in enumerate(names) if name == stage or name.startswith(stage + ".")), None)
    if idx is None:
        options = ", ".join(stages) if stages else "a module name of the model"
        raise UserError(f"freeze: no stage {str(spec)!r} (stages: {options}; or none, all, "
                        f"a fraction like 0.5, or a layer count)")
    return idx


def set_frozen_bn_eval(model: nn.Module) -> None:
    """Put BatchNorm layers whose parameters are all frozen into eval mode (statistics kept)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and not any(
                p.requires_grad for p in m.parameters(recurse=False)):
            m.eval()


def param_groups(model: nn.Module, lr: float, backbone_lr: float | None = None) -> list[dict[str, Any]]:
    """Optimiser parameter groups: the head at ``lr``, the backbone at ``backbone_lr`` (default ``lr``)."""
    head = [p for h in split_head(model)[1] for p in h.parameters() if p.requires_grad]
    head_ids = {id(p) for p in head}
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_ids]
    groups = [{"params": head, "lr": lr, "name": "head"}]
    if body:
        groups.append({"params": body, "lr": lr if backbone_lr is None else backbone_lr, "name": "backbone"})
    return groups


def load_pretrained(model: nn.Module, source: str) -> str:
    """Initialise ``model`` from ``source`` before fine-tuning; returns a one-line description.

    For a TransferNet: ``hub``/``imagenet`` (timm's hub or its local cache), or a local weights file
    (safetensors, state dict, Keras ``.h5`` for ``mobilenet``). For any other model: a cnnlab run
    folder, checkpoint or state-dict file of the same architecture, possibly trained on other classes:
    every weight whose shape fits is loaded and the classifier is re-initialised ("re-headed").
    """
    if isinstance(model, TransferNet):
        if str(source).lower() in ("hub", "imagenet", "true"):
            load_hub_weights(model)
            return f"backbone {model.backbone_name} from the hub"
        path = pretrained_path(source)
        counts = load_backbone_weights(model, path)
        return f"backbone {model.backbone_name}: {counts['loaded']} tensors from {path}"
    path = pretrained_path(source)
    if path.is_dir():
        from cnnlab.runs import checkpoint_path

        path = checkpoint_path(path, "best")
    state = read_state_dict(path)
    own = model.state_dict()
    head_keys = {f"{n}.{k}" for n, m in model.named_modules() if m in split_head(model)[1]
                 for k in m.state_dict()}
    loaded, reheaded, bad = 0, [], []
    fitting = {}
    for k, v in own.items():
        if k not in state:
            bad.append(f"{k} missing")
        elif state[k].shape == v.shape:
            fitting[k] = state[k]
            loaded += 1
        elif k in head_keys:
            reheaded.append(k)
        else:
            bad.append(f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}")
    if bad:
        raise UserError(f"{source}: weights do not fit this model ({len(bad)} problems, e.g. {'; '.join(bad[:2])}); "
                        "pretrained runs must share the architecture (only the classifier may differ)")
    model.load_state_dict(fitting, strict=False)
    note = f", classifier re-initialised for {split_head(model)[1][0].weight.shape[0]} classes" if reheaded else ""
    return f"{loaded} tensors from {path}{note}"


def create_transfer_model(backbone: str, num_classes: int, in_chans: int = 3, input_size: int | None = None,
                          pretrained: str | bool | None = None, freeze_spec: str | None = "none",
                          head_hidden: int = 0, head_dropout: float = 0.0, freeze_bn: bool = True,
                          backbone_kwargs: dict[str, Any] | None = None) -> TransferNet:
    """A backbone with a new head for ``num_classes``, optionally pretrained and partly frozen."""
    from cnnlab.models.registry import create_model

    model = create_model("transfer", num_classes=num_classes, in_chans=in_chans, input_size=input_size,
                         backbone=backbone, head_hidden=head_hidden, head_dropout=head_dropout,
                         **({"backbone_kwargs": backbone_kwargs} if backbone_kwargs else {}))
    model.freeze_bn = freeze_bn
    if pretrained:
        load_pretrained(model, "hub" if pretrained is True else str(pretrained))
    freeze(model, freeze_spec)
    return model
