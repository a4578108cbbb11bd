"""Every shared-memory test gets its own segment directory (on /dev/shm when there is
one), so tests never meet a real feed's segments or each other's."""

import os
import shutil
import tempfile
import uuid

import pytest


@pytest.fixture(autouse=True)
def shm_dir(monkeypatch):
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    d = os.path.join(base, f"hftbook-test-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    os.makedirs(d)
    monkeypatch.setenv("HFTBOOK_SHM_DIR", d)
    yield d
    shutil.rmtree(d, ignore_errors=True)
