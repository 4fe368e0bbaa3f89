"""Loaders of the four sequence benchmarks, with checksums, downloads and deterministic splits.

Every loader returns a :class:`Dataset` of fixed-length sequences ``x`` with dims
``(sample, time, channel)`` (float32) and one target per sequence, read by a linear readout at the
last step. Splits are chronological for the time series (no look-ahead: a sample belongs to the split
of its *target*, and normalization statistics come from the training part only) and fixed by file
order for MNIST and protein. The same files therefore always give the same arrays.

Where the files come from
-------------------------
The data folder is, in order: the ``data_dir`` argument, the environment variable
``TESTBENCH_DATA``, or ``~/.cache/testbench``. It has one sub-folder per dataset
(``mnist/``, ``sp500/``, ``co2/``, ``protein/``). Each file is verified against the SHA-256 of
:data:`FILES`; a missing or corrupt file raises :class:`~testbench.errors.DataError` naming the file,
the expected checksum and the source URL. ``download=True`` fetches missing files from their source
URL (or from ``base_url/<folder>/<file>`` when a mirror is given, e.g. the environment variable
``TESTBENCH_DATA_URL``) and verifies them before moving them into place; :func:`download` fetches a
whole dataset (``testbench data fetch NAME``), :func:`file_status` tells what is there
(``testbench data list``).

Datasets
--------
``mnist`` (variants ``row``, default, and ``pixel``)
    Sequential MNIST. ``row``: 28 steps of 28 pixels (one image row per step); ``pixel``: 784 steps
    of 1 pixel (row-major). Pixels scaled to [0, 1]. Train = the first 55,000 training images,
    val = the last 5,000, test = the 10,000 test images. 10 classes; metric: misclassification rate.
    Baseline: the most frequent training class.
``co2`` (variants ``monthly``, default, and ``weekly``)
    Mauna Loa CO2 (ppm). ``monthly``: NOAA ``co2_mm_mlo.txt`` column ``monthly_average`` (805 months,
    1958-03..2025-03). ``weekly``: the Scripps weekly record shipped with statsmodels (1958..2001),
    missing weeks filled by linear interpolation in time. Input: the last ``window`` (default 24)
    month-to-month (week-to-week) differences, standardized; target: the next difference,
    standardized; forecast = last value + de-standardized predicted difference. The targets are split
    70/15/15 % in time order. Metric: MAE in ppm. Baseline: persistence (next = last).
``sp500`` (variant ``close``)
    S&P 500 daily closes from 1950-01-03 (the rows before have no volume and only closes). Input: the
    last ``window`` (default 20) daily log returns ``log(C_t / C_{t-1})``, standardized; target: the
    next log return, standardized; forecast = last close * exp(predicted log return). Targets split
    70/15/15 % in time order. Metric: MAE in index points. Baseline: persistence.
``protein`` (variant ``residue``)
    UCI protein secondary structure (Qian & Sejnowski 1988). One sample per residue: the window of
    ``2*window+1`` residues centred on it (default ``window=8``, 17 steps), each step a 21-channel
    one-hot vector (20 amino acids + "outside the sequence"); target: the residue's class
    (0 ``_`` coil, 1 ``e`` sheet, 2 ``h`` helix). Train = the first 90 % of the training file's
    segments, val = the remaining 10 %, test = the test file. Metric: misclassification rate
    (Q3 = 1 - rate). Baseline: the most frequent training class.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testbench.errors import DataError, did_you_mean

#: ``(folder, file) -> (sha256, source URL)`` of every file the loaders read.
FILES = {
    ("mnist", "train-images-idx3-ubyte.gz"): (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"),
    ("mnist", "train-labels-idx1-ubyte.gz"): (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz"),
    ("mnist", "t10k-images-idx3-ubyte.gz"): (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz"),
    ("mnist", "t10k-labels-idx1-ubyte.gz"): (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"),
    ("co2", "co2_mm_mlo.txt"): (
        "bbe487596f9a15dfaea5de2116750c7b518c827e96c1d4e5c96ddd06da8ef41a",
        "https://gml.noaa.gov/webdata/ccgg/trends/co2/co2_mm_mlo.txt"),
    ("sp500", "GSPC.csv"): (
        "98c190544da5550dfc93cd0211e9d134b5efac98a137a821b6e25e001563ee1c",
        "https://raw.githubusercontent.com/federicogarzarelli/portfolio-allocation/"
        "26c24ab08a801c81dbc335f986f3052a69bde7dc/%5EGSPC.csv"),
    ("protein", "protein-secondary-structure.train"): (
        "bfa00a9644a3fab4e74112c90a166e35857a8ce3004f5d4b24458a6e50b5cafa",
        "https://archive.ics.uci.edu/ml/machine-learning-databases/molecular-biology/"
        "protein-secondary-structure/protein-secondary-structure.train"),
    ("protein", "protein-secondary-structure.test"): (
        "b794c73169bc50c88826b72332653db79415d8cca234ceb7a05232cffb5f2f9d",
        "https://archive.ics.uci.edu/ml/machine-learning-databases/molecular-biology/"
        "protein-secondary-structure/protein-secondary-structure.test"),
}

#: Dataset name -> (variants, default variant, default window).
DATASETS = {
    "mnist": (("row", "pixel"), "row", None),
    "co2": (("monthly", "weekly"), "monthly", 24),
    "sp500": (("close",), "close", 20),
    "protein": (("residue",), "residue", 8),
}

AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
PROTEIN_CLASSES = "_eh"
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
SP500_START = "1950-01-03"
PROTEIN_VAL_FRACTION = 0.10


@dataclass
class Split:
    """One split of a dataset.

    Attributes
    ----------
    x : ndarray, float32, (sample, time, channel)
        Model inputs.
    y : ndarray
        Targets: int64 class indices (classification) or float32 standardized values (regression).
    anchor : ndarray or None, float64, (sample,)
        Regression only: the last observed value (ppm or index points), from which forecasts start.
    truth : ndarray or None, float64, (sample,)
        Regression only: the true next value in original units.
    """

    x: np.ndarray
    y: np.ndarray
    anchor: np.ndarray | None = None
    truth: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class Dataset:
    """A benchmark ready for training and scoring.

    Attributes
    ----------
    name, variant : str
    task : str
        ``"classification"`` or ``"regression"``.
    metric : str
        ``"misclassification_rate"`` (fraction in [0, 1]) or ``"mae"`` (original units).
    units : str
        Units of the metric (``"1"``, ``"ppm"``, ``"index points"``).
    n_outputs : int
        Classes, or 1 for regression.
    window : int or None
        The window setting the samples were built with (see the module docstring).
    normalization : dict
        ``{"kind": "difference"|"log_return", "mean": float, "std": float}`` for regression (inputs
        and targets are ``(v - mean) / std``), ``{"kind": "scale", "divisor": 255.0}`` for MNIST,
        ``{"kind": "one_hot"}`` for protein.
    checksums : dict
        SHA-256 of every file read, keyed by ``folder/file``.
    train, val, test : Split
    """

    name: str
    variant: str
    task: str
    metric: str
    units: str
    n_outputs: int
    window: int | None
    normalization: dict
    checksums: dict
    train: Split
    val: Split
    test: Split

    @property
    def n_inputs(self) -> int:
        """Input channels per step, m."""
        return self.train.x.shape[2]

    def split(self, name: str) -> Split:
        """The split called ``train``, ``val`` or ``test``."""
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split '{name}'; valid: train, val, test")
        return getattr(self, name)

    def forecast(self, pred: np.ndarray, split: str = "test") -> np.ndarray:
        """Turn standardized predictions of a regression split into forecasts in original units.

        Parameters
        ----------
        pred : ndarray, (sample,)
            Standardized predicted difference / log return.
        split : str
            ``train``, ``val`` or ``test``.

        Returns
        -------
        ndarray, float64, (sample,)
            Forecast next value (ppm or index points).
        """
        s = self.split(split)
        step = np.asarray(pred, np.float64) * self.normalization["std"] + self.normalization["mean"]
        if self.normalization["kind"] == "difference":
            return s.anchor + step
        return s.anchor * np.exp(step)

    def score(self, output: np.ndarray, split: str = "test") -> float:
        """The metric of network outputs on a split.

        Parameters
        ----------
        output : ndarray
            ``(sample, n_outputs)`` logits (classification) or ``(sample,)``/``(sample, 1)``
            standardized predictions (regression).

        Returns
        -------
        float
            Misclassification rate in [0, 1], or MAE in :attr:`units`.
        """
        s = self.split(split)
        output = np.asarray(output)
        if self.task == "classification":
            return float(np.mean(np.argmax(output, axis=-1) != s.y))
        return float(np.mean(np.abs(self.forecast(output.reshape(len(s)), split) - s.truth)))

    def baseline(self, split: str = "test") -> float:
        """Trivial baseline on a split: most frequent training class, or persistence (next = last)."""
        s = self.split(split)
        if self.task == "classification":
            majority = np.bincount(self.train.y, minlength=self.n_outputs).argmax()
            return float(np.mean(s.y != majority))
        return float(np.mean(np.abs(s.anchor - s.truth)))


# ----------------------------------------------------------------------------------- files

def data_root(path: str | Path | None = None) -> Path:
    """The data folder: ``path`` > ``$TESTBENCH_DATA`` > ``~/.cache/testbench``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get("TESTBENCH_DATA")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "testbench"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(folder: str, name: str, *, data_dir: str | Path | None = None, download: bool = False,
          base_url: str | None = None) -> Path:
    """Path of a verified data file, downloading it first when asked.

    Parameters
    ----------
    folder, name : str
        A key of :data:`FILES`, e.g. ``("co2", "co2_mm_mlo.txt")``.
    data_dir : str or Path, optional
        Data folder (see :func:`data_root`).
    download : bool
        Fetch a missing or corrupt file from its source (or ``base_url``) and verify it.
    base_url : str, optional
        Mirror root: the file is fetched from ``<base_url>/<folder>/<name>``. Defaults to
        ``$TESTBENCH_DATA_URL`` when set, else each file's source URL.

    Raises
    ------
    DataError
        The file is missing or its SHA-256 differs from the expected one (after download too).
    """
    sha, source = FILES[(folder, name)]
    path = data_root(data_dir) / folder / name
    base_url = base_url or os.environ.get("TESTBENCH_DATA_URL")
    url = f"{base_url.rstrip('/')}/{folder}/{name}" if base_url else source
    if download and (not path.is_file() or _sha256(path) != sha):
        _download(url, path, sha)
    if not path.is_file():
        raise DataError(
            f"data file {path} is missing (expected sha256 {sha}, source {source}); fix: "
            f"run `testbench data fetch {folder} --data-dir {data_root(data_dir)}` (download=True "
            f"in Python), or point TESTBENCH_DATA at a folder holding {folder}/{name}"
        )
    got = _sha256(path)
    if got != sha:
        raise DataError(
            f"data file {path} is corrupt or a different version: sha256 {got}, expected {sha} "
            f"(source {source}); fix: run `testbench data fetch {folder} --data-dir "
            f"{data_root(data_dir)}`, which replaces it (download=True in Python)"
        )
    return path


