"""The paper's Table 2 in one command (`ocrframe test --lexicon ...`) on a tiny generated set, and
per-image lexicons reaching the decoder from an LMDB."""
from __future__ import annotations

import csv
import json

import pytest
import torch
from mmengine.config import Config

from conftest import CONFIG, make_lmdb, random_words, write_word_folder
from ocrframe.cli import main
from ocrframe.data.transforms import Grayscale, Resize, ToTensor, pad_collate
from ocrframe.evaluation import sign_test
from ocrframe.registry import DATASETS, MODELS

WORDS = random_words(6, seed=5)
# Each image's lexicon: its own word and two others. With a random network the lexicon-free
# reading is noise, so what the columns can be checked against is the lexicons themselves.
LEXICONS = {i: [w, WORDS[(i + 1) % len(WORDS)], "zz" + w] for i, w in enumerate(WORDS)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("table2")
    folder = write_word_folder(base / "folder", WORDS, LEXICONS)
    lmdb = make_lmdb(folder, base / "lmdb")
    plain = write_word_folder(base / "plain", WORDS)  # no lexicons
    (base / "words.txt").write_text("\n".join(WORDS[:3]) + "\n", encoding="utf-8")
    return dict(folder=folder, lmdb=lmdb, plain=plain, words=base / "words.txt", base=base)


def read_predictions(path) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def test_table_two_rows_are_datasets_and_columns_lexicons(checkpoint, data, tmp_path, capsys):
    out = tmp_path / "predictions.tsv"
    code = main(["test", str(CONFIG), str(checkpoint), "--data", str(data["folder"]), str(data["lmdb"]),
                 "--lexicon", "none", "sample", "full", str(data["words"]), "--predictions", str(out),
                 "--work-dir", str(tmp_path / "w")])
    assert code == 0
    printed = capsys.readouterr().out
    assert "word accuracy % (case-insensitive alphanumerics)" in printed
    assert "| dataset | none | sample | full | words.txt |" in printed
    rows = read_predictions(out)
    assert len(rows) == 2 * 4 * len(WORDS)  # datasets x columns x images
    assert {r["dataset"] for r in rows} == {"folder", "lmdb"}
    union = {w for words in LEXICONS.values() for w in words}
    for row in rows:
        truth_index = WORDS.index(row["truth"])
        if row["lexicon"] == "sample":  # read from gt.txt for one set, from lexicon-%09d for the other
            assert row["prediction"] in LEXICONS[truth_index]
        elif row["lexicon"] == "full":
            assert row["prediction"] in union
        elif row["lexicon"] == "words.txt":
            assert row["prediction"] in WORDS[:3]
        assert float(row["score"]) <= 0
        assert row["correct"] == str(int(row["prediction"] == row["truth"]))
    # the printed accuracy is the file's, per dataset and column
    for dataset in ("folder", "lmdb"):
        line = next(line for line in printed.splitlines() if line.startswith(f"| {dataset} |"))
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        for column, cell in zip(["none", "sample", "full", "words.txt"], cells):
            mine = [r for r in rows if r["dataset"] == dataset and r["lexicon"] == column]
            accuracy = 100 * sum(r["correct"] == "1" for r in mine) / len(mine)
            assert cell.split(" / ")[0] == f"{accuracy:.1f}"
            assert float(cell.split(" / ")[2]) > 0  # ms per sample


def test_per_image_lexicons_from_a_jsonl_file_and_a_clear_error_without_lexicons(checkpoint, data, tmp_path, capsys):
    jsonl = tmp_path / "lexicons.jsonl"
    jsonl.write_text("".join(json.dumps(dict(key=f"img_{i:03d}.png", lexicon=[w])) + "\n"
                             for i, w in enumerate(WORDS)), encoding="utf-8")
    out = tmp_path / "p.tsv"
    assert main(["test", str(CONFIG), str(checkpoint), "--data", str(data["plain"]), "--lexicon", str(jsonl),
                 "--predictions", str(out), "--work-dir", str(tmp_path / "w")]) == 0
    rows = read_predictions(out)
    assert all(r["prediction"] == r["truth"] for r in rows) and len(rows) == len(WORDS)  # one word each
    assert "| plain | 100.0 / 1.000 /" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"plain: 6 of 6 images have no lexicon of its own \(LMDB lexicon-%09d"):
        main(["test", str(CONFIG), str(checkpoint), "--data", str(data["plain"]), "--lexicon", "sample",
              "--predictions", str(out), "--work-dir", str(tmp_path / "w")])
    with pytest.raises(FileNotFoundError, match="--lexicon nowhere.txt: not none, sample or full"):
        main(["test", str(CONFIG), str(checkpoint), "--lexicon", "nowhere.txt"])


