"""Export a KerasHub Gemma / CodeGemma model to the Hugging Face transformers format.

The result is a directory that ``transformers.AutoModelForCausalLM.from_pretrained(out_dir)`` and
``transformers.AutoTokenizer.from_pretrained(out_dir)`` (a ``GemmaTokenizer``) load offline. It
is the same weights in a second framework: the FIM prompts and cleaning functions of
:mod:`cg_helpers.fim` work unchanged on its output.

How: keras-hub 0.32's own exporter (``GemmaCausalLM.export_to_transformers``) covers Gemma 1,
the CodeGemma architecture, and gives identical logits. This module wraps it with what a learner
needs around it:

* refuses models it would export wrongly (Gemma 2 features, quantized weights, no tokenizer);
* writes the settings that identity depends on explicitly into ``config.json`` (tanh-approximate
  GELU, RMSNorm epsilon, RoPE base), so a change of transformers' defaults cannot alter them;
* writes ``generation_config.json`` (bos 2, eos 1, pad 0);
* copies the practice-model label (``cg_model_info.json``) so the export is never mistaken for
  CodeGemma;
* checks that the transformers tokenizer gives keras-hub's token ids on code with tabs,
  newlines, runs of spaces and FIM tokens (the SentencePiece model is whitespace-exact).

Imports keras, keras_hub and transformers lazily: choose the Keras backend first.

Example:
    >>> from cg_helpers.hf_export import export_to_transformers, load_transformers  # doctest: +SKIP
    >>> out = export_to_transformers("practice", "/tmp/practice_hf")                  # doctest: +SKIP
    >>> tokenizer, model = load_transformers(out)                                     # doctest: +SKIP
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Sequence

from .tiny_model import MODEL_INFO_FILE

__all__ = ["PROBE_TEXTS", "export_to_transformers", "load_transformers", "check_tokenizer_ids"]

#: Strings whose token ids must be identical in keras-hub and transformers: indentation with
#: tabs and spaces, blank lines, trailing spaces, a leading space, non-ASCII, FIM tokens.
PROBE_TEXTS: tuple[str, ...] = (
    "import ",
    " leading space",
    "def f(x):\n\treturn  x  +   1\n",
    "class A:\n    def m(self):\n        pass\n\n\n# end   \n",
    "<|fim_prefix|>def add(a, b):\n    <|fim_suffix|>\n\nprint(add(1, 2))<|fim_middle|>",
    "s = 'héllo → wörld 🎉'\r\n",
)


def _load_lm(lm_or_preset_dir: Any) -> tuple[Any, dict[str, Any]]:
    """The GemmaCausalLM and its model info (label, practice flag) for a model or preset."""
    if isinstance(lm_or_preset_dir, (str, Path)):
        from .loading import load_model

        lm_or_preset_dir = load_model(lm_or_preset_dir)
    if hasattr(lm_or_preset_dir, "model") and hasattr(lm_or_preset_dir.model, "backbone"):
        # A cg_helpers.loading.LoadedModel.
        return lm_or_preset_dir.model, dict(getattr(lm_or_preset_dir, "info", {}) or {})
    if hasattr(lm_or_preset_dir, "backbone"):
        return lm_or_preset_dir, {}
    raise TypeError(
        "export_to_transformers needs a keras_hub GemmaCausalLM, a LoadedModel, a preset "
        f"directory or 'practice'; got {type(lm_or_preset_dir).__name__}."
    )


def _check_exportable(lm: Any) -> None:
    """Raise ValueError when keras-hub's Gemma exporter would not give the same model."""
    backbone = lm.backbone
    kind = type(backbone).__name__
    if kind != "GemmaBackbone":
        raise ValueError(
            f"Only Gemma 1 / CodeGemma models (GemmaBackbone) are supported here, got {kind}. "
            "Use keras-hub's own `lm.export_to_transformers(path)` for other architectures."
        )
    gemma2 = {
        "use_post_ffw_norm": False, "use_post_attention_norm": False,
        "attention_logit_soft_cap": None, "final_logit_soft_cap": None,
        "use_sliding_window_attention": False,
    }
    for attr, plain in gemma2.items():
        if getattr(backbone, attr, plain) != plain:
            raise ValueError(
                f"This GemmaBackbone uses a Gemma 2 feature ({attr}={getattr(backbone, attr)!r}) "
                "that the transformers Gemma (1) format cannot express. Export Gemma 2 models "
                "with a Gemma2 converter instead; CodeGemma presets never set it."
            )
    if not getattr(backbone, "query_head_dim_normalize", True) and (
            backbone.hidden_dim // backbone.num_query_heads != backbone.head_dim):
        raise ValueError(
            "query_head_dim_normalize=False scales queries by hidden_dim/heads, which the "
            "transformers Gemma format cannot express. CodeGemma presets use the default (True)."
        )
    for layer in backbone._flatten_layers(include_self=True, recursive=True):
        mode = getattr(getattr(layer, "dtype_policy", None), "quantization_mode", None)
        if mode:
            raise ValueError(
                f"Layer {layer.name!r} is quantized ({mode}); the exporter would write the "
                "quantized integers as if they were float weights. Export the float model, then "
                "quantize on the transformers side (e.g. bitsandbytes 4-bit on a GPU)."
            )
    if lm.preprocessor is None or getattr(lm.preprocessor, "tokenizer", None) is None:
        raise ValueError(
            "The model has no preprocessor/tokenizer, so there is no tokenizer.model to export. "
            "Load it with GemmaCausalLM.from_preset(...) (which attaches one) and retry."
        )


def _patch_config(out: Path, lm: Any) -> None:
    """Write the identity-relevant settings explicitly into config.json."""
    backbone = lm.backbone
    path = out / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config.update({
        "architectures": ["GemmaForCausalLM"],
        "hidden_act": "gelu_pytorch_tanh",        # keras Gemma: gelu(approximate=True)
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": float(backbone.layer_norm_epsilon),
        "rope_theta": 10000.0,
        "attention_bias": False,
        "dtype": str(backbone.dtype_policy.variable_dtype),
    })
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    (out / "generation_config.json").write_text(json.dumps({
        "bos_token_id": config.get("bos_token_id", 2),
        "eos_token_id": config.get("eos_token_id", 1),
        "pad_token_id": config.get("pad_token_id", 0),
    }, indent=2) + "\n", encoding="utf-8")


def check_tokenizer_ids(keras_tokenizer: Any, hf_tokenizer: Any,
                        texts: Sequence[str] = PROBE_TEXTS) -> None:
    """Raise ValueError unless both tokenizers give the same ids (no bos) for every text.

    Example:
        >>> check_tokenizer_ids(lm.preprocessor.tokenizer, hf_tok)   # doctest: +SKIP
    """
    import numpy as np

    for text in texts:
        want = [int(i) for i in np.asarray(keras_tokenizer(text)).reshape(-1)]
        got = list(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
        if want != got:
            raise ValueError(
                f"The transformers tokenizer splits {text!r} differently from keras-hub "
                f"({got[:12]} vs {want[:12]}). It probably adds a dummy prefix or normalises "
                "whitespace; check the transformers version (pinned in requirements-dev.txt)."
            )


def load_transformers(path: str | Path, *, dtype: str = "float32") -> tuple[Any, Any]:
    """``(tokenizer, model)`` from an exported directory, offline, in eval mode.

    Example:
        >>> tok, model = load_transformers("/tmp/practice_hf")   # doctest: +SKIP
        >>> model.generate(**tok("import ", return_tensors="pt"), max_new_tokens=4)  # doctest: +SKIP
    """
    import torch
    import transformers

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} has no config.json: it is not an exported model. Run "
            "export_to_transformers(model, path) first."
        )
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(path), local_files_only=True, dtype=getattr(torch, dtype))
    model.eval()
    return tokenizer, model


