"""Penn Treebank-format corpora: vocabulary, `<eos>`/`<unk>`, streams, batching and BPTT windows."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.loader import data_config, load_dataset, provider
from nasforge.data.text import EOS, UNK, TextProvider, Vocabulary, batchify, bptt_windows

TRAIN = " the cat sat on the mat \n the dog sat \n a cat <unk> \n"
VALID = " the bird sat \n"
TEST = " a dog on the mat \n the cat \n"


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    for name, text in (("train", TRAIN), ("valid", VALID), ("test", TEST)):
        (tmp_path / f"mini.{name}.txt").write_text(text)
    return tmp_path


def test_corpus_folder(corpus: Path) -> None:
    config = data_config(str(corpus), seed=4, valid_fraction=0.2, test_fraction=0.0, header="auto", bptt=5)
    assert config["kind"] == "text" and config["valid_file"].endswith("mini.valid.txt") and "seed" not in config
    assert json.loads(json.dumps(config)) == config and provider(config).config() == config
    data = load_dataset(config)
    vocab = data.preprocessor
    assert isinstance(vocab, Vocabulary)
    # most frequent first, ties by first appearance; <eos> once per line
    assert vocab.words[:4] == ("the", EOS, "cat", "sat") and len(vocab) == 9
    assert data.spec.task == "language_model" and data.spec.input_shape == (5,) and data.spec.num_outputs == 9
    words = TRAIN.split("\n")[:3]
    stream = vocab.encode([w for line in words for w in [*line.split(), EOS]])
    np.testing.assert_array_equal(data.train.x, stream[:-1])
    np.testing.assert_array_equal(data.train.y, stream[1:])  # the next token of each
    assert vocab.decode(np.append(data.valid.x, data.valid.y[-1])) == ["the", UNK, "sat", EOS]  # bird: unknown
    assert data.test is not None and len(data.test) == 9 - 1
    assert Vocabulary.from_json(json.loads(json.dumps(vocab.to_json()))).words == vocab.words
    np.testing.assert_array_equal(vocab.transform("the cat"), [0, 2, 1])


def test_train_file_siblings_and_carved_splits(corpus: Path) -> None:
    assert data_config(str(corpus / "mini.train.txt"))["test_file"].endswith("mini.test.txt")
    (corpus / "mini.valid.txt").unlink()
    (corpus / "mini.test.txt").unlink()
    # without a valid sibling a *.train.txt file reads as CSV unless the format says otherwise
    assert data_config(str(corpus / "mini.train.txt"), label=0)["kind"] == "csv"
    data = TextProvider(corpus, valid_fraction=0.25, test_fraction=0.25).load()
    # 15 tokens: the held-out tails are 4 each, the test tail last
    assert (len(data.train) + 1, len(data.valid) + 1, len(data.test or []) + 1) == (7, 4, 4)
    data = TextProvider(corpus, max_tokens=5, max_vocab=4).load()
    assert len(data.train) == 4 and len(data.preprocessor) == 4
    assert set(data.preprocessor.words) == {"the", EOS, "cat", UNK}


def test_text_errors(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(DataError, match="no training corpus"):
        TextProvider(_empty_dir(tmp_path))
    with pytest.raises(DataError, match="missing: file not found"):
        TextProvider(tmp_path / "missing")
    (corpus / "mini.test.txt").write_text("  \n")
    with pytest.raises(DataError, match=r"mini\.test\.txt: file is empty"):
        load_dataset(data_config(str(corpus)))
    with pytest.raises(ConfigError, match="bptt must be an integer of at least 1"):
        data_config(str(corpus), bptt=0)
    with pytest.raises(ConfigError, match="max_train do not apply to a text corpus"):
        data_config(str(corpus), max_train=10)


def _empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "nothing"
    folder.mkdir()
    (folder / "readme.md").write_text("hi")
    return folder


def test_batchify_and_windows() -> None:
    stream = torch.arange(23)
    rows = batchify(stream, 4)
    assert rows.shape == (4, 5) and rows[1].tolist() == [5, 6, 7, 8, 9]  # contiguous rows, tail dropped
    assert batchify(np.arange(10), 3).shape == (3, 3)
    assert bptt_windows(5, 2) == [(0, 2), (2, 4), (4, 5)]
    with pytest.raises(ConfigError, match="too short"):
        batchify(torch.arange(3), 4)


def test_penn_treebank_real(shared_data: Path) -> None:
    data = load_dataset(data_config(str(shared_data / "ptb")))
    assert data.spec.num_outputs == 10_000 and data.spec.input_shape == (35,)
    assert data.source["tokens"] == {"train": 929_589, "valid": 73_760, "test": 82_430}  # the published counts
    assert data.test is not None and data.train.x.dtype == np.int64
