"""Official file formats: idx (MNIST), CIFAR-10/100 python version, restricted unpickler, decoded cache."""

from __future__ import annotations

import gzip
import pickle
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from _data_files import write_cifar_folder, write_idx
from cnnlab.data import DataChecksumWarning, load_dataset
from cnnlab.data.cifar import CIFAR10, CIFAR100
from cnnlab.data.idx import parse_idx, read_idx
from cnnlab.data.safe_pickle import safe_loads
from cnnlab.errors import DataError, UserError


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("CNNLAB_DATA", raising=False)
    monkeypatch.delenv("CNNLAB_DATA_MIRRORS", raising=False)


def write_mnist(folder: Path, n_train: int = 20, n_test: int = 10, seed: int = 0, gz: bool = True) -> tuple:
    rng = np.random.default_rng(seed)
    data = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        data[prefix] = (images, labels)
    return data


def cifar_arrays(n: int, num_classes: int, seed: int, coarse: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    labels = np.arange(n) % num_classes
    return (images, labels, labels % coarse) if coarse else (images, labels)


def make_tar(folder: Path, archive: Path, mode: str = "w:gz") -> Path:
    with tarfile.open(archive, mode) as tf:
        tf.add(folder, arcname=folder.name)
    return archive


# --- idx -------------------------------------------------------------------------------------------

def test_idx_roundtrip_and_dtypes(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", arr)
    back = read_idx(tmp_path / "a-idx3-ubyte.gz")
    assert back.dtype == np.uint8 and np.array_equal(back, arr)
    ints = np.array([-5, 7, 1 << 20], dtype=np.int32)
    write_idx(tmp_path / "b-idx1", ints)  # plain (not gzipped)
    assert np.array_equal(read_idx(tmp_path / "b-idx1"), ints)


def test_idx_truncated_and_corrupt_are_one_line_errors(tmp_path):
    arr = np.zeros((4, 28, 28), np.uint8)
    write_idx(tmp_path / "x.gz", arr)
    raw = gzip.decompress((tmp_path / "x.gz").read_bytes())
    with pytest.raises(DataError, match="truncated") as e:
        parse_idx(raw[:-10], "x")
    assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="not an idx file"):
        parse_idx(b"\x12\x34" + raw[2:], "x")
    with pytest.raises(DataError, match="trailing"):
        parse_idx(raw + b"\0", "x")
    # truncated gzip stream
    bad = tmp_path / "cut.gz"
    bad.write_bytes((tmp_path / "x.gz").read_bytes()[:30])
    with pytest.raises(DataError, match="corrupt or truncated gzip") as e:
        read_idx(bad)
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_mnist_from_synthetic_idx_files(tmp_path):
    data = write_mnist(tmp_path / "mnist")
    with pytest.warns(DataChecksumWarning, match="differ from the official md5"):
        train = load_dataset("mnist", "train", data_dir=tmp_path, download=False)
    assert train.images.shape == (20, 1, 28, 28) and train.images.dtype.is_floating_point is False
    assert np.array_equal(train.images[:, 0].numpy(), data["train"][0])
    assert np.array_equal(train.labels.numpy(), data["train"][1].astype(np.int64))
    assert train.classes == [str(i) for i in range(10)] and len(train.mean) == 1
    assert train.mean[0] == pytest.approx(data["train"][0].mean() / 255, abs=1e-5)  # train statistics
    with pytest.warns(DataChecksumWarning):  # the cached decode remembers the mismatch
        test = load_dataset("mnist", "test", data_dir=tmp_path, download=False)
    assert len(test) == 10 and test.mean == train.mean


def test_alternative_layouts_are_found(tmp_path):
    write_mnist(tmp_path / "MNIST" / "raw", gz=False)           # torchvision layout, uncompressed
    write_mnist(tmp_path / "fashion_mnist", seed=1)             # underscore folder name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataChecksumWarning)
        assert len(load_dataset("mnist", data_dir=tmp_path, download=False)) == 20
        fm = load_dataset("fashion-mnist", data_dir=tmp_path, download=False)
    assert fm.name == "fashion_mnist" and fm.classes[0] == "T-shirt/top"


def test_mnist_structure_errors(tmp_path):
    folder = tmp_path / "mnist"
    write_mnist(folder)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(20, 12, np.uint8))  # label out of range
    with pytest.raises(DataError, match=r"labels out of range \[0, 10\)"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(19, np.uint8))  # count mismatch
    with pytest.raises(DataError, match="19 labels for 20 images"):
        load_dataset("mnist", data_dir=tmp_path, download=False)
    raw = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz: corrupt or truncated"):
        load_dataset("mnist", data_dir=tmp_path, download=False)


def test_missing_file_without_download_says_where(tmp_path):
    with pytest.raises(DataError) as e:
        load_dataset("mnist", data_dir=tmp_path, download=False)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and str(tmp_path / "mnist") in msg and "\n" not in msg