def export_to_transformers(lm_or_preset_dir: Any, out_dir: str | Path, *,
                           overwrite: bool = False, check_tokenizer: bool = True) -> Path:
    """Write ``lm_or_preset_dir`` as a transformers Gemma model into ``out_dir``; returns the path.

    ``lm_or_preset_dir`` is a keras_hub ``GemmaCausalLM``, a ``LoadedModel``, a local preset
    directory or ``"practice"``. The weights keep their dtype (float32 stays float32). With
    ``check_tokenizer`` the exported tokenizer is loaded and compared with keras-hub's on
    :data:`PROBE_TEXTS`.

    Example:
        >>> out = export_to_transformers(lm, "/tmp/hf_model")          # doctest: +SKIP
        >>> sorted(p.name for p in out.iterdir())                      # doctest: +SKIP
        ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.model', ...]
    """
    lm, info = _load_lm(lm_or_preset_dir)
    _check_exportable(lm)
    out = Path(out_dir).expanduser()
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(
                f"{out} already exists and is not empty. Choose a new directory or pass "
                "overwrite=True to replace it."
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    lm.export_to_transformers(str(out))
    _patch_config(out, lm)
    if info:
        (out / MODEL_INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n",
                                           encoding="utf-8")
    if check_tokenizer:
        import transformers

        hf_tokenizer = transformers.AutoTokenizer.from_pretrained(str(out), local_files_only=True)
        check_tokenizer_ids(lm.preprocessor.tokenizer, hf_tokenizer)
    return out
