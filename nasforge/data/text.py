"""Word-level language-modelling corpora in the Penn Treebank format (Mikolov's `ptb.train.txt` etc.).

Each line is a sentence of space-separated words and ends with one `<eos>` token. The vocabulary
comes from the training file only, most frequent words first (ties in order of first appearance);
words of the validation and test files it lacks become `<unk>`. A split holds the token stream as
`x` (ids, (n,)) and the next token of each as `y`, so `len(split)` is the number of predictions.

The train evaluator cuts the streams into `batch` parallel rows (`batchify`) and walks them in
truncated-BPTT windows of `bptt` tokens (`bptt_windows`; `DataSpec.input_shape == (bptt,)`),
carrying the recurrent state from one window to the next.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.base import LANGUAGE_MODEL, Dataset, DataSpec, Split

FORMAT = "nasforge.text"
VERSION = 1
EOS = "<eos>"
UNK = "<unk>"
_TRAIN_NAME = re.compile(r"^(?:(.*)[._-])?train\.txt$")

T = TypeVar("T")


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a text file (compressed or not, as CSV files are read); an empty file is a DataError."""
    from nasforge.data.csv import read_text_file

    return read_text_file(path, kind="a text corpus").splitlines()


def tokenize(lines: Iterable[str]) -> list[str]:
    """Words of each line, then `<eos>` (one per line, as the usual PTB token counts assume)."""
    words: list[str] = []
    for line in lines:
        words.extend(line.split())
        words.append(EOS)
    return words


