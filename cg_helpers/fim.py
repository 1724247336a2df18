"""Fill-in-the-middle (FIM) prompts for CodeGemma: text → prompt, and generated text → completion.

Pure Python: this module never imports keras, so it is safe to use before the backend is chosen
and from any framework (KerasHub, Hugging Face transformers, a plain tokenizer).

The format comes from the CodeGemma model card and report::

    <|fim_prefix|>{before}<|fim_suffix|>{after}<|fim_middle|>

No whitespace is added around the tokens, ``<|fim_middle|>`` comes last, and either side may be
empty. The model then writes the middle and ends it with a sentinel (usually
``<|file_separator|>``) or ``<eos>``; everything after the first stop token is not part of the
completion.

Multi-file context (format chosen here, see :func:`fim_prompt`)::

    utils.py\\n{content of utils.py}<|file_separator|>main.py\\n<|fim_prefix|>{before}<|fim_suffix|>{after}<|fim_middle|>

Files without a cursor are given whole, as plain ``path\\ncontent`` text, because that is how the
report describes multi-file packing (each file preceded by its path, files separated by
``<|file_separator|>``). Only the file that holds the cursor is split into FIM form: putting
context files in FIM form would ask the model to infill them too.

Example:
    >>> fim_prompt("import ", "\\nif __name__ == '__main__':\\n    sys.exit(0)")
    "<|fim_prefix|>import <|fim_suffix|>\\nif __name__ == '__main__':\\n    sys.exit(0)<|fim_middle|>"
    >>> extract_middle("sys\\n<|file_separator|>junk")
    'sys\\n'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Literal, Sequence

__all__ = [
    "FIM_PREFIX", "FIM_SUFFIX", "FIM_MIDDLE", "FILE_SEPARATOR", "EOS", "BOS", "PAD",
    "START_OF_TURN", "END_OF_TURN", "FIM_SENTINELS", "FIM_STOP_TOKENS", "CHAT_STOP_TOKENS",
    "CONTROL_TOKENS", "DEFAULT_CURSOR", "ContextFile", "FIMError", "SentinelError", "CursorError",
    "BudgetError", "find_control_tokens", "check_user_text", "fim_prompt", "split_at_cursor",
    "find_stop", "extract_middle", "splice", "chat_prompt", "extract_reply", "FittedPrompt",
    "fit_to_budget", "count_tokens",
]

FIM_PREFIX = "<|fim_prefix|>"
FIM_SUFFIX = "<|fim_suffix|>"
FIM_MIDDLE = "<|fim_middle|>"
FILE_SEPARATOR = "<|file_separator|>"
EOS = "<eos>"
BOS = "<bos>"
PAD = "<pad>"
START_OF_TURN = "<start_of_turn>"
END_OF_TURN = "<end_of_turn>"

#: The four FIM control tokens, in the CodeGemma report's order.
FIM_SENTINELS: tuple[str, ...] = (FIM_PREFIX, FIM_SUFFIX, FIM_MIDDLE, FILE_SEPARATOR)
#: Generation of a FIM middle stops at the first of these.
FIM_STOP_TOKENS: tuple[str, ...] = FIM_SENTINELS + (EOS,)
#: Generation of an instruct reply stops at the first of these.
CHAT_STOP_TOKENS: tuple[str, ...] = (END_OF_TURN, EOS)
#: Every token string that the tokenizer would read as control, not as text.
CONTROL_TOKENS: tuple[str, ...] = FIM_SENTINELS + (START_OF_TURN, END_OF_TURN, EOS, BOS, PAD)

#: The default cursor marker for :func:`split_at_cursor` (configurable per call).
DEFAULT_CURSOR = "<CURSOR>"

OnSentinel = Literal["error", "strip"]


class FIMError(ValueError):
    """Base class for input problems with a FIM prompt."""


class SentinelError(FIMError):
    """User text contains a control token such as ``<|fim_middle|>``."""

    def __init__(self, token: str, offset: int, field: str):
        self.token, self.offset, self.field = token, offset, field
        super().__init__(
            f"The {field} contains the control token {token!r} at character {offset}. "
            "The tokenizer would read it as an instruction to the model, not as code. "
            "Remove or escape it (e.g. write '<|fim_' + 'middle|>' in a string), or pass "
            "on_sentinel='strip' to drop such tokens from the text before prompting."
        )


class CursorError(FIMError):
    """A text given with a cursor marker has no marker or more than one."""


class BudgetError(FIMError):
    """The fixed parts of a prompt alone do not fit the token limit."""


@dataclass(frozen=True)
class ContextFile:
    """Another file given as context for a multi-file completion.

    Example:
        >>> ContextFile("utils.py", "def add(a, b):\\n    return a + b\\n").path
        'utils.py'
    """

    path: str
    content: str

    def __post_init__(self) -> None:
        _require_str(self.path, "context file path")
        _require_str(self.content, "context file content")
        if "\n" in self.path or "\r" in self.path:
            raise FIMError(f"A file path cannot contain a newline: {self.path!r}")


def _require_str(value: Any, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}: {value!r:.60}")


def find_control_tokens(text: str) -> list[tuple[str, int]]:
    """All control tokens in ``text`` as ``(token, offset)`` pairs, in order of offset.

    Example:
        >>> find_control_tokens("x = '<|fim_middle|>'")
        [('<|fim_middle|>', 5)]
    """
    found = []
    for token in CONTROL_TOKENS:
        start = text.find(token)
        while start != -1:
            found.append((token, start))
            start = text.find(token, start + 1)
    return sorted(found, key=lambda t: t[1])


def check_user_text(text: str, field: str = "text", on_sentinel: OnSentinel = "error") -> str:
    """Validate text typed by a user before it goes into a prompt.

    ``on_sentinel="error"`` (the default) raises :class:`SentinelError` naming the first control
    token and its offset. ``on_sentinel="strip"`` returns the text with every control token
    removed; the caller keeps the original, so nothing the user typed is lost.

    Example:
        >>> check_user_text("a<eos>b", on_sentinel="strip")
        'ab'
    """
    _require_str(text, field)
    if on_sentinel not in ("error", "strip"):
        raise ValueError(f"on_sentinel must be 'error' or 'strip', got {on_sentinel!r}")
    found = find_control_tokens(text)
    if not found:
        return text
    if on_sentinel == "error":
        token, offset = found[0]
        raise SentinelError(token, offset, field)
    # Strip until none remain: removing one token can join two halves into another.
    while found:
        for token in CONTROL_TOKENS:
            text = text.replace(token, "")
        found = find_control_tokens(text)
    return text


def _file_header(path: str | None) -> str:
    if path is None or path == "":
        return ""
    _require_str(path, "path")
    if "\n" in path or "\r" in path:
        raise FIMError(f"A file path cannot contain a newline: {path!r}")
    return path + "\n"


def _context_block(context_files: Iterable[ContextFile | tuple[str, str]] | None,
                   on_sentinel: OnSentinel) -> str:
    if not context_files:
        return ""
    parts = []
    for i, item in enumerate(context_files):
        cf = item if isinstance(item, ContextFile) else ContextFile(*item)
        content = check_user_text(cf.content, f"context file {cf.path!r}", on_sentinel)
        parts.append(_file_header(cf.path) + content + FILE_SEPARATOR)
    return "".join(parts)


def fim_prompt(
    before: str,
    after: str = "",
    path: str | None = None,
    *,
    context_files: Sequence[ContextFile | tuple[str, str]] | None = None,
    on_sentinel: OnSentinel = "error",
) -> str:
    """Build a CodeGemma FIM prompt.

    ``before``/``after`` are the text before and after the cursor, used byte for byte. ``path``
    (optional) is the current file's path; it comes first, followed by a newline. Each context
    file is written as ``path\\ncontent<|file_separator|>`` before the current file.

    Example:
        >>> fim_prompt("def f(", "):", path="a.py")
        'a.py\\n<|fim_prefix|>def f(<|fim_suffix|>):<|fim_middle|>'
    """
    before = check_user_text(before, "code before the cursor", on_sentinel)
    after = check_user_text(after, "code after the cursor", on_sentinel)
    return (_context_block(context_files, on_sentinel) + _file_header(path)
            + FIM_PREFIX + before + FIM_SUFFIX + after + FIM_MIDDLE)


def split_at_cursor(text: str, marker: str = DEFAULT_CURSOR) -> tuple[str, str]:
    """Split one text at its single cursor marker into ``(before, after)``.

    Example:
        >>> split_at_cursor("import <CURSOR>\\nsys.exit(0)")
        ('import ', '\\nsys.exit(0)')
    """
    _require_str(text, "text")
    _require_str(marker, "marker")
    if not marker:
        raise CursorError("The cursor marker cannot be empty.")
    count = text.count(marker)
    if count == 0:
        raise CursorError(
            f"No cursor marker {marker!r} found in the text. Put exactly one {marker!r} where "
            "the completion should go."
        )
    if count > 1:
        offsets, start = [], text.find(marker)
        while start != -1:
            offsets.append(start)
            start = text.find(marker, start + 1)
        raise CursorError(
            f"The cursor marker {marker!r} appears {count} times (at characters "
            f"{', '.join(map(str, offsets))}). Keep exactly one."
        )
    before, after = text.split(marker)
    return before, after


def find_stop(text: str, stop_tokens: Sequence[str] = FIM_STOP_TOKENS) -> tuple[int, str | None]:
    """Index and value of the first stop token in ``text``; ``(len(text), None)`` if none.

    Example:
        >>> find_stop("ab<eos>c<|fim_prefix|>")
        (2, '<eos>')
    """
    best, which = len(text), None
    for token in stop_tokens:
        i = text.find(token)
        if i != -1 and i < best:
            best, which = i, token
    return best, which


def extract_middle(generated: str, prompt: str | None = None,
                   stop_tokens: Sequence[str] = FIM_STOP_TOKENS) -> str:
    """The completion alone, from text that may or may not echo the prompt.

    * If ``prompt`` is given and ``generated`` starts with it, the echo is removed.
    * Else, if ``generated`` holds ``<|fim_prefix|>`` followed later by ``<|fim_middle|>`` (an
      echo that differs from ``prompt``, or no ``prompt`` given), everything up to and including
      that ``<|fim_middle|>`` is removed.
    * The result is cut at the first stop token.

    Example:
        >>> extract_middle("<|fim_prefix|>import <|fim_suffix|><|fim_middle|>sys<|file_separator|>")
        'sys'
    """
    _require_str(generated, "generated")
    text = generated
    if prompt and text.startswith(prompt):
        text = text[len(prompt):]
    elif prompt and text.startswith(BOS + prompt):
        text = text[len(BOS + prompt):]
    elif FIM_PREFIX in text and FIM_MIDDLE in text[text.index(FIM_PREFIX):]:
        # An echo (it has the prompt's structure): the middle starts after <|fim_middle|>.
        start = text.index(FIM_PREFIX)
        text = text[text.index(FIM_MIDDLE, start) + len(FIM_MIDDLE):]
    end, _ = find_stop(text, stop_tokens)
    return text[:end]


def splice(before: str, middle: str, after: str) -> str:
    """The file with the completion inserted at the cursor.

    Example:
        >>> splice("import ", "sys", "\\n")
        'import sys\\n'
    """
    for value, name in ((before, "before"), (middle, "middle"), (after, "after")):
        _require_str(value, name)
    return before + middle + after


def chat_prompt(messages: str | Sequence[tuple[str, str]], on_sentinel: OnSentinel = "error") -> str:
    """Gemma chat template for the instruct presets, ending with the model's turn.

    ``messages`` is one user message, or a list of ``(role, text)`` with role ``"user"`` or
    ``"model"``. Generation must stop at :data:`END_OF_TURN`.

    Example:
        >>> chat_prompt("Explain this code")
        '<start_of_turn>user\\nExplain this code<end_of_turn>\\n<start_of_turn>model\\n'
    """
    if isinstance(messages, str):
        messages = [("user", messages)]
    parts = []
    for role, text in messages:
        if role not in ("user", "model"):
            raise ValueError(f"role must be 'user' or 'model', got {role!r}")
        text = check_user_text(text, f"{role} message", on_sentinel)
        parts.append(f"{START_OF_TURN}{role}\n{text}{END_OF_TURN}\n")
    return "".join(parts) + f"{START_OF_TURN}model\n"


def extract_reply(generated: str, prompt: str | None = None) -> str:
    """The model's reply from generated chat text, cut at ``<end_of_turn>`` or ``<eos>``.

    Example:
        >>> extract_reply("It adds.<end_of_turn>\\n<start_of_turn>user")
        'It adds.'
    """
    text = generated
    if prompt and text.startswith(prompt):
        text = text[len(prompt):]
    end, _ = find_stop(text, CHAT_STOP_TOKENS)
    return text[:end]


# --------------------------------------------------------------------------- token budget

TokenCounter = Callable[[Sequence[str]], list[int]]


def count_tokens(tokenizer: Any) -> TokenCounter:
    """A function that counts tokens of many strings in one call.

    ``tokenizer`` may be a KerasHub tokenizer (anything with ``tokenize``), a Hugging Face
    tokenizer (anything with ``encode``), or a callable ``str -> list of ids``.

    Example:
        >>> count_tokens(lambda s: s.split())(["a b", "c"])
        [2, 1]
    """
    if hasattr(tokenizer, "tokenize") and callable(tokenizer.tokenize):
        def counter(texts: Sequence[str]) -> list[int]:
            if not texts:
                return []
            out = tokenizer.tokenize(list(texts))
            if hasattr(out, "to_list"):
                out = out.to_list()
            elif hasattr(out, "numpy"):
                out = out.numpy()
            return [len(row) for row in out]
        return counter
    if hasattr(tokenizer, "encode") and callable(tokenizer.encode):
        return lambda texts: [len(tokenizer.encode(t, add_special_tokens=False)) for t in texts]
    if callable(tokenizer):
        return lambda texts: [len(tokenizer(t)) for t in texts]
    raise TypeError(f"Cannot count tokens with {type(tokenizer).__name__}: give a tokenizer "
                    "with tokenize()/encode(), or a callable str -> ids.")


@dataclass(frozen=True)
class FittedPrompt:
    """Result of :func:`fit_to_budget`: the prompt and what was kept and dropped."""

    prompt: str
    before: str
    after: str
    prompt_tokens: int
    dropped_before_chars: int
    dropped_after_chars: int

    @property
    def truncated(self) -> bool:
        return bool(self.dropped_before_chars or self.dropped_after_chars)


def _lines_from_end(text: str) -> list[str]:
    return text.splitlines(keepends=True)[::-1]


# No token of a code tokenizer spans more characters than this (the practice tokenizer's
# longest piece is 18 characters; 64 leaves room for larger code vocabularies). A text of more
# than ``budget * _MAX_CHARS_PER_TOKEN`` characters therefore cannot fit in ``budget`` tokens,
# and is not tokenized whole just to learn that. The bound only picks a path: if a tokenizer
# broke it, the prompt would still fit, just be trimmed more.
_MAX_CHARS_PER_TOKEN = 64


def _most_chars(budget: int) -> int:
    """More characters than this cannot fit in ``budget`` tokens (see above)."""
    return (max(budget, 0) + 1) * _MAX_CHARS_PER_TOKEN


def _take_near_cursor(pieces: list[str], budget: int, counter: TokenCounter, chunk: int = 64
                      ) -> tuple[int, int]:
    """How many pieces (nearest first) fit in ``budget`` tokens, by per-piece counts.

    Counts are taken in chunks outward from the cursor, so a 10,000-line file only tokenizes
    the lines that can fit. Returns ``(n_pieces, tokens_used)``.
    """
    used, n = 0, 0
    too_long = _most_chars(budget)                    # such a piece cannot fit at all
    for start in range(0, len(pieces), chunk):
        part = pieces[start:start + chunk]
        cut = next((i for i, p in enumerate(part) if len(p) > too_long), len(part))
        for c in counter(part[:cut]) if cut else []:
            if used + c > budget:
                return n, used
            used += c
            n += 1
        if cut < len(part):
            return n, used
    return n, used


def fit_to_budget(
    before: str,
    after: str,
    tokenizer: Any,
    limit: int,
    max_new_tokens: int,
    *,
    path: str | None = None,
    context_files: Sequence[ContextFile | tuple[str, str]] | None = None,
    on_sentinel: OnSentinel = "error",
    before_share: float = 0.75,
    extra_tokens: int = 1,
) -> FittedPrompt:
    """Fit a FIM prompt into ``limit - max_new_tokens`` tokens, keeping text nearest the cursor.

    KerasHub's packer truncates over-long prompts from the END, which silently loses the suffix
    and ``<|fim_middle|>``. This trims instead from the far end of ``before`` (the file's top)
    and the far end of ``after`` (the file's bottom), in whole lines where possible, and never
    touches the sentinels. ``before`` gets ``before_share`` of the space when both sides need
    more than they can have; a side that needs less leaves the rest to the other.
    ``extra_tokens`` counts tokens the preprocessor adds (``<bos>``).

    Example:
        >>> fit = fit_to_budget("a\\n" * 100, "b\\n" * 100, lambda s: list(s), 60, 10)
        >>> fit.prompt.endswith("<|fim_middle|>"), fit.prompt_tokens <= 50
        (True, True)
    """
    if not isinstance(limit, int) or not isinstance(max_new_tokens, int):
        raise TypeError("limit and max_new_tokens must be ints")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    before = check_user_text(before, "code before the cursor", on_sentinel)
    after = check_user_text(after, "code after the cursor", on_sentinel)
    counter = count_tokens(tokenizer)

    def build(b: str, a: str) -> str:
        return fim_prompt(b, a, path, context_files=context_files, on_sentinel=on_sentinel)

    budget = limit - max_new_tokens - extra_tokens
    full = build(before, after)
    if len(full) <= _most_chars(budget):     # else it cannot fit: skip counting it all
        full_count = counter([full])[0]
        if full_count <= budget:
            return FittedPrompt(full, before, after, full_count + extra_tokens, 0, 0)

    fixed = counter([build("", "")])[0]
    room = budget - fixed
    if room < 0:
        raise BudgetError(
            f"The path and context files alone take {fixed + extra_tokens} tokens, but only "
            f"{limit - max_new_tokens} are left of the {limit}-token limit after reserving "
            f"{max_new_tokens} for the completion. Give fewer or shorter context files, or "
            "fewer new tokens."
        )

    b_lines = _lines_from_end(before)          # nearest the cursor first
    a_lines = after.splitlines(keepends=True)  # nearest the cursor first

    def choose(room: int) -> tuple[str, str]:
        # Each side gets its share; a side that needs less leaves the rest to the other.
        nb, used_b = _take_near_cursor(b_lines, int(room * before_share), counter)
        na, used_a = _take_near_cursor(a_lines, room - used_b, counter)
        if na == len(a_lines):
            nb, used_b = _take_near_cursor(b_lines, room - used_a, counter)
        kept_b = "".join(reversed(b_lines[:nb]))
        kept_a = "".join(a_lines[:na])
        # The cursor's own line may alone exceed the room: keep its characters nearest the cursor.
        if nb == 0 and b_lines:
            b_room = room - (counter([kept_a])[0] if kept_a else 0)
            if na == 0 and a_lines:  # both nearest lines are too long: share the room
                b_room = int(room * before_share)
            kept_b = _tail_chars(b_lines[0], b_room, counter)
        if na == 0 and a_lines:
            kept_a = _head_chars(a_lines[0], room - counter([kept_b])[0], counter)
        return kept_b, kept_a

    # Per-line counts can differ slightly from the joined text's count: shrink until it fits.
    for _ in range(32):
        kept_b, kept_a = choose(room)
        prompt = build(kept_b, kept_a)
        n = counter([prompt])[0]
        if n <= budget:
            return FittedPrompt(prompt, kept_b, kept_a, n + extra_tokens,
                                len(before) - len(kept_b), len(after) - len(kept_a))
        room -= max(1, n - budget)
    raise BudgetError("Could not fit the prompt into the token budget; lower max_new_tokens.")


def _tail_chars(text: str, budget: int, counter: TokenCounter) -> str:
    """The longest tail of ``text`` that fits in ``budget`` tokens (binary search)."""
    lo, hi = 0, min(len(text), _most_chars(budget))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter([text[len(text) - mid:]])[0] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[len(text) - lo:] if lo else ""


def _head_chars(text: str, budget: int, counter: TokenCounter) -> str:
    """The longest head of ``text`` that fits in ``budget`` tokens (binary search)."""
    lo, hi = 0, min(len(text), _most_chars(budget))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter([text[:mid]])[0] <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo]
