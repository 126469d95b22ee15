"""Tests of ``jaxmix.save`` / ``jaxmix.load`` (``jaxmix.persistence``): exact round trips and a
safe, clear refusal of every truncated, corrupted, foreign or malicious file."""

from __future__ import annotations

import json
import math
import os
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest

import jaxmix
from jaxmix import persistence

META = "__jaxmix__"

# Fits to round-trip: keyword arguments of fit_em (or "kmeans").
CASES: dict[str, Any] = {
    "em-spherical": {},
    "em-diag": {"covariance": "diag"},
    "em-map": {"prior": "Prior"},
    "em-map-diag": {"prior": "Prior", "covariance": "diag"},
    "kmeans": "kmeans",
    "svi-map": "svi-map",
    "svi-meanfield": "svi-meanfield",
    "mcmc": "mcmc",
}


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return jaxmix.simulate_ratings(30, 6, 2, missing=0.4, seed=3).X


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request, X):
    """A fitted result of every kind (skipping kinds this version of jaxmix does not have)."""
    case = CASES[request.param]
    if case == "kmeans":
        return jaxmix.kmeans(X, 2, n_init=2)
    if isinstance(case, str) and case.startswith("svi-"):
        return jaxmix.fit_svi(X, 2, guide=case[4:], num_steps=50, polish_steps=20)
    if case == "mcmc":
        return jaxmix.fit_mcmc(X, 2, num_chains=1, num_warmup=20, num_samples=20)
    kwargs = dict(case)
    if kwargs.get("prior") == "Prior":
        if not hasattr(jaxmix, "Prior"):
            pytest.skip("jaxmix.Prior does not exist yet")
        kwargs["prior"] = jaxmix.Prior()
    try:
        return jaxmix.fit_em(X, 2, n_init=2, min_var=0.1, **kwargs)
    except (TypeError, ValueError) as err:
        pytest.skip(f"fit_em does not support {kwargs}: {err}")


@pytest.fixture(scope="module")
def em_result(X) -> jaxmix.EMResult:
    return jaxmix.fit_em(X, 2, n_init=2, min_var=0.1)


@pytest.fixture
def saved(tmp_path, em_result) -> Path:
    """A valid file holding ``em_result``."""
    path = tmp_path / "model.npz"
    jaxmix.save(em_result, path)
    return path


def assert_identical(loaded: Any, original: Any, where: str = "result") -> None:
    """Same types, same structure, bit-identical arrays (dtype, shape, bytes)."""
    assert type(loaded) is type(original), where
    if isinstance(original, np.ndarray):
        assert loaded.dtype == original.dtype and loaded.shape == original.shape, where
        np.testing.assert_array_equal(loaded, original, err_msg=where)
        assert loaded.tobytes() == original.tobytes(), where
        assert loaded.flags.writeable, where
    elif isinstance(original, np.generic):
        assert loaded.dtype == original.dtype and loaded.tobytes() == original.tobytes(), where
    elif isinstance(original, float):
        assert math.isnan(loaded) if math.isnan(original) else loaded.hex() == original.hex()
    elif isinstance(original, (tuple, list)):
        assert len(loaded) == len(original), where
        names = getattr(original, "_fields", range(len(original)))
        for name, a, b in zip(names, loaded, original, strict=True):
            assert_identical(a, b, f"{where}.{name}")
    elif isinstance(original, dict):
        assert list(loaded) == list(original), where
        for key in original:
            assert_identical(loaded[key], original[key], f"{where}.{key}")
    else:
        assert loaded == original, where


