"""Dataset loaders: real files (counts from the data README), tiny generated files, malformed files,
checksums, and downloads from a local HTTP server."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest

from testbench import data as D
from testbench.errors import DataError

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
real = pytest.mark.skipif(not SHARED.is_dir(), reason=f"real benchmark files not found at {SHARED}")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(monkeypatch, root: Path, folder: str, name: str, url: str = "http://example.invalid/x"):
    """Pin a generated file's checksum in the loader's table, as the real files are pinned."""
    monkeypatch.setitem(D.FILES, (folder, name), (sha(root / folder / name), url))


# ------------------------------------------------------------------------------- real files

@real
def test_real_co2_matches_readme():
    values = D.read_co2_monthly(SHARED / "co2" / "co2_mm_mlo.txt")
    assert len(values) == 805
    assert values.min() == 312.42 and values.max() == 428.15
    ds = D.load("co2", data_dir=SHARED)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 805 - 1 - 24
    # chronological and without look-ahead: every training target precedes every test target
    assert ds.train.truth[-1] == values[len(ds.train) + 24]
    assert ds.test.truth[-1] == values[-1]
    steps = np.diff(values)[:24 + len(ds.train)]
    assert ds.normalization["mean"] == pytest.approx(steps.mean(), rel=1e-12)
    assert ds.normalization["std"] == pytest.approx(steps.std(), rel=1e-12)


@real
def test_real_sp500_matches_readme():
    closes = D.read_sp500(SHARED / "sp500" / "GSPC.csv")
    assert len(closes) == 17721
    assert closes[0] == pytest.approx(16.66, abs=5e-3)
    ds = D.load("sp500", data_dir=SHARED)
    assert len(ds.train) + len(ds.val) + len(ds.test) == 17721 - 1 - 20
    assert ds.test.truth[-1] == closes[-1]
    np.testing.assert_allclose(ds.forecast(ds.test.y), ds.test.truth, rtol=1e-7)  # float32 y


@real
def test_real_protein_matches_readme():
    train = D.read_protein(SHARED / "protein" / "protein-secondary-structure.train")
    test = D.read_protein(SHARED / "protein" / "protein-secondary-structure.test")
    assert len(train) == 111 and len(test) == 17
    assert min(len(s) for s, _ in train) == 11 and max(len(s) for s, _ in train) == 497
    labels = "".join(lab for _, lab in train)
    assert (labels.count("_"), labels.count("e"), labels.count("h")) == (9868, 3636, 4600)
    ds = D.load("protein", data_dir=SHARED)
    assert len(ds.train) + len(ds.val) == 18104 and len(ds.test) == 3520
    assert np.bincount(ds.test.y).tolist() == [1923, 748, 849]
    assert ds.baseline() == pytest.approx(1 - 1923 / 3520)


@real
def test_real_mnist_matches_readme():
    ds = D.load("mnist", data_dir=SHARED)
    assert ds.train.x.shape == (55000, 28, 28) and ds.val.x.shape == (5000, 28, 28)
    assert np.bincount(ds.test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert ds.train.x.min() == 0.0 and ds.train.x.max() == 1.0
    pixel = D.load("mnist", variant="pixel", data_dir=SHARED)
    assert pixel.test.x.shape == (10000, 784, 1)
    np.testing.assert_array_equal(pixel.test.x[:, :, 0], ds.test.x.reshape(10000, 784))


def test_co2_weekly_variant_has_no_gaps():
    ds = D.load("co2", variant="weekly", window=52)
    assert np.isfinite(ds.train.x).all() and np.isfinite(ds.test.truth).all()
    assert ds.window == 52 and ds.checksums["statsmodels/datasets/co2/co2.csv"]


# --------------------------------------------------------------------------- generated files

CO2_HEADER = "# header line\n#  year month decimal average deseason ndays stdev unc\n"


def write_co2(root: Path, values, start=(1958, 3)) -> Path:
    rows = []
    for k, v in enumerate(values):
        index = 12 * start[0] + start[1] - 1 + k
        rows.append(f" {index // 12} {index % 12 + 1:4d} 0.0 {v:.2f} {v:.2f} -1 -9.99 -0.99")
    path = root / "co2" / "co2_mm_mlo.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(CO2_HEADER + "\n".join(rows) + "\n")
    return path


def test_co2_windows_are_standardized_differences(tmp_path, monkeypatch):
    values = 300.0 + np.cumsum(np.tile([1.0, -0.5, 2.0, 0.25], 10))  # 40 months, known steps
    write_co2(tmp_path, values)
    register(monkeypatch, tmp_path, "co2", "co2_mm_mlo.txt")
    ds = D.load("co2", window=4, data_dir=tmp_path)
    steps = np.diff(values)
    n = len(steps) - 4
    n_train, n_val = round(0.7 * n), round(0.15 * n)
    assert (len(ds.train), len(ds.val), len(ds.test)) == (n_train, n_val, n - n_train - n_val)
    mean, std = steps[:4 + n_train].mean(), steps[:4 + n_train].std()
    z = (steps - mean) / std
    np.testing.assert_allclose(ds.val.x[0, :, 0], z[4 + n_train - 4:4 + n_train], rtol=1e-6)
    np.testing.assert_allclose(ds.val.y[0], z[4 + n_train], rtol=1e-6)
    assert ds.val.anchor[0] == values[4 + n_train] and ds.val.truth[0] == values[5 + n_train]
    # predicting the true standardized step gives a perfect forecast; persistence errs by |step|
    assert ds.score(ds.test.y) == pytest.approx(0.0, abs=1e-5)
    assert ds.baseline("test") == pytest.approx(np.abs(steps[-len(ds.test):]).mean())
    # stored constants override the training statistics
    fixed = D.load("co2", window=4, data_dir=tmp_path, normalization={"kind": "difference",
                                                                        "mean": 0.0, "std": 2.0})
    np.testing.assert_allclose(fixed.test.y, steps[-len(ds.test):] / 2.0, rtol=1e-6)


@pytest.mark.parametrize("text, match", [
    (CO2_HEADER + " 1958 3 1958.2 315.71 314.44 -1\n", r"co2_mm_mlo.txt:3: malformed data row"),
    (CO2_HEADER + " 1958 3 0 315.7 0 -1 -9 -1\n 1958 x 0 316.0 0 -1 -9 -1\n", r":4: malformed"),
    (CO2_HEADER + " 1958 3 0 315.7 0 -1 -9 -1\n 1958 5 0 316.0 0 -1 -9 -1\n",
     r":4: month 1958-05 does not follow"),
    (CO2_HEADER, "found 0 data rows"),
])
def test_co2_malformed(tmp_path, text, match):
    path = tmp_path / "co2_mm_mlo.txt"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        D.read_co2_monthly(path)


SP_HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def test_sp500_log_returns_and_start(tmp_path, monkeypatch):
    closes = 100.0 * np.exp(np.cumsum(np.r_[0.0, np.tile([0.01, -0.02, 0.015], 10)]))
    rows = ["1949-12-30,1,1,1,1,1,0"] + [f"{1951 + k // 12}-{1 + k % 12:02d}-15,0,0,0,{c:.6f},0,1"
                                        for k, c in enumerate(closes)]
    (tmp_path / "sp500").mkdir()
    (tmp_path / "sp500" / "GSPC.csv").write_text(SP_HEADER + "\n".join(rows))  # no final newline
    register(monkeypatch, tmp_path, "sp500", "GSPC.csv")
    ds = D.load("sp500", window=3, data_dir=tmp_path)
    assert len(ds.train) + len(ds.val) + len(ds.test) == len(closes) - 1 - 3
    r = np.diff(np.log(np.round(closes, 6)))
    z = (r - ds.normalization["mean"]) / ds.normalization["std"]
    np.testing.assert_allclose(ds.train.x[0, :, 0], z[:3], rtol=1e-5)
    np.testing.assert_allclose(ds.forecast(ds.test.y), ds.test.truth, rtol=1e-7)


@pytest.mark.parametrize("text, match", [
    ("Date,Close\n2000-01-01,1\n", r"GSPC.csv:1: header"),
    (SP_HEADER + "2000-01-03,1,1,1,1,1,0\n2000-01-04,1,1,1,1,1\n", r"GSPC.csv:3: malformed row"),
    (SP_HEADER + "2000-01-03,1,1,1,0,0,0\n", r"GSPC.csv:2: .*close 0.0 is not positive"),
    (SP_HEADER + "2000-01-04,1,1,1,1,1,0\n2000-01-03,1,1,1,1,1,0\n", r"GSPC.csv:3: date 2000-01-03"),
])
def test_sp500_malformed(tmp_path, text, match):
    path = tmp_path / "GSPC.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        D.read_sp500(path)


PROTEIN = """# header
# Copyright line

