"""Result stores and the rule every output obeys: testbench replaces only what testbench wrote.

A **result store** is one ``xr.Dataset`` in a zarr group whose root attributes carry a marker:
``testbench_format`` (:data:`STORE_FORMAT`), ``testbench_format_version``
(:data:`STORE_FORMAT_VERSION`) and ``testbench_complete``, set true only after every chunk is written.
Stores written before the marker existed are format version 1.

Writing a local store (:func:`write`):

1. :func:`check_target` refuses, before anything is computed, a protected path (``/``, the home
   directory or an ancestor, the current directory or an ancestor, the graph file or a folder holding
   it, a folder holding a ``.git`` repository) and anything at the target that is not a testbench
   store (a file, a link, a non-empty folder, a foreign or unmarked zarr). An empty folder may be used.
2. The store is written aside, to ``.NAME.part-XXXXXXXX`` beside the target, holding a writer record
   (:data:`WRITER_RECORD`: pid and host); then marked complete.
3. ``before_commit`` (the graph's sinks) reads the new store there; if it fails, the ``.part`` is
   removed and the previous store stays.
4. The new store and the previous one are exchanged atomically (Linux ``renameat2`` with
   ``RENAME_EXCHANGE``; elsewhere two renames through ``.NAME.old-XXXXXXXX``), so a store is at the
   target at every moment; then the previous one is removed.

A writer killed mid-way leaves its recorded ``.part``/``.old`` sibling; the next write to the same
target removes the siblings whose writer (pid, same host) is no longer alive, and nothing else.

A URL target (``s3://``...) is written in place by zarr after the same marker check (no atomic
exchange exists there); ``memory://`` is refused: its results vanish with the process.

Other files (sink tables, report pages and figures) go through :func:`write_file`: a folder's
ledger (:data:`LEDGER`, the sha256 of each file testbench wrote there) decides what may be replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import hashlib
import json
import os
import re
import shutil
import socket
import uuid
import warnings
from pathlib import Path

import xarray as xr

from testbench.errors import OutputError, TestbenchError

#: Zarr format version of result stores. Version 2 has a specification for the fixed-width string
#: coordinates (``metric``, ``dataset``) and for consolidated metadata; version 3 does not yet, and
#: zarr-python warns that such v3 stores may be unreadable by other libraries.
ZARR_FORMAT = 2

#: Marker of a result store (root attribute ``testbench_format``) and the format version this
#: testbench writes and reads (``testbench_format_version``). Version 1: stores without a marker,
#: written before 2026-11-28. Version 2: one ``metrics`` variable on ``(dataset, network_size)``
#: dims. Version 3: the schema of :mod:`testbench.schema` (a ``network`` dim, one variable per
#: metric).
STORE_FORMAT, STORE_FORMAT_VERSION = "testbench-store", 3
_VERSION_1 = "format version 1, written before 2026-11-28 when stores gained a format marker"

#: File inside a ``.part``/``.old`` sibling naming the process writing it: ``{"pid", "host"}``.
WRITER_RECORD = ".testbench-writer.json"

#: File in a folder listing the files testbench wrote there: ``{"files": {name: sha256}}``.
LEDGER = ".testbench-files.json"

_FIX_STORE = ("fix: choose another path (`testbench run GRAPH -o PATH`, or the graph's 'output:'), "
              "e.g. a new folder such as results/run.zarr, or move what is there away yourself")


def is_url(target: str) -> bool:
    """True for ``scheme://...`` targets other than ``file://``."""
    return "://" in target and not target.startswith("file://")


def _local(target: str) -> Path:
    return Path(target.removeprefix("file://"))


# ------------------------------------------------------------------------------ target checks


