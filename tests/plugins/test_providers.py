"""User data: the Provider base class, search(X, y), search(provider=...), and Model Search's data.Provider."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import nasforge
from nasforge.core.errors import ConfigError, DataError
from nasforge.data import memory
from nasforge.data.provider import ArrayProvider, Provider, build_dataset


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    x, y = load_iris(return_X_y=True)
    return x, y


def _storage(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'db.sqlite'}"


def test_search_numpy_arrays_resumes_with_workers_from_the_materialised_file(tmp_path: Path) -> None:
    x, y = _iris()
    study = nasforge.search(x, y, trials=2, epochs=1, storage=_storage(tmp_path), baseline=False)
    data = study.config["evaluator_config"]["data"]
    assert data["kind"] == "arrays" and Path(data["path"]).is_file()
    assert Path(data["path"]).parent.parent == tmp_path / "db-studies" / study.name
    predicted = study.predict(x[:10])
    assert predicted.dtype.kind == "i" and set(predicted) <= {0, 1, 2}
    # the same arrays resume the same study; the new trial runs in a worker process that reads the file
    again = nasforge.search(x, y, trials=3, epochs=1, storage=_storage(tmp_path), baseline=False, workers=2)
    assert again.name == study.name
    assert [t.state.value for t in again.trials] == ["complete"] * 3
    other, _ = memory.provider_config(ArrayProvider(x[:120], y[:120]), lambda digest: tmp_path)
    assert other["sha256"] != data["sha256"]  # other data: another digest, so another study


def test_search_dataframe_with_label_column_predicts_raw_rows(tmp_path: Path) -> None:
    x, y = _iris()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["colour"] = np.where(x[:, 0] > 5.8, "red", "blue")
    frame["species"] = np.asarray(["setosa", "versicolor", "virginica"])[y]
    study = nasforge.search(frame, label="species", trials=1, epochs=1, storage=_storage(tmp_path),
                            baseline=False, test_fraction=0.2)
    rows = frame.drop(columns=["species"]).head(6)
    assert set(study.predict(rows)) <= {"setosa", "versicolor", "virginica"}
    assert study.trial().metrics.get("test_accuracy") is not None


def test_torch_dataset_of_items(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import TensorDataset

    import nasforge.launch

    x, y = _iris()
    items = TensorDataset(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y))
    dataset = ArrayProvider(items).load()
    assert dataset.spec.input_shape == (4,) and dataset.spec.num_outputs == 3
    assert len(dataset.train) + len(dataset.valid) == 150
    config = nasforge.launch.build_config(data=None, provider=ArrayProvider(items), storage=_storage(tmp_path))
    assert config.evaluator_config["data"]["kind"] == "arrays" and config.study.startswith("memory-")


PLUGIN = '''
import numpy as np
from nasforge.data.provider import Provider


class Moons(Provider):
    """Rebuilt in each worker from its options: nothing is written to the study folder."""

    def __init__(self, rows: int = 200, noise: float = 0.2):
        self.rows, self.noise = rows, noise

    def train(self):
        from sklearn.datasets import make_moons

        return make_moons(self.rows, noise=self.noise, random_state=0)

    def config(self):
        return {"rows": self.rows, "noise": self.noise}
'''


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    package = tmp_path / "src" / "mydata"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "src"))
    yield
    for name in [m for m in sys.modules if m == "mydata" or m.startswith("mydata.")]:
        del sys.modules[name]


def test_provider_with_config_is_rebuilt_by_import_path_in_workers(plugin: None, tmp_path: Path) -> None:
    from mydata import Moons  # type: ignore[import-not-found]

    study = nasforge.search(provider=Moons(rows=150), trials=2, epochs=1, workers=2, storage=_storage(tmp_path),
                            baseline=False)
    assert study.config["evaluator_config"]["data"] == {"kind": "provider", "factory": "mydata:Moons",
                                                        "options": {"rows": 150, "noise": 0.2}}
    assert [t.state.value for t in study.trials] == ["complete", "complete"]
    assert not (tmp_path / "db-studies" / study.name / "data").exists()
    again = nasforge.search(provider="mydata:Moons", provider_options={"rows": 150}, trials=2, epochs=1,
                            storage=_storage(tmp_path), baseline=False)
    assert again.name == study.name and len(again.trials) == 2  # resumed, nothing new to run


class Codes(Provider):
    """Integer labels with their own names, a given validation split, and a declared shape."""

    valid_fraction = 0.0

    def train(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = _iris()
        return x[::2], y[::2]

    def valid(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = _iris()
        return x[1::2], y[1::2]

    def class_names(self) -> list[str]:
        return ["s", "ve", "vi"]

    def input_shape(self) -> tuple[int, ...]:
        return (4,)


def test_provider_splits_classes_and_checks() -> None:
    dataset = Codes().load()
    assert len(dataset.train) == 75 and len(dataset.valid) == 75 and dataset.test is None
    assert dataset.spec.class_names == ("s", "ve", "vi")

    class BadShape(Codes):
        def input_shape(self) -> tuple[int, ...]:
            return (5,)

    with pytest.raises(DataError, match=r"input_shape\(\) is \(5,\)"):
        BadShape().load()
    with pytest.raises(DataError, match="X has 3 rows but y has 2"):
        ArrayProvider(np.zeros((3, 2)), [0, 1]).load()
    with pytest.raises(ConfigError, match="needs labels"):
        ArrayProvider(np.zeros((3, 2)))
    with pytest.raises(DataError, match=r"train\(\) must return \(X, y\)"):
        build_dataset(type("NoPair", (Provider,), {"train": lambda self: 3})())
    with pytest.raises(ConfigError, match="preprocessing must be one of"):
        ArrayProvider(*_iris(), preprocessing="magic").load()


def test_materialised_file_round_trip_and_integrity(tmp_path: Path) -> None:
    x, y = _iris()
    config, dataset = memory.provider_config(ArrayProvider(x, y, preprocessing="none"), lambda digest: tmp_path)
    memory.write_pending(config)
    memory._pending.clear()
    loaded = memory.load_arrays(config)
    assert loaded.spec == dataset.spec and loaded.preprocessor is None
    np.testing.assert_array_equal(loaded.valid.x, dataset.valid.x)
    with pytest.raises(DataError, match="does not match the study's data"):
        memory.load_arrays({**config, "sha256": "0" * 64})
    with pytest.raises(DataError, match="in-memory data file is missing"):
        memory.load_arrays({**config, "path": str(tmp_path / "gone.npz")})


def test_study_folder_matches_the_runner(tmp_path: Path) -> None:
    from nasforge.launch import build_config
    from nasforge.runner import artifact_dir_for
    from nasforge.storage.sql import Store

    store = Store(_storage(tmp_path))
    config = build_config(data="builtin:iris", storage=_storage(tmp_path), epochs=1)
    assert memory.study_folder(config.storage, None, config.study) == artifact_dir_for(config, store)
    assert memory.study_folder(None, str(tmp_path / "r"), "s") == tmp_path / "r" / "s"


def test_options_that_do_not_apply_to_a_provider() -> None:
    with pytest.raises(ConfigError, match="do not apply to a provider"):
        nasforge.search(provider=Codes(), label="y", trials=1)
    with pytest.raises(ConfigError, match="not both"):
        nasforge.search("builtin:iris", provider=Codes(), trials=1)


def test_model_search_readme_example_with_a_user_provider(tmp_path: Path) -> None:
    from nasforge.compat.model_search import constants, single_trainer
    from nasforge.compat.model_search.data import Provider as ModelSearchProvider

    class IrisArrays(ModelSearchProvider):
        def train(self) -> tuple[np.ndarray, np.ndarray]:
            return _iris()

        def number_of_classes(self) -> int:
            return 3

    trainer = single_trainer.SingleTrainer(data=IrisArrays(), spec=constants.DEFAULT_DNN)
    study = trainer.try_models(number_models=2, train_steps=5, eval_steps=1, root_dir=str(tmp_path / "run"),
                               batch_size=32, experiment_name="example", experiment_owner="me")
    assert len(study.trials) == 2 and study.best_trial is not None
    assert (tmp_path / "run" / "example" / "data").is_dir()
    with pytest.raises(ConfigError, match="not TensorFlow input functions"):
        IrisArrays().get_input_fn(None, "train", 32)
