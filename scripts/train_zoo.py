"""Regenerate the whole model zoo: testbench/zoo/<dataset>-<size>.h5 and testbench/zoo/manifest.json.

Usage::

    python scripts/train_zoo.py [--data-dir DIR] [--datasets co2 mnist ...] [--sizes 128 32 ...]
                                [--seed 0] [-q] [--missing-only]

Order: CO2 first, then the 128-cell networks of the other datasets, then the other sizes. Each
network is trained with :func:`testbench.training.train` (deterministic on one machine) and its
score is re-checked with :func:`testbench.training.evaluate`. Single-threaded; about 30-40 min on
two cores for the whole zoo.
"""

from __future__ import annotations

import argparse
import sys

from testbench import data, training
from testbench.errors import DataError, TestbenchError
from testbench.models import zoo

DATASETS = ("co2", "mnist", "sp500", "protein")
SIZES = (32, 64, 128, 192, 256, 320)


def jobs(datasets, sizes):
    """(dataset, size) in training order: co2 first, then 128-cell networks, then the rest."""
    first = [(d, s) for d in datasets for s in sizes if d == "co2"]
    mid = [(d, 128) for d in datasets if d != "co2" and 128 in sizes]
    rest = [(d, s) for s in sizes for d in datasets if d != "co2" and s != 128]
    return first + mid + rest


def check_data(datasets, data_dir) -> None:
    """Refuse to start when a dataset file the jobs read is missing or corrupt.

    Raises
    ------
    DataError
        Naming the data folder, every missing or corrupt file and the command that fetches them.
    """
    root = data.data_root(data_dir)
    if data_dir is not None and not root.is_dir():
        raise DataError(f"--data-dir {root}: no such folder; fix: pass the folder that holds "
                        "co2/, mnist/, sp500/, protein/, or fetch the data into a new one with "
                        f"`testbench data fetch NAME --data-dir {root}`")
    bad = [(name, f"{folder}/{file} {status}") for name in datasets
           for folder, file in data.dataset_files(name)
           if (status := data.file_status(folder, file, data_dir=data_dir)) != "present"]
    if bad:
        names = " ".join(dict.fromkeys(name for name, _ in bad))
        fetch = "; ".join(f"testbench data fetch {n} --data-dir {root}" for n in names.split())
        raise DataError(f"data folder {root}: {', '.join(text for _, text in bad)}; fix: {fetch} "
                        "(or point --data-dir / TESTBENCH_DATA at the folder that holds them)")


def main(argv=None) -> int:
    """Train the zoo networks asked for; returns the exit status (2 on a data or training error)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--data-dir", default=None,
                        help="dataset folder (None: $TESTBENCH_DATA, else ~/.cache/testbench)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS,
                        help="datasets to train on")
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES), help="network sizes")
    parser.add_argument("--seed", type=int, default=0, help="training seed")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--missing-only", action="store_true",
                        help="keep zoo files that already exist (resume an interrupted run)")
    args = parser.parse_args(argv)
    todo = [(d, s) for d, s in jobs(args.datasets, args.sizes)
            if not (args.missing_only and (zoo.folder() / f"{d}-{s}.h5").is_file())]
    try:
        check_data(dict.fromkeys(d for d, _ in todo) if todo else (), args.data_dir)
        if not todo:
            print(f"nothing to train: the {len(jobs(args.datasets, args.sizes))} zoo files asked for "
                  f"exist in {zoo.folder()} (--missing-only)")
        for dataset, size in todo:
            path, entry = training.train(dataset, size, args.seed,
                                         out=zoo.folder() / f"{dataset}-{size}.h5",
                                         data_dir=args.data_dir, progress=not args.quiet)
            check = training.evaluate(path, data_dir=args.data_dir)
            print(f"{entry['name']}: {entry['metric']} {entry['test_score']:.6g} {entry['units']} "
                  f"(baseline {entry['baseline']:.6g}, ratio {entry['score_ratio']:.3f}, "
                  f"evaluate diff {check['difference']:.2g}, {entry['wall_time_s']} s)", flush=True)
    except TestbenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
