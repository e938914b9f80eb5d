"""Test fixtures: a tiny GLUE folder in the original TSV layout and a tiny BERT.

Plain helper module (not a conftest) so tests import exactly what they need:

    from tests.fixtures import make_glue_dir, make_tiny_bert, ROWS, SHORT_ROWS

The data is deterministic (fixed seeds), uses only the words in VOCAB_WORDS so the
tiny WordPiece vocabulary covers it, and has labels a model can learn from the text.
It also copies the quirks of the real GLUE files that break naive readers:
CoLA has no header, MRPC train/dev start with a UTF-8 BOM, some sentences open a
double quote they never close (only csv.QUOTE_NONE reads them right), QQP and MNLI
train hold rows short of columns, and one word is non-ASCII ("café").
"""

from __future__ import annotations

import pathlib
import random
import unicodedata

import pytest

# Sentiment markers decide the label of the single-sentence tasks (CoLA, SST-2).
POSITIVE = ["good", "great", "happy", "nice"]
NEGATIVE = ["bad", "sad", "awful", "poor"]
ADJECTIVES = ["big", "small", "old", "young", "red", "green", "quiet", "loud"]
NOUNS = ["cat", "dog", "man", "woman", "boy", "girl", "car", "house", "book", "tree", "café"]
VERBS = ["saw", "liked", "found", "took", "made", "had", "wanted", "moved"]
# Words used by templates: "not" marks contradiction; "he said yes" carries the open quote.
FUNCTION_WORDS = ["the", "a", "was", "very", "not", "and", "he", "said", "yes",
                  "what", "how", "did", "does", "do", "why", "really", "is"]
VOCAB_WORDS = sorted(set(POSITIVE + NEGATIVE + ADJECTIVES + NOUNS + VERBS + FUNCTION_WORDS))

N_TRAIN, N_DEV, N_TEST = 48, 24, 20


def native_bf16() -> bool:
    import torch

    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


# Both precisions for the tests whose numbers depend on it: float32 always, and bfloat16 where the CPU computes
# it natively (and glue-run uses it by default); elsewhere it is emulated, far slower, and never the default.
PRECISIONS = [pytest.param("--no-bf16", id="float32"),
              pytest.param("--bf16", id="bfloat16",
                           marks=pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16"))]

# Data rows per file that have every column (what a reader should yield), keyed by
# (GLUE folder, file name). Header lines and short rows are not counted.
ROWS: dict[tuple[str, str], int] = {
    **{(task, split): n
       for task in ["CoLA", "SST-2", "MRPC", "STS-B", "QQP", "QNLI", "RTE", "WNLI"]
       for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV), ("test.tsv", N_TEST)]},
    ("MNLI", "train.tsv"): N_TRAIN,
    ("MNLI", "dev_matched.tsv"): N_DEV,
    ("MNLI", "dev_mismatched.tsv"): N_DEV,
    ("MNLI", "test_matched.tsv"): N_TEST,
    ("MNLI", "test_mismatched.tsv"): N_TEST,
    ("diagnostic", "diagnostic.tsv"): N_TEST,
}
# Lines per file with fewer fields than the header (what a reader should skip).
# QQP: one question holds a raw newline, so its record breaks into 2 short lines.
SHORT_ROWS: dict[tuple[str, str], int] = {("QQP", "train.tsv"): 2, ("MNLI", "train.tsv"): 1}


# --- text generation -------------------------------------------------------------


def _sentence(rng: random.Random, marker: str | None = None) -> str:
    """'the big cat saw a house .', optionally with a sentiment marker; 1 in 8 opens a quote."""
    words = ["the", rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS),
             "a", rng.choice(NOUNS)]
    if marker:
        words[1:1] = ["very", marker]  # "the very good big cat ..."
    text = " ".join(words) + " ."
    if rng.random() < 0.125:
        # The field starts with a quote that is never closed: a quote-aware csv reader
        # would swallow tabs and newlines up to the next quote in the file.
        text = f'"yes , he said {text}' if rng.random() < 0.5 else f'{text} he said "yes'
    return text