def test_the_recognizer_hands_an_lmdbs_lexicons_to_a_lexicon_decoder(data):
    cfg = Config.fromfile(str(CONFIG))
    torch.manual_seed(0)
    model = MODELS.build(dict(cfg.model, decoder=dict(type="LexiconDecoder", mode="exhaustive"))).eval()
    pipeline = [Grayscale(), Resize(height=32, width=None, min_width=100), ToTensor()]
    dataset = DATASETS.build(dict(type="LMDBDataset", path=str(data["lmdb"]), charset=cfg.charset, pipeline=pipeline))
    samples = [dataset[i] for i in range(len(WORDS))]
    assert [s["lexicon"] for s in samples] == [LEXICONS[i] for i in range(len(WORDS))]
    batch = pad_collate(samples)
    with torch.no_grad():
        predictions = model(batch["inputs"], batch["data_samples"], mode="predict")
    assert all(p["pred"] in LEXICONS[i] for i, p in enumerate(predictions))
    assert all(p["candidates"] == 3 for p in predictions)  # every word of the image's lexicon was scored


def test_batches_joined_for_decoding_read_as_they_do_apart():
    from ocrframe_ctc import BeamSearchDecoder, GreedyDecoder

    from ocrframe import Charset
    from ocrframe.evaluation import decoding_chunks

    charset = Charset("abc")
    generator = torch.Generator().manual_seed(0)
    batches = [((3 * torch.randn(n, frames, 4, generator=generator)).log_softmax(-1),
                torch.randint(1, frames + 1, (n,), generator=generator)) for n, frames in [(3, 5), (2, 9), (4, 2)]]
    for decoder in (GreedyDecoder(charset), BeamSearchDecoder(charset, beam_width=4)):
        apart = [(p.text, p.score) for lp, lengths in batches for p in decoder.decode(lp, lengths)]
        chunks = list(decoding_chunks(batches, size=5))
        assert [len(lp) for lp, _ in chunks] == [5, 4]
        joined = [(p.text, p.score) for lp, lengths in chunks for p in decoder.decode(lp, lengths)]
        assert [t for t, _ in joined] == [t for t, _ in apart]
        assert [s for _, s in joined] == pytest.approx([s for _, s in apart], abs=1e-4)


def test_an_unreadable_image_counts_once_as_an_error_not_replaced_by_a_repeat(checkpoint, data, tmp_path, capsys):
    folder = write_word_folder(tmp_path / "corrupt", WORDS)
    (folder / "img_002.png").write_bytes(b"not a png")
    out = tmp_path / "predictions.tsv"
    code = main(["test", str(CONFIG), str(checkpoint), "--data", str(folder), "--lexicon", "none",
                 "--predictions", str(out), "--work-dir", str(tmp_path / "w")])
    assert code == 0
    rows = read_predictions(out)
    assert sorted(row["key"] for row in rows) == [f"img_{i:03d}.png" for i in range(len(WORDS))]  # each image once
    (bad,) = [row for row in rows if row["key"] == "img_002.png"]
    assert bad["truth"] == WORDS[2] and bad["prediction"] == "" and bad["correct"] == "0"
    assert f"1 of {len(WORDS)} images unreadable, counted as errors (e.g. img_002.png)" in capsys.readouterr().out