def protect(path: str | Path, what: str, fix: str, *, graph: str | None = None) -> None:
    """Refuse a path testbench must never write to or replace.

    Parameters
    ----------
    path : str or Path
        Local output path (need not exist).
    what : str
        What would be written there, for the message (``"output store"``, ``"report folder"``).
    fix : str
        The ``fix: ...`` sentence of the message.
    graph : str, optional
        The graph file being run: neither it nor a folder holding it may be replaced.

    Raises
    ------
    OutputError
        ``path`` is ``/``, the home directory or one of its ancestors, the current directory or one
        of its ancestors, the graph file or a folder holding it, or a folder holding ``.git``.
    """
    real = Path(os.path.realpath(path))
    cwd = Path(os.path.realpath(os.getcwd()))
    try:
        home = Path(os.path.realpath(Path.home()))
    except RuntimeError:  # no home directory known
        home = None
    reason = None
    if real == Path(real.anchor):
        reason = "the root directory"
    elif home is not None and home.is_relative_to(real):
        reason = "the home directory" if real == home else f"an ancestor of the home directory ({home})"
    elif cwd.is_relative_to(real):
        reason = "the current directory" if real == cwd else f"an ancestor of the current directory ({cwd})"
    elif graph and os.path.exists(graph) and Path(os.path.realpath(graph)).is_relative_to(real):
        reason = ("the graph file itself" if real == Path(os.path.realpath(graph))
                  else f"a folder holding the graph file {graph}")
    elif (real / ".git").exists():
        reason = "a folder holding a repository (.git)"
    if reason:
        raise OutputError(f"{what} '{path}' is {reason}; testbench never writes to or replaces "
                          f"it; {fix}")


def _fs(target: str):
    """(fsspec filesystem, path inside it) of a local path or URL."""
    import fsspec

    if not is_url(target):
        from fsspec.implementations.local import LocalFileSystem

        return LocalFileSystem(), str(_local(target))
    try:
        return fsspec.core.url_to_fs(target)
    except (ImportError, ValueError) as exc:
        raise OutputError(f"store URL '{target}': {exc}; fix: install the fsspec backend for this "
                          "scheme (e.g. s3fs for s3://) or use a local path") from None


def _root_attrs(fs, root: str) -> dict | None:
    """Root attributes of the zarr group or array at ``root``; None where there is none."""
    def read(name):
        try:
            return json.loads(fs.cat_file(f"{root}/{name}"))
        except (OSError, ValueError):  # absent, unreadable or not JSON
            return None

    v3 = read("zarr.json")
    if isinstance(v3, dict):
        attrs = v3.get("attributes", {})
        return attrs if isinstance(attrs, dict) else {}
    if fs.exists(f"{root}/.zgroup") or fs.exists(f"{root}/.zarray"):
        attrs = read(".zattrs")
        return attrs if isinstance(attrs, dict) else {}
    return None


def _blocker(target: str) -> str | None:
    """What at ``target`` testbench must not replace, described for a message; None if nothing."""
    fs, root = _fs(target)
    if not is_url(target) and os.path.islink(root):
        return f"a symbolic link (to {os.readlink(root)})"
    if not fs.exists(root):
        return None
    if not fs.isdir(root):
        return f"a file ({fs.size(root)} bytes)"
    attrs = _root_attrs(fs, root)
    if attrs is None:
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(root, detail=False))
        if not names:
            return None
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        return f"a non-empty folder that is not a testbench store ({len(names)} entries: {shown})"
    if attrs.get("testbench_format") == STORE_FORMAT:
        return None
    if "graph_text" in attrs:
        return (f"a testbench store of {_VERSION_1}; testbench replaces only marked stores, so "
                "older results are never lost by accident")
    return "a zarr store without the testbench marker (written by another program)"


def check_target(target: str | Path, *, graph: str | None = None) -> str:
    """Check that a result store may be written at ``target``; nothing is created.

    Parameters
    ----------
    target : str or Path
        Local path (``file://`` allowed) or URL.
    graph : str, optional
        Path of the graph file being run (protected, see :func:`protect`).

    Returns
    -------
    str
        ``target`` as a string.

    Raises
    ------
    OutputError
        Empty target, ``memory://``, a protected path, something at the target that is not a
        testbench store, or a parent that cannot hold a folder.
    """
    target = str(target)
    if not target.strip():
        raise OutputError("output path is empty ('-o \"\"' or output: ''); fix: give a store path, "
                          "e.g. -o results/run.zarr")
    if is_url(target):
        if target.split("://", 1)[0].lower() == "memory":
            raise OutputError(f"output '{target}': a memory:// store vanishes when the process "
                              "exits, so the results would be lost; fix: write to a local path or "
                              "a persistent URL (s3://, gs://...)")
    else:
        protect(_local(target), "output store", _FIX_STORE, graph=graph)
    blocker = _blocker(target)
    if blocker:
        raise OutputError(f"output '{target}' is {blocker}; testbench replaces only a store it "
                          f"wrote; {_FIX_STORE}")
    if not is_url(target):
        _check_creatable(_local(target), "output store", _FIX_STORE)
    return target


