"""Content-addressed artifacts: hashing, immutability, corruption detection."""

from __future__ import annotations

import hashlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.exceptions import ArtifactCorruptError, NotFoundError
from workbench.lineage import ArtifactStore, sha256_bytes


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=4096))
def test_roundtrip_and_address_is_sha256(tmp_path_factory, data):
    store = ArtifactStore(tmp_path_factory.mktemp("a"))
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest() == sha256_bytes(data)
    assert store.get_bytes(digest) == data
    assert store.put_bytes(data) == digest  # idempotent


def test_corrupt_artifact_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    digest = store.put_object({"weights": [1, 2, 3]})
    path = store.path_for(digest)
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ArtifactCorruptError, match="corrupt.*not loaded"):
        store.get_object(digest)


def test_missing_and_malformed_ids(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(NotFoundError, match="missing"):
        store.get_bytes("0" * 64)
    with pytest.raises(NotFoundError, match="not a SHA-256"):
        store.get_bytes("../etc/passwd")


def test_files_are_read_only(tmp_path):
    store = ArtifactStore(tmp_path)
    digest = store.put_bytes(b"x")
    assert not os.access(store.path_for(digest), os.W_OK) or os.geteuid() == 0
    assert oct(store.path_for(digest).stat().st_mode & 0o777) == "0o400"
