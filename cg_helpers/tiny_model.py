"""Small local Gemma models with CodeGemma's tokens, saved as KerasHub presets.

Real CodeGemma weights need Kaggle and a GPU. This module builds small models with the same
class (``GemmaCausalLM``), the same special tokens *and ids* as the CodeGemma vocabulary, and a
SentencePiece tokenizer whose settings round-trip code exactly (tabs, newlines, runs of spaces).
They are saved with ``save_to_preset`` and loaded back with ``GemmaCausalLM.from_preset(dir)``,
the very call used for the real presets.

Two uses:

* :func:`make_test_preset` - a *random* model for fast unit tests (output is noise).
* ``tools/train_practice_model.py`` - the trained offline practice model shipped in the package.

Imports keras lazily: choose the backend (:mod:`cg_helpers.backend`) before calling these.

Example:
    >>> from cg_helpers.tiny_model import make_test_preset      # doctest: +SKIP
    >>> path = make_test_preset("/tmp/cg_test_preset")            # doctest: +SKIP
    >>> import keras_hub                                          # doctest: +SKIP
    >>> lm = keras_hub.models.GemmaCausalLM.from_preset(str(path))  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Iterable

from .fim import END_OF_TURN, FILE_SEPARATOR, FIM_MIDDLE, FIM_PREFIX, FIM_SUFFIX, START_OF_TURN

__all__ = [
    "SPECIAL_IDS", "USER_DEFINED_SYMBOLS", "MODEL_INFO_FILE", "train_tokenizer",
    "build_gemma_causal_lm", "make_test_preset", "write_model_info", "read_model_info",
    "builtin_corpus",
]

#: Ids of CodeGemma's control tokens (from the published vocabulary). The tiny models use the
#: same ids so that code written against the real model works unchanged.
SPECIAL_IDS: dict[str, int] = {
    "<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3,
    FIM_PREFIX: 67, FIM_MIDDLE: 68, FIM_SUFFIX: 69, FILE_SEPARATOR: 70,
    START_OF_TURN: 106, END_OF_TURN: 107,
}

# Ids 4..107 are user-defined symbols, in the order of the real vocabulary: <mask>, [@BOS@],
# unused slots, the FIM tokens at 67-70, more unused slots, then the turn markers at 106/107.
USER_DEFINED_SYMBOLS: list[str] = (
    ["<mask>", "[@BOS@]"]
    + [f"<unused{i}>" for i in range(61)]                      # ids 6..66
    + [FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX, FILE_SEPARATOR]      # ids 67..70
    + [f"<unused{i}>" for i in range(61, 96)]                  # ids 71..105
    + [START_OF_TURN, END_OF_TURN]                              # ids 106, 107
)

#: A JSON file written next to a preset's ``config.json`` describing what the model is.
MODEL_INFO_FILE = "cg_model_info.json"


def builtin_corpus(max_files: int = 40) -> list[str]:
    """A small deterministic corpus of Python source from the standard library (PSF license).

    Example:
        >>> len(builtin_corpus(3)) == 3
        True
    """
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    names = ["textwrap", "string", "functools", "bisect", "heapq", "keyword", "colorsys",
             "fnmatch", "glob", "shlex", "calendar", "json/encoder", "json/decoder", "copy",
             "abc", "contextlib", "dataclasses", "enum", "numbers", "operator", "random",
             "statistics", "fractions", "difflib", "pprint", "reprlib", "csv", "queue",
             "sched", "secrets", "graphlib", "ipaddress", "tokenize", "token", "typing",
             "weakref", "zipapp", "uuid", "hmac", "base64"]
    texts = []
    for name in names[:max_files]:
        path = stdlib / f"{name}.py"
        if path.exists():
            texts.append(path.read_text(encoding="utf-8"))
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, *, max_sentence_length: int = 4096,
                    input_sentence_size: int = 0, seed: int = 0) -> bytes:
    """Train a whitespace-exact SentencePiece model for code; returns the serialized proto.

    Settings: identity normalisation, no whitespace collapsing, no dummy prefix, whitespace-only
    pieces allowed, byte fallback, split digits. Special ids: pad 0, eos 1, bos 2, unk 3, and
    :data:`USER_DEFINED_SYMBOLS` from id 4 (FIM tokens at 67-70, turn markers at 106/107).

    Example:
        >>> proto = train_tokenizer(builtin_corpus(5), vocab_size=600)   # doctest: +SKIP
    """
    import sentencepiece as spm

    def sentences() -> Iterable[str]:
        # SentencePiece reads "sentences"; give it lines (with their newline) so that
        # indentation pieces such as "\n    " are learned.
        for text in texts:
            for line in text.splitlines(keepends=True):
                if line.strip():
                    yield line[:max_sentence_length]

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences()),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        character_coverage=1.0,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=False,
        allow_whitespace_only_pieces=True,
        split_by_whitespace=True,
        byte_fallback=True,
        split_digits=True,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3,
        pad_piece="<pad>", eos_piece="<eos>", bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=USER_DEFINED_SYMBOLS,
        max_sentence_length=max_sentence_length,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        num_threads=2,
        minloglevel=2,
    )
    return model.getvalue()


def build_gemma_causal_lm(
    proto: bytes,
    *,
    num_layers: int = 2,
    hidden_dim: int = 64,
    num_query_heads: int = 4,
    num_key_value_heads: int = 1,
    head_dim: int = 16,
    intermediate_dim: int = 256,
    sequence_length: int = 512,
    seed: int = 0,
    dtype: str | None = None,
) -> Any:
    """A randomly initialised ``GemmaCausalLM`` with the given tokenizer proto.

    ``num_key_value_heads=1`` matches CodeGemma 2B (multi-query attention); 7B uses 16.

    Example:
        >>> lm = build_gemma_causal_lm(train_tokenizer(builtin_corpus(5), 600))  # doctest: +SKIP
    """
    import keras
    import keras_hub

    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.GemmaTokenizer(proto=proto)
    for piece, expected in SPECIAL_IDS.items():
        got = tokenizer.token_to_id(piece)
        if got != expected:
            raise ValueError(f"Tokenizer maps {piece!r} to id {got}, expected {expected}.")
    preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=tokenizer.vocabulary_size(),
        num_layers=num_layers,
        num_query_heads=num_query_heads,
        num_key_value_heads=num_key_value_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        head_dim=head_dim,
        dtype=dtype,
    )
    return keras_hub.models.GemmaCausalLM(backbone=backbone, preprocessor=preprocessor)


def write_model_info(preset_dir: str | Path, info: dict[str, Any]) -> None:
    """Record what a local preset is (name, label, context length) next to its config.

    Example:
        >>> write_model_info("/tmp/p", {"label": "random test model"})   # doctest: +SKIP
    """
    path = Path(preset_dir) / MODEL_INFO_FILE
    path.write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_model_info(preset_dir: str | Path) -> dict[str, Any]:
    """The info written by :func:`write_model_info`, or ``{}`` for other presets.

    Example:
        >>> read_model_info("/nonexistent")
        {}
    """
    path = Path(preset_dir) / MODEL_INFO_FILE
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def make_test_preset(path: str | Path, *, vocab_size: int = 1024, seed: int = 0,
                     **model_kwargs: Any) -> Path:
    """Build a small *random* GemmaCausalLM with CodeGemma's tokens and save it as a preset.

    For tests where output quality does not matter. Takes a few seconds.

    Example:
        >>> p = make_test_preset("/tmp/cg_test_preset")                 # doctest: +SKIP
        >>> keras_hub.models.GemmaCausalLM.from_preset(str(p))          # doctest: +SKIP
    """
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    proto = train_tokenizer(builtin_corpus(), vocab_size=vocab_size, seed=seed)
    lm = build_gemma_causal_lm(proto, seed=seed, **model_kwargs)
    lm.save_to_preset(str(path))
    write_model_info(path, {
        "name": "random test model",
        "kind": "random",
        "label": "random test model (untrained, output is noise), not CodeGemma",
        "context_length": model_kwargs.get("sequence_length", 512),
        "practice": True,
    })
    return path