def dataset_files(name: str) -> list[tuple[str, str]]:
    """The keys of :data:`FILES` that dataset ``name`` reads, e.g. ``[("co2", "co2_mm_mlo.txt")]``.

    Raises
    ------
    DataError
        Unknown dataset name (with a did-you-mean).
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; {did_you_mean(name, DATASETS)}")
    return [key for key in FILES if key[0] == name]


def file_status(folder: str, name: str, *, data_dir: str | Path | None = None) -> str:
    """``"present"`` (checksum verified), ``"missing"`` or ``"corrupt"`` for one file of :data:`FILES`
    in the data folder (see :func:`data_root`)."""
    path = data_root(data_dir) / folder / name
    if not path.is_file():
        return "missing"
    return "present" if _sha256(path) == FILES[(folder, name)][0] else "corrupt"


def download(name: str, *, data_dir: str | Path | None = None,
             base_url: str | None = None) -> list[Path]:
    """Download every file of dataset ``name`` that is missing or corrupt, verified by checksum.

    ``testbench data fetch NAME`` calls it. Files already present and verified are kept as they are.

    Parameters
    ----------
    name : str
        ``mnist``, ``co2``, ``sp500`` or ``protein``.
    data_dir, base_url
        See :func:`fetch`.

    Returns
    -------
    list of Path
        The verified files, in :data:`FILES` order.

    Raises
    ------
    DataError
        Unknown name, an unreachable source, or a download whose checksum differs.
    """
    return [fetch(folder, file, data_dir=data_dir, download=True, base_url=base_url)
            for folder, file in dataset_files(name)]


def _download(url: str, path: Path, sha: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            shutil.copyfileobj(resp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(
            f"could not download {url} to {path}: {exc}; fix: check the network or pass a "
            "mirror as base_url / TESTBENCH_DATA_URL"
        ) from exc
    got = _sha256(tmp)
    if got != sha:
        tmp.unlink()
        raise DataError(
            f"downloaded {url} has sha256 {got}, expected {sha}; the file was not kept. fix: use "
            "a mirror holding the pinned version (base_url)"
        )
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------- parsers

def read_idx(path: str | Path) -> np.ndarray:
    """Read a gzip-compressed IDX file (uint8 images, magic 2051, or labels, magic 2049).

    Returns
    -------
    ndarray, uint8
        ``(count, rows, cols)`` for images, ``(count,)`` for labels.

    Raises
    ------
    DataError
        Unknown magic number or a size that disagrees with the header.
    """
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc}); fix: download it again") from exc
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    dims = {2051: 3, 2049: 1}.get(magic)
    if dims is None:
        raise DataError(
            f"{path}: IDX magic number {magic}, expected 2051 (images) or 2049 (labels); "
            "fix: download the original MNIST file again"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * k:8 + 4 * k], "big") for k in range(dims))
    start = 4 + 4 * dims
    if len(raw) - start != int(np.prod(shape)):
        raise DataError(
            f"{path}: header announces shape {shape} ({int(np.prod(shape))} bytes) but the file holds "
            f"{len(raw) - start} data bytes; the file is truncated or corrupt. fix: download it again"
        )
    return np.frombuffer(raw, np.uint8, offset=start).reshape(shape)


def read_co2_monthly(path: str | Path) -> np.ndarray:
    """Monthly mean CO2 (ppm) of NOAA's ``co2_mm_mlo.txt``, in time order.

    Lines starting with ``#`` are skipped; every other line must have 8 columns with consecutive
    months.

    Raises
    ------
    DataError
        A malformed line (file:line named) or a gap in the months.
    """
    values, prev = [], None
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cols = line.split()
        try:
            if len(cols) != 8:
                raise ValueError(f"{len(cols)} columns, expected 8")
            year, month, value = int(cols[0]), int(cols[1]), float(cols[3])
        except ValueError as exc:
            raise DataError(
                f"{path}:{lineno}: malformed data row {line.strip()!r} ({exc}); rule: 'year month "
                "decimal_date average deseasonalized ndays stdev unc'. fix: use the NOAA file"
            ) from None
        index = 12 * year + month - 1
        if prev is not None and index != prev + 1:
            raise DataError(
                f"{path}:{lineno}: month {year}-{month:02d} does not follow the previous row; the "
                "loader needs contiguous months. fix: use the unmodified NOAA file"
            )
        prev = index
        values.append(value)
    if len(values) < 3:
        raise DataError(f"{path}: found {len(values)} data rows; at least 3 are needed")
    return np.asarray(values, np.float64)


def read_co2_weekly() -> tuple[np.ndarray, str]:
    """Weekly Scripps CO2 (ppm) shipped with statsmodels, gaps filled by linear interpolation.

    Returns
    -------
    values : ndarray, float64
    sha256 : str
        Checksum of statsmodels' ``co2.csv``.
    """
    import statsmodels.datasets.co2 as sm_co2

    path = Path(sm_co2.__file__).parent / "co2.csv"
    rows = np.genfromtxt(path, delimiter=",", skip_header=1)
    values = rows[:, 1]
    ok = np.isfinite(values)
    t = np.arange(len(values))
    return np.interp(t, t[ok], values[ok]), _sha256(path)


def read_sp500(path: str | Path, start: str = SP500_START) -> np.ndarray:
    """Daily closes of a Yahoo Finance CSV (``Date,Open,High,Low,Close,Adj Close,Volume``) from ``start``.

    Raises
    ------
    DataError
        A wrong header, a malformed row, a non-positive close, or dates out of order (file:line).
    """
    lines = Path(path).read_text().splitlines()
    header = "Date,Open,High,Low,Close,Adj Close,Volume"
    if not lines or lines[0].strip() != header:
        raise DataError(
            f"{path}:1: header {lines[0] if lines else ''!r}, expected {header!r}; fix: use a Yahoo "
            "Finance daily CSV"
        )
    closes, prev = [], ""
    for lineno, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        cols = line.split(",")
        try:
            if len(cols) != 7:
                raise ValueError(f"{len(cols)} fields, expected 7")
            date, close = cols[0], float(cols[4])
            if not close > 0:
                raise ValueError(f"close {close} is not positive")
        except ValueError as exc:
            raise DataError(f"{path}:{lineno}: malformed row {line!r} ({exc})") from None
        if date <= prev:
            raise DataError(f"{path}:{lineno}: date {date} does not follow {prev}; rows must ascend")
        prev = date
        if date >= start:
            closes.append(close)
    if len(closes) < 3:
        raise DataError(f"{path}: {len(closes)} rows on or after {start}; at least 3 are needed")
    return np.asarray(closes, np.float64)


def read_protein(path: str | Path) -> list[tuple[str, str]]:
    """Segments of the UCI protein secondary-structure format.

    ``#`` lines are the header; ``<>``, ``end`` and ``<end>`` all separate segments (the original
    is inconsistent); every other non-blank line is ``<amino acid> <label>`` with a label in
    ``h``, ``e``, ``_``. Empty segments are dropped.

    Returns
    -------
    list of (sequence, labels)
        One pair of equal-length strings per segment, in file order.

    Raises
    ------
    DataError
        A malformed residue line, an unknown amino acid or label (file:line named).
    """
    segments, seq, lab = [], [], []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text in ("<>", "end", "<end>"):
            if seq:
                segments.append(("".join(seq), "".join(lab)))
            seq, lab = [], []
            continue
        cols = text.split()
        if len(cols) != 2 or cols[0] not in AMINO_ACIDS or cols[1] not in PROTEIN_CLASSES:
            raise DataError(
                f"{path}:{lineno}: malformed residue line {text!r}; rule: '<amino acid> <label>' "
                f"with an amino acid in {AMINO_ACIDS} and a label in h, e, _ (or a boundary "
                "'<>', 'end', '<end>'). fix: use the original UCI file"
            )
        seq.append(cols[0])
        lab.append(cols[1])
    if seq:
        segments.append(("".join(seq), "".join(lab)))
    if not segments:
        raise DataError(f"{path}: no residue lines found; fix: use the original UCI file")
    return segments


# --------------------------------------------------------------------------------- builders

def _regression_splits(series: np.ndarray, window: int, kind: str, normalization: dict | None):
    """Windows of standardized steps, split 70/15/15 by target time; see the module docstring."""
    steps = np.diff(series) if kind == "difference" else np.diff(np.log(series))
    n_targets = len(steps) - window  # target step k = window..len(steps)-1
    if n_targets < 3:
        raise DataError(
            f"series of {len(series)} values is too short for window={window}; fix: choose a "
            f"window below {len(series) - 3}"
        )
    n_train = int(round(SPLIT_FRACTIONS[0] * n_targets))
    n_val = int(round(SPLIT_FRACTIONS[1] * n_targets))
    if normalization is None:
        train_steps = steps[:window + n_train]  # every step seen by a training sample
        normalization = {"kind": kind, "mean": float(train_steps.mean()),
                         "std": float(train_steps.std())}
    z = (steps - normalization["mean"]) / normalization["std"]
    idx = np.arange(window, len(steps))
    x = np.stack([z[k - window:k] for k in idx])[:, :, None].astype(np.float32)
    y = z[idx].astype(np.float32)
    anchor, truth = series[idx], series[idx + 1]
    bounds = [0, n_train, n_train + n_val, n_targets]
    parts = [Split(x[a:b], y[a:b], anchor[a:b], truth[a:b]) for a, b in zip(bounds, bounds[1:])]
    return parts, normalization


def _protein_windows(segments, window: int):
    index = {a: k for k, a in enumerate(AMINO_ACIDS)}
    outside = len(AMINO_ACIDS)
    xs, ys = [], []
    for seq, lab in segments:
        codes = np.full(len(seq) + 2 * window, outside)
        codes[window:window + len(seq)] = [index[a] for a in seq]
        onehot = np.eye(outside + 1, dtype=np.float32)[codes]
        xs.append(np.stack([onehot[k:k + 2 * window + 1] for k in range(len(seq))]))
        ys.append(np.array([PROTEIN_CLASSES.index(c) for c in lab], np.int64))
    return Split(np.concatenate(xs), np.concatenate(ys))


def load(name: str, *, variant: str | None = None, window: int | None = None,
         normalization: dict | None = None, data_dir: str | Path | None = None,
         download: bool = False, base_url: str | None = None) -> Dataset:
    """Load a benchmark as fixed-length sequences with deterministic train/val/test splits.

    Parameters
    ----------
    name : str
        ``mnist``, ``co2``, ``sp500`` or ``protein`` (see the module docstring).
    variant : str, optional
        Dataset variant; ``None`` picks the default (``row``, ``monthly``, ``close``, ``residue``).
    window : int, optional
        Regression: input window in steps (>= 1; defaults 24 for co2, 20 for sp500). Protein: half
        width in residues (>= 0, default 8, giving 17 steps). Not used by MNIST.
    normalization : dict, optional
        Regression only: standardization constants to use instead of the training-part statistics
        (as stored in a trained network's metadata), so that a network is scored exactly as trained.
    data_dir, download, base_url
        See :func:`fetch`.

    Returns
    -------
    Dataset

    Raises
    ------
    DataError
        Unknown name/variant, bad window, missing, corrupt or malformed files.
    """
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; {did_you_mean(name, DATASETS)}")
    variants, default, default_window = DATASETS[name]
    variant = default if variant is None else variant
    if variant not in variants:
        raise DataError(
            f"dataset '{name}' has no variant '{variant}'; valid: {', '.join(variants)}"
        )
    if name == "mnist":
        if window is not None:
            raise DataError("dataset 'mnist' takes no window; fix: leave window unset")
    else:
        window = default_window if window is None else int(window)
        low = 0 if name == "protein" else 1
        if window < low:
            raise DataError(f"dataset '{name}': window={window} is out of range; rule: window >= {low}")

    def get(folder, file):
        return fetch(folder, file, data_dir=data_dir, download=download, base_url=base_url)

    def sums(*keys):
        return {f"{f}/{n}": FILES[(f, n)][0] for f, n in keys}

    if name == "mnist":
        keys = [("mnist", f"{p}-{k}") for p in ("train", "t10k")
                for k in ("images-idx3-ubyte.gz", "labels-idx1-ubyte.gz")]
        tr_x, tr_y, te_x, te_y = (read_idx(get(*k)) for k in keys)
        for xs, ys, k in ((tr_x, tr_y, keys[0]), (te_x, te_y, keys[2])):
            if len(xs) != len(ys):
                raise DataError(
                    f"{k[0]}/{k[1]}: {len(xs)} images but {len(ys)} labels; fix: download both again"
                )
        shape = (28, 28) if variant == "row" else (784, 1)

        def prep(images, labels):
            x = images.reshape(len(images), *shape).astype(np.float32) / np.float32(255.0)
            return Split(x, labels.astype(np.int64))

        n_val = min(5000, len(tr_x) // 12)
        n_tr = len(tr_x) - n_val
        return Dataset(name, variant, "classification", "misclassification_rate", "1", 10, None,
                       {"kind": "scale", "divisor": 255.0}, sums(*keys),
                       prep(tr_x[:n_tr], tr_y[:n_tr]), prep(tr_x[n_tr:], tr_y[n_tr:]),
                       prep(te_x, te_y))

    if name == "protein":
        keys = [("protein", f"protein-secondary-structure.{p}") for p in ("train", "test")]
        train_segments, test_segments = (read_protein(get(*k)) for k in keys)
        n_tr = max(1, int(round((1 - PROTEIN_VAL_FRACTION) * len(train_segments))))
        if n_tr >= len(train_segments):
            raise DataError(
                f"{keys[0][1]}: {len(train_segments)} segment(s); at least 2 are needed for a "
                "train/val split"
            )
        return Dataset(name, variant, "classification", "misclassification_rate", "1", 3, window,
                       {"kind": "one_hot"}, sums(*keys),
                       _protein_windows(train_segments[:n_tr], window),
                       _protein_windows(train_segments[n_tr:], window),
                       _protein_windows(test_segments, window))

    if name == "co2":
        if variant == "monthly":
            key = ("co2", "co2_mm_mlo.txt")
            series, checks = read_co2_monthly(get(*key)), sums(key)
        else:
            series, sha = read_co2_weekly()
            checks = {"statsmodels/datasets/co2/co2.csv": sha}
        (tr, va, te), norm = _regression_splits(series, window, "difference", normalization)
        return Dataset(name, variant, "regression", "mae", "ppm", 1, window, norm, checks, tr, va, te)

    key = ("sp500", "GSPC.csv")
    series = read_sp500(get(*key))
    (tr, va, te), norm = _regression_splits(series, window, "log_return", normalization)
    return Dataset(name, variant, "regression", "mae", "index points", 1, window, norm, sums(key),
                   tr, va, te)