def _check_creatable(path: Path, what: str, fix: str) -> None:
    """The nearest existing ancestor of ``path`` must be a folder we may write into."""
    parent = Path(os.path.abspath(path)).parent
    while not os.path.lexists(parent):
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{what} '{path}' cannot be created: '{parent}' is a file, not a folder; "
                          f"{fix}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{what} '{path}' cannot be created: no permission to write in "
                          f"'{parent}'; {fix}")


# ---------------------------------------------------------------------------------- writing


@contextlib.contextmanager
def scheduler_context(scheduler: str, progress: bool = True):
    """Dask configuration for ``scheduler``, with progress on stderr for work longer than 2 s.

    Parameters
    ----------
    scheduler : str
        ``synchronous``, ``threads``, ``processes`` or the address of a dask.distributed scheduler.
    progress : bool
        Show progress (local schedulers) when a computation takes more than 2 s: a bar on a
        terminal, a line at most every 10 s elsewhere (:func:`testbench.progress.progress`).
    """
    import dask  # with the two below: not imported by `validate`, `nodes`, `show`
    from dask.base import named_schedulers

    from testbench.progress import progress as progress_of

    if scheduler in ("synchronous", "threads", "processes"):
        # the scheduler function, not its name, and task rechunking: given a name, or choosing a
        # rechunk method, dask imports dask.distributed to look for a client (~0.4 s per command)
        local = {"scheduler": named_schedulers[scheduler], "array.rechunk.method": "tasks"}
        with dask.config.set(local), progress_of(progress):
            yield None
        return
    from distributed import Client

    from testbench.preflight import probe_scheduler

    probe_scheduler(scheduler)  # bounded in time: Client() can hang on a peer that is not dask
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise TestbenchError(
            f"cannot reach the dask.distributed scheduler at {scheduler}: {exc}; fix: start one "
            "(`dask scheduler` + `dask worker ADDRESS`) or use --scheduler threads"
        ) from None
    with client:
        yield client


def write(ds: xr.Dataset, target: str | Path, *, scheduler: str = "threads", progress: bool = True,
          graph: str | None = None, before_commit=None) -> str:
    """Compute ``ds`` under ``scheduler`` and write it as a marked result store at ``target``.

    Parameters
    ----------
    ds : xr.Dataset
        Possibly dask-backed; computed chunk by chunk while writing.
    target : str or Path
        Local path (written aside, then exchanged into place) or a URL zarr accepts (in place).
    scheduler : str
        See :func:`scheduler_context`.
    progress : bool
        Progress bar for long runs.
    graph : str, optional
        The graph file being run (protected, see :func:`check_target`).
    before_commit : callable, optional
        Called with the path of the complete new store before it replaces the previous one (the
        graph's sinks); an exception there leaves the previous store in place.

    Returns
    -------
    str
        The target.

    Raises
    ------
    OutputError
        See :func:`check_target`; also when the folder cannot be created or the disk is full.
    """
    target = check_target(target, graph=graph)
    ds = _encodable(ds)
    ds.attrs.update(testbench_format=STORE_FORMAT, testbench_format_version=STORE_FORMAT_VERSION,
                    testbench_complete=False)
    with scheduler_context(scheduler, progress):
        if is_url(target):
            _write_zarr(ds, target, target, mode="w")
            if before_commit is not None:
                before_commit(target)
            return target
        final = _local(target)
        _output_step(target, "creating its folder",
                     lambda: final.parent.mkdir(parents=True, exist_ok=True))
        _output_step(target, "removing stale siblings of killed runs", _remove_stale, final)
        part = _sibling(final, "part")
        try:
            _output_step(target, "creating a folder beside it", part.mkdir)
            _output_step(target, "creating a folder beside it", _record_writer, part)
            _write_zarr(ds, part, target, mode="a")  # "a": keep the writer record
            if before_commit is not None:
                before_commit(str(part))
            _output_step(target, "moving the new store into place", _commit, part, final, target)
        except BaseException:
            _discard(part)
            raise
    return target


