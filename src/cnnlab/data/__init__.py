"""cnnlab.data: datasets (registry, official formats, download + verify), splits, loaders, augmentation.

    from cnnlab.data import load_dataset, make_loader, validation_split
    train = load_dataset("mnist", "train")            # ArrayDataset, uint8 (N, 1, 28, 28)
    tr, va = validation_split(train.labels, 0.1, seed=0)
    loader = make_loader(train.subset(tr), 128, shuffle=True, augment="standard", seed=0)
"""

from cnnlab._lazy import lazy_exports
from cnnlab.data.augment import PRESETS, AugmentConfig, BatchPipeline, resolve_augment
from cnnlab.data.dataset import ArrayDataset, channel_stats
from cnnlab.data.folder import FolderDataset
from cnnlab.data.loader import ArrayLoader, FolderLoader, make_loader
from cnnlab.data.official import DataChecksumWarning
from cnnlab.data.registry import (
    DatasetEntry,
    dataset_status,
    download_dataset,
    list_datasets,
    load_dataset,
    register_dataset,
)
from cnnlab.data.splits import kfold_splits, validation_split

__all__ = [
    "PRESETS", "ArrayDataset", "ArrayLoader", "AugmentConfig", "BatchPipeline", "DataChecksumWarning",
    "DatasetEntry", "FolderDataset", "FolderLoader", "augment_preview", "channel_stats", "dataset_status",
    "download_dataset", "kfold_splits", "list_datasets", "load_dataset", "make_loader", "register_dataset",
    "resolve_augment", "validation_split",
]

# augment_preview imports matplotlib: only on demand
__getattr__ = lazy_exports(__name__, {"augment_preview": "cnnlab.data.preview"})[0]
