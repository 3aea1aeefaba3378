from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def postgres_url_or_skip() -> str:
    """The test PostgreSQL server CI starts (.ci/run exports NASFORGE_TEST_POSTGRES_URL)."""
    return _server_or_skip("NASFORGE_TEST_POSTGRES_URL", "PostgreSQL", "no PostgreSQL server for this run")


def ray_address_or_skip() -> str:
    """The two-node Ray cluster CI starts (.ci/run exports NASFORGE_TEST_RAY_ADDRESS)."""
    return _server_or_skip("NASFORGE_TEST_RAY_ADDRESS", "a Ray cluster", "no Ray cluster for this run")


def _server_or_skip(variable: str, what: str, reason: str) -> str:
    """The server's address from `variable`. Outside CI without one the test skips; in CI (NASFORGE_CI=1)
    a missing server is a failure, so a broken .ci/run cannot pass by skipping."""
    value = os.environ.get(variable)
    if value:
        return value
    if os.environ.get("NASFORGE_CI"):
        pytest.fail(f"NASFORGE_CI is set but {variable} is not: CI must start {what}")
    pytest.skip(f"{variable} is not set ({reason}; .ci/run starts one)")


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
