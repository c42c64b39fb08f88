"""cnnlab.data: datasets (registry, official formats, download + verify), splits, loaders, augmentation.

    from cnnlab.data import load_dataset, make_loader, validation_split
    train = load_dataset("mnist", "train")            # ArrayDataset, uint8 (N, 1, 28, 28)
    tr, va = validation_split(train.labels, 0.1, seed=0)
    loader = make_loader(train.subset(tr), 128, shuffle=True, augment="standard", seed=0)

Every name is imported on first use (PEP 562), so listing datasets (``cnnlab datasets``) imports no torch.
"""

from cnnlab._lazy import lazy_exports

_EXPORTS = {
    "PRESETS": "cnnlab.data.augment", "AugmentConfig": "cnnlab.data.augment", "BatchPipeline": "cnnlab.data.augment",
    "resolve_augment": "cnnlab.data.augment", "ArrayDataset": "cnnlab.data.dataset",
    "channel_stats": "cnnlab.data.dataset", "FolderDataset": "cnnlab.data.folder", "ArrayLoader": "cnnlab.data.loader",
    "FolderLoader": "cnnlab.data.loader", "make_loader": "cnnlab.data.loader",
    "DataChecksumWarning": "cnnlab.data.official", "DatasetEntry": "cnnlab.data.registry",
    "dataset_status": "cnnlab.data.registry", "download_dataset": "cnnlab.data.registry",
    "list_datasets": "cnnlab.data.registry", "load_dataset": "cnnlab.data.registry",
    "register_dataset": "cnnlab.data.registry", "kfold_splits": "cnnlab.data.splits",
    "validation_split": "cnnlab.data.splits", "augment_preview": "cnnlab.data.preview",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
