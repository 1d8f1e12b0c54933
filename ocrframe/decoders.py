"""Choosing a decoder: by registered name (or a unique part of one), by config, and the decoder a
lexicon calls for; reading word lists; where on the best CTC path each character starts. The decoders themselves come from plugins (the CTC plugin's
greedy, beam search and lexicon decoders)."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Sequence

import numpy as np

from ocrframe.model import takes_per_image_lexicons
from ocrframe.registry import DECODERS, ComponentError


def find_decoder(name: str) -> str:
    """A registered decoder name from an exact name, a case-insensitive one, or a unique
    case-insensitive part of one ("beam", "greedy")."""
    names = _decoder_names()
    if name in names:
        return name
    matches = [n for n in names if n.lower() == name.lower()] or [n for n in names if name.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ComponentError(f"decoder {name!r} is ambiguous: it matches {', '.join(matches)}; give the full name")
    DECODERS.get(name)  # raises, naming the nearest registered decoders
    raise AssertionError("unreachable")


def build_decoder(spec, charset):
    """A decoder from a name, a config dict or a ready decoder, built for ``charset``."""
    if hasattr(spec, "decode"):
        return spec
    cfg = dict(type=find_decoder(spec)) if isinstance(spec, str) else dict(spec)
    if isinstance(cfg.get("type"), str):
        cfg["type"] = find_decoder(cfg["type"])
    return DECODERS.build(cfg, default_args=dict(charset=charset))


def decoder_for(spec, lexicon, count: int, default, charset):
    """(decoder, extra keyword arguments of decode() holding one value per image) for ``count``
    images: ``spec`` (None: ``default``) as for :func:`build_decoder`; ``lexicon`` None, words or a
    word file for every image, or one word list per image. A lexicon without a decoder gets
    :func:`lexicon_decoder`."""
    if lexicon is None:
        return (default if spec is None else build_decoder(spec, charset)), {}
    per_image = isinstance(lexicon, (list, tuple)) and len(lexicon) > 0 and not isinstance(lexicon[0], str)
    if per_image and len(lexicon) != count:
        raise ValueError(f"got {len(lexicon)} per-image lexicons for {count} images")
    words = None if per_image else read_lexicon(lexicon)
    if spec is None:
        spec = lexicon_decoder()
    if words is not None and isinstance(spec, (str, dict)):
        cfg = dict(type=find_decoder(spec)) if isinstance(spec, str) else dict(spec)
        if "lexicon" in _init_params(DECODERS.get(cfg["type"])):
            return build_decoder(dict(cfg, lexicon=words), charset), {}
        spec = cfg
    decoder = build_decoder(spec, charset)
    if not takes_per_image_lexicons(decoder):
        raise ValueError(f"decoder {type(decoder).__name__} does not use a lexicon; decoders that do: "
                         f"{', '.join(_lexicon_decoders()) or '(none installed)'}")
    return decoder, dict(lexicons=list(lexicon) if per_image else [words] * count)


def _decoder_names() -> list[str]:
    DECODERS.import_from_location()  # loads the plugins
    return sorted(DECODERS.module_dict)


def _init_params(cls) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _lexicon_decoders() -> list[str]:
    """Registered decoders that take a lexicon (``lexicon`` at construction or ``lexicons`` in decode)."""
    def takes_lexicon(cls) -> bool:
        return "lexicon" in _init_params(cls) or takes_per_image_lexicons(cls)

    return [name for name in _decoder_names() if takes_lexicon(DECODERS.module_dict[name])]


def lexicon_decoder() -> str:
    """The decoder used for a lexicon given without one: the one whose class says it is meant for
    lexicons (``for_lexicons = True``, see the decoder slot's interface), else the only decoder
    that takes a lexicon."""
    found = _lexicon_decoders()
    meant = [name for name in found if getattr(DECODERS.module_dict[name], "for_lexicons", False)]
    if len(meant) == 1:
        return meant[0]
    if len(found) != 1:
        raise ValueError("a lexicon was given without a decoder; choose one that uses a lexicon: "
                         + (", ".join(found) if found else "none is installed"))
    return found[0]


def read_lexicon(source) -> list[str]:
    """Words from a list, or from a file of words (whitespace- or line-separated). A Hunspell
    dictionary (``.dic``, e.g. /usr/share/hunspell/en_US.dic) loses its first line (the word
    count) and each word's affix flags (``word/FLAGS``)."""
    if isinstance(source, (list, tuple)):
        return list(source)
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"lexicon file {path} does not exist (one word per line)")
    if path.suffix == ".dic":
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if lines and lines[0].strip().isdigit():
            lines = lines[1:]
        words = [line.split("/", 1)[0].strip() for line in lines]
        words = [w for w in words if w]
    else:
        words = path.read_text(encoding="utf-8").split()
    if not words:
        raise ValueError(f"lexicon file {path} holds no words")
    return words


def ctc_alignment(log_probs: np.ndarray, tokens: Sequence[int], blank: int) -> list[int]:
    """Frame at which each token starts on the most probable CTC path that yields ``tokens``
    (Viterbi over the usual blank-interleaved states). ``log_probs``: (T, K)."""
    if not tokens:
        return []
    states = np.full(2 * len(tokens) + 1, blank)
    states[1::2] = tokens
    num_frames, num_states = len(log_probs), len(states)
    # a state may also be entered from two back when it is a token differing from that one
    skip = np.zeros(num_states, dtype=bool)
    skip[3::2] = states[3::2] != states[1:-2:2]
    score = np.full(num_states, -np.inf)
    score[:2] = log_probs[0, states[:2]]
    came_from = np.zeros((num_frames, num_states), dtype=np.int64)
    came_from[0] = np.arange(num_states)
    for t in range(1, num_frames):
        stay, step, jump = score, np.r_[-np.inf, score[:-1]], np.r_[-np.inf, -np.inf, score[:-2]]
        jump = np.where(skip, jump, -np.inf)
        best = np.argmax(np.stack([stay, step, jump]), axis=0)
        score = np.choose(best, [stay, step, jump]) + log_probs[t, states]
        came_from[t] = np.arange(num_states) - best
    state = num_states - 1 if score[-1] >= score[-2] else num_states - 2
    if not np.isfinite(score[state]):
        raise ValueError(f"{len(tokens)} tokens cannot be aligned to {num_frames} frames")
    path = [state]
    for t in range(num_frames - 1, 0, -1):
        state = came_from[t, state]
        path.append(state)
    path.reverse()
    starts = {}
    for t, s in enumerate(path):
        if s % 2 == 1 and s not in starts:
            starts[s] = t
    return [starts[2 * k + 1] for k in range(len(tokens))]
