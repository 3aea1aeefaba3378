"""CSV/TSV reading: formats, header detection, task inference, splits, and every bad-input error."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import numpy as np
import pytest

from nasforge.core.errors import ConfigError, DataError
from nasforge.data.csv import CSVProvider, read_features_frame, read_table


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _table(rows: int = 40, sep: str = ",", header: bool = True, seed: int = 0) -> str:
    """A small mixed table: numeric x, categorical color (with gaps), label y in {a, b} (3:1)."""
    rng = np.random.default_rng(seed)
    lines = [sep.join(["x", "color", "y"])] if header else []
    for i in range(rows):
        color = ["red", "green", "blue", ""][i % 4]
        lines.append(sep.join([f"{rng.normal():.4f}", color, "b" if i % 4 == 0 else "a"]))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- formats


def test_header_csv_with_categories_and_missing(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", _table())
    data = CSVProvider(path).load()
    assert data.spec.task == "classification" and data.spec.class_names == ("a", "b")
    assert data.spec.feature_names[0] == "x"
    assert "color=<missing>" in data.spec.feature_names and "color=red" in data.spec.feature_names
    assert data.train.x.dtype == np.float32 and data.train.y.dtype == np.int64
    assert len(data.train) + len(data.valid) == 40 and data.test is None
    assert data.source["header"] is True and data.source["sep"] == ","


def test_headerless_file_gets_colN_names_and_auto_detects(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "1,2.5,0\n2,3.5,1\n3,1.0,0\n4,0.5,1\n5,2.0,0\n6,1.5,1\n")
    table = read_table(path)
    assert table.header is False and list(table.frame.columns) == ["col0", "col1", "col2"]
    data = CSVProvider(path, label=0, task="regression").load()
    assert data.spec.feature_names == ("col1", "col2") and data.source["label_column"] == "col0"


@pytest.mark.parametrize(("text", "expected"), [
    ("a,b\n1,2\n3,4\n", True),  # text above numbers
    ("1,2\n3,4\n", False),
    ("name,kind\nx,p\ny,p\n", True),  # all text: distinct cells that do not recur below
    ("x,p\ny,p\nz,p\n", False),  # 'p' recurs in its column: data
])
def test_header_heuristic(tmp_path: Path, text: str, expected: bool) -> None:
    assert read_table(_write(tmp_path, "h.csv", text)).header is expected


def test_header_override(tmp_path: Path) -> None:
    path = _write(tmp_path, "h.csv", "10,20\n1,2\n3,4\n")
    assert read_table(path, header=True).frame.columns.tolist() == ["10", "20"]
    assert len(read_table(path, header="no").frame) == 3


def test_tsv_gzip_by_extension_and_by_magic(tmp_path: Path) -> None:
    tsv = _write(tmp_path, "d.tsv.gz", _table(sep="\t"))
    assert read_table(tsv).sep == "\t"
    misnamed = tmp_path / "d.dat"
    misnamed.write_bytes(tsv.read_bytes())
    table = read_table(misnamed)
    assert table.sep == "\t" and table.frame.shape == (40, 3)
    assert read_table(_write(tmp_path, "s.txt", "a;b;c\n1;2;3\n4;5;6\n")).sep == ";"


def test_bom_crlf_and_quoted_separators(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    rows = "".join(f'{i},"Smith, J{i % 3}",{i % 2}\r\n' for i in range(10))
    path.write_bytes(("\ufeffx,name,y\r\n" + rows).encode("utf-8"))
    table = read_table(path)
    assert list(table.frame.columns) == ["x", "name", "y"] and table.frame["name"].iloc[1] == "Smith, J1"


def test_question_marks_are_missing_and_unnamed_trailing_column_is_dropped(tmp_path: Path) -> None:
    text = "x,z,y,\n" + "".join(f"{i},{'?' if i % 3 else i},{i % 2},\n" for i in range(12))
    data = CSVProvider(_write(tmp_path, "d.csv", text), label="y").load()
    assert data.spec.feature_names == ("x", "z", "z:missing")


def test_missing_labels_are_dropped(tmp_path: Path) -> None:
    text = "x,y\n" + "".join(f"{i},{'' if i == 3 else i % 2}\n" for i in range(20))
    data = CSVProvider(_write(tmp_path, "d.csv", text)).load()
    assert data.source["dropped_rows"] == 1 and len(data.train) + len(data.valid) == 19


# ----------------------------------------------------------------------------- tasks and labels


def test_task_inference_and_override(tmp_path: Path) -> None:
    text = "x,y\n" + "".join(f"{i},{i % 3}\n" for i in range(30))
    path = _write(tmp_path, "d.csv", text)
    assert CSVProvider(path).load().spec.num_outputs == 3
    data = CSVProvider(path, task="regression").load()
    assert data.spec.task == "regression" and data.spec.num_outputs == 1 and data.train.y.dtype == np.float32
    floats = _write(tmp_path, "f.csv", "x,y\n" + "".join(f"{i},{i / 7:.3f}\n" for i in range(30)))
    assert CSVProvider(floats).load().spec.task == "regression"
    assert CSVProvider(floats, task="classification").load().spec.num_outputs == 30 - 0  # every value a class


def test_label_by_negative_index_and_index_as_text(tmp_path: Path) -> None:
    path = _write(tmp_path, "d.csv", "y,x,z\n" + "".join(f"{i % 2},{i},{i * 2}\n" for i in range(20)))
    assert CSVProvider(path, label=-3).load().source["label_column"] == "y"
    assert CSVProvider(path, label="0").load().source["label_column"] == "y"
    assert CSVProvider(path, label="z", task="regression").load().spec.feature_names == ("y", "x")


# ----------------------------------------------------------------------------- splits


def test_stratified_valid_and_test_keep_class_proportions(tmp_path: Path) -> None:
    text = "rid,y\n" + "".join(f"{i},{'rare' if i % 5 == 0 else 'common'}\n" for i in range(500))
    data = CSVProvider(_write(tmp_path, "d.csv", text), valid_fraction=0.2, test_fraction=0.2, seed=1).load()
    assert data.test is not None
    for split in (data.train, data.valid, data.test):
        assert np.mean(split.y == data.spec.class_names.index("rare")) == pytest.approx(0.2, abs=1e-9)
    ids = [set(np.round(s.x[:, 0], 4).tolist()) for s in (data.train, data.valid, data.test)]
    assert not (ids[0] & ids[2]) and not (ids[1] & ids[2]) and not (ids[0] & ids[1])
    assert sum(len(s) for s in ids) == 500
    again = CSVProvider(_write(tmp_path, "d.csv", text), valid_fraction=0.2, test_fraction=0.2, seed=1).load()
    assert np.array_equal(again.test.x, data.test.x)  # type: ignore[union-attr]


def test_valid_and_test_files(tmp_path: Path) -> None:
    train = _write(tmp_path, "train.csv", _table(40, seed=0))
    reordered = _table(12, seed=1).splitlines()
    cols = [line.split(",") for line in reordered]
    valid = _write(tmp_path, "valid.csv", "\n".join(",".join([c[2], c[0], c[1]]) for c in cols) + "\n")
    test = _write(tmp_path, "test.csv", _table(8, seed=2))
    data = CSVProvider(train, valid_file=valid, test_file=test).load()
    assert (len(data.train), len(data.valid), len(data.test or [])) == (40, 12, 8)


def test_max_rows_keeps_a_seeded_subset(tmp_path: Path) -> None:
    data = CSVProvider(_write(tmp_path, "d.csv", _table(100)), max_rows=50).load()
    assert len(data.train) + len(data.valid) == 50


# ----------------------------------------------------------------------------- prediction files


def test_read_features_frame_reordered_unseen_and_headerless(tmp_path: Path) -> None:
    data = CSVProvider(_write(tmp_path, "d.csv", _table())).load()
    pre = data.preprocessor
    new = _write(tmp_path, "new.csv", "color,x\npurple,0.5\nred,-1\n")
    frame = read_features_frame(new, file_columns=pre.file_columns, label=pre.label)
    x = pre.transform(frame, source=str(new))
    assert x.shape == (2, data.spec.input_shape[0])
    assert x[0, pre.feature_names.index("color=<other>")] == 1.0
    headerless = _write(tmp_path, "bare.csv", "0.5,red\n-1,blue\n")
    frame2 = read_features_frame(headerless, file_columns=pre.file_columns, label=pre.label)
    assert list(frame2.columns) == ["x", "color"]
    with_label = _write(tmp_path, "bare2.csv", "0.5,red,a\n-1,blue,b\n")
    frame3 = read_features_frame(with_label, file_columns=pre.file_columns, label=pre.label)
    assert pre.encode_labels(frame3).tolist() == [0, 1]
    assert np.array_equal(pre.transform(frame3), pre.transform(frame2))
    wrong = _write(tmp_path, "bare3.csv", "0.5\n-1\n")
    with pytest.raises(DataError, match=r"bare3\.csv: has 1 columns but the model expects 2 \(or 3 with the label"):
        read_features_frame(wrong, file_columns=pre.file_columns, label=pre.label)


# ----------------------------------------------------------------------------- errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.csv: file not found"):
        CSVProvider(tmp_path / "nope.csv").load()


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is a directory, not a file"):
        CSVProvider(tmp_path).load()


@pytest.mark.parametrize("text", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError, match=r"e\.csv: file is empty"):
        CSVProvider(_write(tmp_path, "e.csv", text)).load()


def test_empty_gzip_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="file is empty"):
        CSVProvider(_write(tmp_path, "e.csv.gz", "")).load()


def test_corrupt_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n" * 100)[:30])
    with pytest.raises(DataError, match="compressed data is corrupt or truncated"):
        CSVProvider(path).load()


def test_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"h\.csv: has a header but no data rows"):
        CSVProvider(_write(tmp_path, "h.csv", "x,y\n")).load()


def test_label_name_not_found_lists_columns(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"label column 'yy' not found; columns are: 'x', 'color', 'y'.*'y'\?"):
        CSVProvider(_write(tmp_path, "d.csv", _table()), label="yy").load()


def test_label_index_out_of_range(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="label index 3 is out of range for 3 columns"):
        CSVProvider(_write(tmp_path, "d.csv", _table()), label=3).load()


def test_regression_label_not_numeric(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"label column 'y' is not numeric \(e\.g\. '[ab]'\).*regression"):
        CSVProvider(_write(tmp_path, "d.csv", _table()), task="regression").load()


@pytest.mark.parametrize(("line", "fields"), [("7,8,9,10", 4), ("7,8", 2)])
def test_ragged_rows_name_the_line(tmp_path: Path, line: str, fields: int) -> None:
    text = "a,b,c\n1,2,0\n3,4,1\n" + line + "\n5,6,0\n"
    with pytest.raises(DataError, match=rf"r\.csv: line 4 has {fields} fields but the header has 3"):
        CSVProvider(_write(tmp_path, "r.csv", text)).load()


def test_all_missing_feature_column(tmp_path: Path) -> None:
    text = "x,empty,y\n" + "".join(f"{i},,{i % 2}\n" for i in range(10))
    with pytest.raises(DataError, match=r"d\.csv: column 'empty' is empty \(all values missing\)"):
        CSVProvider(_write(tmp_path, "d.csv", text)).load()


def test_only_one_class(tmp_path: Path) -> None:
    text = "x,y\n" + "".join(f"{i},yes\n" for i in range(10))
    with pytest.raises(DataError, match=r"label column 'y' has only one class \('yes'\)"):
        CSVProvider(_write(tmp_path, "d.csv", text)).load()


def test_too_few_rows(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"only 2 data row\(s\); need at least 4 for the splits"):
        CSVProvider(_write(tmp_path, "d.csv", "x,y\n1,a\n2,b\n"), valid_fraction=0.2, test_fraction=0.2).load()


def test_only_a_label_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="needs at least two columns"):
        CSVProvider(_write(tmp_path, "d.csv", "y\na\nb\na\n")).load()


def test_valid_file_columns_must_match(tmp_path: Path) -> None:
    train = _write(tmp_path, "train.csv", _table())
    valid = _write(tmp_path, "valid.csv", "x,colour,y\n1,red,a\n2,blue,b\n")
    with pytest.raises(DataError, match=r"valid\.csv: columns do not match .*train\.csv: missing 'color'; "
                                        r"unexpected 'colour'"):
        CSVProvider(train, valid_file=valid).load()
    bare_train = _write(tmp_path, "bare.csv", _table(header=False))
    bare_test = _write(tmp_path, "bare_test.csv", "1,a\n2,b\n")
    with pytest.raises(DataError, match=r"bare_test\.csv: columns do not match .*: has 2 columns, expected 3"):
        CSVProvider(bare_train, test_file=bare_test).load()


def test_unseen_class_in_valid_file_is_fine_and_bad_value_is_named(tmp_path: Path) -> None:
    train = _write(tmp_path, "train.csv", _table())
    valid = _write(tmp_path, "valid.csv", "x,color,y\n1,red,c\n2,blue,b\n")
    assert CSVProvider(train, valid_file=valid).load().spec.class_names == ("a", "b", "c")
    bad = _write(tmp_path, "bad.csv", "x,color,y\nhigh,red,a\n2,blue,b\n")
    with pytest.raises(DataError, match=r"bad\.csv: column 'x' must be numeric but has 'high'"):
        CSVProvider(train, valid_file=bad).load()


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(DataError, match="looks like a binary file"):
        CSVProvider(path).load()


@pytest.mark.parametrize(("options", "message"), [
    ({"task": "ranking"}, "task must be one of"),
    ({"header": "maybe"}, "header must be true, false or auto"),
    ({"sep": "::"}, "sep must be a single character"),
    ({"test_file": "t.csv", "test_fraction": 0.1}, "test_file or test_fraction, not both"),
    ({"max_rows": 0}, "max_rows must be an integer"),
    ({"label": 1.5}, "label must be a column name or an integer index"),
])
def test_bad_options(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CSVProvider(tmp_path / "d.csv", **options)


# ----------------------------------------------------------------------------- real data


def test_adult_loads_fast_and_stratified(shared_data: Path) -> None:
    path = shared_data / "tabular" / "adult.tsv.gz"
    start = time.perf_counter()
    data = CSVProvider(path, test_fraction=0.1, seed=0).load()
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"adult took {elapsed:.2f} s"
    assert data.source["sep"] == "\t" and data.source["header"] is True
    assert data.source["label_column"] == "target" and data.spec.task == "classification"
    assert data.spec.input_shape == (14,) and data.test is not None
    assert len(data.train) + len(data.valid) + len(data.test) == 48842
    positive = [float(np.mean(s.y)) for s in (data.train, data.valid, data.test)]
    assert max(positive) - min(positive) < 1e-3
    assert np.isfinite(data.train.x).all()