def read_entries(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The metadata and the arrays of a valid file."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {key: npz[key] for key in npz.files}
    meta = json.loads(entries.pop(META).tobytes().decode("utf-8"))
    return meta, entries


def write_entries(path: Path, meta: Any, entries: dict[str, Any]) -> None:
    """Write a (possibly crafted) file: metadata as given, entries with numpy's default savez."""
    text = meta if isinstance(meta, str) else json.dumps(meta)
    np.savez(path, **{META: np.frombuffer(text.encode(), np.uint8)}, **entries)


def load_error(path: Path) -> str:
    with pytest.raises(ValueError) as info:
        jaxmix.load(path)
    message = str(info.value)
    assert str(path) in message
    return message


# --------------------------------------------------------------------------- round trips


def test_round_trip_is_exact(tmp_path, fitted, X):
    path = tmp_path / "fit.npz"
    jaxmix.save(fitted, path)
    loaded = jaxmix.load(path)
    assert_identical(loaded, fitted)
    filled, sd = jaxmix.complete(X, loaded, return_std=True)
    filled0, sd0 = jaxmix.complete(X, fitted, return_std=True)
    np.testing.assert_array_equal(filled, filled0)
    np.testing.assert_array_equal(sd, sd0)


def test_parts_round_trip_alone(tmp_path, em_result):
    parts = [em_result.params]
    if hasattr(jaxmix, "Prior"):
        parts += [jaxmix.Prior(), jaxmix.Prior(alpha=1.5, mean=np.arange(6.0), var_scale=2)]
    for i, part in enumerate(parts):
        jaxmix.save(part, tmp_path / f"{i}.npz")
        assert_identical(jaxmix.load(tmp_path / f"{i}.npz"), part)


def test_file_is_a_plain_npz_with_the_documented_layout(saved, em_result):
    meta, entries = read_entries(saved)
    assert meta["format"] == "jaxmix" and meta["format_version"] == 1
    assert meta["type"] == "EMResult" and meta["jaxmix_version"] == jaxmix.__version__
    tree = meta["tree"]
    assert tree["kind"] == "namedtuple" and list(tree["fields"]) == list(em_result._fields)
    assert tree["fields"]["params"]["type"] == "MixtureParams"
    assert tree["fields"]["n_iter"] == {"kind": "int", "value": em_result.n_iter}
    assert tree["fields"]["covariance"] == {"kind": "str", "value": em_result.covariance}
    assert {"params.mu", "params.var", "params.weights", "resp", "history"} <= set(entries)
    np.testing.assert_array_equal(entries["params.mu"], em_result.mu)
    assert zipfile.ZipFile(saved).testzip() is None
    assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zipfile.ZipFile(saved).infolist())


def test_path_is_used_exactly_as_given(tmp_path, em_result):
    for name in ("model", "model.fit", "model.npz"):
        jaxmix.save(em_result, str(tmp_path / name))  # str and Path both work
        assert_identical(jaxmix.load(tmp_path / name), em_result)
    assert sorted(os.listdir(tmp_path)) == ["model", "model.fit", "model.npz"]


def test_save_replaces_atomically_and_cleans_up(tmp_path, em_result, X, monkeypatch):
    path = tmp_path / "model.npz"
    jaxmix.save(jaxmix.kmeans(X, 2), path)
    jaxmix.save(em_result, path)  # overwrite
    assert_identical(jaxmix.load(path), em_result)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez_compressed", broken)
    with pytest.raises(OSError, match="disk full"):
        jaxmix.save(jaxmix.kmeans(X, 2), path)
    monkeypatch.undo()
    with pytest.raises(TypeError):
        jaxmix.save(em_result._replace(history=np.array([None, 1.0])), path)
    assert_identical(jaxmix.load(path), em_result)  # the earlier file is intact
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left
    with pytest.raises(FileNotFoundError, match="no_folder"):
        jaxmix.save(em_result, tmp_path / "no_folder" / "model.npz")
    with pytest.raises(IsADirectoryError):
        jaxmix.save(em_result, tmp_path)


def test_fields_added_later_take_their_defaults(tmp_path, saved, em_result):
    meta, entries = read_entries(saved)
    for field in ("restart_objectives", "prior", "min_var", "covariance"):
        meta["tree"]["fields"].pop(field)
        entries.pop(field, None)
    path = tmp_path / "old.npz"
    write_entries(path, meta, entries)
    loaded = jaxmix.load(path)
    assert loaded.restart_objectives is None and loaded.prior is None
    assert loaded.min_var == jaxmix.EMResult._field_defaults["min_var"]
    assert_identical(loaded.params, em_result.params)


class Box(NamedTuple):
    """A test-only result type holding every kind of value the format knows."""

    arrays: tuple
    table: dict
    items: list
    params: Any
    scalars: tuple
    text: str = "défaut"
    nothing: Any = None


def test_registered_type_with_every_kind_of_value_round_trips(tmp_path, monkeypatch):
    monkeypatch.setitem(persistence._REGISTRY, "Box", Box)
    rng = np.random.default_rng(0)
    box = Box(
        arrays=(
            np.asfortranarray(rng.normal(size=(3, 4)).astype(np.float32)),
            np.zeros((0, 2)),
            np.array(7, np.int16),
            np.array([[True, False]]),
            np.array([1 + 2j, np.nan - 1j]),
            np.array([np.nan, np.inf, -0.0]),
            np.array(["ab", "ü"]),
        ),
        table={"a": np.arange(3), "b": {"deep": (np.ones(2), None)}, "c": []},
        items=[1, 2**70, -0.0, float("nan"), float("inf"), float("-inf"), True, "x"],
        params=jaxmix.MixtureParams(np.ones((2, 3)), np.ones(2), np.full(2, 0.5)),
        scalars=(np.float32(1.5), np.int64(-3), np.bool_(True), np.float64(2.5), np.str_("s")),
    )
    jaxmix.save(box, tmp_path / "box.npz")
    assert_identical(jaxmix.load(tmp_path / "box.npz"), box)
    monkeypatch.delitem(persistence._REGISTRY, "Box")
    assert "unknown result type 'Box'" in load_error(tmp_path / "box.npz")


class Stranger(NamedTuple):
    x: int = 0


@pytest.mark.parametrize(
    "make",
    [
        lambda r: {"params": r.params},
        lambda r: tuple(r),
        lambda r: r.mu,
        lambda r: Stranger(),
        lambda r: None,
        lambda r: r._replace(resp=np.array([object()])),
        lambda r: r._replace(prior=Stranger()),
        lambda r: r._replace(covariance={"spherical"}),
        lambda r: r._replace(history=np.ma.masked_array([1.0])),
        lambda r: r._replace(prior={"a.b": 1}),
    ],
    ids=[
        "dict",
        "tuple",
        "array",
        "unregistered",
        "none",
        "object-array",
        "nested-unregistered",
        "set",
        "masked-array",
        "bad-dict-key",
    ],
)
def test_save_rejects_what_it_cannot_store_safely(tmp_path, em_result, make):
    with pytest.raises(TypeError):
        jaxmix.save(make(em_result), tmp_path / "x.npz")
    assert os.listdir(tmp_path) == []


def test_registry(tmp_path):
    assert {"EMResult", "KMeansResult", "MixtureParams", "Prior"} <= set(persistence._REGISTRY)
    for cls in persistence._FORMAT_TYPES:
        assert persistence._REGISTRY[cls.__name__] is cls
    with pytest.raises(TypeError, match="not a NamedTuple"):
        persistence._build_registry([dict])
    with pytest.raises(TypeError, match="two registered"):
        persistence._build_registry([Box, Box])
    with pytest.raises(TypeError, match="'file'"):
        persistence._build_registry([NamedTuple("Bad", [("file", int)])])


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path, em_result):
    jaxmix.save(em_result, tmp_path / "model.npz")
    with pytest.raises(FileNotFoundError):
        jaxmix.load(tmp_path / "model")  # no suffix is guessed


def test_truncated_files(tmp_path, saved):
    data = saved.read_bytes()
    for cut in (0, 2, 10, 100, len(data) // 2, len(data) - 30, len(data) - 1):
        path = tmp_path / f"cut{cut}.npz"
        path.write_bytes(data[:cut])
        message = load_error(path)
        assert any(word in message for word in ("empty", "truncated", "not an .npz")), message


def test_flipped_bytes_never_load_wrong_data(tmp_path, saved, em_result):
    """Every flipped byte is refused with a ValueError, or (in zip bookkeeping the format does
    not use, such as time stamps) loads the original result."""
    data = saved.read_bytes()
    path = tmp_path / "flipped.npz"
    positions = range(0, len(data), 3)  # every third byte: all regions of the archive
    n_refused = 0
    for pos in positions:
        damaged = bytearray(data)
        damaged[pos] ^= 0xFF
        path.write_bytes(damaged)
        try:
            loaded = jaxmix.load(path)
        except ValueError as err:
            assert str(path) in str(err)
            n_refused += 1
        else:
            assert_identical(loaded, em_result)
    assert n_refused > len(positions) // 2  # most of the file is checked (CRC, names, sizes)


def _edit(meta, entries, **changes):
    meta = json.loads(json.dumps(meta))
    for key, value in changes.items():
        meta[key] = value
    return meta, entries


BAD_FILES = {
    # name: (function (meta, entries) -> (meta, entries), expected words in the message)
    "foreign-npz": (lambda m, e: (None, {"a": np.arange(3), "b": np.eye(2)}), "no '__jaxmix__'"),
    "not-json": (lambda m, e: ("{not json", e), "not valid JSON"),
    "json-not-object": (lambda m, e: ("[1, 2]", e), "format 'jaxmix'"),
    "other-format": (lambda m, e: _edit(m, e, format="other"), "format 'jaxmix'"),
    "future-version": (lambda m, e: _edit(m, e, format_version=2), "version 2"),
    "bad-version": (lambda m, e: _edit(m, e, format_version="1"), "invalid format version"),
    "unknown-type": (lambda m, e: _edit(m, e, type="os.system"), "unknown result type"),
    "type-mismatch": (lambda m, e: _edit(m, e, type="KMeansResult"), "metadata says"),
    "extra-entry": (lambda m, e: (m, {**e, "extra": np.ones(2)}), "not described"),
    "missing-entry": (
        lambda m, e: (m, {k: v for k, v in e.items() if k != "resp"}),
        "'resp' is missing",
    ),
    "wrong-dtype": (
        lambda m, e: (m, {**e, "resp": e["resp"].astype(np.float32)}),
        "metadata says <f8",
    ),
    "object-array": (
        lambda m, e: (m, {**e, "resp": np.array([1, "a"], dtype=object)}),
        "object array",
    ),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_bad_files_give_clear_value_errors(tmp_path, saved, name):
    edit, expected = BAD_FILES[name]
    meta, entries = edit(*read_entries(saved))
    path = tmp_path / f"{name}.npz"
    if meta is None:
        np.savez(path, **entries)
    else:
        write_entries(path, meta, entries)
    message = load_error(path)
    assert expected in message, message


def test_future_version_message_says_upgrade(tmp_path, saved):
    meta, entries = read_entries(saved)
    meta.update(format_version=2, jaxmix_version="9.0")
    write_entries(tmp_path / "new.npz", meta, entries)
    message = load_error(tmp_path / "new.npz")
    assert "9.0" in message and "upgrade jaxmix" in message


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda f: f.update(surprise={"kind": "int", "value": 1}), "no field 'surprise'"),
        (lambda f: f.pop("n_iter"), "'n_iter' of EMResult is missing"),
        (lambda f: f.update(n_iter={"kind": "int", "value": True}), "not an int"),
        (lambda f: f.update(n_iter={"kind": "lambda"}), "unknown kind"),
        (lambda f: f.update(n_iter=[1]), "malformed"),
        (lambda f: f["params"].update(type="Stranger"), "unknown type 'Stranger' at params"),
    ],
    ids=[
        "extra-field",
        "missing-field",
        "bool-as-int",
        "unknown-kind",
        "not-a-node",
        "nested-type",
    ],
)
def test_bad_structures_give_clear_value_errors(tmp_path, saved, edit, expected):
    meta, entries = read_entries(saved)
    edit(meta["tree"]["fields"])
    write_entries(tmp_path / "bad.npz", meta, entries)
    assert expected in load_error(tmp_path / "bad.npz")


def test_text_npy_and_pickle_files_are_refused(tmp_path, em_result):
    text = tmp_path / "ratings.txt"
    text.write_text("1 2 3\n4 5 0\n")
    assert "not an .npz" in load_error(text)
    single = tmp_path / "array.npy"
    np.save(single, np.arange(3.0))
    assert "single .npy array" in load_error(single)
    pickled = tmp_path / "model.pkl"
    import pickle

    pickled.write_bytes(pickle.dumps(em_result))
    assert "not an .npz" in load_error(pickled)


class Payload:
    """Unpickling this object creates the folder ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_pickled_payload_is_never_unpickled(tmp_path, saved):
    meta, entries = read_entries(saved)
    canary = tmp_path / "canary"
    evil = np.array([Payload(canary)], dtype=object)
    crafted = tmp_path / "crafted.npz"
    meta["tree"]["fields"]["resp"].update(dtype="|O", shape=[1])
    write_entries(crafted, meta, {**entries, "resp": evil})
    assert "object array" in load_error(crafted)
    assert not canary.exists()

    # The metadata entry itself as a pickle.
    crafted_meta = tmp_path / "crafted_meta.npz"
    np.savez(crafted_meta, **{META: evil}, **entries)
    assert "object array" in load_error(crafted_meta)
    assert not canary.exists()

    # The payload is live: numpy with allow_pickle=True would have run it.
    with np.load(crafted, allow_pickle=True) as npz:
        npz["resp"]
    assert canary.is_dir()