def _pair(rng: random.Random, kind: str) -> tuple[str, str]:
    """A sentence pair whose relation is visible in the words.

    same:  sentence2 repeats sentence1 (entailment / paraphrase / duplicate)
    not:   sentence2 repeats sentence1 with "not" after the verb (contradiction)
    other: sentence2 is an unrelated sentence (neutral / not_entailment)
    """
    s1 = _sentence(rng)
    if kind == "same":
        return s1, s1.replace('"', "")  # hypotheses never carry the stray quote
    if kind == "not":
        words = s1.replace('"', "").split()
        verb_at = next(i for i, w in enumerate(words) if w in VERBS)
        return s1, " ".join(words[: verb_at + 1] + ["not"] + words[verb_at + 1:])
    return s1, _sentence(rng)


def _labels(rng: random.Random, values: list, n: int) -> list:
    """n labels cycling through every value (so each one appears), in shuffled order."""
    labels = [values[i % len(values)] for i in range(n)]
    rng.shuffle(labels)
    return labels


def _question(sentence: str) -> str:
    return "what did " + sentence.rstrip(" .") + " ?"


# --- writing ---------------------------------------------------------------------


def _write(path: pathlib.Path, header: list[str] | None, rows: list[list[str]],
           bom: bool = False, extra_lines: dict[int, str] | None = None) -> None:
    """Write a TSV the way GLUE ships it: no quoting at all, '\\n' line ends.

    extra_lines maps a row position to raw text inserted before that row (short rows).
    """
    lines = ["\t".join(header)] if header else []
    for i, row in enumerate(rows):
        if extra_lines and i in extra_lines:
            lines.append(extra_lines[i])
        lines.append("\t".join(str(v) for v in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    assert len(rows) == ROWS[(path.parent.name, path.name)], path  # keep ROWS honest


def _single_sentence(rng: random.Random, label: int | None) -> str:
    # label 1 => a positive word is present, label 0 => a negative one; test rows: either.
    pool = POSITIVE if label == 1 else NEGATIVE if label == 0 else POSITIVE + NEGATIVE
    return _sentence(rng, rng.choice(pool))


def _cola(d: pathlib.Path, rng: random.Random) -> None:
    sources = ["gj04", "bc01", "ks08", "r-67", "c-05", "w_80", "clc95"]
    for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV)]:
        rows = [[rng.choice(sources), y, "" if y else "*", _single_sentence(rng, y)]
                for y in _labels(rng, [0, 1], n)]
        _write(d / "CoLA" / split, None, rows)  # no header, as in the real CoLA
    _write(d / "CoLA" / "test.tsv", ["index", "sentence"],
           [[i, _single_sentence(rng, None)] for i in range(N_TEST)])


def _sst2(d: pathlib.Path, rng: random.Random) -> None:
    for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV)]:
        rows = [[_single_sentence(rng, y), y] for y in _labels(rng, [0, 1], n)]
        _write(d / "SST-2" / split, ["sentence", "label"], rows)
    _write(d / "SST-2" / "test.tsv", ["index", "sentence"],
           [[i, _single_sentence(rng, None)] for i in range(N_TEST)])


def _mrpc(d: pathlib.Path, rng: random.Random) -> None:
    cols = ["#1 ID", "#2 ID", "#1 String", "#2 String"]
    for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV)]:
        rows = []
        for y in _labels(rng, [0, 1], n):
            s1, s2 = _pair(rng, "same" if y else "other")
            rows.append([y, rng.randint(10_000, 999_999), rng.randint(10_000, 999_999), s1, s2])
        _write(d / "MRPC" / split, ["Quality"] + cols, rows, bom=True)
    rows = [[i, rng.randint(10_000, 999_999), rng.randint(10_000, 999_999),
             *_pair(rng, rng.choice(["same", "other"]))] for i in range(N_TEST)]
    _write(d / "MRPC" / "test.tsv", ["index"] + cols, rows)