class Vocabulary:
    """Words <-> ids; JSON so a checkpoint can encode new text exactly as training did."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = tuple(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if UNK not in self.index:
            raise DataError(f"vocabulary has no {UNK} token")
        self.unk = self.index[UNK]

    @staticmethod
    def build(tokens: Sequence[str], max_size: int | None = None) -> Vocabulary:
        """Most frequent first, ties by first appearance; `<eos>` and `<unk>` always present."""
        counts = Counter(tokens)
        first: dict[str, int] = {}
        for i, w in enumerate(tokens):
            first.setdefault(w, i)
        ranked = sorted(counts, key=lambda w: (-counts[w], first[w]))
        for special in (EOS, UNK):
            if special not in counts:
                ranked.append(special)
        if max_size is not None and len(ranked) > max_size:
            position = {w: i for i, w in enumerate(ranked)}
            kept = [*[w for w in ranked if w not in (EOS, UNK)][:max_size - 2], EOS, UNK]
            ranked = sorted(kept, key=position.__getitem__)  # the specials always stay, in frequency order
        return Vocabulary(ranked)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Iterable[str]) -> np.ndarray:
        get, unk = self.index.get, self.unk
        return np.fromiter((get(w, unk) for w in tokens), dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        return [self.words[int(i)] for i in ids]

    def transform(self, lines: str | Iterable[str]) -> np.ndarray:
        """Raw text (one string or lines) -> the id stream a model reads."""
        return self.encode(tokenize([lines] if isinstance(lines, str) else lines))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "words": list(self.words)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> Vocabulary:
        if data.get("format") != FORMAT or data.get("version") != VERSION:
            raise DataError(f"not a {FORMAT} version {VERSION} vocabulary "
                            f"(format={data.get('format')!r}, version={data.get('version')!r})")
        return Vocabulary(data["words"])


def batchify(stream: T, batch: int) -> T:
    """(n,) -> (batch, n // batch): `batch` contiguous parallel streams; the tail that does not fit is dropped."""
    length = len(stream) // batch  # type: ignore[arg-type]
    if length < 1:
        raise ConfigError(f"a stream of {len(stream)} tokens is too short for {batch} parallel rows")  # type: ignore[arg-type]
    return stream[:batch * length].reshape(batch, length)  # type: ignore[index, no-any-return]


def bptt_windows(length: int, bptt: int) -> list[tuple[int, int]]:
    """(start, end) column ranges of truncated-BPTT windows covering `length` steps; the last may be short."""
    return [(s, min(s + bptt, length)) for s in range(0, length, bptt)]


def corpus_files(path: str | os.PathLike[str]) -> dict[str, str]:
    """A folder or a `*train.txt` file -> paths of its `train`, and if present `valid` and `test` files."""
    p = Path(path)
    if p.is_dir():
        trains = sorted(f for f in p.iterdir() if f.is_file() and _TRAIN_NAME.match(f.name.lower()))
        if not trains:
            raise DataError(f"{path}: no training corpus (a file named like ptb.train.txt or train.txt)")
        if len(trains) > 1:
            raise DataError(f"{path}: several training corpora ({', '.join(f.name for f in trains)}); "
                            "give the file itself")
        p = trains[0]
    elif not p.is_file():
        raise DataError(f"{path}: file not found")
    files = {"train": str(p.resolve())}
    lower = p.name.lower()
    cut = lower.rfind("train")
    for part, names in (("valid", ("valid", "val", "dev")), ("test", ("test",))):
        for name in names:
            sibling = p.with_name(p.name[:cut] + name + p.name[cut + 5:])
            if cut >= 0 and sibling.is_file():
                files[part] = str(sibling.resolve())
                break
    return files


def is_corpus(path: str | os.PathLike[str]) -> bool:
    """A folder holding a `*train.txt`, or such a file with a `valid` sibling (a CSV is rarely named so)."""
    p = Path(path)
    if p.is_dir():
        return any(f.is_file() and _TRAIN_NAME.match(f.name.lower()) for f in p.iterdir())
    if p.is_file() and _TRAIN_NAME.match(p.name.lower()):
        return "valid" in corpus_files(p)
    return False


class TextProvider:
    """A PTB-format corpus: a folder (`ptb.train.txt`, `ptb.valid.txt`, `ptb.test.txt`) or the train file.

    `valid_file`/`test_file` override the sibling files; without a validation (test) file the last
    `valid_fraction` (`test_fraction`) of the training stream is held out, contiguously. `max_tokens`
    keeps only the first tokens of the training stream (the vocabulary still comes from all of it);
    `max_vocab` keeps the most frequent words, the rest becoming `<unk>`.
    """

    def __init__(self, path: str | os.PathLike[str], *, valid_file: str | None = None, test_file: str | None = None,
                 bptt: int = 35, valid_fraction: float = 0.1, test_fraction: float = 0.0,
                 max_tokens: int | None = None, max_vocab: int | None = None) -> None:
        files = corpus_files(path)
        for part, given in (("valid", valid_file), ("test", test_file)):
            if given is not None:
                if not os.path.isfile(given):
                    raise DataError(f"{given}: file not found ({part}_file)")
                files[part] = os.path.abspath(given)
        for name, count, low in (("bptt", bptt, 1), ("max_tokens", max_tokens, 2), ("max_vocab", max_vocab, 3)):
            if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < low):
                raise ConfigError(f"{name} must be an integer of at least {low}, got {count!r}")
        for name, share in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
            if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
                raise ConfigError(f"{name} must be a number in [0, 1), got {share!r}")
        if "valid" not in files and not valid_fraction > 0:
            raise ConfigError(f"{files['train']}: no validation file found; give valid_file or valid_fraction > 0")
        self.files = files
        self.bptt = int(bptt)
        self.valid_fraction = float(valid_fraction)
        self.test_fraction = float(test_fraction)
        self.max_tokens = max_tokens
        self.max_vocab = max_vocab

    def config(self) -> dict[str, Any]:
        return {"kind": "text", "path": self.files["train"], "valid_file": self.files.get("valid"),
                "test_file": self.files.get("test"), "bptt": self.bptt, "valid_fraction": self.valid_fraction,
                "test_fraction": self.test_fraction, "max_tokens": self.max_tokens, "max_vocab": self.max_vocab}

    def load(self) -> Dataset:
        train_tokens = tokenize(read_lines(self.files["train"]))
        vocab = Vocabulary.build(train_tokens, self.max_vocab)
        streams = {"train": vocab.encode(train_tokens)}
        for part in ("valid", "test"):
            if part in self.files:
                streams[part] = vocab.encode(tokenize(read_lines(self.files[part])))
        # held-out tails of the training stream, test last (as far from the training text as possible)
        n = len(streams["train"])
        cuts = {part: round(n * fraction) for part, fraction in
                (("test", self.test_fraction), ("valid", self.valid_fraction)) if part not in streams and fraction > 0}
        end = n
        for part in ("test", "valid"):
            if part in cuts:
                streams[part] = streams["train"][end - cuts[part]:end]
                end -= cuts[part]
        streams["train"] = streams["train"][:end]
        if self.max_tokens is not None:
            streams["train"] = streams["train"][:self.max_tokens]
        for part, ids in streams.items():
            if len(ids) < 2:
                raise DataError(f"{self.files.get(part, self.files['train'])}: the {part} stream has "
                                f"{len(ids)} token(s); need at least 2")
        splits = {part: Split(ids[:-1].copy(), ids[1:].copy()) for part, ids in streams.items()}
        spec = DataSpec(LANGUAGE_MODEL, (self.bptt,), len(vocab))
        source = self.config() | {"task": LANGUAGE_MODEL, "vocabulary": len(vocab),
                                  "tokens": {part: len(ids) for part, ids in streams.items()},
                                  "unknown_rate": {part: float(np.mean(ids == vocab.unk))
                                                   for part, ids in streams.items()}}
        return Dataset(spec, splits["train"], splits["valid"], splits.get("test"), preprocessor=vocab,
                       source=source)
