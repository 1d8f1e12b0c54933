"""Charsets: symbols from a string or a file, blank position, case folding, unknown symbols."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ocrframe.charset import Charset, LabelError

ALNUM = "0123456789abcdefghijklmnopqrstuvwxyz"
PITCHES = ["C4", "D4", "E4", "F4", "G4", "A4", "B4", "C5", "rest"]


def test_string_charset_with_blank_first_shifts_symbols_by_one():
    charset = Charset("abc", blank="first")
    assert charset.blank == 0
    assert charset.num_classes == 4
    assert charset.encode("cab") == [3, 1, 2]


def test_string_charset_with_blank_last_puts_the_blank_after_the_symbols():
    charset = Charset("abc", blank="last")
    assert charset.blank == 3
    assert charset.num_classes == 4
    assert charset.encode("cab") == [2, 0, 1]


def test_paper_charset_has_37_classes():
    assert Charset(ALNUM).num_classes == 37


def test_decode_skips_blanks_and_keeps_repeats():
    charset = Charset("abc", blank="first")
    assert charset.decode([1, 0, 1, 2, 2]) == "aabb"


def test_file_charset_with_multi_character_tokens_uses_space_separated_labels(tmp_path):
    path = tmp_path / "pitches.txt"
    path.write_text("\n".join(PITCHES) + "\n", encoding="utf-8")
    charset = Charset(str(path))
    assert charset.separator == " "
    assert charset.num_classes == len(PITCHES) + 1
    assert charset.encode("C4 E4  rest") == [1, 3, 9]  # extra spaces between tokens are harmless
    assert charset.decode([1, 0, 3, 9]) == "C4 E4 rest"


def test_file_charset_of_single_characters_is_character_level(tmp_path):
    path = tmp_path / "letters.txt"
    path.write_text("x\ny\n\nz\n", encoding="utf-8")  # blank lines are ignored
    charset = Charset(path)
    assert charset.separator == ""
    assert charset.tokens == ["x", "y", "z"]
    assert charset.encode("zyx") == [3, 2, 1]


def test_missing_charset_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="charset file .*missing.txt"):
        Charset(str(tmp_path / "missing.txt"))


def test_duplicate_symbols_are_refused_by_name():
    with pytest.raises(ValueError, match=r"\['a'\]"):
        Charset("abca")


@pytest.mark.parametrize("case, text, expected", [("lower", "HeLLo", "hello"), ("upper", "HeLLo", "HELLO")])
def test_case_folding(case, text, expected):
    charset = Charset(ALNUM + ALNUM.upper()[10:], case=case)
    assert charset.clean(text).text == expected


def test_case_keep_reports_capitals_outside_a_lowercase_charset():
    assert Charset(ALNUM, case="keep").clean("Hello").unknown == ("H",)


def test_unknown_skip_reports_the_unknown_symbols_and_keeps_the_text():
    label = Charset(ALNUM, unknown="skip").clean("a-b!c-")
    assert label.unknown == ("-", "!")
    assert label.text == "a-b!c-"


def test_unknown_remove_drops_the_unknown_symbols():
    assert Charset(ALNUM, unknown="remove").clean("a-b!c").text == "abc"


def test_unknown_error_raises_naming_the_symbols():
    with pytest.raises(LabelError, match=r"'a-b'.*\['-'\]"):
        Charset(ALNUM, unknown="error").clean("a-b")


def test_encoding_an_unknown_symbol_raises_label_error():
    with pytest.raises(LabelError, match="'!'"):
        Charset(ALNUM).encode("ab!")


@pytest.mark.parametrize("argument", [dict(blank="middle"), dict(case="title"), dict(unknown="ignore")])
def test_invalid_options_are_refused(argument):
    with pytest.raises(ValueError):
        Charset(ALNUM, **argument)


@given(text=st.text(alphabet=ALNUM, max_size=30), blank=st.sampled_from(["first", "last"]))
def test_encode_decode_round_trip_for_characters(text, blank):
    charset = Charset(ALNUM, blank=blank)
    indices = charset.encode(text)
    assert len(indices) == len(text)
    assert charset.blank not in indices
    assert all(0 <= i < charset.num_classes for i in indices)
    assert charset.decode(indices) == text


@given(tokens=st.lists(st.sampled_from(PITCHES), max_size=20), blank=st.sampled_from(["first", "last"]))
def test_encode_decode_round_trip_for_tokens(tokens, blank):
    charset = Charset(PITCHES, blank=blank)
    text = " ".join(tokens)
    indices = charset.encode(text)
    assert len(indices) == len(tokens)
    assert charset.blank not in indices
    assert charset.decode(indices) == text