<>
A _
C h
end
<>
D e
E e
<end>
<>
F _
G h
<>
H _
end
I h
K e
"""


def test_protein_boundaries_and_windows(tmp_path):
    path = tmp_path / "p.train"
    path.write_text(PROTEIN)
    segments = D.read_protein(path)
    # '<>', 'end', '<end>', a missing terminator, and an 'end' not followed by '<>'
    assert segments == [("AC", "_h"), ("DE", "ee"), ("FG", "_h"), ("H", "_"), ("IK", "he")]
    split = D._protein_windows(segments[:1], window=1)
    assert split.x.shape == (2, 3, 21)
    assert split.x[0, 0, 20] == 1.0 and split.x[0, 1, D.AMINO_ACIDS.index("A")] == 1.0
    assert split.x[0, 2, D.AMINO_ACIDS.index("C")] == 1.0 and split.x[1, 2, 20] == 1.0
    assert split.y.tolist() == [0, 2]
    np.testing.assert_array_equal(split.x.sum(axis=2), 1.0)


@pytest.mark.parametrize("text, match", [
    ("<>\nA x\n", r"p.train:2: malformed residue line 'A x'"),
    ("<>\nB _\n", r"p.train:2: malformed residue line 'B _'"),
    ("<>\nA _ extra\n", r":2: malformed"),
    ("# only a header\n<>\nend\n", "no residue lines"),
])
def test_protein_malformed(tmp_path, text, match):
    path = tmp_path / "p.train"
    path.write_text(text)
    with pytest.raises(DataError, match=match):
        D.read_protein(path)


def idx_bytes(magic: int, shape, payload: bytes) -> bytes:
    head = magic.to_bytes(4, "big") + b"".join(int(s).to_bytes(4, "big") for s in shape)
    return gzip.compress(head + payload)


def test_idx_roundtrip_and_errors(tmp_path):
    images = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
    path = tmp_path / "i.gz"
    path.write_bytes(idx_bytes(2051, (2, 28, 28), images.tobytes()))
    np.testing.assert_array_equal(D.read_idx(path), images)
    path.write_bytes(idx_bytes(2049, (3,), bytes([1, 2, 3])))
    assert D.read_idx(path).tolist() == [1, 2, 3]
    path.write_bytes(idx_bytes(2051, (2, 28, 28), images.tobytes()[:-5]))
    with pytest.raises(DataError, match=r"i.gz: header announces shape \(2, 28, 28\)"):
        D.read_idx(path)
    path.write_bytes(idx_bytes(1234, (3,), bytes(3)))
    with pytest.raises(DataError, match="IDX magic number 1234"):
        D.read_idx(path)
    path.write_bytes(b"not gzip")
    with pytest.raises(DataError, match="not a readable gzip file"):
        D.read_idx(path)


def write_mnist(root: Path, n_train=24, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    (root / "mnist").mkdir(parents=True, exist_ok=True)
    arrays = {}
    for part, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        (root / "mnist" / f"{part}-images-idx3-ubyte.gz").write_bytes(
            idx_bytes(2051, images.shape, images.tobytes()))
        (root / "mnist" / f"{part}-labels-idx1-ubyte.gz").write_bytes(
            idx_bytes(2049, labels.shape, labels.tobytes()))
        arrays[part] = (images, labels)
    return arrays


def test_mnist_variants_and_split(tmp_path, monkeypatch):
    arrays = write_mnist(tmp_path)
    for f in (tmp_path / "mnist").iterdir():
        register(monkeypatch, tmp_path, "mnist", f.name)
    row = D.load("mnist", data_dir=tmp_path)
    images, labels = arrays["train"]
    assert len(row.train) == 22 and len(row.val) == 2  # last 1/12 (at most 5,000) for validation
    np.testing.assert_array_equal(row.val.x * 255, images[22:])
    np.testing.assert_array_equal(row.val.y, labels[22:])
    pixel = D.load("mnist", variant="pixel", data_dir=tmp_path)
    np.testing.assert_array_equal(pixel.test.x[:, :, 0] * 255, arrays["t10k"][0].reshape(5, 784))
    logits = np.eye(10)[row.test.y]
    assert row.score(logits) == 0.0
    assert row.score(np.roll(logits, 1, axis=1)) == 1.0


# ------------------------------------------------------------------ resolution, checksums, download

def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("TESTBENCH_DATA", str(tmp_path / "env"))
    assert D.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert D.data_root() == tmp_path / "env"
    monkeypatch.delenv("TESTBENCH_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert D.data_root() == tmp_path / "home" / ".cache" / "testbench"


def test_missing_and_corrupt_files_name_checksum_and_source(tmp_path):
    sha_, url = D.FILES[("co2", "co2_mm_mlo.txt")]
    with pytest.raises(DataError, match=rf"co2_mm_mlo.txt is missing \(expected sha256 {sha_}, "
                                        rf"source {url}"):
        D.load("co2", data_dir=tmp_path)
    write_co2(tmp_path, [300.0, 301.0, 302.0])
    with pytest.raises(DataError, match=rf"corrupt or a different version: sha256 \w+, expected {sha_}"):
        D.load("co2", data_dir=tmp_path)


@pytest.mark.parametrize("kwargs, match", [
    ({"name": "co3"}, "unknown dataset 'co3'; did you mean 'co2'"),
    ({"name": "mnist", "variant": "col"}, "no variant 'col'; valid: row, pixel"),
    ({"name": "co2", "window": 0}, r"window=0 is out of range; rule: window >= 1"),
    ({"name": "mnist", "window": 3}, "takes no window"),
])
def test_load_rejects_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(DataError, match=match):
        D.load(data_dir=tmp_path, **kwargs)


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/served (never the internet)."""
    root = tmp_path / "served"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_from_mirror_and_source_url(server, tmp_path, monkeypatch):
    root, base = server
    values = 300.0 + np.arange(40) * 0.1 + np.sin(np.arange(40))
    write_co2(root, values)
    register(monkeypatch, root, "co2", "co2_mm_mlo.txt", url=f"{base}/co2/co2_mm_mlo.txt")
    ds = D.load("co2", window=4, data_dir=tmp_path / "a", download=True)  # from the source URL
    assert (tmp_path / "a" / "co2" / "co2_mm_mlo.txt").read_bytes() == \
        (root / "co2" / "co2_mm_mlo.txt").read_bytes()
    assert ds.test.truth[-1] == pytest.approx(values[-1], abs=5e-3)
    monkeypatch.setitem(D.FILES, ("co2", "co2_mm_mlo.txt"),
                        (D.FILES[("co2", "co2_mm_mlo.txt")][0], "http://127.0.0.1:9/unreachable"))
    D.load("co2", window=4, data_dir=tmp_path / "b", download=True, base_url=base)  # mirror
    assert (tmp_path / "b" / "co2" / "co2_mm_mlo.txt").is_file()
    monkeypatch.setenv("TESTBENCH_DATA_URL", base)  # mirror from the environment
    D.load("co2", window=4, data_dir=tmp_path / "c", download=True)
    assert (tmp_path / "c" / "co2" / "co2_mm_mlo.txt").is_file()


def test_download_refuses_wrong_checksum_and_unreachable(server, tmp_path, monkeypatch):
    root, base = server
    write_co2(root, [300.0, 301.0, 302.0, 303.0])
    monkeypatch.setitem(D.FILES, ("co2", "co2_mm_mlo.txt"), ("0" * 64, f"{base}/co2/co2_mm_mlo.txt"))
    with pytest.raises(DataError, match=r"co2_mm_mlo.txt has sha256 \w+, expected 0{64}; the file "
                                        "was not kept"):
        D.load("co2", data_dir=tmp_path / "d", download=True)
    assert not list((tmp_path / "d" / "co2").iterdir())
    with pytest.raises(DataError, match=r"could not download .*/co2/nothing"):
        D._download(f"{base}/co2/nothing", tmp_path / "d" / "x", "0" * 64)
