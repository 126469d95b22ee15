"""Tests of ``jaxmix.save`` / ``jaxmix.load`` (``jaxmix.persistence``): exact round trips of a fit
of every covariance family and every result type, files of jaxmix 0.1 (format version 1) loaded
exactly in today's types, and a safe, clear refusal of every truncated, corrupted, foreign or
malicious file."""

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
from jaxmix.models.families import FAMILIES, SphericalCov

META = "__jaxmix__"
FIXTURES = Path(__file__).parent / "fixtures"

# Fits to round-trip: (fit function, keyword arguments). Every covariance family and every
# result type is covered.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "em-spherical": ("em", {}),
    "em-diag": ("em", {"covariance": "diag"}),
    "em-shared": ("em", {"covariance": "shared"}),
    "em-map": ("em", {"prior": "Prior"}),
    "em-map-diag": ("em", {"prior": "Prior", "covariance": "diag"}),
    "em-map-shared": ("em", {"prior": "Prior", "covariance": "shared"}),
    "kmeans": ("kmeans", {}),
    "svi-map": ("svi", {"guide": "map"}),
    "svi-map-shared": ("svi", {"guide": "map", "covariance": "shared"}),
    "svi-meanfield": ("svi", {"guide": "meanfield"}),
    "svi-meanfield-diag": ("svi", {"guide": "meanfield", "covariance": "diag", "record_every": 10}),
    "mcmc": ("mcmc", {}),
    "mcmc-diag": ("mcmc", {"covariance": "diag"}),
}


@pytest.fixture(scope="module")
def X() -> np.ndarray:
    return jaxmix.simulate_ratings(30, 6, 2, missing=0.4, seed=3).X


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request, X):
    """A fitted result of every kind."""
    kind, kwargs = CASES[request.param]
    kwargs = dict(kwargs)
    if kwargs.get("prior") == "Prior":
        kwargs["prior"] = jaxmix.Prior()
    if kind == "kmeans":
        return jaxmix.kmeans(X, 2, n_init=2)
    if kind == "svi":
        return jaxmix.fit_svi(X, 2, num_steps=50, polish_steps=20, **kwargs)
    if kind == "mcmc":
        return jaxmix.fit_mcmc(X, 2, num_chains=1, num_warmup=20, num_samples=20, **kwargs)
    return jaxmix.fit_em(X, 2, n_init=2, min_var=0.1, **kwargs)


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
    assert type(loaded.params.cov) is FAMILIES[fitted.covariance].cov_type
    filled, sd = jaxmix.complete(X, loaded, return_std=True)
    filled0, sd0 = jaxmix.complete(X, fitted, return_std=True)
    np.testing.assert_array_equal(filled, filled0)
    np.testing.assert_array_equal(sd, sd0)


def test_parts_round_trip_alone(tmp_path, em_result):
    parts = [
        em_result.params,
        em_result.params.cov,
        jaxmix.Prior(),
        jaxmix.Prior(alpha=1.5, mean=np.arange(6.0), var_scale=2),
    ]
    parts += [
        family.cov_from_var(np.full(family.var_shape(2, 6), 0.5), 2, 6)
        for family in FAMILIES.values()
    ]
    parts.append(jaxmix.MixtureParams(np.zeros((2, 6)), parts[-1], np.full(2, 0.5)))
    for i, part in enumerate(parts):
        jaxmix.save(part, tmp_path / f"{i}.npz")
        assert_identical(jaxmix.load(tmp_path / f"{i}.npz"), part)


