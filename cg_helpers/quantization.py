"""int8 / int4 weight quantization of a loaded KerasHub causal LM, on every backend.

Plain ``lm.quantize("int8")`` fails on TensorFlow and JAX before the first ``generate`` with
"Cannot quantize a layer that isn't yet built … gemma_tokenizer": ``Model.quantize`` walks every
layer, the preprocessor's tokenizer included, and that one is only built by the first call.
It fails *after* quantizing the backbone, leaving a half-done model; :func:`quantize` accepts
such a model and finishes the job.
:func:`quantize` runs the same public ``lm.quantize`` but leaves the preprocessor's layers out
(``filters=``), so it works before or after the first ``generate``, on JAX, TensorFlow and
torch, and keras-hub still resets its compiled generate function.

The quantized model generates as before and survives ``save_to_preset`` / ``from_preset``.
For a 7B model, mind the host RAM: the float model must be loaded before it can be quantized
(see :func:`cg_helpers.memory.memory_plan`).

Example:
    >>> from cg_helpers.quantization import quantize, weight_bytes      # doctest: +SKIP
    >>> lm = keras_hub.models.GemmaCausalLM.from_preset("code_gemma_2b_en")  # doctest: +SKIP
    >>> quantize(lm, "int8")                                              # doctest: +SKIP
    >>> lm.save_to_preset("/content/code_gemma_2b_int8")                  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

__all__ = ["MODES", "quantize", "quantization_mode", "weight_bytes"]

#: Weight-only quantization modes supported here.
MODES: tuple[str, ...] = ("int8", "int4")


def _causal_lm(model: Any) -> Any:
    """Accept a CausalLM or a :class:`cg_helpers.loading.LoadedModel` (``.model``)."""
    lm = model.model if hasattr(model, "model") and not hasattr(model, "backbone") else model
    if not hasattr(lm, "backbone") or not hasattr(lm, "quantize"):
        raise TypeError(f"quantize needs a KerasHub CausalLM (e.g. GemmaCausalLM) or a "
                        f"LoadedModel, got {type(model).__name__}.")
    return lm


def quantization_mode(model: Any) -> str | None:
    """The quantization mode of the model's weights (``"int8"``, ``"int4"``) or ``None``.

    Example:
        >>> quantization_mode(lm)            # doctest: +SKIP
        'int8'
    """
    lm = _causal_lm(model)
    for layer in lm.backbone._flatten_layers():
        mode = getattr(layer, "quantization_mode", None)   # also set on layers from a preset
        if isinstance(mode, str) and mode:
            return mode
    return None


def weight_bytes(model: Any) -> int:
    """Bytes taken by the backbone's weights as stored (int8/int4 kernels plus their scales).

    Example:
        >>> weight_bytes(lm) / 1e9           # doctest: +SKIP
        2.6
    """
    import numpy as np

    lm = _causal_lm(model)
    total = 0
    for w in lm.backbone.weights:
        dtype = str(getattr(w, "dtype", "float32"))
        itemsize = 1 if dtype in ("int4", "uint4") else np.dtype(dtype).itemsize  # int4 is packed in int8
        total += int(np.prod(w.shape)) * itemsize
    return total


def quantize(model: Any, mode: Literal["int8", "int4"] = "int8") -> Any:
    """Quantize the weights of a loaded causal LM in place; works on JAX, TensorFlow and torch.

    Args:
        model: a KerasHub ``CausalLM`` (e.g. from ``GemmaCausalLM.from_preset``) or a
            :class:`cg_helpers.loading.LoadedModel`.
        mode: ``"int8"`` (about half of 16-bit weights) or ``"int4"`` (about a quarter).

    Returns:
        The same object, quantized (so it chains: ``quantize(lm).generate(...)``).

    Raises:
        ValueError: unknown mode, or the model is already quantized in another mode (the same
            mode, e.g. after a failed plain ``lm.quantize``, only warns).
        TypeError: not a KerasHub causal LM.

    Example:
        >>> lm = quantize(keras_hub.models.GemmaCausalLM.from_preset(path), "int4")  # doctest: +SKIP
    """
    if mode not in MODES:
        raise ValueError(f"Unknown quantization mode {mode!r}; choose one of {', '.join(MODES)}. "
                         "(Keras' float8 mode is for training and saves no memory at inference.)")
    lm = _causal_lm(model)
    if not lm.backbone.built:
        raise ValueError("The backbone is not built yet: load the model with from_preset (or call "
                         "it once) before quantizing.")
    current = quantization_mode(lm)
    if current == mode:
        # Typically left by a plain ``lm.quantize`` that quantized the backbone and then failed
        # on the tokenizer: finish its job (reset the stale compiled generate function).
        warnings.warn(f"The model is already quantized to {mode} (perhaps by an lm.quantize "
                      "call that failed half-way); keeping it and resetting its compiled "
                      "generate function.", RuntimeWarning, stacklevel=2)
        lm.generate_function = None
        return model
    if current is not None:
        raise ValueError(f"The model is already quantized ({current}). Load the float preset "
                         "again to quantize it a different way.")
    preprocessor = getattr(lm, "preprocessor", None)
    skip = {id(layer) for layer in preprocessor._flatten_layers()} if preprocessor is not None else set()
    with warnings.catch_warnings():
        # Keras warns once per layer type without a quantize method (norms, rotary embedding…).
        warnings.filterwarnings("ignore", message=r".*does not have a `quantize` method.*")
        lm.quantize(mode, filters=lambda layer: id(layer) not in skip)
    if quantization_mode(lm) != mode:
        raise RuntimeError(f"Quantization to {mode} changed no layer of {type(lm).__name__}; "
                           "this model type has no quantizable Dense/Embedding layers.")
    return model