def _stsb(d: pathlib.Path, rng: random.Random) -> None:
    header = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
              "sentence1", "sentence2"]

    def pair(i: int) -> tuple[str, str, str]:
        # Replace k of the words: k=0 gives 5.000, replacing all gives about 0.
        w1 = _sentence(rng).replace('"', "").split()
        w2 = list(w1)
        for j in rng.sample(range(len(w2)), k=i % (len(w2) + 1)):
            w2[j] = rng.choice(VOCAB_WORDS)
        score = 5 * len(set(w1) & set(w2)) / len(set(w1) | set(w2))
        return " ".join(w1), " ".join(w2), f"{score:.3f}"

    meta = ["main-news", "headlines", "2015", "0001", "none", "none"]
    for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV)]:
        rows = [[i, *meta, *pair(i)] for i in range(n)]
        _write(d / "STS-B" / split, header + ["score"], rows)
    _write(d / "STS-B" / "test.tsv", header,
           [[i, *meta, *pair(i)[:2]] for i in range(N_TEST)])


def _qqp(d: pathlib.Path, rng: random.Random) -> None:
    def row(i: int, y: int) -> list:
        s1, s2 = _pair(rng, "same" if y else "other")
        return [i, 2 * i + 1, 2 * i + 2, _question(s1), _question(s2), y]

    for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV)]:
        rows = [row(i, y) for i, y in enumerate(_labels(rng, [0, 1], n))]
        # As in the real QQP train.tsv: a question with a raw newline, so the record
        # splits into 'id qid1 qid2 question1-start' and 'question1-end question2 label'.
        broken = {n // 2: "900\t901\t902\twhat did the cat\nsee ?\twhat did the dog see ?\t0"}
        _write(d / "QQP" / split, ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
               rows, extra_lines=broken if split == "train.tsv" else None)
    rows = [[i, _question(s1), _question(s2)]
            for i, (s1, s2) in enumerate(_pair(rng, rng.choice(["same", "other"]))
                                          for _ in range(N_TEST))]
    _write(d / "QQP" / "test.tsv", ["id", "question1", "question2"], rows)


NLI_KIND = {"entailment": "same", "contradiction": "not", "neutral": "other"}


def _mnli(d: pathlib.Path, rng: random.Random) -> None:
    header = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
              "sentence2_binary_parse", "sentence1_parse", "sentence2_parse",
              "sentence1", "sentence2"]
    matched = ["fiction", "government", "slate", "telephone", "travel"]
    mismatched = ["facetoface", "letters", "nineeleven", "oup", "verbatim"]

    def fields(i: int, label: str, genres: list[str]) -> list:
        s1, s2 = _pair(rng, NLI_KIND[label])
        return [i, 1000 + i, f"{1000 + i}{label[0]}", rng.choice(genres),
                f"( {s1} )", f"( {s2} )", f"(ROOT (S {s1}))", f"(ROOT (S {s2}))", s1, s2]

    labels = list(NLI_KIND)
    rows = [fields(i, y, matched) + [y, y] for i, y in enumerate(_labels(rng, labels, N_TRAIN))]
    # One row cut off after sentence2 (no label1, no gold_label).
    short = {N_TRAIN // 3: "\t".join(str(v) for v in fields(999, "neutral", matched))}
    _write(d / "MNLI" / "train.tsv", header + ["label1", "gold_label"], rows, extra_lines=short)

    for suffix, genres in [("matched", matched), ("mismatched", mismatched)]:
        rows = []
        for i, y in enumerate(_labels(rng, labels, N_DEV)):
            votes = [y] * 4 + [rng.choice(labels)]  # five annotators, the majority is gold
            rows.append(fields(i, y, genres) + votes + [y])
        _write(d / "MNLI" / f"dev_{suffix}.tsv",
               header + [f"label{k}" for k in range(1, 6)] + ["gold_label"], rows)
        _write(d / "MNLI" / f"test_{suffix}.tsv", header,
               [fields(i, rng.choice(labels), genres) for i in range(N_TEST)])


def _two_way(d: pathlib.Path, rng: random.Random, task: str, names: list[str],
             values: list, question: bool = False) -> None:
    """QNLI, RTE and WNLI: index, two texts, label; values[0] is the entailment label."""

    def texts(entails: bool) -> tuple[str, str]:
        s1, s2 = _pair(rng, "same" if entails else rng.choice(["not", "other"]))
        # QNLI: the question comes first and the sentence holding the answer second.
        return (_question(s2), s1) if question else (s1, s2)

    for split, n in [("train.tsv", N_TRAIN), ("dev.tsv", N_DEV)]:
        rows = [[i, *texts(y == values[0]), y] for i, y in enumerate(_labels(rng, values, n))]
        _write(d / task / split, ["index", *names, "label"], rows)
    _write(d / task / "test.tsv", ["index", *names],
           [[i, *texts(rng.random() < 0.5)] for i in range(N_TEST)])


def make_glue_dir(root: pathlib.Path) -> pathlib.Path:
    """Write a small GLUE folder (original download_glue_data.py layout) under root/glue_data."""
    d = pathlib.Path(root) / "glue_data"
    rng = random.Random(1234)
    _cola(d, rng)
    _sst2(d, rng)
    _mrpc(d, rng)
    _stsb(d, rng)
    _qqp(d, rng)
    _mnli(d, rng)
    _two_way(d, rng, "QNLI", ["question", "sentence"], ["entailment", "not_entailment"],
             question=True)
    _two_way(d, rng, "RTE", ["sentence1", "sentence2"], ["entailment", "not_entailment"])
    _two_way(d, rng, "WNLI", ["sentence1", "sentence2"], [1, 0])
    rows = [[i, *_pair(rng, rng.choice(list(NLI_KIND.values())))] for i in range(N_TEST)]
    _write(d / "diagnostic" / "diagnostic.tsv", ["index", "sentence1", "sentence2"], rows)
    return d


# --- tiny BERT -------------------------------------------------------------------


def _strip_accents(word: str) -> str:
    # The uncased BERT normalizer strips accents, so "café" is looked up as "cafe".
    return "".join(c for c in unicodedata.normalize("NFD", word)
                   if unicodedata.category(c) != "Mn")


def make_tiny_bert(root: pathlib.Path) -> pathlib.Path:
    """Save a randomly initialised 2-layer BERT (no head) and its tokenizer to root/tiny-bert."""
    import torch
    import transformers

    out = pathlib.Path(root) / "tiny-bert"
    out.mkdir(parents=True, exist_ok=True)
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
             + [_strip_accents(w) for w in VOCAB_WORDS]
             + ["##s", "##ed", "##ing", "##ly", ".", ",", '"', "'", "?", "!"])
    vocab_file = out / "vocab.txt"
    vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")

    # transformers 5 ignores vocab_file= (it silently builds a 5-token vocab);
    # the vocab path goes in the `vocab` argument.
    tokenizer = transformers.BertTokenizerFast(vocab=str(vocab_file), do_lower_case=True,
                                               model_max_length=128)
    tokenizer.save_pretrained(out)

    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=32,
                                     num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)  # same weights on every run
    transformers.BertModel(config).save_pretrained(out)  # config.json: ["BertModel"]
    return out


def reviews_csv(rows: int = 24, flip: int = 0, header: str = "text,label", text=None, label=None) -> str:
    """An own CSV task of the vocabulary's words whose label shows in the text; flip: that many labels fixed the
    other way (an edit by hand); text(i), label(i): the row's own instead."""
    text = text or (lambda i: f"the {(POSITIVE if i % 2 == 0 else NEGATIVE)[i % 4]} cat saw a dog")
    label = label or (lambda i: ("pos" if i % 2 == 0 else "neg") if i >= flip else ("neg" if i % 2 == 0 else "pos"))
    return "\n".join([header, *(f"{text(i)},{label(i)}" for i in range(rows))]) + "\n"


def tiny_gpt2(folder: pathlib.Path) -> pathlib.Path:
    """A GPT-2-style decoder (hidden 32, 2 layers) with a byte-level BPE tokenizer that has no padding token."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
    tok.train_from_iterator([" ".join(VOCAB_WORDS)] * 10, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = transformers.GPT2TokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                          unk_token="<|endoftext|>")
    config = transformers.GPT2Config(vocab_size=len(fast), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                     bos_token_id=fast.eos_token_id, eos_token_id=fast.eos_token_id)
    transformers.GPT2LMHeadModel(config).save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder
