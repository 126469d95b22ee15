"""Saving and loading fitted results in a safe, self-describing file format (no pickle).

:func:`save` writes a fitted result (:class:`~jaxmix.EMResult`, :class:`~jaxmix.KMeansResult`,
:class:`~jaxmix.SVIResult`, :class:`~jaxmix.MCMCResult`, or a part of one) to a single compressed
``.npz`` archive and :func:`load` reads it back as the same type, with every array bit-identical
(dtype, shape and values) and every scalar of the same Python type.

File layout (format ``"jaxmix"``, version 3), a standard zip archive as written by
:func:`numpy.savez_compressed`, readable by ``numpy.load(path, allow_pickle=False)``:

* ``__jaxmix__.npy``: the metadata, a 1-D ``uint8`` array holding UTF-8 JSON::

      {"format": "jaxmix", "format_version": 3, "type": "EMResult",
       "jaxmix_version": "0.2.0", "tree": NODE, "ids": IDS}

  ``"ids"`` (optional, from version 3) holds the identifiers of the rows and columns of the data
  the fit was made from (``save(result, path, ids=S)``): ``{"row_ids": NODE, "col_ids": NODE}``,
  each an array node (entries ``__ids__.row_ids``, ``__ids__.col_ids``; integers or fixed-width
  unicode) or ``none``. :func:`load_ids` reads them back as an :class:`~jaxmix.IdMaps`.

* one ``.npy`` entry per array, named by its field path: ``params.mu``, ``params.cov.var``,
  ``resp``, ``prior.mean``, ... (tuple items add their index, ``field.0``; dict items their key,
  ``field.key``).

``NODE`` describes one value, by its ``"kind"``:

* ``{"kind": "namedtuple", "type": "MixtureParams", "fields": {"mu": NODE, ...}}``: a registered
  NamedTuple class, looked up by name (see below), its fields in order; the covariance family's
  parameters are one too (``{"type": "DiagCov", "fields": {"var": NODE}}``);
* ``{"kind": "array", "entry": "params.mu", "dtype": "<f8", "shape": [2, 8]}``: a NumPy array,
  stored in the entry named; ``"numpy_scalar"`` (same keys, shape ``[]``) a NumPy scalar such as
  ``np.float64(1.5)``, stored as a 0-d array;
* ``{"kind": "int" | "float" | "bool" | "str", "value": ...}``: a Python scalar (a non-finite float
  is the string ``"nan"``, ``"inf"`` or ``"-inf"``); ``{"kind": "none"}``: ``None``;
* ``{"kind": "tuple" | "list", "items": [NODE, ...]}`` and ``{"kind": "dict", "items": {"key":
  NODE}}`` (keys: non-empty strings of letters, digits, ``_`` and ``-``).

Safety: nothing in a file names code. Classes come from a fixed allow-list, :data:`REGISTRY`
(built from :data:`FORMAT_TYPES`), looked up by name; every array is read with
``allow_pickle=False`` and an entry holding Python objects is refused before it is read. A file
that is truncated, corrupted, foreign, of a newer format version or of an unknown type raises
:class:`ValueError` naming the file and the problem.

Reading a file goes in three steps: *decode* the metadata and the entries into a plain tree (a
registered NamedTuple is a record of its type's name and its fields' values, nothing is built
yet); *upgrade* that tree, one format version at a time, to the current version (below); *build*
the objects, checking every type against the allow-list and every field against its class.

Older files: :data:`UPGRADES` maps each older format version ``v`` to the changes from ``v`` to
``v + 1``, a table ``{type name: function}``; a function takes the fields of one record of that
type (its nested records already upgraded) and returns the fields in version ``v + 1``. A file of
version ``v`` goes through the upgrades ``v, v + 1, ..., FORMAT_VERSION - 1``; a file of a newer
version than :data:`FORMAT_VERSION` is refused (upgrade jaxmix). The upgrades so far:

======= =================== ===============================================================
from    type                change
======= =================== ===============================================================
1       ``MixtureParams``   ``var`` (a plain array) becomes ``cov``, typed by jaxmix 0.1's
                            rule: ``SphericalCov(var)`` when ``var`` has one axis fewer than
                            ``mu``, ``DiagCov(var)`` when as many
1       ``SVIResult``       ``loss_history`` becomes ``history = -loss_history`` (it rises)
1       ``MCMCResult``      the draws ``mu``, ``var``, ``weights`` become ``draws``, a
                            ``MixtureParams`` (typed as above); ``num_steps`` becomes
                            ``n_leapfrog``
1       ``KMeansResult``    ``covariance = "spherical"``, ``prior = None`` (K-means of 0.1)
2       (none)              version 3 adds the optional ``"ids"`` metadata; no type changes
======= =================== ===============================================================

Extending the format: to make a new result type savable, add its class to :data:`FORMAT_TYPES`
(one line); so must any NamedTuple class nested in it (a covariance family's parameters are
registered by the family being in :data:`jaxmix.models.families.FAMILIES`). Its fields may hold
anything listed above. A field added to a class later needs a default (``field: T = default``): a
file written before the field existed then loads with the default. Any other change to what is
saved (a field renamed, removed or holding something else, a class renamed) bumps
:data:`FORMAT_VERSION` and adds the upgrade from the previous version to :data:`UPGRADES`. A file
that holds a field the class no longer has, or lacks one without a default, is refused with a
message naming the field.

The file is written at exactly the path given (no ``.npz`` suffix is appended, unlike
:func:`numpy.savez`), so ``load(path)`` reads what ``save(result, path)`` wrote; ``.npz`` is the
recommended suffix.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import re
import secrets
import zipfile
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import jax
import numpy as np

from jaxmix._version import __version__
from jaxmix.data.ratings import IdMaps
from jaxmix.models.families import FAMILIES, Estimation
from jaxmix.models.prior import Prior
from jaxmix.params import MixtureParams
from jaxmix.results import EMResult, KMeansResult, MCMCResult, SVIResult

__all__ = [
    "FORMAT_NAME",
    "FORMAT_TYPES",
    "FORMAT_VERSION",
    "REGISTRY",
    "UPGRADES",
    "build_registry",
    "load",
    "load_ids",
    "save",
]

#: The ``"format"`` recorded in every file.
FORMAT_NAME = "jaxmix"
#: The version of the layout written by :func:`save`; :func:`load` reads this version and older.
FORMAT_VERSION = 3

_META_KEY = "__jaxmix__"
_IDS_KEY = "__ids__"
_ZIP_MAGIC = b"PK\x03\x04"
_NPY_MAGIC = b"\x93NUMPY"
_DICT_KEY = re.compile(r"[\w-]+")
# Keyword parameters of numpy.savez_compressed, which array entries must not shadow.
_SAVEZ_PARAMETERS = frozenset({"file", "allow_pickle"})

#: Every NamedTuple class that may appear in a file, at the top or nested inside another: the
#: results, their parts and every covariance family's parameters. To make a new result type
#: savable, add its class here.
FORMAT_TYPES: tuple[type, ...] = (
    EMResult,
    Estimation,
    KMeansResult,
    MCMCResult,
    MixtureParams,
    Prior,
    SVIResult,
    *(family.cov_type for family in FAMILIES.values()),
)


def build_registry(classes: Iterable[type]) -> Mapping[str, type]:
    """Map class names to the allowed classes (read-only), checking that they can be saved.

    Raises:
        TypeError: A class is not a NamedTuple class, two share a name, or a field would shadow
            a parameter of :func:`numpy.savez_compressed`.
    """
    registry: dict[str, type] = {}
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise TypeError(f"{getattr(cls, '__qualname__', cls)!r} is not a NamedTuple class")
        if cls.__name__ in registry:
            raise TypeError(f"two registered classes are named {cls.__name__!r}")
        clash = _SAVEZ_PARAMETERS.intersection(cls._fields)
        if clash:
            raise TypeError(f"{cls.__name__} has a field named {sorted(clash)[0]!r}: rename it")
        registry[cls.__name__] = cls
    return MappingProxyType(registry)


#: The allow-list: the class of every type name a file may hold (:data:`FORMAT_TYPES`).
REGISTRY: Mapping[str, type] = build_registry(FORMAT_TYPES)


# --------------------------------------------------------------------------- save


def save(result: Any, path: str | os.PathLike[str], *, ids: Any = None) -> None:
    """Save a fitted result to a compressed ``.npz`` file, without pickle.

    The layout is described in :mod:`jaxmix.persistence`. The file is written atomically: to a
    temporary file in the same folder, then renamed over ``path``, so a reader never sees a
    partial file and an interrupted save leaves any previous file intact. ``path`` is used as
    given (no ``.npz`` suffix is appended). JAX arrays in ``result`` are stored (and loaded) as
    NumPy arrays.

    Args:
        result: An :class:`~jaxmix.EMResult`, :class:`~jaxmix.KMeansResult`,
            :class:`~jaxmix.SVIResult`, :class:`~jaxmix.MCMCResult`,
            :class:`~jaxmix.MixtureParams` or :class:`~jaxmix.Prior` (any type of
            :data:`REGISTRY`).
        path: The file to write (``str`` or path-like); an existing file is replaced.
        ids: The identifiers of the data's rows and columns, kept in the file for
            :func:`load_ids`: the :class:`~jaxmix.SparseRatings` the result was fit to (its
            ``row_ids`` / ``col_ids``, as :func:`jaxmix.load_sparse_ratings` keeps them), an
            :class:`~jaxmix.IdMaps`, or ``None`` (positions are the ids).

    Raises:
        TypeError: ``result`` is not of a savable type, or holds a value that cannot be stored
            without pickle (an object array, an arbitrary Python object); ``ids`` is not a
            ``SparseRatings`` or ``IdMaps``.
        ValueError: ``ids`` do not fit ``result`` (not one item id per column of the means).
        FileNotFoundError: The folder of ``path`` does not exist.
        OSError: The file cannot be written.

    Example:
        >>> import os, tempfile, numpy as np, jaxmix
        >>> X = np.array([[1.0, 2.0], [1.1, np.nan], [5.0, 6.0], [np.nan, 6.1]])
        >>> res = jaxmix.fit_em(X, 2, min_var=0.01)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "model.npz")
        ...     jaxmix.save(res, path)
        ...     same = jaxmix.load(path)
        >>> type(same).__name__, bool(np.array_equal(same.mu, res.mu)), same.n_iter == res.n_iter
        ('EMResult', True, True)

        With the ids of the data (a fit of a ratings file):

        >>> S = jaxmix.sparse_ratings([7, 7, 9, 12], [31, 40, 40, 31], [4.0, 2.0, 1.5, 4.5])
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "model.npz")
        ...     jaxmix.save(jaxmix.fit_em(S, 2, min_var=0.01), path, ids=S)
        ...     jaxmix.load_ids(path).col_ids.tolist()
        [31, 40]
    """
    cls = type(result)
    if REGISTRY.get(cls.__name__) is not cls:
        raise TypeError(f"save() can store {', '.join(sorted(REGISTRY))}; got {cls.__qualname__}")
    arrays: dict[str, np.ndarray] = {}
    meta = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "type": cls.__name__,
        "jaxmix_version": __version__,
        "tree": _encode(result, "", arrays),
    }
    if ids is not None:
        maps = _id_maps(ids, result)
        meta["ids"] = {
            name: _encode(getattr(maps, name), _child(_IDS_KEY, name), arrays)
            for name in IdMaps._fields
        }
    text = json.dumps(meta, allow_nan=False, separators=(",", ":"))
    entries = {_META_KEY: np.frombuffer(text.encode("utf-8"), dtype=np.uint8), **arrays}
    _write_atomically(path, entries)


def _id_maps(ids: Any, result: Any) -> IdMaps:
    """The :class:`IdMaps` of ``save``'s ``ids``, checked against the result's columns."""
    maps = getattr(ids, "ids", ids)  # a SparseRatings gives its IdMaps
    if not isinstance(maps, IdMaps):
        raise TypeError(
            f"ids must be the SparseRatings the result was fit to or an IdMaps; got "
            f"{type(ids).__qualname__}"
        )
    out = []
    for name in IdMaps._fields:
        value = getattr(maps, name)
        if value is not None:
            value = np.asarray(value)
            if value.ndim != 1 or value.dtype.kind not in "iuU":
                raise TypeError(
                    f"ids.{name} must be a 1-D array of integers or strings; got "
                    f"{value.dtype} {value.shape}"
                )
        out.append(value)
    maps = IdMaps(*out)
    params = getattr(result, "params", result)
    mu = getattr(params, "mu", None)
    if maps.col_ids is not None and mu is not None and np.shape(mu)[-1] != maps.col_ids.size:
        raise ValueError(
            f"ids have {maps.col_ids.size} item ids but the result has {np.shape(mu)[-1]} "
            "columns: give the SparseRatings the result was fit to"
        )
    return maps


def _encode(value: Any, where: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """The JSON node of ``value`` at field path ``where``, its arrays added to ``arrays``."""
    kind = type(value)
    if isinstance(value, tuple) and hasattr(kind, "_fields"):
        if REGISTRY.get(kind.__name__) is not kind:
            raise TypeError(
                f"{where}: cannot save a {kind.__qualname__}, a NamedTuple that is not registered "
                "(add it to jaxmix.persistence.FORMAT_TYPES)"
            )
        fields = {
            f: _encode(v, _child(where, f), arrays)
            for f, v in zip(kind._fields, value, strict=True)
        }
        return {"kind": "namedtuple", "type": kind.__name__, "fields": fields}
    if isinstance(value, jax.Array):
        value = np.asarray(value)
        kind = type(value)
    if kind is np.ndarray or isinstance(value, np.generic):
        array = np.asarray(value)
        if array.dtype.hasobject:
            raise TypeError(f"{where}: cannot save an array of Python objects (dtype object)")
        arrays[where] = array
        return {
            "kind": "array" if kind is np.ndarray else "numpy_scalar",
            "entry": where,
            "dtype": array.dtype.str,
            "shape": list(array.shape),
        }
    if value is None:
        return {"kind": "none"}
    if kind is float:
        encoded = value if math.isfinite(value) else repr(value)  # "nan", "inf", "-inf"
        return {"kind": "float", "value": encoded}
    if kind in (bool, int, str):
        return {"kind": kind.__name__, "value": value}
    if kind in (tuple, list):
        items = [_encode(v, _child(where, str(i)), arrays) for i, v in enumerate(value)]
        return {"kind": kind.__name__, "items": items}
    if kind is dict:
        for key in value:
            if not (isinstance(key, str) and _DICT_KEY.fullmatch(key)):
                raise TypeError(
                    f"{where}: cannot save a dict key {key!r} (keys must be non-empty strings "
                    "of letters, digits, '_' and '-')"
                )
        return {
            "kind": "dict",
            "items": {k: _encode(v, _child(where, k), arrays) for k, v in value.items()},
        }
    raise TypeError(f"{where}: cannot save a value of type {kind.__qualname__}")


def _write_atomically(path: str | os.PathLike[str], entries: dict[str, np.ndarray]) -> None:
    """Write ``entries`` with :func:`numpy.savez_compressed` to a temporary file, then rename."""
    target = os.fspath(path)
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"path must name a file to save into; got {target!r}")
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise FileNotFoundError(errno.ENOENT, "No such folder to save into", folder)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "Is a folder, give a file name", target)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:  # a fresh name; 0o666 lets the umask set the permissions, as for open()
        temporary = os.path.join(folder, f".{os.path.basename(target)}.{secrets.token_hex(8)}.tmp")
        try:
            fd = os.open(temporary, flags, 0o666)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, allow_pickle=False, **entries)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


# --------------------------------------------------------------------------- upgrades


class _FormatError(Exception):
    """A problem with the content of a file (reported as ``ValueError`` by :func:`load`)."""


class _Record:
    """A saved NamedTuple before it is built: its type's name and its fields' values (nested
    NamedTuples are records too). The upgrades rewrite records; only then are classes built."""

    __slots__ = ("fields", "type")

    def __init__(self, type_name: str, fields: dict[str, Any]) -> None:
        self.type = type_name
        self.fields = fields


#: An upgrade of one type's records: their fields in one format version -> in the next.
_Upgrade = Callable[[dict[str, Any]], dict[str, Any]]


def _field(fields: dict[str, Any], name: str, type_name: str) -> Any:
    if name not in fields:
        raise _FormatError(f"the field {name!r} of {type_name} is missing")
    return fields[name]


def _take(fields: dict[str, Any], name: str, type_name: str) -> Any:
    """Remove a field that the next version no longer has, returning its value."""
    value = _field(fields, name, type_name)
    del fields[name]
    return value


def _put(fields: dict[str, Any], name: str, value: Any, type_name: str) -> None:
    """Add a field that the next version introduces (the old version cannot have it)."""
    if name in fields:
        raise _FormatError(f"{type_name} has a field {name!r} that its format version did not have")
    fields[name] = value


def _v1_cov(mu: Any, var: Any, what: str) -> _Record:
    """jaxmix 0.1's covariance parameters, typed: ``var`` with one axis fewer than ``mu`` is the
    spherical family, with as many axes the diagonal family (the version 2 type names)."""
    arrays = (np.ndarray, np.generic)
    if not (isinstance(mu, arrays) and isinstance(var, arrays)):
        raise _FormatError(f"the mu and var of {what} are not arrays")
    if var.ndim == mu.ndim - 1:
        return _Record("SphericalCov", {"var": var})
    if var.ndim == mu.ndim:
        return _Record("DiagCov", {"var": var})
    raise _FormatError(
        f"the var of {what} has shape {var.shape} with mu of shape {mu.shape}: neither spherical "
        "(one axis fewer than mu) nor diag (as many axes)"
    )


def _v1_mixture_params(fields: dict[str, Any], what: str = "MixtureParams") -> dict[str, Any]:
    """``MixtureParams(mu, var, weights)`` -> ``MixtureParams(mu, cov, weights)``."""
    fields = dict(fields)
    var = _take(fields, "var", what)
    _put(fields, "cov", _v1_cov(_field(fields, "mu", what), var, what), what)
    return fields


def _v1_svi_result(fields: dict[str, Any]) -> dict[str, Any]:
    """``loss_history`` -> ``history = -loss_history`` (negation is exact: the loss comes back
    bit for bit as ``-history``)."""
    fields = dict(fields)
    loss = _take(fields, "loss_history", "SVIResult")
    if not (isinstance(loss, np.ndarray) and loss.dtype.kind == "f"):
        raise _FormatError("the loss_history of SVIResult is not a float array")
    _put(fields, "history", np.negative(loss, out=np.empty_like(loss)), "SVIResult")
    return fields


def _v1_mcmc_result(fields: dict[str, Any]) -> dict[str, Any]:
    """The draws ``mu``, ``var``, ``weights`` -> ``draws`` (MixtureParams); ``num_steps`` ->
    ``n_leapfrog``."""
    fields = dict(fields)
    draws = {name: _take(fields, name, "MCMCResult") for name in ("mu", "var", "weights")}
    draws = _Record("MixtureParams", _v1_mixture_params(draws, "MCMCResult's draws"))
    _put(fields, "draws", draws, "MCMCResult")
    _put(fields, "n_leapfrog", _take(fields, "num_steps", "MCMCResult"), "MCMCResult")
    return fields


def _v1_kmeans_result(fields: dict[str, Any]) -> dict[str, Any]:
    """K-means of jaxmix 0.1: a spherical mixture without a prior."""
    fields = dict(fields)
    _put(fields, "covariance", "spherical", "KMeansResult")
    _put(fields, "prior", None, "KMeansResult")
    return fields


#: The upgrades of older files: ``{v: {type name: upgrade}}`` turns the records of format version
#: ``v`` into those of version ``v + 1``; an upgrade maps the fields of one record of its type
#: (its nested records already upgraded) to the new fields. There is one table for every version
#: older than :data:`FORMAT_VERSION`.
UPGRADES: Mapping[int, Mapping[str, _Upgrade]] = MappingProxyType(
    {
        1: MappingProxyType(
            {
                "KMeansResult": _v1_kmeans_result,
                "MCMCResult": _v1_mcmc_result,
                "MixtureParams": _v1_mixture_params,
                "SVIResult": _v1_svi_result,
            }
        ),
        2: MappingProxyType({}),  # version 3 adds the optional "ids" metadata
    }
)


def _child(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _upgrade(value: Any, version: int, where: str = "") -> Any:
    """The decoded tree ``value`` of format ``version``, upgraded to the next version."""
    if isinstance(value, _Record):
        fields = {k: _upgrade(v, version, _child(where, k)) for k, v in value.fields.items()}
        upgrade = UPGRADES[version].get(value.type)
        if upgrade is not None:
            try:
                fields = upgrade(fields)
            except _FormatError as err:
                raise _FormatError(
                    f"cannot upgrade format version {version} at {where or 'the top'}: {err}"
                ) from None
        return _Record(value.type, fields)
    if isinstance(value, (tuple, list)):
        items = [_upgrade(v, version, _child(where, str(i))) for i, v in enumerate(value)]
        return tuple(items) if isinstance(value, tuple) else items
    if isinstance(value, dict):
        return {k: _upgrade(v, version, _child(where, k)) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- load


def load(path: str | os.PathLike[str]) -> Any:
    """Load a result saved by :func:`save` (by this jaxmix or an older one).

    Only classes of jaxmix's fixed allow-list are built, and no array is ever unpickled
    (``allow_pickle=False`` throughout): loading a file never runs code from it. The file is read
    into memory whole. A file of an older format version is upgraded to the current types as it
    is read (see :mod:`jaxmix.persistence`): a result saved by jaxmix 0.1 loads as the same fit in
    today's types, with its arrays bit-identical in their new places.

    Args:
        path: The file written by :func:`save` (the same path; no suffix is added).

    Returns:
        The saved result, of its saved type (e.g. :class:`~jaxmix.EMResult`), with bit-identical
        NumPy arrays and scalars of the same types.

    Raises:
        FileNotFoundError: No such file.
        ValueError: The file is not a jaxmix file, is truncated or corrupted, was written with a
            newer format version, holds an unknown type or field, or holds an object array; the
            message names the file and the problem.
    """
    return _read_file(path, _Reader.read)


def load_ids(path: str | os.PathLike[str]) -> IdMaps | None:
    """The identifiers of the rows and columns saved with a fit (``save(..., ids=S)``).

    Args:
        path: The file written by :func:`save`.

    Returns:
        An :class:`~jaxmix.IdMaps` (``row_ids``: the users of the data the fit was made from;
        ``col_ids``: the item of every column of the fit), or ``None`` when the file holds no ids
        (saved without ``ids``, or by an older jaxmix).

    Raises:
        FileNotFoundError: No such file.
        ValueError: As :func:`load`: not a jaxmix file, truncated, corrupted, or newer.
    """
    return _read_file(path, _Reader.read_ids)


def _read_file(path: str | os.PathLike[str], read: Callable[[_Reader], Any]) -> Any:
    """``read`` applied to a :class:`_Reader` of the file's bytes; a :class:`_FormatError` (or
    metadata nested too deeply to parse) becomes a ``ValueError`` naming the file."""
    name = os.fspath(path)
    with open(name, "rb") as fh:
        data = fh.read()
    try:
        return read(_Reader(data))
    except _FormatError as err:
        raise ValueError(f"{name}: {err}") from None
    except RecursionError:
        raise ValueError(f"{name}: the metadata is nested too deeply") from None


class _Reader:
    """Decodes the bytes of one file; every problem raises :class:`_FormatError`."""

    def __init__(self, data: bytes) -> None:
        if not data:
            raise _FormatError("the file is empty")
        if data.startswith(_NPY_MAGIC):
            raise _FormatError("not a jaxmix file: it is a single .npy array, not an .npz archive")
        if not data.startswith(_ZIP_MAGIC):
            raise _FormatError("not a jaxmix file: it is not an .npz (zip) archive")
        try:
            self._zip = zipfile.ZipFile(io.BytesIO(data))
            self._members = set(self._zip.namelist())
        except Exception as err:  # zipfile raises many kinds on damaged archives
            raise _FormatError(f"truncated or corrupted archive ({_describe(err)})") from None
        self._used: set[str] = set()
        self._writer_version = "unknown"

    def read(self) -> Any:
        """Check the metadata, decode the tree, upgrade it to the current version, build it."""
        member = f"{_META_KEY}.npy"
        if member not in self._members:
            found = ", ".join(sorted(m.removesuffix(".npy") for m in self._members)[:8])
            raise _FormatError(
                f"not a jaxmix file: it has no {_META_KEY!r} metadata entry (entries: "
                f"{found or 'none'})"
            )
        meta = self._metadata()
        if "ids" in meta:
            self._ids(meta)
        tree = self._decode(_get(meta, "tree", dict, "metadata"), "")
        held = tree.type if isinstance(tree, _Record) else type(tree).__name__
        if held != meta["type"]:
            raise _FormatError(f"the metadata says {meta['type']!r} but its tree holds {held!r}")
        unused = self._members - self._used - {member}
        if unused:
            raise _FormatError(
                f"entries not described by the metadata: {', '.join(sorted(unused)[:8])}"
            )
        for version in range(meta["format_version"], FORMAT_VERSION):
            tree = _upgrade(tree, version)
        return self._build(tree, "")

    def read_ids(self) -> IdMaps | None:
        """The ``"ids"`` of the metadata (checked as :meth:`read` checks them), or ``None``."""
        meta = self._metadata()
        return self._ids(meta) if "ids" in meta else None

    def _ids(self, meta: dict[str, Any]) -> IdMaps:
        if meta["format_version"] < 3:
            raise _FormatError("ids in a file of format version < 3")
        node = _get(meta, "ids", dict, "metadata")
        if set(node) != set(IdMaps._fields):
            raise _FormatError(f"malformed metadata at ids: fields {sorted(node)}")
        values = []
        for name in IdMaps._fields:
            value = self._decode(node[name], _child(_IDS_KEY, name))
            if value is not None and not (
                isinstance(value, np.ndarray) and value.ndim == 1 and value.dtype.kind in "iuU"
            ):
                raise _FormatError(f"ids.{name} is not a 1-D array of integers or strings")
            values.append(value)
        return IdMaps(*values)

    def _metadata(self) -> dict[str, Any]:
        raw = self._array(_META_KEY)
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _FormatError(f"the {_META_KEY!r} entry is not a uint8 vector of JSON text")
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except ValueError as err:  # bad UTF-8, bad JSON, an int too long to parse
            raise _FormatError(f"the metadata is not valid JSON ({_describe(err)})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise _FormatError(f"not a jaxmix file: the metadata has no format {FORMAT_NAME!r}")
        writer = meta.get("jaxmix_version")
        self._writer_version = writer if isinstance(writer, str) else "unknown"
        version = meta.get("format_version")
        if type(version) is not int or version < 1:
            raise _FormatError(f"invalid format version {version!r}")
        if version > FORMAT_VERSION:
            raise _FormatError(
                f"written in jaxmix file format version {version} (by jaxmix "
                f"{self._writer_version}); this jaxmix {__version__} reads version "
                f"{FORMAT_VERSION}: upgrade jaxmix"
            )
        type_name = _get(meta, "type", str, "metadata")
        if type_name not in REGISTRY:
            raise _FormatError(
                f"unknown result type {type_name!r} (this jaxmix loads "
                f"{', '.join(sorted(REGISTRY))}; written by jaxmix {self._writer_version})"
            )
        return meta

    def _array(self, entry: str) -> np.ndarray:
        """Read one ``.npy`` entry, refusing object arrays before any of their data is read."""
        member = f"{entry}.npy"
        if member not in self._members:
            raise _FormatError(f"the entry {entry!r} is missing (truncated or corrupted file?)")
        if member in self._used:
            raise _FormatError(f"the entry {entry!r} is used twice")
        self._used.add(member)
        try:
            raw = self._zip.read(member)  # checks the CRC
        except Exception as err:
            raise _FormatError(
                f"truncated or corrupted: the entry {entry!r} cannot be read ({_describe(err)})"
            ) from None
        fp = io.BytesIO(raw)
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                dtype = np.lib.format.read_array_header_1_0(fp)[2]
            elif version == (2, 0):
                dtype = np.lib.format.read_array_header_2_0(fp)[2]
            else:
                dtype = None  # read_array below checks it (and refuses objects) itself
        except Exception as err:
            raise _FormatError(
                f"the entry {entry!r} is not a valid .npy array ({_describe(err)})"
            ) from None
        if dtype is not None and dtype.hasobject:
            raise _FormatError(
                f"the entry {entry!r} holds an object array (pickled Python objects); jaxmix "
                "never unpickles data, so it refuses the file"
            )
        fp.seek(0)
        try:
            array = np.lib.format.read_array(fp, allow_pickle=False)
        except Exception as err:
            raise _FormatError(f"the entry {entry!r} cannot be read ({_describe(err)})") from None
        if fp.read(1):
            raise _FormatError(f"the entry {entry!r} has bytes after its data")
        return array

    def _decode(self, node: Any, where: str) -> Any:
        """The value described by ``node`` (at field path ``where``), a NamedTuple as a
        :class:`_Record` (built by :meth:`_build` once upgraded)."""
        at = where or "the top"
        if not isinstance(node, dict):
            raise _FormatError(f"malformed metadata at {at}")
        kind = _get(node, "kind", str, at)
        if kind == "namedtuple":
            type_name = _get(node, "type", str, at)
            fields = _get(node, "fields", dict, at)
            decoded = {k: self._decode(v, _child(where, k)) for k, v in fields.items()}
            return _Record(type_name, decoded)
        if kind in ("array", "numpy_scalar"):
            entry = _get(node, "entry", str, at)
            dtype = _get(node, "dtype", str, at)
            shape = _get(node, "shape", list, at)
            array = self._array(entry)
            if array.dtype.str != dtype or list(array.shape) != shape:
                raise _FormatError(
                    f"the entry {entry!r} holds {array.dtype.str} {tuple(array.shape)} but the "
                    f"metadata says {dtype} {tuple(shape)}"
                )
            if kind == "array":
                return array
            if array.ndim != 0:
                raise _FormatError(f"the scalar {entry!r} is not 0-dimensional")
            return array[()]
        if kind == "none":
            return None
        if kind == "bool":
            return _get(node, "value", bool, at)
        if kind == "int":
            value = _get(node, "value", int, at)
            if isinstance(value, bool):
                raise _FormatError(f"malformed metadata at {at}: 'value' is not an int")
            return value
        if kind == "float":
            value = node.get("value")
            if isinstance(value, str) and value in ("nan", "inf", "-inf"):
                return float(value)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _FormatError(f"malformed metadata at {at}: 'value' is not a float")
            return float(value)
        if kind == "str":
            return _get(node, "value", str, at)
        if kind in ("tuple", "list"):
            items = _get(node, "items", list, at)
            values = [self._decode(item, _child(where, str(i))) for i, item in enumerate(items)]
            return tuple(values) if kind == "tuple" else values
        if kind == "dict":
            items = _get(node, "items", dict, at)
            return {key: self._decode(item, _child(where, key)) for key, item in items.items()}
        raise _FormatError(f"malformed metadata at {at}: unknown kind {kind!r}")

    def _build(self, value: Any, where: str) -> Any:
        """The objects of an upgraded tree: every record built as its registered class."""
        if isinstance(value, _Record):
            return self._namedtuple(value, where)
        if isinstance(value, (tuple, list)):
            items = [self._build(v, _child(where, str(i))) for i, v in enumerate(value)]
            return tuple(items) if isinstance(value, tuple) else items
        if isinstance(value, dict):
            return {k: self._build(v, _child(where, k)) for k, v in value.items()}
        return value

    def _namedtuple(self, record: _Record, where: str) -> Any:
        at = where or "the top"
        type_name = record.type
        cls = REGISTRY.get(type_name)
        if cls is None:
            raise _FormatError(
                f"unknown type {type_name!r} at {at} (this jaxmix loads "
                f"{', '.join(sorted(REGISTRY))}; written by jaxmix {self._writer_version})"
            )
        fields = record.fields
        extra = [name for name in fields if name not in cls._fields]
        if extra:
            raise _FormatError(
                f"{type_name} has no field {extra[0]!r} in this jaxmix {__version__} (the "
                f"file was written by jaxmix {self._writer_version})"
            )
        values = {}
        for name in cls._fields:
            if name in fields:
                values[name] = self._build(fields[name], _child(where, name))
            elif name in cls._field_defaults:
                values[name] = cls._field_defaults[name]
            else:
                raise _FormatError(f"the field {name!r} of {type_name} is missing")
        return cls(**values)


def _get(node: dict[str, Any], key: str, kind: type, at: str) -> Any:
    value = node.get(key)
    if not isinstance(value, kind):
        raise _FormatError(f"malformed metadata at {at}: {key!r} is not a {kind.__name__}")
    return value


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
