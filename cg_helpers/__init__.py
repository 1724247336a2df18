"""cg_helpers: fill-in-the-middle code completion with CodeGemma through KerasHub.

Importing this package never imports keras, so the backend can still be chosen afterwards::

    from cg_helpers.backend import use_backend
    use_backend("jax")                      # before anything imports keras
    from cg_helpers.loading import load_model
    from cg_helpers.completion import Completer

Modules, one per concern: ``fim`` (prompts, pure Python), ``completion`` (the engine),
``loading`` (presets), ``tiny_model`` (small local models), ``credentials``, ``backend``,
``runtime``, ``memory``, ``quantization``, ``widgets``, ``evaluation``, ``distributed``, ``cli``.
"""

__version__ = "0.1.0"