def _discard(part: Path) -> None:
    """Remove an unfinished ``.part`` now, and again at exit: after Ctrl-C or SIGTERM, dask worker
    threads still running may write chunks into it until they finish (the interpreter joins them
    before running ``atexit`` functions)."""
    shutil.rmtree(part, ignore_errors=True)
    atexit.register(shutil.rmtree, part, True)


def _output_step(target: str, doing: str, func, *args) -> None:
    """``func(*args)``, an ``OSError`` reported as a failure of the output path."""
    try:
        func(*args)
    except OSError as exc:
        raise OutputError(f"output store '{target}': {doing} failed: {exc}; {_FIX_STORE}") from exc


def _sibling(final: Path, kind: str) -> Path:
    return final.with_name(f".{final.name}.{kind}-{uuid.uuid4().hex[:8]}")


def _write_zarr(ds: xr.Dataset, dest, target: str, *, mode: str) -> None:
    """Write ``ds`` to ``dest``, then set ``testbench_complete`` (the last thing written)."""
    import zarr

    try:
        with warnings.catch_warnings():  # consolidating skips our writer record, rightly
            warnings.filterwarnings("ignore", f"Object at {re.escape(WRITER_RECORD)} is not")
            ds.to_zarr(dest, mode=mode, consolidated=True, zarr_format=ZARR_FORMAT)
            group = zarr.open_group(dest, mode="r+", zarr_format=ZARR_FORMAT)
            group.attrs["testbench_complete"] = True
            zarr.consolidate_metadata(dest, zarr_format=ZARR_FORMAT)
    except OSError as exc:
        # the store's own files, or a full / read-only disk: an output failure, not a node's
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) or \
                str(exc.filename or "").startswith(str(dest)):
            raise OutputError(f"writing the store '{target}' failed: {exc}; fix: free space or "
                              "choose another path (-o PATH)") from exc
        raise


def _record_writer(folder: Path) -> None:
    (folder / WRITER_RECORD).write_text(json.dumps({"pid": os.getpid(),
                                                    "host": socket.gethostname()}))


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange two paths (Linux ``renameat2``); False where the OS cannot."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # file system or kernel without it
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _commit(part: Path, final: Path, target: str) -> None:
    """Put the store at ``part`` at ``final``; a store is at ``final`` at every moment."""
    blocker = _blocker(str(final))  # something may have appeared there while computing
    if blocker:
        raise OutputError(f"output '{target}' is {blocker} (it appeared while the graph was "
                          f"computed); testbench replaces only a store it wrote; {_FIX_STORE}")
    if not os.path.lexists(final):
        os.rename(part, final)
        (final / WRITER_RECORD).unlink()
        return
    _record_writer(final)  # the previous store, soon a sibling: recorded before it moves
    try:
        if _exchange(part, final):
            shutil.rmtree(part)
        else:
            old = _sibling(final, "old")
            os.rename(final, old)
            try:
                os.rename(part, final)  # a kill right before this: the next write restores `old`
            except OSError:
                os.rename(old, final)
                raise
            shutil.rmtree(old)
    finally:  # the record now in the store at `final`, new or previous
        with contextlib.suppress(OSError):
            (final / WRITER_RECORD).unlink(missing_ok=True)


def _remove_stale(final: Path) -> None:
    """Remove ``.part``/``.old`` siblings of ``final`` left by dead writers on this host.

    Only folders named like ours that hold a valid writer record are touched; a stale ``.old``
    (a previous store moved aside by the two-rename fallback) is moved back when nothing is at
    ``final``.
    """
    pattern = re.compile(rf"\.{re.escape(final.name)}\.(part|old)-[0-9a-f]{{8}}")
    if not final.parent.is_dir():
        return
    for sibling in sorted(final.parent.iterdir()):
        match = pattern.fullmatch(sibling.name)
        if not match or sibling.is_symlink() or not sibling.is_dir() or not _stale(sibling):
            continue
        if match[1] == "old" and not os.path.lexists(final):
            os.rename(sibling, final)
            (final / WRITER_RECORD).unlink(missing_ok=True)
        else:
            shutil.rmtree(sibling)