# --- CIFAR -----------------------------------------------------------------------------------------

def _cifar10_folder(root: Path) -> tuple:
    folder = root / "cifar-10-batches-py"
    batches = {f"data_batch_{i}": cifar_arrays(6, 10, seed=i) for i in range(1, 6)}
    batches["test_batch"] = cifar_arrays(4, 10, seed=9)
    write_cifar_folder(folder, CIFAR10, batches, [f"c{i}" for i in range(10)])
    return folder, batches


def test_cifar10_extracted_and_targz(tmp_path):
    folder, batches = _cifar10_folder(tmp_path / "work")
    # extracted folder directly under the data root
    root1 = tmp_path / "root1"
    root1.mkdir()
    folder.rename(root1 / folder.name)
    with pytest.warns(DataChecksumWarning):
        ds = load_dataset("cifar10", "train", data_dir=root1, download=False)
    assert ds.images.shape == (30, 3, 32, 32) and ds.classes[3] == "c3"
    expected = np.concatenate([batches[f"data_batch_{i}"][0] for i in range(1, 6)])
    assert np.array_equal(ds.images.numpy(), expected)
    assert ds.labels.tolist() == [int(x) for i in range(1, 6) for x in batches[f"data_batch_{i}"][1]]
    # the same files as the official tar.gz in cifar10/
    root2 = tmp_path / "root2"
    (root2 / "cifar10").mkdir(parents=True)
    make_tar(root1 / folder.name, root2 / "cifar10" / "cifar-10-python.tar.gz")
    with pytest.warns(DataChecksumWarning):
        test = load_dataset("cifar10", "test", data_dir=root2, download=False)
    assert np.array_equal(test.images.numpy(), batches["test_batch"][0]) and len(test) == 4


def test_cifar10_tar_xz_and_cache(tmp_path):
    folder, batches = _cifar10_folder(tmp_path / "work")
    root = tmp_path / "root"
    (root / "cifar10").mkdir(parents=True)
    archive = make_tar(folder, root / "cifar10" / "cifar-10-python.tar.xz", "w:xz")
    with pytest.warns(DataChecksumWarning):
        first = load_dataset("cifar10", "test", data_dir=root, download=False)
    entries = list((tmp_path / "cache" / "cnnlab" / "decoded").iterdir())
    assert len(entries) == 1 and (entries[0] / "meta.json").is_file()
    # the second load is a cache hit (same entry); a changed source file gives a new entry
    with pytest.warns(DataChecksumWarning):
        again = load_dataset("cifar10", "test", data_dir=root, download=False)
    assert np.array_equal(first.images.numpy(), again.images.numpy())
    make_tar(folder, archive, "w:xz")
    import os

    os.utime(archive, ns=(1, 1))
    with pytest.warns(DataChecksumWarning):
        load_dataset("cifar10", "test", data_dir=root, download=False, cache=True)
    assert len(list((tmp_path / "cache" / "cnnlab" / "decoded").iterdir())) == 2


def test_cifar100_fine_and_coarse(tmp_path):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    train = cifar_arrays(25, 100, seed=1, coarse=20)
    test = cifar_arrays(10, 100, seed=2, coarse=20)
    fine_names = [f"fine{i}" for i in range(100)]
    coarse_names = [f"coarse{i}" for i in range(20)]
    write_cifar_folder(folder, CIFAR100, {"train": train, "test": test}, fine_names, coarse_names)
    make_tar(folder, tmp_path / "cifar100" / "cifar-100-python.tar.gz")
    import shutil

    shutil.rmtree(folder)  # read from the tar.gz
    with pytest.warns(DataChecksumWarning):
        fine = load_dataset("cifar100", "train", data_dir=tmp_path, download=False)
        coarse = load_dataset("cifar100", "test", data_dir=tmp_path, download=False, label_mode="coarse")
    assert fine.classes == fine_names and fine.labels.tolist() == [int(x) for x in train[1]]
    assert coarse.classes == coarse_names and coarse.labels.tolist() == [int(x) for x in test[2]]
    assert np.array_equal(coarse.images.numpy(), test[0])
    with pytest.raises(UserError, match="label_mode"):
        load_dataset("cifar100", data_dir=tmp_path, download=False, label_mode="medium")