def test_file_is_a_plain_npz_with_the_documented_layout(saved, em_result):
    meta, entries = read_entries(saved)
    assert meta["format"] == "jaxmix" and meta["format_version"] == 3 == persistence.FORMAT_VERSION
    assert meta["type"] == "EMResult" and meta["jaxmix_version"] == jaxmix.__version__
    tree = meta["tree"]
    assert tree["kind"] == "namedtuple" and list(tree["fields"]) == list(em_result._fields)
    assert tree["fields"]["params"]["type"] == "MixtureParams"
    cov = tree["fields"]["params"]["fields"]["cov"]
    assert cov["type"] == "SphericalCov" and list(cov["fields"]) == ["var"]
    assert tree["fields"]["n_iter"] == {"kind": "int", "value": em_result.n_iter}
    assert tree["fields"]["covariance"] == {"kind": "str", "value": em_result.covariance}
    assert {"params.mu", "params.cov.var", "params.weights", "resp", "history"} <= set(entries)
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
    fields = meta["tree"]["fields"]
    for field in ("restart_params", "restart_objectives", "prior", "min_var", "covariance"):
        if fields.pop(field, None) is not None:
            entries = {k: v for k, v in entries.items() if k.split(".")[0] != field}
    path = tmp_path / "old.npz"
    write_entries(path, meta, entries)
    loaded = jaxmix.load(path)
    assert loaded.restart_objectives is None and loaded.prior is None
    assert loaded.restart_params is None
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
    monkeypatch.setattr(persistence, "REGISTRY", {**persistence.REGISTRY, "Box": Box})
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
        params=jaxmix.MixtureParams(np.ones((2, 3)), SphericalCov(np.ones(2)), np.full(2, 0.5)),
        scalars=(np.float32(1.5), np.int64(-3), np.bool_(True), np.float64(2.5), np.str_("s")),
    )
    jaxmix.save(box, tmp_path / "box.npz")
    assert_identical(jaxmix.load(tmp_path / "box.npz"), box)
    monkeypatch.undo()
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
    results = {"EMResult", "KMeansResult", "MCMCResult", "SVIResult", "MixtureParams", "Prior"}
    assert results <= set(persistence.REGISTRY)
    for family in FAMILIES.values():  # every covariance family's parameters, by being a family
        assert persistence.REGISTRY[family.cov_type.__name__] is family.cov_type
    for cls in persistence.FORMAT_TYPES:
        assert persistence.REGISTRY[cls.__name__] is cls
    assert len(persistence.REGISTRY) == len(persistence.FORMAT_TYPES)
    with pytest.raises(TypeError):
        persistence.REGISTRY["Box"] = Box  # read-only
    with pytest.raises(TypeError, match="not a NamedTuple"):
        persistence.build_registry([dict])
    with pytest.raises(TypeError, match="two registered"):
        persistence.build_registry([Box, Box])
    with pytest.raises(TypeError, match="'file'"):
        persistence.build_registry([NamedTuple("Bad", [("file", int)])])


# --------------------------------------------------------------------------- files of jaxmix 0.1

V1 = FIXTURES / "format_v1"
# Every file of tests/fixtures/format_v1 (written by jaxmix 0.1.0): its type and family.
V1_FILES = {
    "em_spherical": ("EMResult", "spherical"),
    "em_diag_map": ("EMResult", "diag"),
    "kmeans": ("KMeansResult", "spherical"),
    "svi_map": ("SVIResult", "spherical"),
    "svi_meanfield": ("SVIResult", "diag"),
    "mcmc": ("MCMCResult", "spherical"),
}
# The fields of version 1 that moved (besides every MixtureParams' ``var``, now ``cov.var``);
# "-history": the values are minus those of ``history``.
V1_MOVED = {
    "SVIResult": {"loss_history": "-history"},
    "MCMCResult": {
        "mu": "draws.mu",
        "var": "draws.cov.var",
        "weights": "draws.weights",
        "num_steps": "n_leapfrog",
    },
}


def v1_new_place(type_name: str, path: str) -> str:
    """Where the value at ``path`` of a version-1 file of ``type_name`` is in today's types."""
    moved = V1_MOVED.get(type_name, {})
    if path in moved:
        return moved[path]
    head, _, last = path.rpartition(".")
    if head and last == "var":  # params, reference, variational_loc, variational_scale
        return f"{head}.cov.var"
    return path


