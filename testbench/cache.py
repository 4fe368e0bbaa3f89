"""Content-addressed cache of analyzer outputs: incremental re-runs.

Re-running an unchanged graph reads every analyzer's output from the cache (no DUT is simulated);
changing one analyzer setting recomputes that analyzer only. ``testbench run --no-cache`` (or
``testbench.run(..., cache=False)``) neither reads nor writes it.

Keys
----
Each non-sink node gets a key (:func:`node_keys`): the sha256 of a canonical JSON record of

- its kind, type and ``module:function``;
- a digest of its code: for built-in nodes every source file of testbench (``testbench``,
  ``testbench.kernels``, ``.stimuli``, ``.analyzers``), for a user's node its module's file;
- the versions of testbench (``testbench.__version__``), numpy, scipy, xarray and numba;
- its settings (defaults filled in), its sweep (in order) and the names of its sweep dims;
- the keys of its inputs (so a changed stimulus changes every key downstream of it);
- the sha256 of every weights file named by a setting called ``weights`` (resolved, ``zoo:``
  names included; the files are hashed, not loaded).

Other files a node reads are keyed by their path only: the benchmark datasets are pinned by
checksum (:mod:`testbench.data`); a custom node that reads a file which may change needs
``--no-cache``. A node whose source cannot be read (defined interactively) is never cached, nor
anything downstream of it.

Analyzer outputs are stored whole (cells x metrics x sweep points: small). Of a DUT only an
*outline* is stored (:func:`outline`: dims, coordinate names, attributes such as the weights
provenance; no data): a DUT whose output feeds only analyzers found in the cache (no sink, no
``save_responses``) is then not built at all, and its outline stands in for it in the assembly.
DUT responses are not cached: reading a response back (0.45 s for 131 MB here) is slower than
simulating it again (0.19 s), so a changed analyzer re-simulates its DUT. Stimuli are built on
every run (cheap).

Layout and safety
-----------------
The cache folder (``--cache-dir``, else ``nodes`` in the folder named by the environment variable
``TESTBENCH_CACHE``, else ``~/.cache/testbench/nodes``; the zoo's controls live beside it in ``zoo``) holds a marker file (:data:`MARKER`) and a ``CACHEDIR.TAG`` (so backup
tools skip it). testbench creates it (or adopts an empty folder) and refuses a folder without the
marker, so it never writes into, nor evicts from, a folder it did not create. It is safe to delete
at any time (between runs).

An entry is a folder named by its key holding ``data.zarr`` (none for an outline) and
``entry.json`` (node, type, bytes; the outline itself), written aside as ``.part-KEY-XXXXXXXX``
(with a writer record) and renamed into place, ``entry.json`` last: an entry without a readable
``entry.json`` (a killed writer) is ignored and replaced; a ``.part`` of a dead writer is removed by
the next run. The time of last use (the modification time of ``entry.json``, refreshed on every hit)
orders eviction: after each run's new entries are written, the least recently used entries are
removed (renamed aside, then deleted) until the cache holds at most its size cap
(``TESTBENCH_CACHE_MAX``, default 2 GiB); the current run's own entries are kept even when they
alone exceed the cap. Hits are read into memory whole, so an entry evicted by another run sharing
the folder cannot fail a run that already read it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import inspect
import json
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np
import xarray as xr

from testbench.errors import OutputError, TestbenchError
from testbench.models.zoo import CACHE_ENV, cache_root
from testbench.store import ZARR_FORMAT, _record_writer, _stale, protect

#: Marker file of a cache folder: ``{"format": FORMAT, "format_version": FORMAT_VERSION}``.
MARKER = ".testbench-cache.json"
FORMAT, FORMAT_VERSION = "testbench-node-cache", 1
#: Environment variables: the cache folder and its size cap (bytes, or with a K/M/G/T suffix).
ENV_MAX = "TESTBENCH_CACHE_MAX"
#: Default size cap, bytes.
DEFAULT_MAX_BYTES = 2 * 1024**3
_TAG = "CACHEDIR.TAG"
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# This folder is a cache of testbench node outputs; it may be deleted.\n")
_ENTRY, _DATA = "entry.json", "data.zarr"
_KEY = re.compile(r"[0-9a-f]{64}")
_PART = re.compile(r"\.(part|trash)-[0-9a-f]{64}-[0-9a-f]{8}")
_FIX = (f"fix: choose another folder with --cache-dir (or {CACHE_ENV}), e.g. a new one, or run with "
        "--no-cache")
#: Python packages whose sources make up the built-in nodes.
_PACKAGES = ("testbench", "testbench.kernels", "testbench.stimuli", "testbench.analyzers")
_LIBRARIES = ("numpy", "scipy", "xarray", "numba")


def default_dir() -> Path:
    """The cache folder: ``nodes`` in the cache root (``$TESTBENCH_CACHE``, else
    ``~/.cache/testbench``)."""
    return cache_root() / "nodes"


def parse_size(text: str | int) -> int:
    """Bytes of a size such as ``2G``, ``500M``, ``64k`` or ``1000000`` (powers of 1024).

    Raises
    ------
    OutputError
        Not a non-negative number with an optional K, M, G or T suffix.
    """
    if isinstance(text, int) and not isinstance(text, bool) and text >= 0:
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", str(text), re.IGNORECASE)
    if not match:
        raise OutputError(f"cache size cap {text!r} ({ENV_MAX}) is not a size; rule: bytes, or a "
                          "number with a K, M, G or T suffix; fix: e.g. 2G or 500M")
    return int(float(match[1]) * 1024 ** ("kmgt".find(match[2].lower()) + 1 if match[2] else 0))


# ------------------------------------------------------------------------------------- keys


@functools.cache
def _package_digest() -> str:
    """sha256 over every source file (and JSON file: the zoo manifest) of the built-in node
    packages, read once per process."""
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for folder in importlib.import_module(pkg).__path__:
            files = [*Path(folder).rglob("*.py"), *Path(folder).rglob("*.json")]
            for path in sorted(files):
                h.update(str(path.relative_to(folder)).encode())
                h.update(path.read_bytes())
    return h.hexdigest()


def _code_digest(func) -> str | None:
    """Digest of the code behind a node function; None when its source cannot be read."""
    module = func.__module__
    if any(module == p or module.startswith(p + ".") for p in _PACKAGES):
        return _package_digest()
    try:
        path = inspect.getsourcefile(func)
        if path is not None:
            return hashlib.sha256(Path(path).read_bytes()).hexdigest()
        return hashlib.sha256(inspect.getsource(func).encode()).hexdigest()
    except (OSError, TypeError):
        return None


@functools.cache
def _library_versions() -> dict:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _weights_digests(values: list) -> list[str | None]:
    """sha256 of each weights file named by ``weights`` values (a reference, list or mapping);
    None for a value that names no file (a custom node's setting of that name may be anything:
    its value is in the key already)."""
    from testbench.models.loading import checksum, resolve

    refs: list = []
    for value in values:
        items = value.values() if isinstance(value, dict) else value if isinstance(
            value, (list, tuple)) else [value]
        refs += [r for r in items if isinstance(r, (str, Path))]
    digests = []
    for ref in refs:
        # hashed on every run, not memoized by modification time: a file rewritten within the
        # timestamp resolution of its file system would keep a stale digest
        try:
            digests.append(checksum(resolve(ref)))
        except TestbenchError:
            digests.append(None)
    return digests


def node_keys(graph, dims: dict[str, dict[str, str]]) -> dict[str, str | None]:
    """The cache key of every non-sink node of ``graph`` (see the module docstring).

    Parameters
    ----------
    graph : Graph
        A validated graph.
    dims : dict
        The sweep dims of each node (:func:`testbench.schema.sweep_dims`).

    Returns
    -------
    dict of str to str or None
        64 hex digits per node; None for a node whose code cannot be read, or with such an input.

    """
    from testbench import __version__

    keys: dict[str, str | None] = {}
    for name, decl in graph.nodes.items():
        spec = decl.spec
        if spec.kind == "sink":
            continue
        code = _code_digest(spec.func)
        inputs = {p: keys[src] for p, src in decl.inputs.items()}
        if code is None or None in inputs.values():
            keys[name] = None
            continue
        settings = {k: s.default for k, s in spec.settings.items()} | decl.settings
        if "weights" in decl.sweep:
            weights = list(decl.sweep["weights"])
        else:
            weights = [settings["weights"]] if "weights" in settings else []
        record = {
            "format": FORMAT_VERSION, "kind": spec.kind, "type": spec.name, "origin": spec.origin,
            "code": code, "testbench": __version__, "libraries": _library_versions(),
            # nested values keep their order (a weights mapping orders the networks)
            "settings": sorted(settings.items()), "sweep": list(decl.sweep.items()),
            "dims": list(dims.get(name, {}).items()), "inputs": sorted(inputs.items()),
            "weights": _weights_digests(weights),
        }
        text = json.dumps(record, default=repr, separators=(",", ":"))
        keys[name] = hashlib.sha256(text.encode()).hexdigest()
    return keys


def _describe(value: xr.DataArray) -> dict:
    """JSON description of a DataArray without its data: dims, dtypes, coordinates, attributes
    (0-d coordinates with their value)."""
    def dtype(var):
        return str(var.dtype) if var.dtype.kind != "O" else "<U1"

    coords = {name: {"dims": list(c.dims), "dtype": dtype(c)} if c.ndim
              else {"dims": [], "value": c.values.item()} for name, c in value.coords.items()}
    return {"name": value.name, "dims": list(value.dims), "dtype": dtype(value),
            "coords": coords, "attrs": dict(value.attrs)}


def outline(description: dict) -> xr.DataArray:
    """A DUT's output without its data, from its description: what the assembly of the result
    reads of a DUT that was not built (dims and coordinate names, the weights provenance in its
    attributes).

    Parameters
    ----------
    description : dict
        Written by the cache when the DUT was built: ``name``, ``dims``, ``dtype``, ``coords``
        (name -> ``dims`` and ``dtype``, or ``value`` for 0-d ones), ``attrs``.

    Returns
    -------
    xr.DataArray
        Of length 0 along every dim.
    """
    def empty(dims, dtype):
        return np.zeros((0,) * len(dims), dtype)

    coords = {name: (c["dims"], empty(c["dims"], c["dtype"])) if c["dims"] else ((), c["value"])
              for name, c in description["coords"].items()}
    return xr.DataArray(empty(description["dims"], description["dtype"]),
                        dims=description["dims"], coords=coords, name=description["name"],
                        attrs=description["attrs"])


# ------------------------------------------------------------------------------------ cache


class NodeCache:
    """A cache folder of node outputs (see the module docstring).

    Parameters
    ----------
    path : str or Path, optional
        The folder; default :func:`default_dir`. Created with its marker when absent or empty.
    max_bytes : int or str, optional
        Size cap, bytes (or ``"2G"``...); default ``$TESTBENCH_CACHE_MAX``, else
        :data:`DEFAULT_MAX_BYTES`.

    Attributes
    ----------
    hits, misses : list of str
        Nodes read from the cache and nodes computed and stored, in this object's lifetime.

    Raises
    ------
    OutputError
        A protected path (see :func:`testbench.store.protect`), a file or link there, a non-empty
        folder without the marker, a malformed size cap, or a folder that cannot be created.
    """

    def __init__(self, path: str | Path | None = None, *, max_bytes: int | str | None = None):
        self.path = Path(path).expanduser() if path is not None else default_dir()
        if max_bytes is None:
            max_bytes = os.environ.get(ENV_MAX, "").strip() or DEFAULT_MAX_BYTES
        self.max_bytes = parse_size(max_bytes)
        self.hits: list[str] = []
        self.misses: list[str] = []
        self._claim()

    def _claim(self) -> None:
        where = f"cache folder '{self.path}'"
        protect(self.path, "cache folder", _FIX)
        if os.path.islink(self.path) or (self.path.exists() and not self.path.is_dir()):
            raise OutputError(f"{where} is a file or link, not a folder; {_FIX}")
        if not self.path.is_dir() or not any(self.path.iterdir()):
            try:
                self._create()
            except OSError as exc:
                raise OutputError(f"{where} cannot be created: {exc.strerror}; {_FIX}") from None
        try:
            record = json.loads((self.path / MARKER).read_text())
        except (OSError, ValueError):
            record = None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise OutputError(f"{where} is a non-empty folder without the testbench cache "
                              f"marker ({MARKER}); testbench writes and evicts only in a cache "
                              f"folder it created; {_FIX}")
        if record.get("format_version") != FORMAT_VERSION:
            raise OutputError(f"{where} has cache format version "
                              f"{record.get('format_version')!r}; this testbench uses "
                              f"{FORMAT_VERSION}; fix: delete the folder (it is only a cache) "
                              f"or choose another with --cache-dir")

    def _create(self) -> None:
        """Adopt an empty folder, or create the folder with its marker in one rename (so a run
        starting at the same moment never sees it without the marker)."""
        files = {MARKER: json.dumps({"format": FORMAT, "format_version": FORMAT_VERSION}),
                 _TAG: _TAG_TEXT}
        if self.path.is_dir():
            for name, text in files.items():
                (self.path / name).write_text(text)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.part-{uuid.uuid4().hex[:8]}")
        try:
            tmp.mkdir()
            for name, text in files.items():
                (tmp / name).write_text(text)
            os.rename(tmp, self.path)
        except OSError:
            if not self.path.is_dir():  # else another run created it meanwhile: checked next
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def keys(self, graph, dims: dict[str, dict[str, str]]) -> dict[str, str | None]:
        """:func:`node_keys` of ``graph``."""
        return node_keys(graph, dims)

    def lookup(self, key: str, node: str) -> xr.DataArray | xr.Dataset | None:
        """:meth:`get`, recording ``node`` in :attr:`hits` on a hit."""
        value = self.get(key)
        if value is not None:
            self.hits.append(node)
        return value

    def fill(self, pending: dict[str, tuple[str, xr.DataArray | xr.Dataset]], *,
             keep: set[str]) -> dict[str, xr.DataArray | xr.Dataset]:
        """Compute the missed outputs together (one dask computation, under the current
        scheduler), store each, reopen them from the cache, then :meth:`evict`.

        Parameters
        ----------
        pending : dict of str to (str, output)
            Node name -> (key, lazy output).
        keep : set of str
            Keys of the current run, never evicted.

        Returns
        -------
        dict
            Node name -> its output read back from the cache (what a re-run reads, so a first run
            and a re-run assemble identical data).
        """
        import dask

        stored = {}
        computed = dask.compute(*(out for _, out in pending.values())) if pending else ()
        for (name, (key, _)), value in zip(pending.items(), computed):
            self.put(key, value, name)
            stored[name] = self.get(key)
            if stored[name] is None:
                raise OutputError(f"cache folder '{self.path}': the entry of node '{name}' just "
                                  "written cannot be read back; fix: run with --no-cache, or "
                                  "delete the cache folder")
            self.misses.append(name)
        self.evict(keep)
        return stored

    def put_outline(self, key: str, value: xr.DataArray, node: str) -> None:
        """Store the :func:`outline` of a DUT's output under ``key``, unless it is there."""
        try:
            json.loads((self.path / key / _ENTRY).read_text())
        except (OSError, ValueError):
            self.put(key, outline(value), node)

    def get(self, key: str) -> xr.DataArray | xr.Dataset | None:
        """The stored output of ``key``, read into memory; None when absent or incomplete.

        A hit refreshes the entry's time of last use.
        """
        record = self._record(key)
        if record is None:
            return None
        try:
            if record.get("type") == "outline":
                value = outline(record["outline"])
            else:
                # read whole (analyzer outputs are small): an entry evicted by another run a
                # moment later cannot fail this run's store write
                value = xr.open_zarr(self.path / key / _DATA, consolidated=True).drop_encoding()
                value = value.load()
                if record.get("type") == "DataArray":
                    value = value["value"].rename(record.get("name"))
        except Exception:  # noqa: BLE001 - any unreadable entry is a miss, replaced by `put`
            return None
        with contextlib.suppress(OSError):
            os.utime(self.path / key / _ENTRY)
        return value

    def put(self, key: str, value: xr.DataArray | xr.Dataset, node: str) -> None:
        """Store a computed output under ``key`` (aside, then renamed into place).

        Raises
        ------
        OutputError
            The entry cannot be written (disk full, permissions).
        """
        is_array = isinstance(value, xr.DataArray)
        ds = value.to_dataset(name="value") if is_array else value
        self._write(key, node, {"type": "DataArray" if is_array else "Dataset",
                                "name": value.name if is_array else None},
                    lambda part: ds.to_zarr(part / _DATA, mode="w", consolidated=True,
                                            zarr_format=ZARR_FORMAT))

    def put_outline(self, key: str, value: xr.DataArray, node: str) -> None:
        """Store the outline of a DUT's output under ``key`` (see :func:`outline`), unless it is
        there or its attributes are not JSON (then the DUT is always built)."""
        if self._record(key) is not None:
            return
        try:
            record = {"type": "outline", "outline": _describe(value)}
            json.dumps(record)
        except (TypeError, ValueError):
            return
        self._write(key, node, record, None)

    def _record(self, key: str) -> dict | None:
        """The ``entry.json`` of a complete entry; None when absent or unreadable."""
        try:
            record = json.loads((self.path / key / _ENTRY).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def _write(self, key: str, node: str, record: dict, write_data) -> None:
        """Write an entry aside (``write_data(part)``, then ``entry.json``) and rename it in."""
        entry = self.path / key
        part = self.path / f".part-{key}-{uuid.uuid4().hex[:8]}"
        try:
            part.mkdir()
            _record_writer(part)
            if write_data is not None:
                write_data(part)
            size = sum(p.stat().st_size for p in part.rglob("*") if p.is_file())
            (part / _ENTRY).write_text(json.dumps({
                "node": node, **record, "bytes": size,
                "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}))
            if entry.exists() and self._record(key) is None:  # a half-written entry: replaced
                self._remove(entry)
            try:
                os.rename(part, entry)
            except OSError:
                if self._record(key) is None:  # not another run's complete entry of this key
                    raise
                shutil.rmtree(part, ignore_errors=True)
        except OSError as exc:
            shutil.rmtree(part, ignore_errors=True)
            raise OutputError(f"cache folder '{self.path}': storing the output of node '{node}' "
                              f"failed: {exc.strerror or exc}; fix: free disk space, or run with "
                              "--no-cache") from None
        except BaseException:
            shutil.rmtree(part, ignore_errors=True)
            raise

    def _remove(self, entry: Path) -> None:
        trash = self.path / f".trash-{entry.name}-{uuid.uuid4().hex[:8]}"
        os.rename(entry, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def entries(self) -> list[tuple[float, int, str]]:
        """``(time of last use, bytes, key)`` of every complete entry, least recently used first."""
        found = []
        for entry in self.path.iterdir():
            if not _KEY.fullmatch(entry.name) or entry.is_symlink():
                continue
            try:
                st = (entry / _ENTRY).stat()
                size = int(json.loads((entry / _ENTRY).read_text())["bytes"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found.append((st.st_mtime, size, entry.name))
        return sorted(found)

    def evict(self, keep: set[str] = frozenset()) -> list[str]:
        """Remove least recently used entries until the cache holds at most ``max_bytes``, and
        the ``.part`` folders of dead writers.

        Parameters
        ----------
        keep : set of str
            Keys never removed (the current run's).

        Returns
        -------
        list of str
            The keys removed.
        """
        for folder in self.path.iterdir():
            if _PART.fullmatch(folder.name) and folder.is_dir() and not folder.is_symlink() and (
                    folder.name.startswith(".trash") or _stale(folder)):
                shutil.rmtree(folder, ignore_errors=True)
        entries = self.entries()
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, key in entries:
            if total <= self.max_bytes:
                break
            if key in keep:
                continue
            try:
                self._remove(self.path / key)
            except OSError:
                continue
            total -= size
            removed.append(key)
        return removed