def test_cifar_bad_structure_and_truncated_archive(tmp_path):
    folder, _ = _cifar10_folder(tmp_path / "a")
    bad = {"data": np.zeros((3, 100), np.uint8), "labels": [0, 1, 2]}
    (folder / "data_batch_2").write_bytes(pickle.dumps(bad, protocol=2))
    with pytest.raises(DataError, match=r"data_batch_2: 'data' must be a uint8 array of shape \(N, 3072\)"):
        load_dataset("cifar10", data_dir=tmp_path / "a", download=False)
    folder2, _ = _cifar10_folder(tmp_path / "b" / "cifar10")
    archive = make_tar(folder2, tmp_path / "b" / "cifar10" / "cifar-10-python.tar.gz")
    import shutil

    shutil.rmtree(folder2)
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated") as e:
        load_dataset("cifar10", data_dir=tmp_path / "b", download=False)
    assert "cifar-10-python.tar.gz" in str(e.value) and "\n" not in str(e.value)


# --- restricted unpickler ----------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/cnnlab_pwned",))


def test_restricted_unpickler_refuses_code(tmp_path):
    payload = pickle.dumps({"data": _Evil()}, protocol=2)
    with pytest.raises(DataError, match="refused to unpickle .*os.system|refused to unpickle .*posix.system"):
        safe_loads(payload, "evil")
    # arrays and plain containers still load, including numpy's protocol-5 pickles
    ok = {"data": np.arange(6, dtype=np.uint8).reshape(2, 3), "labels": [1, 2], "name": b"x"}
    for proto in (2, 4, 5):
        back = safe_loads(pickle.dumps(ok, protocol=proto), "ok")
        assert np.array_equal(back["data"], ok["data"]) and back["labels"] == [1, 2]
    # a malicious batch inside a CIFAR folder is refused with a one-line error naming the file
    folder, _ = _cifar10_folder(tmp_path)
    (folder / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match="test_batch: refused to unpickle"):
        load_dataset("cifar10", "test", data_dir=tmp_path, download=False)


def test_truncated_pickle_is_data_error():
    raw = pickle.dumps({"data": np.zeros(10, np.uint8)}, protocol=2)
    with pytest.raises(DataError, match="corrupt or truncated pickle|corrupt pickle"):
        safe_loads(raw[:-7], "p")


# --- issue 12: headers and batches that used to give a wrong number or a traceback ------------------

