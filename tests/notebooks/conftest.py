from tests.shm.conftest import shm_dir  # noqa: F401  (own segment directory per test)
