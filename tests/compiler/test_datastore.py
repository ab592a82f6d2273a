"""DataStore: values by symbol, atomic .npz round trip, clean errors."""

import numpy as np
import pytest

from sparsec.tensors.datastore import (
    DataStore,
    DataStoreError,
    active_store,
    current_store,
    store_key,
)


def test_round_trip_keeps_values_and_declared_types(tmp_path):
    store = DataStore()
    store.put(store_key("gemm", "W"), np.arange(6, dtype=np.float32).reshape(2, 3), "bf16")
    store.put("gemm.X", np.array([[1, -2]], dtype=np.int8), "i8")
    path = tmp_path / "p.npz"
    store.save(path)
    back = DataStore.load(path)
    assert back.keys() == store.keys()
    assert back.dtypes == {"gemm.W": "bf16", "gemm.X": "i8"}
    np.testing.assert_array_equal(back.get("gemm.W"), store.get("gemm.W"))
    assert back.get("gemm.X").dtype == np.int8
    assert [p.name for p in tmp_path.iterdir()] == ["p.npz"]   # no temp file left behind


def test_missing_symbol_names_what_the_store_has():
    store = DataStore()
    store.put("k.A", np.zeros(1), "f64")
    with pytest.raises(DataStoreError, match="no data for symbol 'k.B'.*k.A"):
        store.get("k.B")


def test_load_errors_are_clean(tmp_path):
    with pytest.raises(DataStoreError, match="not found"):
        DataStore.load(tmp_path / "none.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a zip")
    with pytest.raises(DataStoreError, match="not a readable"):
        DataStore.load(bad)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(2))
    with pytest.raises(DataStoreError, match="not a sparsec data bundle"):
        DataStore.load(plain)


def test_active_store_is_scoped():
    with pytest.raises(DataStoreError, match="sparsec compile"):
        current_store()
    store = DataStore()
    with active_store(store):
        assert current_store() is store
    with pytest.raises(DataStoreError):
        current_store()


def test_sparse_values_round_trip_as_csr_parts(tmp_path):
    import scipy.sparse

    from sparsec.tensors.datastore import dense, is_sparse

    matrix = scipy.sparse.random(50, 40, density=0.05, format="csr", random_state=1,
                                 dtype=np.float32)
    store = DataStore()
    store.put("k.A", matrix, "f32")
    store.save(tmp_path / "s.npz")
    with np.load(tmp_path / "s.npz") as raw:
        assert "k.A#csr.indptr" in raw.files and "k.A" not in raw.files
    back = DataStore.load(tmp_path / "s.npz").get("k.A")
    assert is_sparse(back) and back.shape == (50, 40)
    np.testing.assert_array_equal(back.toarray(), matrix.toarray())
    np.testing.assert_array_equal(dense(back, "A"), matrix.toarray())


def test_too_large_sparse_value_is_not_densified():
    import scipy.sparse

    from sparsec.tensors.datastore import dense

    huge = scipy.sparse.eye(400_000, format="csr", dtype=np.float32)
    with pytest.raises(DataStoreError, match="too large to densify"):
        dense(huge, "operand A")
