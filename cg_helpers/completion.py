"""The completion engine: prompt → tokens → model → clean completion.

:class:`Completer` wraps any KerasHub ``CausalLM`` (CodeGemma, or the offline practice model)
and fixes what the raw ``generate`` call gets wrong for code completion:

* **Prompt budget.** KerasHub's packer truncates long prompts from the END, silently dropping
  the suffix and ``<|fim_middle|>``. The prompt is fitted first, keeping the code nearest the
  cursor (:func:`cg_helpers.fim.fit_to_budget`).
* **Stop tokens.** ``generate`` stops only on ``<eos>`` by default; here it stops on the four
  FIM sentinels and ``<eos>``, with ids read from the model's own tokenizer once, as a tuple.
* **Clean output.** The prompt is not echoed and no sentinel is left in the completion.
* **Compile once.** Every new ``max_length``, batch size or stop tuple compiles a new generate
  function on JAX and TensorFlow. Lengths are rounded up to a few fixed buckets (powers of 4
  from 128 up to the context length), so a session compiles at most a few times;
  :attr:`Completer.compile_count` shows how many shapes were used.
* **Streaming.** :meth:`Completer.stream` yields the completion piece by piece with a KV cache
  (KerasHub has no streaming API), holding back incomplete UTF-8.

Example:
    >>> from cg_helpers.loading import load_model                           # doctest: +SKIP
    >>> completer = Completer.from_loaded(load_model("practice"))           # doctest: +SKIP
    >>> r = completer.complete("import ", "\\nif __name__ == '__main__':\\n    sys.exit(0)")  # doctest: +SKIP
    >>> r.middle, r.stop_reason                                             # doctest: +SKIP
    ('sys', 'sentinel')
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Iterator, Literal, Sequence

import numpy as np

from . import fim
from .fim import ContextFile, FittedPrompt

__all__ = ["Sampling", "FIMRequest", "CompletionResult", "CompletionStream", "Completer",
           "default_buckets"]

StopReason = Literal["sentinel", "eos", "length", "stopped"]


@dataclass(frozen=True)
class Sampling:
    """How to pick each token: ``greedy`` (default), or ``top_k``/``top_p`` with a temperature.

    Example:
        >>> Sampling("top_k", k=5, temperature=0.7, seed=1).is_greedy
        False
    """

    method: Literal["greedy", "top_k", "top_p"] = "greedy"
    k: int = 40
    p: float = 0.9
    temperature: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.method not in ("greedy", "top_k", "top_p"):
            raise ValueError(f"Sampling method must be 'greedy', 'top_k' or 'top_p', got {self.method!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.method == "top_k" and self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if self.method == "top_p" and not 0 < self.p <= 1:
            raise ValueError(f"p must be in (0, 1], got {self.p}")

    @property
    def is_greedy(self) -> bool:
        return self.method == "greedy"

    def keras_sampler(self) -> Any:
        """The matching ``keras_hub.samplers`` object."""
        import keras_hub

        if self.method == "greedy":
            return keras_hub.samplers.GreedySampler()
        if self.method == "top_k":
            return keras_hub.samplers.TopKSampler(k=self.k, temperature=self.temperature, seed=self.seed)
        return keras_hub.samplers.TopPSampler(p=self.p, temperature=self.temperature, seed=self.seed)


@dataclass(frozen=True)
class FIMRequest:
    """One completion request for :meth:`Completer.complete_many`."""

    before: str
    after: str = ""
    path: str | None = None
    context_files: Sequence[ContextFile | tuple[str, str]] | None = None


@dataclass
class CompletionResult:
    """A finished completion and how it was made."""

    middle: str
    prompt: str
    before: str
    after: str
    prompt_tokens: int
    generated_tokens: int
    stop_reason: StopReason
    stop_token: str | None
    seconds: float
    model_name: str
    model_label: str
    is_practice: bool
    bucket: int
    truncated: bool = False
    dropped_before_chars: int = 0
    dropped_after_chars: int = 0
    first_piece_seconds: float | None = None

    @property
    def tokens_per_second(self) -> float:
        return self.generated_tokens / self.seconds if self.seconds > 0 else 0.0

    @property
    def text(self) -> str:
        """The code with the completion inserted at the cursor."""
        return fim.splice(self.before, self.middle, self.after)

    def summary(self) -> str:
        """One line of timing, e.g. for the CLI."""
        label = f" [{self.model_label}]" if self.is_practice else ""
        first = (f", first piece {self.first_piece_seconds * 1000:.0f} ms"
                 if self.first_piece_seconds is not None else "")
        trunc = " (prompt trimmed to fit the context)" if self.truncated else ""
        return (f"{self.model_name}{label}: {self.prompt_tokens} prompt tokens, "
                f"{self.generated_tokens} generated, stop: {self.stop_reason}{first}, "
                f"{self.seconds:.2f} s, {self.tokens_per_second:.1f} tokens/s{trunc}")


def default_buckets(context_length: int, smallest: int = 128, factor: int = 4) -> tuple[int, ...]:
    """Padded lengths used for generation: ``smallest * factor**i`` up to ``context_length``.

    Example:
        >>> default_buckets(8192)
        (128, 512, 2048, 8192)
    """
    out, n = [], smallest
    while n < context_length:
        out.append(n)
        n *= factor
    out.append(context_length)
    return tuple(out)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if hasattr(value, "numpy"):
        value = value.numpy()
    if isinstance(value, np.ndarray):
        value = value.item() if value.shape == () else value.tolist()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class CompletionStream:
    """Iterate to get the completion piece by piece; :attr:`result` is set when it ends.

    Call :meth:`stop` (e.g. from a Stop button) to end it early; the result then has
    ``stop_reason == "stopped"``.
    """

    def __init__(self, gen_factory: Any):
        self._factory = gen_factory
        self._stop = threading.Event()
        self.result: CompletionResult | None = None

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __iter__(self) -> Iterator[str]:
        return self._factory(self)

    def text(self) -> str:
        """Run to the end and return the whole completion."""
        return "".join(self)


class Completer:
    """Robust FIM completion around a KerasHub ``CausalLM``.

    Args:
        lm: a ``keras_hub.models.CausalLM`` with its preprocessor (e.g. ``GemmaCausalLM``).
        name: shown in every result (e.g. ``"code_gemma_2b_en"``).
        label: a longer label; for the practice model it says it is not CodeGemma.
        is_practice: True for the offline practice / test models.
        context_length: the most tokens (prompt + completion) per request.
        buckets: padded lengths to generate at; default :func:`default_buckets`.

    Example:
        >>> c = Completer(lm, name="code_gemma_2b_en")       # doctest: +SKIP
        >>> c.complete("def add(a, b):\\n    return ", "\\n").middle  # doctest: +SKIP
        'a + b'
    """

    def __init__(self, lm: Any, *, name: str = "model", label: str | None = None,
                 is_practice: bool = False, context_length: int = 8192,
                 buckets: Sequence[int] | None = None):
        if getattr(lm, "preprocessor", None) is None:
            raise ValueError("The model has no preprocessor: load it with "
                             "GemmaCausalLM.from_preset(...) so that it carries its tokenizer.")
        self.lm = lm
        self.tokenizer = lm.preprocessor.tokenizer
        self.name = name
        self.label = label or name
        self.is_practice = is_practice
        self.context_length = int(context_length)
        self.buckets = tuple(sorted(buckets)) if buckets else default_buckets(self.context_length)
        if self.buckets[-1] < self.context_length:
            self.context_length = self.buckets[-1]
        self.fim_stop_ids = self._ids(fim.FIM_STOP_TOKENS)
        self.chat_stop_ids = self._ids(fim.CHAT_STOP_TOKENS)
        self._id_to_stop = {i: t for t, i in zip(fim.FIM_STOP_TOKENS + fim.CHAT_STOP_TOKENS,
                                                  self.fim_stop_ids + self.chat_stop_ids)}
        self.bos_id = int(self.tokenizer.start_token_id)
        self.pad_id = int(self.tokenizer.pad_token_id)
        self._shapes: set[tuple] = set()
        self._sampling = Sampling()
        self._seed_state: list[Any] = []
        self._lock = threading.Lock()
        self._stream_step_fns: tuple[Any, Any] | None = None
        _bound_generate(lm)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_loaded(cls, loaded: Any, **kwargs: Any) -> "Completer":
        """Wrap a :class:`cg_helpers.loading.LoadedModel`.

        Example:
            >>> Completer.from_loaded(load_model("practice"))   # doctest: +SKIP
        """
        kwargs.setdefault("name", loaded.name)
        kwargs.setdefault("label", loaded.label)
        kwargs.setdefault("is_practice", loaded.is_practice)
        kwargs.setdefault("context_length", loaded.context_length)
        return cls(loaded.model, **kwargs)

    def _ids(self, tokens: Sequence[str]) -> tuple[int, ...]:
        ids = []
        for token in tokens:
            try:
                ids.append(int(self.tokenizer.token_to_id(token)))
            except (KeyError, ValueError) as err:
                raise ValueError(f"The model's tokenizer has no {token!r} token: is this a "
                                 "CodeGemma (or compatible) model?") from err
        return tuple(ids)

    # ------------------------------------------------------------------ properties
    @property
    def compile_count(self) -> int:
        """Distinct generate shapes (bucket, batch, stop ids, sampler) used so far."""
        return len(self._shapes)

    @property
    def shapes_used(self) -> list[tuple]:
        return sorted(self._shapes, key=str)

    def bucket_for(self, n_tokens: int) -> int:
        """The smallest bucket holding ``n_tokens``.

        Example:
            >>> completer.bucket_for(300)     # buckets (128, 512, 2048, 8192)  # doctest: +SKIP
            512
        """
        for b in self.buckets:
            if b >= n_tokens:
                return b
        raise fim.BudgetError(f"{n_tokens} tokens exceed the largest bucket {self.buckets[-1]}.")

    # ------------------------------------------------------------------ tokens
    def _tokenize(self, text: str) -> list[int]:
        out = self.tokenizer.tokenize(text)
        if hasattr(out, "numpy"):
            out = out.numpy()
        return [int(i) for i in np.asarray(out).reshape(-1)]

    def _detokenize(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        return _as_text(self.tokenizer.detokenize(np.asarray(ids, dtype="int32")))

    def _check_max_new(self, max_new_tokens: int) -> None:
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool):
            raise TypeError(f"max_new_tokens must be an int, got {type(max_new_tokens).__name__}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if max_new_tokens >= self.context_length:
            raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for the prompt in "
                             f"the {self.context_length}-token context; use fewer new tokens.")

    def fit(self, before: str, after: str = "", *, max_new_tokens: int = 64,
            path: str | None = None, context_files: Sequence[Any] | None = None,
            on_sentinel: fim.OnSentinel = "error") -> FittedPrompt:
        """The prompt that will be sent, fitted to the context (see :func:`fim.fit_to_budget`)."""
        self._check_max_new(max_new_tokens)
        return fim.fit_to_budget(before, after, self.tokenizer, self.context_length,
                                 max_new_tokens, path=path, context_files=context_files,
                                 on_sentinel=on_sentinel, extra_tokens=1)

    # ------------------------------------------------------------------ sampling
    def _use_sampling(self, sampling: Sampling | None) -> Sampling:
        sampling = sampling or Sampling()
        if not isinstance(sampling, Sampling):
            raise TypeError("sampling must be a cg_helpers.completion.Sampling")
        if sampling != self._sampling:
            # compile() resets the compiled generate function: it is a new shape.
            self.lm.compile(sampler=sampling.keras_sampler())
            self._sampling = sampling
            self._seed_state = [np.array(v.numpy() if hasattr(v, "numpy") else v.value)
                                for v in self.lm.sampler.variables]
        if sampling.seed is not None:
            # Same seed, same sample: rewind the sampler's seed state before every call.
            for var, value in zip(self.lm.sampler.variables, self._seed_state):
                var.assign(value)
        return sampling

    # ------------------------------------------------------------------ generate (batched)
    def _generate(self, prompts_ids: list[list[int]], max_new_tokens: int,
                  stop_ids: tuple[int, ...], batch_size: int
                  ) -> list[tuple[list[int], str | None]]:
        """Run KerasHub's compiled generate on padded ids; returns (new ids, stop token)."""
        longest = max(len(p) for p in prompts_ids)
        bucket = self.bucket_for(longest + max_new_tokens)
        rows = list(prompts_ids) + [prompts_ids[0]] * (batch_size - len(prompts_ids))
        token_ids = np.full((batch_size, bucket), self.pad_id, dtype="int32")
        mask = np.zeros((batch_size, bucket), dtype=bool)
        end = np.zeros((batch_size,), dtype="int32")
        for r, ids in enumerate(rows):
            token_ids[r, :len(ids)] = ids
            mask[r, :len(ids)] = True
            end[r] = len(ids) + max_new_tokens
        self._shapes.add(("generate", bucket, batch_size, stop_ids, self._sampling))
        fn = self.lm.make_generate_function()
        # end_index is data (traced), so budgets never recompile; rows stop at their budget.
        out = fn({"token_ids": token_ids, "padding_mask": mask, "end_index": end},
                 stop_token_ids=stop_ids)
        out_ids = np.asarray(out["token_ids"])
        results = []
        for r, ids in enumerate(prompts_ids):
            new = [int(t) for t in out_ids[r, len(ids):]]
            stop_tok = None
            for i, t in enumerate(new[:max_new_tokens]):
                if t in stop_ids:
                    new, stop_tok = new[:i], self._id_to_stop[t]
                    break
            else:
                new = new[:max_new_tokens]
            results.append((new, stop_tok))
        return results, bucket

    def _result(self, fitted: FittedPrompt, new_ids: list[int], stop_tok: str | None,
                seconds: float, bucket: int, first: float | None = None,
                stopped: bool = False, middle: str | None = None) -> CompletionResult:
        if stopped:
            reason: StopReason = "stopped"
        elif stop_tok is None:
            reason = "length"
        elif stop_tok == fim.EOS:
            reason = "eos"
        else:
            reason = "sentinel"
        if middle is None:
            middle = self._detokenize(new_ids)
        return CompletionResult(
            middle=middle, prompt=fitted.prompt, before=fitted.before, after=fitted.after,
            prompt_tokens=fitted.prompt_tokens,
            generated_tokens=len(new_ids) + (1 if stop_tok else 0),
            stop_reason=reason, stop_token=stop_tok, seconds=seconds, model_name=self.name,
            model_label=self.label, is_practice=self.is_practice, bucket=bucket,
            truncated=fitted.truncated, dropped_before_chars=fitted.dropped_before_chars,
            dropped_after_chars=fitted.dropped_after_chars, first_piece_seconds=first)

    def complete(self, before: str, after: str = "", *, max_new_tokens: int = 64,
                 path: str | None = None, context_files: Sequence[Any] | None = None,
                 sampling: Sampling | None = None,
                 on_sentinel: fim.OnSentinel = "error") -> CompletionResult:
        """Complete the code between ``before`` and ``after``.

        Example:
            >>> completer.complete("import ", "\\nsys.exit(0)", max_new_tokens=8).middle  # doctest: +SKIP
            'sys'
        """
        return self.complete_many([FIMRequest(before, after, path, context_files)],
                                  max_new_tokens=max_new_tokens, batch_size=1, progress=False,
                                  sampling=sampling, on_sentinel=on_sentinel)[0]

    def complete_many(self, requests: Sequence[FIMRequest | tuple[str, str]], *,
                      max_new_tokens: int = 64, batch_size: int = 8, progress: bool = True,
                      sampling: Sampling | None = None,
                      on_sentinel: fim.OnSentinel = "error") -> list[CompletionResult]:
        """Complete many requests in batches of ``batch_size`` (a fixed shape: the last batch
        is padded), with a ``tqdm.auto`` progress bar. Results keep the input order.

        Example:
            >>> completer.complete_many([("import ", "\\n"), ("x = ", "\\n")])  # doctest: +SKIP
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        reqs = [r if isinstance(r, FIMRequest) else FIMRequest(*r) for r in requests]
        fitted = [self.fit(r.before, r.after, max_new_tokens=max_new_tokens, path=r.path,
                           context_files=r.context_files, on_sentinel=on_sentinel) for r in reqs]
        batch_size = min(batch_size, max(1, len(reqs)))
        bar = None
        if progress and len(reqs) > 1:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(reqs), desc=f"Completing ({self.name})", unit="prompt")
        results: list[CompletionResult] = []
        try:
            with self._lock:
                self._use_sampling(sampling)
                for start in range(0, len(fitted), batch_size):
                    chunk = fitted[start:start + batch_size]
                    ids = [[self.bos_id] + self._tokenize(f.prompt) for f in chunk]
                    t0 = time.perf_counter()
                    outs, bucket = self._generate(ids, max_new_tokens, self.fim_stop_ids, batch_size)
                    seconds = (time.perf_counter() - t0) / len(chunk)
                    for f, (new, stop_tok) in zip(chunk, outs):
                        results.append(self._result(f, new, stop_tok, seconds, bucket))
                    if bar is not None:
                        bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
        return results

    def complete_prompt(self, prompt: str, *, max_new_tokens: int = 64,
                        stop: Literal["fim", "chat"] = "fim",
                        sampling: Sampling | None = None) -> CompletionResult:
        """Generate from a ready-made prompt (e.g. :func:`fim.chat_prompt`), cleaned at the stop.

        The prompt is used as given: if it does not fit the context, a BudgetError says so.
        """
        fim._require_str(prompt, "prompt")
        self._check_max_new(max_new_tokens)
        ids = [self.bos_id] + self._tokenize(prompt)
        if len(ids) + max_new_tokens > self.context_length:
            raise fim.BudgetError(
                f"The prompt has {len(ids)} tokens; with {max_new_tokens} new tokens that exceeds "
                f"the {self.context_length}-token context. Shorten it.")
        stop_ids = self.fim_stop_ids if stop == "fim" else self.chat_stop_ids
        fitted = FittedPrompt(prompt, prompt, "", len(ids), 0, 0)
        with self._lock:
            self._use_sampling(sampling)
            t0 = time.perf_counter()
            outs, bucket = self._generate([ids], max_new_tokens, stop_ids, 1)
            seconds = time.perf_counter() - t0
        new, stop_tok = outs[0]
        result = self._result(fitted, new, stop_tok, seconds, bucket)
        result.before, result.after = "", ""
        return result

    def chat(self, messages: str | Sequence[tuple[str, str]], *, max_new_tokens: int = 256,
             sampling: Sampling | None = None) -> CompletionResult:
        """Ask an instruct preset; ``result.middle`` is the reply, cut at ``<end_of_turn>``.

        Example:
            >>> completer.chat("Explain: x = [i * i for i in range(3)]").middle  # doctest: +SKIP
        """
        return self.complete_prompt(fim.chat_prompt(messages), max_new_tokens=max_new_tokens,
                                    stop="chat", sampling=sampling)

    def warmup(self, max_new_tokens: int = 64, buckets: Sequence[int] | None = None,
               stream: bool = True) -> float:
        """Compile ahead of the first real request (generate, and the streaming step functions
        when ``stream``) for ``buckets`` (default: the smallest); returns seconds spent.

        Example:
            >>> completer.warmup()          # doctest: +SKIP
            2.4
        """
        t0 = time.perf_counter()
        for bucket in buckets or self.buckets[:1]:
            n = max(1, min(max_new_tokens, bucket - 8))
            self.complete("", "", max_new_tokens=n)
            if stream:
                for _ in self.stream("", "", max_new_tokens=n):
                    pass
        return time.perf_counter() - t0

    # ------------------------------------------------------------------ streaming
    def stream(self, before: str, after: str = "", *, max_new_tokens: int = 64,
               path: str | None = None, context_files: Sequence[Any] | None = None,
               sampling: Sampling | None = None,
               on_sentinel: fim.OnSentinel = "error") -> CompletionStream:
        """Yield the completion piece by piece as tokens are produced.

        Under greedy sampling the pieces join to exactly :meth:`complete`'s middle. Input
        errors are raised here, before any generation. With top-k/top-p the same distribution
        is sampled with NumPy (seeded by ``sampling.seed``), so samples differ from
        :meth:`complete`'s.

        Example:
            >>> s = completer.stream("import ", "\\n")       # doctest: +SKIP
            >>> for piece in s: print(piece, end="")        # doctest: +SKIP
            >>> s.result.stop_reason                         # doctest: +SKIP
        """
        fitted = self.fit(before, after, max_new_tokens=max_new_tokens, path=path,
                          context_files=context_files, on_sentinel=on_sentinel)
        sampling = sampling or Sampling()
        ids = [self.bos_id] + self._tokenize(fitted.prompt)

        def run(handle: CompletionStream) -> Iterator[str]:
            yield from self._stream_ids(handle, fitted, ids, max_new_tokens, sampling)

        return CompletionStream(run)

    def _stream_fns(self) -> tuple[Any, Any]:
        """Compiled (prefill, step) functions for the current backend."""
        if self._stream_step_fns is not None:
            return self._stream_step_fns
        import keras
        from keras import ops

        lm = self.lm
        backend = keras.backend.backend()

        def prefill(token_ids: Any) -> Any:
            return lm._build_cache(token_ids)[1]

        def step(token: Any, cache: Any, index: Any) -> tuple[Any, Any]:
            logits, _, cache = lm.call_with_cache(token, cache, index)
            return ops.squeeze(logits, axis=1), cache

        if backend == "jax":
            import jax

            variables = lm.trainable_variables + lm.non_trainable_variables

            def stateless(fn: Any) -> Any:
                @jax.jit
                def run(values: Any, *args: Any) -> Any:
                    with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                        return fn(*args)
                return lambda *args: run([v.value for v in variables], *args)

            fns = (stateless(prefill), stateless(step))
        elif backend == "tensorflow":
            import tensorflow as tf

            fns = (tf.function(prefill, reduce_retracing=False),
                   tf.function(step, reduce_retracing=False))
        else:
            import torch

            def no_grad(fn: Any) -> Any:
                def run(*args: Any) -> Any:
                    with torch.no_grad():
                        return fn(*args)
                return run

            fns = (no_grad(prefill), no_grad(step))
        self._stream_step_fns = fns
        return fns

    def _stream_ids(self, handle: CompletionStream, fitted: FittedPrompt, ids: list[int],
                    max_new_tokens: int, sampling: Sampling) -> Iterator[str]:
        from keras import ops

        prefill, step = self._stream_fns()
        bucket = self.bucket_for(len(ids) + max_new_tokens)
        self._shapes.add(("stream", bucket, 1))
        token_ids = np.full((1, bucket), self.pad_id, dtype="int32")
        token_ids[0, :len(ids)] = ids
        rng = np.random.default_rng(sampling.seed)
        stop_ids = set(self.fim_stop_ids)
        new: list[int] = []
        emitted = ""
        stop_tok: str | None = None
        first: float | None = None
        t0 = time.perf_counter()
        # The lock is held per model call, never across a ``yield``: a consumer that pauses
        # mid-stream (or abandons it without stop()) must not block other calls.
        # Mirror KerasHub's generate_step exactly (so greedy output is identical): seed the
        # cache over the padded prompt, then re-run the last prompt token as the first step.
        with self._lock:
            cache = prefill(token_ids)
        token, index = ids[-1], len(ids) - 1
        while len(new) < max_new_tokens and not handle.stopped and index < bucket - 1:
            with self._lock:
                logits, cache = step(np.asarray([[token]], dtype="int32"), cache,
                                     np.asarray(index, dtype="int32"))
                logits = np.asarray(ops.convert_to_numpy(logits), dtype="float32")[0]
            next_id = _pick(logits, sampling, rng)
            if next_id in stop_ids:
                stop_tok = self._id_to_stop[next_id]
                break
            new.append(next_id)
            token, index = next_id, index + 1
            text = self._detokenize(new)
            # Hold back an incomplete UTF-8 sequence (byte-fallback pieces) until complete.
            safe = text.rstrip("\ufffd")
            if len(safe) > len(emitted) and safe.startswith(emitted):
                piece, emitted = safe[len(emitted):], safe
                if first is None:
                    first = time.perf_counter() - t0
                yield piece
        final = self._detokenize(new)
        if final != emitted and final.startswith(emitted):
            if first is None:
                first = time.perf_counter() - t0
            yield final[len(emitted):]
        seconds = time.perf_counter() - t0
        handle.result = self._result(fitted, new, stop_tok, seconds, bucket, first,
                                     stopped=handle.stopped and stop_tok is None
                                     and len(new) < max_new_tokens, middle=final)


def _bound_generate(lm: Any) -> None:
    """Make ``lm``'s compiled generate stop each row at ``inputs["end_index"]``.

    KerasHub's loop otherwise runs to the padded length (the bucket) unless every row emits a
    stop token. Once a row reaches its end, its logits become a one-hot on a stop id, so the
    sampler emits that stop token and KerasHub's early exit ends the loop. Idempotent.
    """
    if getattr(lm, "_cg_bounded", False):
        return
    from keras import ops

    cls_step, cls_call = type(lm).generate_step, type(lm).call_with_cache

    def generate_step(inputs: dict, stop_token_ids: Any = None) -> dict:
        inputs = dict(inputs)
        end = inputs.pop("end_index", None)
        if end is None or stop_token_ids is None:
            return cls_step(lm, inputs, stop_token_ids)
        stop_id = int(stop_token_ids[0])

        def call_with_cache(token_ids: Any, cache: Any, cache_update_index: Any) -> Any:
            logits, hidden, cache = cls_call(lm, token_ids, cache, cache_update_index)
            done = ops.greater_equal(cache_update_index + 1, ops.cast(end, "int32"))
            forced = (ops.one_hot(stop_id, logits.shape[-1], dtype=logits.dtype) - 1.0) * 1e9
            return ops.where(ops.reshape(done, (-1, 1, 1)), forced, logits), hidden, cache

        lm.call_with_cache = call_with_cache
        try:
            return cls_step(lm, inputs, stop_token_ids)
        finally:
            del lm.call_with_cache

    lm.generate_step = generate_step
    lm.generate_function = None
    lm._cg_bounded = True


def _pick(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator) -> int:
    """Next token from one row of logits (greedy, or top-k/top-p with temperature)."""
    if sampling.is_greedy:
        return int(np.argmax(logits))
    z = logits.astype("float64") / sampling.temperature
    if sampling.method == "top_k":
        k = min(sampling.k, z.shape[-1])
        keep = np.argpartition(-z, k - 1)[:k]
    else:
        order = np.argsort(-z)
        probs = np.exp(z[order] - z[order[0]])
        probs /= probs.sum()
        cut = int(np.searchsorted(np.cumsum(probs), sampling.p)) + 1
        keep = order[:cut]
    zk = z[keep]
    p = np.exp(zk - zk.max())
    p /= p.sum()
    return int(keep[rng.choice(len(keep), p=p)])