def v1_leaves(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every value of a version-1 metadata tree but the NamedTuples, with its field path."""
    if node["kind"] == "namedtuple":
        return [
            leaf
            for name, child in node["fields"].items()
            for leaf in v1_leaves(child, f"{path}.{name}" if path else name)
        ]
    assert node["kind"] in ("array", "int", "float", "bool", "str", "none"), node
    return [(path, node)]


def value_at(result: Any, place: str) -> Any:
    negate = place.startswith("-")
    value = result
    for name in place.lstrip("-").split("."):
        value = getattr(value, name)
    return -value if negate else value


def test_v1_fixtures_are_all_listed():
    assert sorted(p.stem for p in V1.glob("*.npz")) == sorted([*V1_FILES, "expected_v1"])


@pytest.mark.parametrize("name", list(V1_FILES))
def test_v1_file_loads_every_value_in_its_new_place(name):
    type_name, covariance = V1_FILES[name]
    path = V1 / f"{name}.npz"
    meta, raw = read_entries(path)
    assert meta["format_version"] == 1 and meta["jaxmix_version"] == "0.1.0"
    result = jaxmix.load(path)
    assert type(result) is getattr(jaxmix, type_name)
    assert result.covariance == covariance
    cov_type = FAMILIES[covariance].cov_type
    for part in ("params", "reference", "draws", "variational_loc", "variational_scale"):
        params = getattr(result, part, None)
        if params is not None:
            assert type(params) is jaxmix.MixtureParams, part
            assert type(params.cov) is cov_type, part
    leaves = v1_leaves(meta["tree"])
    entries = [node["entry"] for _, node in leaves if node["kind"] == "array"]
    assert sorted(entries) == sorted(raw)  # every array of the file is checked
    for path_v1, node in leaves:
        place = v1_new_place(type_name, path_v1)
        got = value_at(result, place)
        if node["kind"] == "array":
            assert_identical(got, raw[node["entry"]], f"{path_v1} -> {place}")
        elif node["kind"] == "none":
            assert got is None, place
        else:
            assert_identical(
                got,
                {"int": int, "float": float, "bool": bool, "str": str}[node["kind"]](node["value"]),
                place,
            )
    if type_name == "KMeansResult":  # fields that 0.1 did not have
        assert result.covariance == "spherical" and result.prior is None
    if type_name == "EMResult":
        assert result.restart_params is None


@pytest.mark.parametrize("name", list(V1_FILES))
def test_v1_file_predicts_what_jaxmix_0_1_did(name):
    X = np.loadtxt(V1 / "data.txt")
    fit = jaxmix.load(V1 / f"{name}.npz")
    with np.load(V1 / "expected_v1.npz", allow_pickle=False) as npz:
        expected = {key: npz[f"{name}.{key}"] for key in ("complete", "sd", "resp")}
    filled, sd = jaxmix.complete(X, fit, return_std=True)
    resp = jaxmix.responsibilities(X, fit)
    np.testing.assert_allclose(filled, expected["complete"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(sd, expected["sd"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(resp, expected["resp"], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(V1_FILES))
def test_v1_file_saved_again_is_the_current_format(tmp_path, name):
    fit = jaxmix.load(V1 / f"{name}.npz")
    jaxmix.save(fit, tmp_path / "again.npz")
    meta, entries = read_entries(tmp_path / "again.npz")
    assert meta["format_version"] == persistence.FORMAT_VERSION
    assert "params.cov.var" in entries and "params.var" not in entries
    assert_identical(jaxmix.load(tmp_path / "again.npz"), fit)


def test_every_older_version_has_its_upgrades():
    assert sorted(persistence.UPGRADES) == list(range(1, persistence.FORMAT_VERSION))
    for table in persistence.UPGRADES.values():
        assert set(table) <= set(persistence.REGISTRY)


def _v1_var_axes(m, e):
    e = {**e, "params.var": e["params.var"][:, None, None]}
    m["tree"]["fields"]["params"]["fields"]["var"]["shape"] += [1, 1]
    return m, e


def _v1_drop(type_path, field):
    def edit(m, e):
        node = m["tree"]
        for name in type_path:
            node = node["fields"][name]
        entry = node["fields"].pop(field).get("entry")
        return m, {k: v for k, v in e.items() if k != entry}

    return edit


def _v1_add_cov(m, e):
    m["tree"]["fields"]["params"]["fields"]["cov"] = {"kind": "none"}
    return m, e


def _v1_int_loss(m, e):
    m["tree"]["fields"]["loss_history"] = {"kind": "int", "value": 3}
    return m, {k: v for k, v in e.items() if k != "loss_history"}


def _v1_as_v2(m, e):
    m["format_version"] = 2
    return m, e


# name: (fixture file, edit of its (meta, entries), expected words in the message)
BAD_V1_FILES = {
    "var-axes": ("em_spherical", _v1_var_axes, "neither spherical"),
    "no-var": ("kmeans", _v1_drop(["params"], "var"), "'var' of MixtureParams is missing"),
    "no-draws": ("mcmc", _v1_drop([], "weights"), "'weights' of MCMCResult is missing"),
    "no-num-steps": ("mcmc", _v1_drop([], "num_steps"), "'num_steps' of MCMCResult is missing"),
    "no-loss": ("svi_map", _v1_drop([], "loss_history"), "'loss_history' of SVIResult"),
    "int-loss": ("svi_map", _v1_int_loss, "not a float array"),
    "cov-in-v1": ("em_spherical", _v1_add_cov, "'cov' that its format version did not have"),
    "v1-tree-as-v2": ("em_diag_map", _v1_as_v2, "MixtureParams has no field 'var'"),
}


@pytest.mark.parametrize("name", list(BAD_V1_FILES))
def test_bad_v1_files_give_clear_value_errors(tmp_path, name):
    source, edit, expected = BAD_V1_FILES[name]
    meta, entries = edit(*read_entries(V1 / f"{source}.npz"))
    path = tmp_path / f"{name}.npz"
    write_entries(path, meta, entries)
    message = load_error(path)
    assert expected in message, message


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
    "future-version": (
        lambda m, e: _edit(m, e, format_version=persistence.FORMAT_VERSION + 1),
        f"version {persistence.FORMAT_VERSION + 1}",
    ),
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
    meta.update(format_version=persistence.FORMAT_VERSION + 1, jaxmix_version="9.0")
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


# --------------------------------------------------------------------------- the ids of the data


def _triples_with_ids():
    X = jaxmix.simulate_ratings(30, 6, 2, missing=0.4, seed=3).X
    r, c = np.nonzero(~np.isnan(X))
    return X, jaxmix.sparse_ratings(5 * r + 1, 11 * c + 3, X[r, c])  # ids 1, 6, ... / 3, 14, ...


@pytest.mark.slow
def test_fit_of_triples_keeps_its_ids_through_save_and_load(tmp_path):
    """Fit on triples with non-contiguous ids -> save -> load -> complete by ids == complete by
    positions (on the fit before saving), and the ids come back as saved."""
    X, S = _triples_with_ids()
    fit = jaxmix.fit_em(S, 2, n_init=2, min_var=0.01)
    path = tmp_path / "fit.npz"
    jaxmix.save(fit, path, ids=S)
    ids = jaxmix.load_ids(path)
    assert isinstance(ids, jaxmix.IdMaps)
    for name in ("row_ids", "col_ids"):
        saved, original = getattr(ids, name), getattr(S, name)
        assert saved.dtype == original.dtype
        np.testing.assert_array_equal(saved, original)
    loaded = jaxmix.load(path)
    assert_identical(loaded, fit)
    mr, mc = np.nonzero(np.isnan(X))
    by_id = jaxmix.complete(S, loaded, user_ids=ids.row_ids[mr], item_ids=ids.col_ids[mc])
    by_position = jaxmix.complete(S, fit, rows=mr, cols=mc, positions=True)
    np.testing.assert_array_equal(by_id, by_position)
    meta, entries = read_entries(path)
    assert meta["format_version"] == 3 and set(meta["ids"]) == {"row_ids", "col_ids"}
    assert {"__ids__.row_ids", "__ids__.col_ids"} <= set(entries)


@pytest.mark.slow
def test_ids_are_optional_text_ids_round_trip_and_bad_ids_are_refused(tmp_path):
    X, S = _triples_with_ids()
    fit = jaxmix.fit_em(S, 2, min_var=0.01)
    plain = tmp_path / "plain.npz"
    jaxmix.save(fit, plain)
    assert jaxmix.load_ids(plain) is None
    assert "ids" not in read_entries(plain)[0]
    words = jaxmix.IdMaps(None, np.array([f"movie {i}" for i in range(6)]))
    jaxmix.save(fit, tmp_path / "words.npz", ids=words)
    back = jaxmix.load_ids(tmp_path / "words.npz")
    assert back.row_ids is None and back.col_ids.tolist() == words.col_ids.tolist()
    with pytest.raises(ValueError, match="5 item ids but the result has 6 columns"):
        jaxmix.save(fit, tmp_path / "bad.npz", ids=jaxmix.IdMaps(None, np.arange(5)))
    with pytest.raises(TypeError, match="ids must be"):
        jaxmix.save(fit, tmp_path / "bad.npz", ids=[1, 2, 3])
    with pytest.raises(TypeError, match="integers or strings"):
        jaxmix.save(fit, tmp_path / "bad.npz", ids=jaxmix.IdMaps(None, np.linspace(0, 1, 6)))
    assert not (tmp_path / "bad.npz").exists()


def test_ids_in_an_older_format_version_are_refused(tmp_path):
    X, S = _triples_with_ids()
    path = tmp_path / "fit.npz"
    jaxmix.save(jaxmix.fit_em(S, 2, min_var=0.01), path, ids=S)
    meta, entries = read_entries(path)
    meta["format_version"] = 2
    write_entries(tmp_path / "old.npz", meta, entries)
    assert "format version < 3" in load_error(tmp_path / "old.npz")
