"""Installation: kernels/, stimuli/ and analyzers/ install inside the testbench namespace only.

PyPI has unrelated top-level packages named ``kernels`` (Hugging Face) and ``stimuli``; testbench must
neither shadow them nor be shadowed by them, in editable and in regular installs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PRIVATE = ("kernels", "stimuli", "analyzers")


def _fresh_env(root: Path) -> tuple[Path, Path]:
    """A new venv that sees this environment's dependencies but not its testbench install."""
    venv.EnvBuilder(with_pip=True).create(root)
    python = root / "bin" / "python"
    site = Path(subprocess.check_output(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    deps = root / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("rnn_testbench", "__editable__", "testbench")) \
                and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    (site / "zz_deps.pth").write_text(f"{deps}\n")
    for name in PRIVATE:  # the unrelated packages a user may have installed
        (site / name).mkdir()
        (site / name / "__init__.py").write_text("ORIGIN = 'someone else'\n")
    return python, site


@pytest.mark.slow
@pytest.mark.parametrize("editable", [False, True], ids=["regular", "editable"])
def test_install_keeps_kernels_stimuli_analyzers_private(tmp_path, editable):
    python, site = _fresh_env(tmp_path / "env")
    target = ["-e", str(REPO)] if editable else [str(REPO)]
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", *target], check=True,
                   cwd=tmp_path, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    work = tmp_path / "work"
    work.mkdir()
    for name in PRIVATE:
        got = subprocess.run([python, "-c", f"import {name}; print({name}.ORIGIN)"], cwd=work,
                             capture_output=True, text=True, check=True).stdout.strip()
        assert got == "someone else"
        assert not (site / name / "cells.py").exists() and not (site / name / "steps.py").exists()
    probe = "import testbench.kernels as k, testbench.stimuli as s; print(k.__file__, s.__name__)"
    got = subprocess.run([python, "-c", probe], cwd=work, capture_output=True, text=True, check=True)
    assert "testbench.stimuli" in got.stdout
    assert ("/kernels/__init__.py" if editable else "/testbench/kernels/__init__.py") in got.stdout
    run = subprocess.run([tmp_path / "env" / "bin" / "testbench", "run", "-q",
                          REPO / "graphs" / "characterize.yaml", "-o", work / "out.zarr"],
                         cwd=work, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (work / "out.zarr").is_dir()
    assert sys.prefix not in got.stdout  # the private packages come from the fresh install
