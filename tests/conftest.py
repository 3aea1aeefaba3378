from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def postgres_url_or_skip() -> str:
    """The test PostgreSQL server CI starts (.ci/run exports NASFORGE_TEST_POSTGRES_URL). Outside CI without
    one, PostgreSQL tests skip with this reason; in CI (NASFORGE_CI=1) a missing server is a failure."""
    url = os.environ.get("NASFORGE_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("NASFORGE_CI"):
        pytest.fail("NASFORGE_CI is set but NASFORGE_TEST_POSTGRES_URL is not: CI must start PostgreSQL")
    pytest.skip("NASFORGE_TEST_POSTGRES_URL is not set (no PostgreSQL server for this run; .ci/run starts one)")


def ray_address_or_skip() -> str:
    """The two-node Ray cluster CI starts (.ci/run exports NASFORGE_TEST_RAY_ADDRESS); skipped outside CI
    without one, a failure in CI (NASFORGE_CI=1)."""
    address = os.environ.get("NASFORGE_TEST_RAY_ADDRESS")
    if address:
        return address
    if os.environ.get("NASFORGE_CI"):
        pytest.fail("NASFORGE_CI is set but NASFORGE_TEST_RAY_ADDRESS is not: CI must start a Ray cluster")
    pytest.skip("NASFORGE_TEST_RAY_ADDRESS is not set (no Ray cluster for this run; .ci/run starts one)")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The project's shared real datasets (../shared/data); tests that need them skip without them."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tests run many tiny forward passes; on a busy 2-core machine one thread is several times faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Torch on one thread for the test, restored after: small models run faster, and tests share the machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def digits_image_study(storage: str) -> dict[str, Any]:
    """A one-trial `cnn` study named "digits" on builtin:digits as 8x8 images with a 20% test split (shared by
    the export, predict and final-training tests); returns its data config."""
    from nasforge.launch import build_config, run
    from nasforge.storage.sql import Store

    config = build_config(data="builtin:digits", space="cnn", strategy="random", trials=1, workers=1, epochs=1,
                          study="digits", storage=storage, test_fraction=0.2, progress=False)
    assert run(config, Store(storage)).complete == 1
    data: dict[str, Any] = config.evaluator_config["data"]
    assert data["as_images"] is True
    return data
