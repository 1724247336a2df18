"""The completion engine on the tiny random model, loaded through GemmaCausalLM.from_preset.

Output text is noise (the model is untrained), so these tests assert on structure: stops,
token counts, compile counts, stream == complete, budget behaviour, errors.
"""

import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cg_helpers import fim
from cg_helpers.completion import Completer, CompletionResult, FIMRequest, Sampling, default_buckets
from cg_helpers.tiny_model import SPECIAL_IDS

SEED_BEFORE = "import "
SEED_AFTER = '\nif __name__ == "__main__":\n    sys.exit(0)'
PROMPTS = [
    (SEED_BEFORE, SEED_AFTER),
    ("def add(a, b):\n    return ", "\n"),
    ("class Stack:\n    def push(self, item):\n        self.", "\n"),
    ("", "\nprint('x')"),
    ("for i in range(", "):\n    pass\n"),
    ("x = [", "]"),
]


@pytest.fixture(scope="module")
def completer(test_lm):
    return Completer(test_lm, name="tiny-random", label="random test model", is_practice=True,
                     context_length=512)


def test_stop_ids_come_from_the_tokenizer_as_a_tuple(completer):
    assert completer.fim_stop_ids == tuple(SPECIAL_IDS[t] for t in fim.FIM_STOP_TOKENS)
    assert completer.chat_stop_ids == (SPECIAL_IDS["<end_of_turn>"], SPECIAL_IDS["<eos>"])
    assert isinstance(completer.fim_stop_ids, tuple)


def test_complete_returns_a_clean_result(completer):
    r = completer.complete(SEED_BEFORE, SEED_AFTER, max_new_tokens=12)
    assert isinstance(r, CompletionResult)
    assert not fim.find_control_tokens(r.middle)
    assert r.prompt == fim.fim_prompt(SEED_BEFORE, SEED_AFTER)
    assert r.prompt_tokens == len(completer._tokenize(r.prompt)) + 1      # + <bos>
    assert r.stop_reason in ("sentinel", "eos", "length")
    if r.stop_reason == "length":
        assert r.generated_tokens == 12 and r.stop_token is None
    else:
        assert r.generated_tokens <= 13 and r.stop_token in fim.FIM_STOP_TOKENS
    assert r.text == SEED_BEFORE + r.middle + SEED_AFTER
    assert r.seconds > 0 and r.tokens_per_second > 0
    assert "random test model" in r.summary() and "prompt tokens" in r.summary()


def test_stream_equals_complete_under_greedy(completer):
    for before, after in PROMPTS:
        expected = completer.complete(before, after, max_new_tokens=16)
        stream = completer.stream(before, after, max_new_tokens=16)
        pieces = list(stream)
        assert "".join(pieces) == expected.middle
        assert all(pieces)
        assert stream.result.middle == expected.middle
        assert stream.result.stop_reason == expected.stop_reason
        assert stream.result.generated_tokens == expected.generated_tokens
        if pieces:
            assert 0 < stream.result.first_piece_seconds <= stream.result.seconds


def test_stream_can_be_stopped(completer):
    # Find a prompt that produces several pieces, then stop after the first.
    for before, after in PROMPTS:
        if len(list(completer.stream(before, after, max_new_tokens=16))) >= 2:
            break
    else:
        pytest.skip("the random model produced no multi-piece output")
    stream = completer.stream(before, after, max_new_tokens=16)
    got = []
    for piece in stream:
        got.append(piece)
        stream.stop()
    assert len(got) == 1 and stream.result.stop_reason == "stopped"


