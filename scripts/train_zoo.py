"""Regenerate the whole model zoo: testbench/zoo/<dataset>-<size>.h5 and testbench/zoo/manifest.json.

Usage::

    python scripts/train_zoo.py [--data-dir DIR] [--datasets co2 mnist ...] [--sizes 128 32 ...]
                                [--seed 0] [--no-progress] [--missing-only]

Order: CO2 first, then the 128-cell networks of the other datasets, then the other sizes. Each
network is trained with :func:`testbench.training.train` (deterministic on one machine) and its
score is re-checked with :func:`testbench.training.evaluate`. Single-threaded; about 30-40 min on
two cores for the whole zoo.
"""

from __future__ import annotations

import argparse

from testbench import training
from testbench.weights import zoo_dir

DATASETS = ("co2", "mnist", "sp500", "protein")
SIZES = (32, 64, 128, 192, 256, 320)


def jobs(datasets, sizes):
    """(dataset, size) in training order: co2 first, then 128-cell networks, then the rest."""
    first = [(d, s) for d in datasets for s in sizes if d == "co2"]
    mid = [(d, 128) for d in datasets if d != "co2" and 128 in sizes]
    rest = [(d, s) for s in sizes for d in datasets if d != "co2" and s != 128]
    return first + mid + rest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--missing-only", action="store_true",
                        help="keep zoo files that already exist (resume an interrupted run)")
    args = parser.parse_args(argv)
    for dataset, size in jobs(args.datasets, args.sizes):
        if args.missing_only and (zoo_dir() / f"{dataset}-{size}.h5").is_file():
            continue
        path, entry = training.train(dataset, size, args.seed, out=zoo_dir() / f"{dataset}-{size}.h5",
                                     data_dir=args.data_dir, progress=not args.no_progress)
        check = training.evaluate(path, data_dir=args.data_dir)
        print(f"{entry['name']}: {entry['metric']} {entry['test_score']:.6g} {entry['units']} "
              f"(baseline {entry['baseline']:.6g}, ratio {entry['score_ratio']:.3f}, "
              f"evaluate diff {check['difference']:.2g}, {entry['wall_time_s']} s)", flush=True)


if __name__ == "__main__":
    main()
