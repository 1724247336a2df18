"""Choose the Keras backend (JAX, TensorFlow or PyTorch) before keras is imported.

Keras reads ``KERAS_BACKEND`` once, when ``keras`` is first imported; setting it afterwards
silently does nothing. :func:`use_backend` sets it, applies the backend's useful settings, and
raises a clear error when keras is already running under another backend.

**Importing this module never imports keras** (nor jax, tensorflow or torch), so it is safe to
import first thing in a notebook. A test checks this in a fresh interpreter.

Accepted names: ``"jax"``, ``"tensorflow"``, ``"torch"``, case-insensitive, plus the aliases
``"tf"`` (tensorflow) and ``"pytorch"`` (torch). Anything else is rejected with the valid names
and the closest match.

Example:
    >>> from cg_helpers.backend import use_backend       # doctest: +SKIP
    >>> use_backend("jax")                                # doctest: +SKIP
    BackendSettings(backend='jax', ...)
    >>> import keras_hub                                  # now runs on JAX   # doctest: +SKIP
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings
from dataclasses import dataclass, field

__all__ = [
    "VALID_BACKENDS", "ALIASES", "BackendAlreadyImportedError", "BackendSettings",
    "normalize_backend", "keras_backend_in_use", "use_backend",
]

#: The Keras 3 backends this project supports.
VALID_BACKENDS: tuple[str, ...] = ("jax", "tensorflow", "torch")

#: Extra spellings accepted by :func:`normalize_backend`.
ALIASES: dict[str, str] = {"tf": "tensorflow", "pytorch": "torch"}

#: Hint on how to restart, shown in errors (Colab, Kaggle, Jupyter, plain Python).
RESTART_HINT = ("Restart the Python runtime (Colab: Runtime → Restart session; Kaggle: Run → "
                "Restart & clear cell outputs; Jupyter: Kernel → Restart), then call "
                "use_backend(...) in the first cell, before anything imports keras or keras_hub.")


class BackendAlreadyImportedError(RuntimeError):
    """keras is already imported with a different backend; only a restart can change it."""


@dataclass
class BackendSettings:
    """What :func:`use_backend` did: the backend and the environment variables it set."""

    backend: str
    environment: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"Keras backend: {self.backend}"]
        lines += [f"  {k}={v}" for k, v in self.environment.items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def normalize_backend(name: str) -> str:
    """The canonical backend name for ``name``; a helpful ``ValueError`` for a misspelling.

    Example:
        >>> normalize_backend("TF")
        'tensorflow'
        >>> normalize_backend("jaxx")
        Traceback (most recent call last):
        ...
        ValueError: Unknown Keras backend 'jaxx'. Did you mean 'jax'? Valid backends: jax, tensorflow, torch (aliases: tf, pytorch).
    """
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string such as 'jax', got {type(name).__name__}")
    key = name.strip().lower()
    if key in VALID_BACKENDS:
        return key
    if key in ALIASES:
        return ALIASES[key]
    choices = list(VALID_BACKENDS) + list(ALIASES)
    close = difflib.get_close_matches(key, choices, n=1, cutoff=0.5)
    hint = ""
    if close:
        hint = f" Did you mean {ALIASES.get(close[0], close[0])!r}?"
    raise ValueError(f"Unknown Keras backend {name!r}.{hint} Valid backends: "
                     f"{', '.join(VALID_BACKENDS)} (aliases: {', '.join(ALIASES)}).")


def keras_backend_in_use() -> str | None:
    """The backend of the keras already imported in this process, or ``None`` if not imported.

    Never imports keras itself.

    Example:
        >>> keras_backend_in_use() in (None, "jax", "tensorflow", "torch")
        True
    """
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.config.backend()
    except AttributeError:  # keras only partly imported (import in progress or failed)
        try:
            return keras.backend.backend()
        except AttributeError:
            return os.environ.get("KERAS_BACKEND", "tensorflow")


def _small_cpu_threads() -> int | None:
    """Torch thread count for small CPUs: 1 on machines with up to 4 cores, else leave alone."""
    cores = os.cpu_count() or 1
    return 1 if cores <= 4 else None


def use_backend(
    name: str,
    *,
    jax_memory_fraction: float | None = None,
    jax_preallocate: bool | None = None,
    torch_threads: int | str | None = "auto",
    tf_log_level: int | None = 2,
    tf_memory_growth: bool | None = None,
) -> BackendSettings:
    """Select the Keras backend; call it before anything imports keras or keras_hub.

    Args:
        name: ``"jax"``, ``"tensorflow"`` or ``"torch"`` (aliases ``"tf"``, ``"pytorch"``).
        jax_memory_fraction: share of GPU memory JAX may take (``XLA_PYTHON_CLIENT_MEM_FRACTION``,
            JAX's default is 0.75). Raise it (e.g. 0.95) to fit a large model on one GPU.
        jax_preallocate: ``False`` stops JAX from grabbing its whole share at start-up
            (``XLA_PYTHON_CLIENT_PREALLOCATE=false``): slower, but lets other processes share.
        torch_threads: ``"auto"`` uses 1 thread on CPUs with 4 cores or fewer (measured 3-20x
            faster under load than torch's default there), an int sets it, ``None`` leaves it.
            Applied with ``torch.set_num_threads`` if torch is already imported, otherwise via
            ``OMP_NUM_THREADS``, which torch reads when it starts.
        tf_log_level: ``TF_CPP_MIN_LOG_LEVEL`` if not already set (keras-hub loads TensorFlow
            on every backend for its tokenizers; 2 hides its start-up info and warnings).
        tf_memory_growth: ``True`` lets TensorFlow grow its GPU memory as needed instead of
            taking it all (``TF_FORCE_GPU_ALLOW_GROWTH``); read when TensorFlow starts.

    Returns:
        :class:`BackendSettings` listing what was set.

    Raises:
        ValueError: unknown backend name (the message lists the valid ones).
        BackendAlreadyImportedError: keras already runs with another backend in this process.

    Example:
        >>> use_backend("jax", jax_memory_fraction=0.95)         # doctest: +SKIP
    """
    backend = normalize_backend(name)
    in_use = keras_backend_in_use()
    if in_use is not None and in_use != backend:
        raise BackendAlreadyImportedError(
            f"keras is already imported with the {in_use!r} backend, so it cannot switch to "
            f"{backend!r} in this process (keras reads KERAS_BACKEND only once, at import). "
            + RESTART_HINT)

    settings = BackendSettings(backend=backend)

    def set_env(key: str, value: str) -> None:
        os.environ[key] = value
        settings.environment[key] = value

    set_env("KERAS_BACKEND", backend)
    if tf_log_level is not None and "TF_CPP_MIN_LOG_LEVEL" not in os.environ:
        set_env("TF_CPP_MIN_LOG_LEVEL", str(int(tf_log_level)))

    if backend == "jax":
        if jax_memory_fraction is not None:
            if not 0.0 < float(jax_memory_fraction) <= 1.0:
                raise ValueError(f"jax_memory_fraction must be in (0, 1], got {jax_memory_fraction}")
            set_env("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{float(jax_memory_fraction):g}")
        if jax_preallocate is not None:
            set_env("XLA_PYTHON_CLIENT_PREALLOCATE", "true" if jax_preallocate else "false")
        if (jax_memory_fraction is not None or jax_preallocate is not None) and "jax" in sys.modules:
            note = ("jax is already imported: the GPU memory settings take effect only after a "
                    "restart of the runtime.")
            settings.notes.append(note)
            warnings.warn(note, RuntimeWarning, stacklevel=2)
    elif backend == "tensorflow" and tf_memory_growth is not None:
        set_env("TF_FORCE_GPU_ALLOW_GROWTH", "true" if tf_memory_growth else "false")
    elif backend == "torch" and torch_threads is not None:
        if torch_threads == "auto":
            threads = _small_cpu_threads()
        elif isinstance(torch_threads, int) and torch_threads >= 1:
            threads = torch_threads
        else:
            raise ValueError(f"torch_threads must be 'auto', a positive int or None, got {torch_threads!r}")
        if threads is not None:
            torch = sys.modules.get("torch")
            if torch is not None and hasattr(torch, "set_num_threads"):
                torch.set_num_threads(threads)
                settings.notes.append(f"torch.set_num_threads({threads})")
            else:
                set_env("OMP_NUM_THREADS", str(threads))
    return settings