def test_a_paused_stream_does_not_block_other_calls(completer):
    import threading

    # The random model may stop at once; find a prompt that yields at least one piece.
    for before, after in PROMPTS:
        if list(completer.stream(before, after, max_new_tokens=8)):
            break
    else:
        pytest.skip("the random model produced no output")
    paused = iter(completer.stream(before, after, max_new_tokens=8))
    next(paused)                                   # the consumer now sits mid-stream
    done = threading.Event()
    worker = threading.Thread(target=lambda: (completer.complete("x = ", "\n",
                                                                  max_new_tokens=4),
                                              done.set()), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert done.is_set(), "complete() waited on a paused stream's lock"
    list(paused)                                   # the paused stream still finishes


def test_stream_holds_back_incomplete_utf8(completer, monkeypatch):
    import cg_helpers.completion as completion

    tok = completer.tokenizer
    planned = [tok.token_to_id("<0xC3>"), tok.token_to_id("<0xA9>"), tok.token_to_id("<0xE2>"),
               tok.token_to_id("<0x9C>"), tok.token_to_id("<0x93>"), SPECIAL_IDS["<eos>"]]
    it = iter(planned)
    monkeypatch.setattr(completion, "_pick", lambda logits, sampling, rng: next(it))
    stream = completer.stream("s = '", "'", max_new_tokens=16)
    pieces = list(stream)
    assert pieces == ["é", "✓"]
    assert stream.result.middle == "é✓" and stream.result.stop_reason == "eos"


def test_twenty_varied_completions_compile_at_most_four_times(test_lm):
    """Counted two ways: the completer's shape counter, and real traces of generate_step."""
    completer = Completer(test_lm, name="tiny", context_length=4096)
    assert completer.buckets == (128, 512, 2048, 4096)
    traces = []
    original = test_lm.generate_step

    def counting_generate_step(*args, **kwargs):
        traces.append(1)          # runs in Python only while jax/tf trace a new shape
        return original(*args, **kwargs)

    test_lm.generate_step = counting_generate_step
    test_lm.generate_function = None
    try:
        rng = random.Random(0)
        line = "total = total + values[index] * weights[index]\n"
        for _ in range(20):
            n_lines = rng.choice([0, 1, 3, 10, 30, 60, 120, 150])
            budget = rng.choice([8, 16, 32, 64, 128])
            r = completer.complete(line * n_lines + "result = ", "\nprint(result)\n",
                                   max_new_tokens=budget)
            assert r.generated_tokens <= budget + 1
        lengths = {completer.bucket_for(1)}
        assert completer.compile_count <= 4
        assert len(traces) == completer.compile_count and len(traces) >= len(lengths)
    finally:
        test_lm.generate_step = original       # the Completer's bounded version
        test_lm.generate_function = None


def test_prompt_lengths_in_one_bucket_share_one_compile(completer):
    before = completer.compile_count
    for n in (1, 5, 20):
        completer.complete("x = 1\n" * n, "", max_new_tokens=8)
    assert completer.compile_count - before <= 1


def test_raw_generate_loses_the_suffix_but_the_completer_keeps_it(completer, test_lm):
    """The pitfall: KerasHub's packer truncates from the END."""
    before = "".join(f"v{i} = {i}\n" for i in range(400))
    after = "\nprint('the suffix')\n"
    prompt = fim.fim_prompt(before, after)
    packed = test_lm.preprocessor.generate_preprocess([prompt], sequence_length=128)
    ids = np.asarray(packed["token_ids"])[0]
    assert SPECIAL_IDS[fim.FIM_MIDDLE] not in ids and SPECIAL_IDS[fim.FIM_SUFFIX] not in ids

    r = completer.complete(before, after, max_new_tokens=16)
    assert r.truncated and r.dropped_before_chars > 0 and r.dropped_after_chars == 0
    assert r.prompt.endswith(fim.FIM_SUFFIX + after + fim.FIM_MIDDLE)
    assert r.before.endswith("v399 = 399\n") and r.prompt_tokens + 16 <= 512


def test_complete_many_matches_single_completions(completer):
    singles = [completer.complete(b, a, max_new_tokens=10).middle for b, a in PROMPTS]
    many = completer.complete_many([FIMRequest(b, a) for b, a in PROMPTS[:3]] + PROMPTS[3:],
                                   max_new_tokens=10, batch_size=4, progress=False)
    assert [r.middle for r in many] == singles
    shapes = {s for s in completer.shapes_used if s[0] == "generate" and s[2] == 4}
    assert len({s[1] for s in shapes}) == 1           # one bucket, one batch shape


def test_seeded_sampling_is_reproducible_and_greedy_is_restored(completer):
    greedy = completer.complete(*PROMPTS[1], max_new_tokens=10).middle
    s = Sampling("top_k", k=20, temperature=1.5, seed=7)
    a = completer.complete(*PROMPTS[1], max_new_tokens=10, sampling=s).middle
    b = completer.complete(*PROMPTS[1], max_new_tokens=10, sampling=s).middle
    assert a == b
    tops = {completer.complete(*PROMPTS[1], max_new_tokens=10,
                               sampling=Sampling("top_p", p=0.95, temperature=2.0, seed=i)).middle
            for i in range(4)}
    assert len(tops) > 1                                  # it really samples
    assert completer.complete(*PROMPTS[1], max_new_tokens=10).middle == greedy


def test_sampling_validation():
    with pytest.raises(ValueError, match="method"):
        Sampling("beam")
    with pytest.raises(ValueError, match="temperature"):
        Sampling("top_k", temperature=0)
    with pytest.raises(ValueError, match="p must be"):
        Sampling("top_p", p=1.5)


def test_chat_uses_the_turn_template_and_end_of_turn(completer):
    r = completer.chat("Explain: x = 1", max_new_tokens=8)
    assert r.prompt == fim.chat_prompt("Explain: x = 1")
    assert "<end_of_turn>" not in r.middle
    assert r.stop_token in (None, "<end_of_turn>", "<eos>")


def test_bad_input_gives_clear_errors_and_keeps_nothing_half_done(completer, test_lm):
    with pytest.raises(fim.SentinelError, match="character 4"):
        completer.complete("abc <|fim_middle|>", "")
    with pytest.raises(TypeError, match="max_new_tokens must be an int"):
        completer.complete("a", "b", max_new_tokens="8")
    with pytest.raises(ValueError, match="at least 1"):
        completer.complete("a", "b", max_new_tokens=0)
    with pytest.raises(ValueError, match="no room"):
        completer.complete("a", "b", max_new_tokens=512)
    with pytest.raises(TypeError, match="must be a str"):
        completer.complete(None, "b")
    r = completer.complete("abc <|fim_middle|>", "", on_sentinel="strip", max_new_tokens=4)
    assert r.before == "abc "


def test_default_buckets():
    assert default_buckets(8192) == (128, 512, 2048, 8192)
    assert default_buckets(1000) == (128, 512, 1000)
    assert default_buckets(100) == (100,)


def test_model_without_preprocessor_is_rejected(test_lm):
    class Bare:
        preprocessor = None

    with pytest.raises(ValueError, match="no preprocessor"):
        Completer(Bare())


def test_tensorflow_backend_stream_equals_complete(test_preset_dir):
    """The same engine under TensorFlow (a subprocess: the backend is fixed per process)."""
    code = textwrap.dedent(f"""
        import os
        os.environ["KERAS_BACKEND"] = "tensorflow"
        import keras_hub
        from cg_helpers.completion import Completer
        lm = keras_hub.models.GemmaCausalLM.from_preset({str(test_preset_dir)!r})
        c = Completer(lm, name="tiny", context_length=512)
        for b, a in {PROMPTS[:3]!r}:
            r = c.complete(b, a, max_new_tokens=12)
            assert "".join(c.stream(b, a, max_new_tokens=12)) == r.middle, (b, r.middle)
        for n in range(1, 6):
            c.complete("y = 2\\n" * n, "", max_new_tokens=8 * n)
        print("OK", c.compile_count)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[-2] == "OK" and int(out.stdout.split()[-1]) <= 3


def test_warmup_compiles_generate_and_stream(test_lm):
    c = Completer(test_lm, name="tiny", context_length=512)
    seconds = c.warmup(max_new_tokens=8)
    kinds = {shape[0] for shape in c.shapes_used}
    assert seconds > 0 and kinds == {"generate", "stream"}


def test_generation_stops_at_the_budget_not_at_the_bucket_end(completer, test_lm):
    """KerasHub's loop runs to the padded length unless a stop id appears; the Completer bounds
    it at prompt + max_new_tokens, so nothing past that position is generated."""
    ids = [completer.bos_id] + completer._tokenize(fim.fim_prompt("x = [", "]"))
    bucket, budget = 128, 3
    token_ids = np.zeros((1, bucket), dtype="int32")
    token_ids[0, :len(ids)] = ids
    mask = token_ids != 0
    fn = test_lm.make_generate_function()
    out = fn({"token_ids": token_ids, "padding_mask": mask,
              "end_index": np.array([len(ids) + budget], dtype="int32")},
             stop_token_ids=completer.fim_stop_ids)
    row = np.asarray(out["token_ids"])[0]
    assert (row[len(ids) + budget + 1:] == completer.pad_id).all()      # never reached
    assert row[len(ids) + budget] in completer.fim_stop_ids or \
        any(t in completer.fim_stop_ids for t in row[len(ids):len(ids) + budget])
    r = completer.complete("x = [", "]", max_new_tokens=budget)
    assert r.generated_tokens <= budget + 1
    if r.stop_reason == "length":
        assert r.generated_tokens == budget and r.stop_token is None
