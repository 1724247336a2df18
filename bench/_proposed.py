"""A proposed fix for the Completer, measured by the benchmarks (not used by cg_helpers).

Problem: KerasHub's compiled ``generate`` loop runs until the padded length (the bucket) unless
every row emits a stop token. ``Completer`` pads to a bucket ``>= prompt + max_new_tokens`` and
cuts the result to ``max_new_tokens`` afterwards, so a completion that reaches its budget keeps
decoding to the end of the bucket: a 20-token prompt with ``max_new_tokens=8`` decodes ~107
tokens in the 128 bucket; a 600-token prompt with 64 new tokens decodes ~1,380 in the 2,048
bucket. Real completions often stop at a sentinel first, but every "length" stop pays this.

Fix: pass each row's end position (``prompt length + max_new_tokens``) into the compiled
function as data (``inputs["end_index"]``, traced, so no new compile per budget) and, inside
the loop, replace the logits of any row that reached its end by a one-hot on a stop id. The
sampler then emits a stop token there and KerasHub's own early exit ends the loop. The stop
token lands just past the budget, where ``Completer`` already cuts, so results are unchanged
(the benchmark checks they are identical).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cg_helpers.completion import Completer


def bound_generate(lm: Any) -> None:
    """Make ``lm``'s generate honour ``inputs["end_index"]`` (per row); idempotent."""
    if getattr(lm, "_cg_bounded", False):
        return
    from keras import ops

    cls_step = type(lm).generate_step
    cls_call = type(lm).call_with_cache

    def generate_step(inputs: dict, stop_token_ids: Any = None) -> dict:
        inputs = dict(inputs)
        end = inputs.pop("end_index", None)
        if end is None or stop_token_ids is None:
            return cls_step(lm, inputs, stop_token_ids)
        stop_id = int(stop_token_ids[0])

        def call_with_cache(token_ids: Any, cache: Any, cache_update_index: Any) -> Any:
            logits, hidden, cache = cls_call(lm, token_ids, cache, cache_update_index)
            vocab = logits.shape[-1]
            # The token being chosen goes to position cache_update_index + 1.
            done = ops.greater_equal(cache_update_index + 1, ops.cast(end, "int32"))
            forced = (ops.one_hot(stop_id, vocab, dtype=logits.dtype) - 1.0) * 1e9
            logits = ops.where(ops.reshape(done, (-1, 1, 1)), forced, logits)
            return logits, hidden, cache

        lm.call_with_cache = call_with_cache
        try:
            return cls_step(lm, inputs, stop_token_ids)
        finally:
            del lm.call_with_cache

    lm.generate_step = generate_step
    lm.generate_function = None
    lm._cg_bounded = True


class BoundedCompleter(Completer):
    """``Completer`` whose compiled generate stops each row at its budget (proposed patch)."""

    def __init__(self, lm: Any, **kwargs: Any):
        super().__init__(lm, **kwargs)
        bound_generate(lm)

    def _generate(self, prompts_ids, max_new_tokens, stop_ids, batch_size):  # type: ignore[override]
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