def _stale(folder: Path) -> bool:
    """True when ``folder``'s writer record names a process of this host that is not alive."""
    try:
        record = json.loads((folder / WRITER_RECORD).read_text())
        pid, host = record["pid"], record["host"]
    except (OSError, ValueError, TypeError, KeyError):
        return False
    if not isinstance(pid, int) or pid <= 0 or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _encodable(ds: xr.Dataset) -> xr.Dataset:
    """Make each variable's chunks regular along each of its dims (zarr needs regular chunks;
    variables may be chunked differently along a shared dim) and strings fixed-width."""
    out = ds.copy()
    for name, var in out.variables.items():
        var.encoding.pop("chunks", None)
        if var.dtype.kind == "O":
            out[name] = var.astype(str)
    for name, var in out.variables.items():
        if var.chunks is None:
            continue
        fixed = {}
        for dim, sizes in zip(var.dims, var.chunks):
            if len(set(sizes[:-1])) > 1 or (len(sizes) > 1 and sizes[-1] > sizes[0]):
                fixed[dim] = max(sizes)
        if fixed:
            out[name] = var.chunk(fixed)
    out.attrs = dict(out.attrs)
    return out


# ---------------------------------------------------------------------------------- reading

_FIX_READ = "fix: give the path of a store written by `testbench run` (the graph's 'output')"


def open_store(path: str | Path) -> xr.Dataset:
    """Open a complete result store of a format version this testbench reads (lazy, dask-backed).

    Raises
    ------
    OutputError
        Nothing at ``path``, not a testbench store, format version 1 (unmarked) or newer than
        :data:`STORE_FORMAT_VERSION`, incomplete, or unreadable metadata.
    """
    path = str(path)
    fs, root = _fs(path)
    if not fs.exists(root):
        raise OutputError(f"'{path}' is not a result store: nothing is there; {_FIX_READ}")
    attrs = _root_attrs(fs, root) if fs.isdir(root) else None
    if attrs is None:
        raise OutputError(f"'{path}' is not a result store: {_blocker(path)}; {_FIX_READ}")
    if attrs.get("testbench_format") != STORE_FORMAT:
        if "graph_text" in attrs:
            raise OutputError(f"'{path}' is a testbench store of {_VERSION_1}; this testbench reads "
                              f"format version {STORE_FORMAT_VERSION}; fix: re-run the graph that "
                              "wrote it (its 'graph_text' attribute holds the graph) with "
                              "`testbench run GRAPH -o NEW_PATH`")
        raise OutputError(f"'{path}' is a zarr store without the testbench marker (root attribute "
                          f"testbench_format = '{STORE_FORMAT}'), not a result store; {_FIX_READ}")
    version = attrs.get("testbench_format_version")
    if not isinstance(version, int) or version < 1 or isinstance(version, bool):
        raise OutputError(f"'{path}': testbench_format_version is {version!r}, expected an integer "
                          f"1..{STORE_FORMAT_VERSION}; the store is damaged; fix: re-run the graph")
    if version < STORE_FORMAT_VERSION:
        raise OutputError(f"'{path}' is a testbench store of format version {version}, written by "
                          f"an older testbench; this testbench reads format version {STORE_FORMAT_VERSION} "
                          "(a 'network' dimension, one variable per metric: docs/schema.md); fix: "
                          "re-run the graph that wrote it (its 'graph_text' attribute holds the "
                          "graph) with `testbench run GRAPH -o NEW_PATH`")
    if version > STORE_FORMAT_VERSION:
        raise OutputError(f"'{path}' was written by a newer testbench (format version {version}; "
                          f"this one reads up to {STORE_FORMAT_VERSION}); fix: upgrade testbench "
                          "(pip install -U rnn-testbench)")
    if attrs.get("testbench_complete") is not True:
        raise OutputError(f"'{path}' is an incomplete store: the run writing it was interrupted or "
                          "is still running (root attribute testbench_complete is not true); fix: "
                          "wait for that run, or re-run the graph")
    try:
        return xr.open_zarr(path)
    except Exception as exc:  # noqa: BLE001 - any failure to read metadata means a damaged store
        raise OutputError(f"'{path}': the store's metadata cannot be read ({type(exc).__name__}: "
                          f"{exc}); the store is damaged; fix: re-run the graph that wrote it"
                          ) from None


