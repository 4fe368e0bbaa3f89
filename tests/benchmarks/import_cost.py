"""What a ``testbench`` command imports, and what each top-level package costs (``-X importtime``).

    python tests/benchmarks/import_cost.py -- --help
    python tests/benchmarks/import_cost.py -- validate graphs/characterize.yaml
    python tests/benchmarks/import_cost.py --why scipy.signal -- run graphs/characterize.yaml -o OUT

Prints the total import time, the self time summed per top-level package (``scipy``, ``pandas``,
``testbench.analyzers`` ...), and with ``--why MODULE`` the chain of imports that first pulled
``MODULE`` in. Times are one process's (noisy on a busy machine: repeat, or compare packages, not
milliseconds).
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys

_RUN = ("import sys; from testbench.cli import main; sys.argv = ['testbench', *sys.argv[1:]]; "
        "sys.exit(main())")


def import_records(argv: list[str]) -> list[tuple[int, int, str]]:
    """``(depth, self_us, module)`` for each module the command ``testbench ARGV`` imports, in
    ``-X importtime`` order (a module after the modules it imported)."""
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", _RUN, *argv],
                          capture_output=True, text=True)
    records = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        records.append((depth, int(self_us), name.strip()))
    return records


def package(module: str) -> str:
    """Top-level package of ``module``; ``testbench`` modules are kept to their second level."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "testbench" else parts[0]


def why(records: list[tuple[int, int, str]], module: str) -> list[str]:
    """The import chain (outermost first) that first imported ``module``; empty if it was not."""
    for i, (depth, _, name) in enumerate(records):
        if name != module:
            continue
        chain, want = [name], depth - 1
        for d, _, parent in records[i + 1:]:  # parents are listed after their children
            if d == want:
                chain.append(parent)
                want -= 1
        return chain[::-1]
    return []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--top", type=int, default=15, help="packages to list (default: %(default)s)")
    p.add_argument("--why", action="append", default=[], metavar="MODULE",
                   help="print the import chain that first pulled MODULE in; repeatable")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- then the testbench arguments")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    records = import_records(command)
    per = collections.Counter()
    for _, self_us, name in records:
        per[package(name)] += self_us
    total = sum(per.values())
    print(f"testbench {' '.join(command)}: {len(records)} modules, {total / 1e6:.3f} s of imports")
    for name, us in per.most_common(args.top):
        print(f"  {us / 1e6:7.3f} s  {name}")
    for module in args.why:
        chain = why(records, module)
        print(f"why {module}: " + (" -> ".join(chain) if chain else "not imported"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