def test_evaluation_batches_generated_samples_by_their_rendered_width(monkeypatch):
    """A dataset without ``aspect_ratio`` (generated data: a width is known once rendered) is still
    evaluated in batches of similar width: each chunk of loaded samples sorted, every sample once."""
    from ocrframe import evaluation

    class Generated:
        def __init__(self, widths):
            self.widths = widths

        def __len__(self):
            return len(self.widths)

        def __getitem__(self, index):
            return dict(width=self.widths[index], key=str(index))

    widths = [int(w) for w in torch.randint(8, 400, (50,), generator=torch.Generator().manual_seed(0))]
    monkeypatch.setattr(evaluation, "LOAD_CHUNK", 20)
    batches = [[s["key"] for s in batch] for batch in evaluation.width_sorted_batches(Generated(widths), 8)]
    assert sorted(int(k) for batch in batches for k in batch) == list(range(50))
    for start in range(0, 50, 20):  # within a chunk, narrowest first and cut into batches of at most 8
        chunk = [int(k) for batch in batches for k in batch if start <= int(k) < start + 20]
        assert [widths[i] for i in chunk] == sorted(widths[start:start + 20])
    assert max(len(b) for b in batches) == 8
    assert all(len({int(k) // 20 for k in batch}) == 1 for batch in batches)  # a batch never spans two chunks


def write_predictions(path, rows, header=("dataset", "lexicon", "key", "truth", "prediction", "score", "correct"),
                      lexicon="none"):
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows([("test set", lexicon, key, truth, reading, "0.5", int(truth == reading))
                          for key, truth, reading in rows])
    return path


def test_the_sign_test_is_symmetric_capped_at_one_and_exact():
    assert sign_test(0, 0) == sign_test(1, 1) == sign_test(3, 4) == 1.0
    assert sign_test(7, 2) == sign_test(2, 7) == 2 * (1 + 9 + 36) / 512
    assert sign_test(10, 0) == 2 / 1024
    assert sign_test(40, 40) == 1.0 and sign_test(60, 20) < 1e-4 < sign_test(45, 35) < 1


def test_compare_pairs_two_models_image_by_image_with_the_sign_test(tmp_path, capsys):
    truths = [f"w{i}" for i in range(10)]
    # A reads all but the last two; B misses the first seven and reads the last two.
    a = write_predictions(tmp_path / "a.tsv", [(f"k{i}", t, t if i < 8 else "x") for i, t in enumerate(truths)])
    b = write_predictions(tmp_path / "b.tsv", [(f"k{i}", t, "x" if i < 7 else t) for i, t in enumerate(truths)])
    assert main(["compare", str(a), str(b)], one_line_errors=True) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| test set")]
    # only A: k0..k6 (7); only B: k8, k9 (2); 9 disagreements split 7:2 -> p = 2 * (1 + 9 + 36) / 512
    assert row == [f"| test set | none | 10 | 8 (80.0%) | 3 (30.0%) | 7 | 2 | {2 * 46 / 512:.2f} |"]
    assert main(["compare", str(a), str(a)], one_line_errors=True) == 0
    assert "| 10 | 8 (80.0%) | 8 (80.0%) | 0 | 0 | 1.00 |" in capsys.readouterr().out
    # Two lexicon columns are two rows, each paired within itself.
    both_a, both_b = tmp_path / "both_a.tsv", tmp_path / "both_b.tsv"
    lexicon_a = write_predictions(tmp_path / "lex_a.tsv", [(f"k{i}", t, t) for i, t in enumerate(truths)],
                                  lexicon="sample")
    lexicon_b = write_predictions(tmp_path / "lex_b.tsv", [(f"k{i}", t, t if i else "x") for i, t in enumerate(truths)],
                                  lexicon="sample")
    both_a.write_text(a.read_text() + "".join(lexicon_a.read_text().splitlines(True)[1:]))
    both_b.write_text(b.read_text() + "".join(lexicon_b.read_text().splitlines(True)[1:]))
    assert main(["compare", str(both_a), str(both_b)], one_line_errors=True) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| test set")]
    assert rows == [f"| test set | none | 10 | 8 (80.0%) | 3 (30.0%) | 7 | 2 | {2 * 46 / 512:.2f} |",
                    "| test set | sample | 10 | 10 (100.0%) | 9 (90.0%) | 1 | 0 | 1.00 |"]


def test_compare_refuses_predictions_of_different_images_or_files_that_are_not_predictions(tmp_path, capsys):
    a = write_predictions(tmp_path / "a.tsv", [("k0", "cat", "cat"), ("k1", "dog", "dog")])
    other = write_predictions(tmp_path / "other.tsv", [("k0", "cat", "cat"), ("k2", "dog", "dog")])
    relabelled = write_predictions(tmp_path / "relabelled.tsv", [("k0", "cow", "cat"), ("k1", "dog", "dog")])
    foreign = write_predictions(tmp_path / "foreign.tsv", [("k0", "cat", "cat")], header=("path", "text", "a", "b",
                                                                                        "c", "d", "e"))
    assert main(["compare", str(a), str(other)], one_line_errors=True) == 2
    assert "1 only in the first, 1 only in the second; e.g. 'k1' only in" in capsys.readouterr().err
    assert main(["compare", str(a), str(relabelled)], one_line_errors=True) == 2
    assert "different truths ('cat', 'cow')" in capsys.readouterr().err
    assert main(["compare", str(a), str(foreign)], one_line_errors=True) == 2
    assert "not a predictions TSV of `ocrframe test --predictions`" in capsys.readouterr().err
    cut = tmp_path / "cut.tsv"
    lines = a.read_text(encoding="utf-8").splitlines()
    cut.write_text("\n".join(lines[:-1] + ["\t".join(lines[-1].split("\t")[:4])]), encoding="utf-8")  # cut short
    assert main(["compare", str(a), str(cut)], one_line_errors=True) == 2
    assert "cut.tsv, line 3: not a row of 7 columns ending in 0 or 1" in capsys.readouterr().err
    joined = tmp_path / "joined.tsv"
    joined.write_text(a.read_text() + "".join(a.read_text().splitlines(True)[1:]))
    assert main(["compare", str(a), str(joined)], one_line_errors=True) == 2
    assert "joined.tsv, line 4: image 'k0' of 'test set', lexicon 'none', a second time" in capsys.readouterr().err
    binary = tmp_path / "model.pth"
    binary.write_bytes(bytes(range(256)))
    assert main(["compare", str(a), str(binary)], one_line_errors=True) == 2
    assert "model.pth: not a predictions TSV" in capsys.readouterr().err
    assert main(["compare", str(a), str(tmp_path / "missing.tsv")], one_line_errors=True) == 2
    assert "missing.tsv" in capsys.readouterr().err