def load(obj, path: str | Path):
    """``obj.load()`` for data of the store at ``path``, a damaged chunk reported as an error.

    Raises
    ------
    OutputError
        A chunk is missing, corrupt or cannot be decoded.
    """
    try:
        return obj.load()
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure means damaged data
        raise OutputError(f"'{path}': reading the stored data failed ({type(exc).__name__}: {exc}); "
                          "a chunk is missing or corrupt; fix: re-run the graph that wrote the "
                          "store") from None


# ------------------------------------------------------------------------- other output files


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _ledger(folder: Path) -> dict:
    try:
        files = json.loads((folder / LEDGER).read_text())["files"]
        return {str(k): str(v) for k, v in files.items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def check_file(path: str | Path, what: str, fix: str) -> Path:
    """Check that testbench may write the file ``path``: absent, or recorded in its folder's ledger
    with the same sha256 (written by testbench and not changed since). Nothing is created.

    Raises
    ------
    OutputError
        ``path`` is empty, a folder or link, or a file testbench did not write (or one changed since).
    """
    if not str(path).strip():
        raise OutputError(f"{what}: the path is empty; {fix}")
    path = Path(path)
    if os.path.islink(path):
        raise OutputError(f"{what} '{path}' is a symbolic link; testbench replaces only files it "
                          f"wrote; {fix}")
    if path.is_dir():
        raise OutputError(f"{what} '{path}' is a folder; {fix}")
    if path.exists() and _ledger(path.parent).get(path.name) != _sha256(path):
        raise OutputError(f"{what} '{path}' is a file testbench did not write (or one changed "
                          f"since; ledger: {path.parent / LEDGER}); testbench replaces only files it "
                          f"wrote; {fix}")
    _check_creatable(path, what, fix)
    return path


def check_folder(path: str | Path, what: str, fix: str) -> Path:
    """Check that testbench may write files into the folder ``path``: not protected (see
    :func:`protect`), and absent, empty, or holding only files that its ledger records unchanged
    (a folder testbench wrote before). Nothing is created.

    Raises
    ------
    OutputError
        A protected path; a file or link at ``path``; or a folder holding anything else.
    """
    if not str(path).strip():
        raise OutputError(f"{what}: the path is empty; {fix}")
    path = Path(path)
    protect(path, what, fix)
    if os.path.islink(path) or (path.exists() and not path.is_dir()):
        raise OutputError(f"{what} '{path}' is {_blocker(str(path))}; {fix}")
    if path.is_dir():
        ledger = _ledger(path)
        foreign = [p.name for p in sorted(path.iterdir()) if p.name != LEDGER and (
            p.is_symlink() or not p.is_file() or ledger.get(p.name) != _sha256(p))]
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise OutputError(f"{what} '{path}' holds {len(foreign)} entries testbench did not "
                              f"write (or that changed since; ledger: {LEDGER}): {shown}; "
                              f"testbench writes only into a new, empty or own folder; {fix}")
    _check_creatable(path, what, fix)
    return path


def write_file(path: str | Path, data: bytes, what: str, fix: str) -> Path:
    """Write ``data`` to ``path`` (via a temporary sibling) and record it in the folder's ledger.

    Parameters
    ----------
    path : str or Path
        Destination file; see :func:`check_file` for what may be replaced.
    data : bytes
        Content.
    what, fix : str
        Describe the output in messages (``"summary_table file"``) and how to choose another path.

    Returns
    -------
    Path
        ``path``.
    """
    path = check_file(path, what, fix)
    path.parent.mkdir(parents=True, exist_ok=True)
    ledger = _ledger(path.parent)
    ledger[path.name] = hashlib.sha256(data).hexdigest()
    _replace(path, data)
    _replace(path.parent / LEDGER, json.dumps({"files": ledger}, indent=1).encode())
    return path


def _replace(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.part-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
