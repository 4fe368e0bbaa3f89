"""Result stores: one ``xr.Dataset`` per run, written to zarr atomically.

A local store is written aside (``.<name>.part-<id>`` next to the target), then moved into place;
an interrupted run never leaves a half-written store where a good one was. A URL (``s3://``,
``memory://``...) is written in place by zarr (no atomic rename exists there).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

import xarray as xr

from testbench.errors import TestbenchError

#: Zarr format version of result stores. Version 2 has a specification for the fixed-width string
#: coordinates (``metric``, ``dataset``) and for consolidated metadata; version 3 does not yet, and
#: zarr-python warns that such v3 stores may be unreadable by other libraries.
ZARR_FORMAT = 2


def is_url(target: str) -> bool:
    """True for ``scheme://...`` targets other than ``file://``."""
    return "://" in target and not target.startswith("file://")


@contextlib.contextmanager
def scheduler_context(scheduler: str, progress: bool = True):
    """Dask configuration for ``scheduler``, with a progress bar on work longer than 2 s.

    Parameters
    ----------
    scheduler : str
        ``synchronous``, ``threads``, ``processes`` or the address of a dask.distributed scheduler.
    progress : bool
        Show a progress bar (local schedulers) when the computation takes more than 2 s.
    """
    import dask

    if scheduler in ("synchronous", "threads", "processes"):
        from dask.diagnostics import ProgressBar

        bar = ProgressBar(minimum=2.0) if progress else contextlib.nullcontext()
        with dask.config.set(scheduler=scheduler), bar:
            yield None
        return
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise TestbenchError(
            f"cannot reach the dask.distributed scheduler at {scheduler}: {exc}; fix: start one "
            "(`dask scheduler` + `dask worker ADDRESS`) or use --scheduler threads"
        ) from None
    with client:
        yield client


def write(ds: xr.Dataset, target: str | Path, *, scheduler: str = "threads",
          progress: bool = True) -> str:
    """Compute ``ds`` under ``scheduler`` and write it to the zarr store ``target``.

    Parameters
    ----------
    ds : xr.Dataset
        Possibly dask-backed; computed chunk by chunk while writing.
    target : str or Path
        Local path (written atomically) or any URL zarr accepts.
    scheduler : str
        See :func:`scheduler_context`.
    progress : bool
        Progress bar for long runs.

    Returns
    -------
    str
        The target.
    """
    target = str(target)
    ds = _encodable(ds)
    with scheduler_context(scheduler, progress):
        if is_url(target):
            ds.to_zarr(target, mode="w", consolidated=True, zarr_format=ZARR_FORMAT)
            return target
        final = Path(target.removeprefix("file://"))
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.part-{uuid.uuid4().hex[:8]}")
        try:
            ds.to_zarr(tmp, mode="w", consolidated=True, zarr_format=ZARR_FORMAT)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


def _encodable(ds: xr.Dataset) -> xr.Dataset:
    """Make chunks uniform along each dim (zarr needs regular chunks) and strings fixed-width."""
    out = ds.copy()
    for name, var in out.variables.items():
        var.encoding.pop("chunks", None)
        if var.dtype.kind == "O":
            out[name] = var.astype(str)
    if out.chunks:
        fixed = {}
        for dim, sizes in out.chunks.items():
            if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0]):
                fixed[dim] = max(sizes)
        if fixed:
            out = out.chunk(fixed)
    return out


def open_store(path: str | Path) -> xr.Dataset:
    """Open a result store written by :func:`write` (lazy, dask-backed).

    Raises
    ------
    TestbenchError
        When ``path`` is not a zarr store.
    """
    try:
        return xr.open_zarr(str(path))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        raise TestbenchError(
            f"'{path}' is not a result store ({type(exc).__name__}: {exc}); fix: give the path of "
            "a store written by `testbench run` (the graph's 'output')"
        ) from None