def _idx_header(code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(int(d).to_bytes(4, "big") for d in dims)


def test_idx_dimensions_overflowing_int64_are_refused_not_wrapped(tmp_path):
    # 4 x (2^32 - 1): the product overflows int64 (it used to wrap to a negative byte count and say
    # "has trailing bytes ... need -17179869183 data bytes")
    path = tmp_path / "huge-idx4-ubyte"
    path.write_bytes(_idx_header(0x08, [2**32 - 1] * 4) + b"\0" * 16)
    with pytest.raises(DataError) as e:
        read_idx(path)
    msg = str(e.value)
    assert str(path) in msg and "truncated" in msg and "-" not in msg.split("need")[1] and "\n" not in msg
    # a product that does not overflow but is still far beyond the data
    with pytest.raises(DataError, match=r"dimensions 65536x65536x65536 need 281474976710656 bytes"):
        parse_idx(_idx_header(0x08, [65536] * 3), "x")


@pytest.mark.parametrize("header, match", [
    (_idx_header(0x08, [0, 28, 28]), r"dimensions 0x28x28 include a zero"),
    (_idx_header(0x08, [5, 0]), r"include a zero"),
    (_idx_header(0x0A, [1]) + b"\0", r"unknown type code 0x0a"),
    (bytes([0, 0, 0x08, 0]), r"0 dimensions"),
    (bytes([0, 0, 0x08, 3, 0, 0]), r"truncated idx header \(3 dimensions need 16 header bytes, found 6\)"),
    (_idx_header(0x0C, [3]) + b"\0" * 11, r"truncated \(dimensions 3 need 12 bytes of data, found 11 bytes\)"),
])
def test_idx_bad_headers_are_one_line_data_errors(tmp_path, header, match):
    path = tmp_path / "bad-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(header))
    with pytest.raises(DataError, match=match) as e:
        read_idx(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def _batch(**fields) -> dict:
    return {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], **fields}


@pytest.mark.parametrize("labels, match", [
    ([2**63, 1], r"'labels' out of range \[0, 10\) \(found 1\.\.9223372036854775808\)"),
    ([0, 2**64], r"out of range \[0, 10\) \(found 0\.\.2\^64\+\)"),
    ([-1, 0], r"out of range \[0, 10\) \(found -1\.\.0\)"),
    ([0, 10], r"out of range \[0, 10\) \(found 0\.\.10\)"),
    (np.array([2**63, 0], np.uint64), r"out of range \[0, 10\) \(found 0\.\.9223372036854775808\)"),
    ([1.0, 2.0], r"must be a list of integers, found float 1\.0"),  # used to be truncated to 1, 2
    ([1.7, 2], r"found float 1\.7"),
    (["1", 2], r"found str '1'"),
    ([True, 0], r"found bool True"),
    ([[1], [2]], r"found list of length 1"),
    (np.array([0.0, 1.0]), r"found a float64 array"),
    (np.zeros((2, 1), np.int64), r"array of shape \(2, 1\)"),
    ({0: 1}, r"must be a list of integers, found dict"),
    (None, r"found NoneType"),
    ([None, None], r"must be a list of integers, found NoneType None"),  # found by the property test
    ([0, None], r"found NoneType None"),
    ([0, 1, 2], r"3 'labels' for 2 images"),
])
def test_cifar_labels_of_wrong_type_or_range_are_data_errors(labels, match):
    with pytest.raises(DataError, match=match) as e:
        CIFAR10._batch(_batch(labels=labels), "cifar-10-batches-py/data_batch_1")
    assert str(e.value).startswith("cifar-10-batches-py/data_batch_1: ") and "\n" not in str(e.value)


def test_cifar_valid_label_forms_still_load():
    for labels in ([0, 9], (3, 4), np.array([1, 2], np.uint8), np.array([5, 6], np.int64), [np.int64(1), 2]):
        images, out, _ = CIFAR10._batch(_batch(labels=labels), "b")
        assert out.dtype == np.int64 and out.tolist() == [int(x) for x in labels] and images.shape == (2, 3, 32, 32)
    _, fine, coarse = CIFAR100._batch(_batch(fine_labels=[99, 0], coarse_labels=[19, 0]), "b")
    assert fine.tolist() == [99, 0] and coarse.tolist() == [19, 0]
    with pytest.raises(DataError, match=r"'coarse_labels' out of range \[0, 20\)"):
        CIFAR100._batch(_batch(fine_labels=[1, 2], coarse_labels=[20, 0]), "b")


def test_cifar_batch_and_meta_structure_errors(tmp_path):
    with pytest.raises(DataError, match="'data' holds no images"):
        CIFAR10._batch({"data": np.zeros((0, 3072), np.uint8), "labels": []}, "b")
    with pytest.raises(DataError, match="missing 'labels'"):
        CIFAR10._batch({"data": np.zeros((1, 3072), np.uint8)}, "b")
    with pytest.raises(DataError, match=r"'data' must be a uint8 array of shape \(N, 3072\), found list"):
        CIFAR10._batch({"data": [0] * 3072, "labels": [0]}, "b")
    # a batch file that is not a dict, a meta file whose names are not strings, a truncated batch
    folder, _ = _cifar10_folder(tmp_path)
    (folder / "data_batch_3").write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(DataError, match="data_batch_3: expected a dict, found list"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    folder, _ = _cifar10_folder(tmp_path)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(range(10))}, protocol=2))
    with pytest.raises(DataError, match="batches.meta: 'label_names' must be strings, found int 0"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [None] * 10}, protocol=2))
    with pytest.raises(DataError, match="'label_names' must be strings, found NoneType None"):
        load_dataset("cifar10", data_dir=tmp_path, download=False)
    folder, _ = _cifar10_folder(tmp_path)
    raw = (folder / "test_batch").read_bytes()
    for cut in (1, len(raw) // 3, len(raw) - 1):
        (folder / "test_batch").write_bytes(raw[:cut])
        with pytest.raises(DataError, match="test_batch: corrupt") as e:
            load_dataset("cifar10", "test", data_dir=tmp_path, download=False)
        assert "\n" not in str(e.value)


def test_truncated_cifar_archive_message_is_one_line(tmp_path):
    folder, _ = _cifar10_folder(tmp_path / "src")
    root = tmp_path / "root"
    (root / "cifar10").mkdir(parents=True)
    archive = make_tar(folder, root / "cifar10" / "cifar-10-python.tar.gz")
    data = archive.read_bytes()
    for cut in (10, 100, len(data) // 2):  # (a cut in the gzip trailer alone loses no member data)
        archive.write_bytes(data[:cut])
        with pytest.raises(DataError) as e:
            load_dataset("cifar10", data_dir=root, download=False, cache=False)
        assert str(archive) in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("payload", [
    b"\x80\x02c_codecs\nencode\nq\x00X\x01\x00\x00\x00aX\x06\x00\x00\x00nocodec\x86R.",  # unknown codec
    b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f.",                                          # FRAME too long
    b"\x80\x03B\xff\xff\xff\x7f",                                                              # BINBYTES cut
])
def test_forged_pickles_are_data_errors_and_globals_stay_restricted(payload):
    with pytest.raises(DataError, match="bad_batch: corrupt") as e:
        safe_loads(payload, "bad_batch")
    assert "\n" not in str(e.value)
    for module, name in (("builtins", "eval"), ("os", "system"), ("numpy", "load"), ("torch", "load"),
                         ("numpy.core.multiarray", "array"), ("subprocess", "Popen")):
        evil = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"q\x00."
        with pytest.raises(DataError, match=f"refused to unpickle .*{module}.{name}"):
            safe_loads(evil, "evil")
