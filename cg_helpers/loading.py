"""CodeGemma presets and loading: the real Kaggle presets and local preset directories.

The preset table (:data:`PRESETS`) is plain data, usable before keras is imported (the memory
plan reads it). :func:`load_model` imports keras lazily, so choose the backend first
(:func:`cg_helpers.backend.use_backend`).

Example:
    >>> PRESETS["code_gemma_2b_en"].kind
    'fim'
    >>> round(PRESETS["code_gemma_7b_en"].weight_bytes("bfloat16") / 1e9, 2)
    17.08
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

from .tiny_model import read_model_info

__all__ = [
    "PresetInfo", "PRESETS", "DTYPE_BYTES", "PRACTICE_PRESET_DIR", "LoadedModel",
    "practice_preset_path", "resolve_preset", "load_model", "kaggle_model_page",
    "load_or_practice", "practice_banner",
]

#: Bytes per parameter for each weight dtype (int8/int4 ignore the small per-channel scales).
DTYPE_BYTES: dict[str, float] = {
    "float32": 4, "bfloat16": 2, "float16": 2, "int8": 1, "int4": 0.5,
}


@dataclass(frozen=True)
class PresetInfo:
    """Facts about one CodeGemma preset (sizes from the KerasHub preset metadata)."""

    name: str
    kind: Literal["fim", "instruct"]
    params: int
    num_layers: int
    hidden_dim: int
    num_query_heads: int
    num_key_value_heads: int
    head_dim: int
    kaggle_handle: str
    description: str
    context_length: int = 8192
    vocabulary_size: int = 256000

    def weight_bytes(self, dtype: str = "bfloat16") -> int:
        """Bytes of weights in ``dtype``.

        Example:
            >>> PRESETS["code_gemma_2b_en"].weight_bytes("float16")
            5012344832
        """
        if dtype not in DTYPE_BYTES:
            raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_BYTES)}.")
        return int(self.params * DTYPE_BYTES[dtype])

    def kv_cache_bytes_per_token(self, dtype: str = "bfloat16") -> int:
        """KV-cache bytes per token per sequence (keys and values, every layer).

        Example:
            >>> PRESETS["code_gemma_2b_en"].kv_cache_bytes_per_token() // 1024
            18
        """
        act = 4 if dtype == "float32" else 2   # quantized models keep 16-bit activations
        return 2 * self.num_layers * self.num_key_value_heads * self.head_dim * act

    @property
    def model_page(self) -> str:
        """The Kaggle page where the terms must be accepted before download."""
        return kaggle_model_page(self.name)


def _preset(name: str, kind: str, params: int, layers: int, hidden: int, q: int, kv: int,
            version: int, description: str) -> PresetInfo:
    return PresetInfo(name=name, kind=kind, params=params, num_layers=layers, hidden_dim=hidden,
                      num_query_heads=q, num_key_value_heads=kv, head_dim=256,
                      kaggle_handle=f"kaggle://keras/codegemma/keras/{name}/{version}",
                      description=description)


#: The five CodeGemma presets in KerasHub.
PRESETS: dict[str, PresetInfo] = {
    p.name: p for p in [
        _preset("code_gemma_2b_en", "fim", 2_506_172_416, 18, 2048, 8, 1, 2,
                "2B, fast code completion (FIM)."),
        _preset("code_gemma_1.1_2b_en", "fim", 2_506_172_416, 18, 2048, 8, 1, 2,
                "2B v1.1, code completion (FIM), up to 6x faster per the model card."),
        _preset("code_gemma_7b_en", "fim", 8_537_680_896, 28, 3072, 16, 16, 3,
                "7B, code completion and generation (FIM)."),
        _preset("code_gemma_instruct_7b_en", "instruct", 8_537_680_896, 28, 3072, 16, 16, 3,
                "7B instruction-tuned: chat about code."),
        _preset("code_gemma_1.1_instruct_7b_en", "instruct", 8_537_680_896, 28, 3072, 16, 16, 3,
                "7B v1.1 instruction-tuned: chat about code."),
    ]
}


def kaggle_model_page(preset: str) -> str:
    """The Kaggle page for a CodeGemma preset (accept the terms there once per account).

    Example:
        >>> kaggle_model_page("code_gemma_2b_en")
        'https://www.kaggle.com/models/keras/codegemma/keras/code_gemma_2b_en'
    """
    return f"https://www.kaggle.com/models/keras/codegemma/keras/{preset}"


#: The offline practice model shipped inside the package (see its MODEL_CARD.md).
PRACTICE_PRESET_DIR = Path(__file__).parent / "presets" / "practice_codegemma"


def practice_preset_path() -> Path:
    """Path of the shipped offline practice model; a clear error if it is missing.

    The environment variable ``CG_PRACTICE_PRESET`` points it at another preset directory.

    Example:
        >>> practice_preset_path().name      # doctest: +SKIP
        'practice_codegemma'
    """
    override = os.environ.get("CG_PRACTICE_PRESET")
    if override:  # e.g. a freshly trained checkpoint, or a tiny model for quick experiments
        return Path(override).expanduser()
    if not (PRACTICE_PRESET_DIR / "config.json").is_file():
        raise FileNotFoundError(
            f"The offline practice model is missing from {PRACTICE_PRESET_DIR}. Reinstall "
            "cg_helpers from a full checkout (`pip install -e .`), or rebuild it with "
            "`python tools/train_practice_model.py`."
        )
    return PRACTICE_PRESET_DIR


def resolve_preset(preset: str | Path | None) -> tuple[str, bool]:
    """``(preset for from_preset, is_local)``; ``None`` or ``"practice"`` means the practice model.

    Example:
        >>> resolve_preset("code_gemma_2b_en")
        ('code_gemma_2b_en', False)
    """
    if preset is None or preset == "practice":
        return str(practice_preset_path()), True
    if not isinstance(preset, (str, Path)):
        raise TypeError(f"preset must be a preset name or a directory, got {type(preset).__name__}")
    text = str(preset)
    if text in PRESETS or text.startswith(("kaggle://", "hf://", "gs://", "modelscope://")):
        return text, False
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"{path} is a directory but not a KerasHub preset (no config.json). A preset "
                "directory is what `save_to_preset` writes.")
        return str(path), True
    if "/" in text or text.startswith("."):
        raise FileNotFoundError(f"No preset directory at {path}.")
    known = ", ".join(PRESETS)
    raise ValueError(f"Unknown preset {text!r}. CodeGemma presets: {known}. Or give a local "
                     "preset directory, or 'practice' for the offline practice model.")


@dataclass
class LoadedModel:
    """What :func:`load_model` loaded: the model and facts about it."""

    model: Any
    preset: str
    name: str
    label: str
    is_practice: bool
    kind: str
    dtype: str | None
    context_length: int
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"LoadedModel(name={self.name!r}, label={self.label!r}, kind={self.kind!r}, "
                f"dtype={self.dtype!r}, context_length={self.context_length}, "
                f"seconds={self.seconds:.1f})")


def load_model(preset: str | Path | None = "code_gemma_2b_en", dtype: str | None = None,
               **kwargs: Any) -> LoadedModel:
    """Load a CodeGemma preset (the real Kaggle path) or a local preset directory.

    ``preset=None`` or ``"practice"`` loads the offline practice model. ``dtype`` (e.g.
    ``"float16"`` on a T4; see :func:`cg_helpers.memory.choose_dtype`) is passed to
    ``GemmaCausalLM.from_preset`` unchanged, as are other keyword arguments.

    Example:
        >>> loaded = load_model("code_gemma_2b_en", dtype="float16")    # doctest: +SKIP
        >>> loaded.model.generate("<|fim_prefix|>import <|fim_suffix|><|fim_middle|>")  # doctest: +SKIP
    """
    target, is_local = resolve_preset(preset)
    import keras_hub

    start = time.perf_counter()
    if dtype is not None:
        kwargs["dtype"] = dtype
    if is_local:
        model = keras_hub.models.GemmaCausalLM.from_preset(target, **kwargs)
    else:
        from .credentials import kaggle_errors_explained

        # A 401/403 from Kaggle becomes an error that names the secret or terms page to fix.
        with kaggle_errors_explained(target):
            model = keras_hub.models.GemmaCausalLM.from_preset(target, **kwargs)
    seconds = time.perf_counter() - start
    info = read_model_info(target) if is_local else {}
    if is_local:
        name = info.get("name", Path(target).name)
        label = info.get("label", f"local preset {Path(target).name}")
        practice = bool(info.get("practice", False))
        kind = info.get("kind_of_prompt", "fim")
        context = int(info.get("context_length",
                               getattr(model.preprocessor, "sequence_length", 1024) or 1024))
    else:
        meta = PRESETS.get(target)
        name = target
        label = f"CodeGemma {target}"
        practice = False
        kind = meta.kind if meta else "fim"
        context = meta.context_length if meta else 8192
    return LoadedModel(model=model, preset=target, name=name, label=label, is_practice=practice,
                       kind=kind, dtype=getattr(model, "dtype_policy", None) and model.dtype_policy.name,
                       context_length=context, seconds=seconds, info=info)


def practice_banner(label: str, what: str = "completions") -> str:
    """The loud notice shown wherever the practice model's output appears.

    Example:
        >>> print(practice_banner("offline practice model, not CodeGemma").splitlines()[1])
        !!  OFFLINE PRACTICE MODEL: offline practice model, not CodeGemma
    """
    return "\n".join(["!" * 78, f"!!  OFFLINE PRACTICE MODEL: {label}",
                      f"!!  This is NOT CodeGemma: its {what} say nothing about CodeGemma's.",
                      "!" * 78])


def load_or_practice(preset: str | Path | None = "code_gemma_2b_en", *, offline: bool = False,
                     dtype: str | None = None, what: str = "completions",
                     echo: Callable[[str], Any] = print) -> LoadedModel:
    """Load ``preset``, or the offline practice model when ``offline`` or when no Kaggle
    credentials are found; says which, loudly (the notebooks' loading step).

    * A Kaggle preset first looks for credentials (:func:`cg_helpers.credentials.find_credentials`,
      which shows where they came from, never the key). None found: the reason, then the
      practice model.
    * ``dtype=None`` picks one for this machine (:func:`cg_helpers.memory.choose_dtype`:
      float16 on a T4, bfloat16 on Ampere/TPU, float32 on CPU) and says why.
    * Kaggle 401/403 errors come out actionable (see :func:`load_model`).

    Example:
        >>> loaded = load_or_practice("code_gemma_2b_en", offline=OFFLINE)   # doctest: +SKIP
    """
    use_practice = offline or preset in (None, "practice")
    if not use_practice and str(preset) in PRESETS:   # local directories need no credentials
        from .credentials import KaggleCredentialsError, find_credentials

        try:
            echo(str(find_credentials()))
        except KaggleCredentialsError as err:
            echo(f"{err}\n\n>>> No usable Kaggle credentials: using the offline practice model instead.")
            use_practice = True
    if dtype is None:
        from .memory import choose_dtype

        dtype = choose_dtype()
        reason = getattr(dtype, "reason", "")
        echo(f"dtype: {dtype}" + (f" - {reason}" if reason else ""))
    loaded = load_model("practice" if use_practice else preset, dtype=str(dtype))
    if loaded.is_practice:
        echo(practice_banner(loaded.label, what))
    return loaded
