"""Kaggle credentials: find them wherever kagglehub would, say which source won, never show them.

CodeGemma's weights are downloaded from Kaggle by kagglehub (through ``from_preset``). This
module finds the credentials in the order kagglehub >= 0.4 uses (read from its source,
``kagglehub/config.py`` and ``kagglesdk/kaggle_env.py``), then in the notebook secret stores:

1. credentials already set in this session (``kagglehub.login()``, or by this module)
2. inside a Kaggle notebook, the notebook's own token (``KAGGLE_API_V1_TOKEN``)
3. ``KAGGLE_API_TOKEN`` (the token, or a path to a file holding it)
4. ``~/.kaggle/access_token``
5. ``KAGGLE_USERNAME`` + ``KAGGLE_KEY``
6. ``$KAGGLE_CONFIG_DIR/kaggle.json``, else ``~/.kaggle/kaggle.json``
7. Colab secrets (``google.colab.userdata``): ``KAGGLE_API_TOKEN``, or ``KAGGLE_USERNAME`` +
   ``KAGGLE_KEY``
8. Kaggle notebook secrets (``kaggle_secrets.UserSecretsClient``), the same names
9. ``kagglehub.login()``, only with ``interactive=True``

Secrets found in 7-9 are handed to kagglehub (``kagglehub.config.set_kaggle_*``, kept in memory,
not in ``os.environ``), so kagglehub does its own HTTP with them. Keys and tokens are never
printed, logged or shown in a repr: :class:`KaggleCredentials` shows the source, the username
and at most the last 4 characters of the key.

Failures become errors that say what to do: :class:`MissingCredentialsError`,
:class:`MalformedCredentialsFileError`, :class:`ColabSecretAccessError`,
:class:`InvalidCredentialsError` (401), :class:`TermsNotAcceptedError` (403, names the model
page). :func:`actionable_error` converts what ``load_model``/``from_preset``/kagglehub raise.

Example:
    >>> from cg_helpers.credentials import find_credentials, kaggle_errors_explained  # doctest: +SKIP
    >>> creds = find_credentials()          # doctest: +SKIP
    >>> creds                               # doctest: +SKIP
    KaggleCredentials(source='Colab secret KAGGLE_API_TOKEN', username=None, key='…9f3a')
    >>> with kaggle_errors_explained("code_gemma_2b_en"):      # doctest: +SKIP
    ...     loaded = load_model("code_gemma_2b_en")
"""

from __future__ import annotations

import json
import os
import re
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = [
    "KaggleCredentials", "KaggleCredentialsError", "MissingCredentialsError",
    "MalformedCredentialsFileError", "ColabSecretAccessError", "InvalidCredentialsError",
    "TermsNotAcceptedError", "mask_secret", "find_credentials", "check_credentials",
    "save_credentials", "actionable_error", "kaggle_errors_explained", "API_SETTINGS_URL",
]

#: Where a Kaggle user creates an API token (or the legacy kaggle.json).
API_SETTINGS_URL = "https://www.kaggle.com/settings/api"

# Names kagglehub uses (kagglehub/config.py, kagglesdk/kaggle_env.py).
TOKEN_NAME = "KAGGLE_API_TOKEN"
USERNAME_NAME = "KAGGLE_USERNAME"
KEY_NAME = "KAGGLE_KEY"
CONFIG_DIR_NAME = "KAGGLE_CONFIG_DIR"
KAGGLE_NOTEBOOK_TOKEN_PATH = "KAGGLE_API_V1_TOKEN"


# --------------------------------------------------------------------------- errors

class KaggleCredentialsError(RuntimeError):
    """Base class: something about Kaggle access, with the next step in the message."""


class MissingCredentialsError(KaggleCredentialsError):
    """No credentials in any source."""


class MalformedCredentialsFileError(KaggleCredentialsError, ValueError):
    """kaggle.json exists but is not ``{"username": ..., "key": ...}``."""


class ColabSecretAccessError(KaggleCredentialsError):
    """The Colab secret exists but this notebook was not granted access to it."""


class InvalidCredentialsError(KaggleCredentialsError):
    """Kaggle answered 401: the key or token is wrong, expired or revoked."""


class TermsNotAcceptedError(KaggleCredentialsError, PermissionError):
    """Kaggle answered 403: the account has not accepted the model's terms."""


# --------------------------------------------------------------------------- result

def mask_secret(secret: str | None) -> str:
    """A safe form of a key: ``'…'`` + its last 4 characters, or ``'****'`` if it is short.

    Example:
        >>> mask_secret("0123456789abcdef0123456789abcdef")
        '…cdef'
        >>> mask_secret("short")
        '****'
    """
    if not secret:
        return "(none)"
    return "…" + secret[-4:] if len(secret) >= 12 else "****"


class KaggleCredentials:
    """Which credentials were found, and where. The key itself is never shown.

    Attributes: ``source`` (human description), ``source_id`` (stable short id),
    ``username`` (``None`` for API tokens until :func:`check_credentials`), ``kind``
    (``"api_token"`` or ``"username_key"``), ``path`` (for file sources), ``warnings``.
    """

    __slots__ = ("source", "source_id", "username", "kind", "path", "warnings", "_secret")

    def __init__(self, source_id: str, source: str, secret: str, username: str | None = None,
                 path: str | None = None, warnings: list[str] | None = None) -> None:
        self.source_id = source_id
        self.source = source
        self.username = username
        self.kind = "username_key" if username is not None else "api_token"
        self.path = path
        self.warnings = list(warnings or [])
        self._secret = secret

    @property
    def masked_key(self) -> str:
        """The key or token as ``'…abcd'``."""
        return mask_secret(self._secret)

    def __repr__(self) -> str:
        return (f"KaggleCredentials(source={self.source!r}, username={self.username!r}, "
                f"key={self.masked_key!r})")

    def __str__(self) -> str:
        who = f"user {self.username}, " if self.username else ""
        text = f"Kaggle credentials from {self.source} ({who}key {self.masked_key})"
        return "\n".join([text] + [f"  warning: {w}" for w in self.warnings])

    def _repr_html_(self) -> str:
        import html

        return f"<code>{html.escape(str(self))}</code>"

    def __reduce__(self):   # keep the secret out of pickles (and so out of saved sessions)
        raise TypeError("KaggleCredentials cannot be pickled: it holds a secret.")


# --------------------------------------------------------------------------- sources

def _home() -> Path:
    return Path(os.path.expanduser("~"))


def _read_token_file(path: str | os.PathLike) -> str | None:
    p = Path(path)
    if not p.is_file():
        return None
    text = p.read_text(encoding="utf-8").strip()
    return text or None


def _permission_warning(path: Path) -> list[str]:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return []
    if os.name == "posix" and mode & 0o077:
        return [f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`."]
    return []


def _kagglehub_session_credentials() -> KaggleCredentials | None:
    try:
        import kagglehub.config as khc
    except ImportError:
        return None
    creds = getattr(khc, "_kaggle_credentials", None)
    if not creds:
        return None
    sid, source = "session", "credentials set in this session (kagglehub.login or set_kaggle_*)"
    if _HANDED and _HANDED[0][0] is creds:
        _, sid, source = _HANDED[0]
        source += " (handed to kagglehub)"
    if creds.username and creds.key:
        return KaggleCredentials(sid, source, creds.key, creds.username)
    if creds.api_key:
        return KaggleCredentials(sid, source, creds.api_key)
    return None


def _kaggle_notebook_token(env) -> KaggleCredentials | None:
    # kagglesdk.kaggle_env.is_in_kaggle_notebook: both variables must be set.
    if env.get("KAGGLE_KERNEL_RUN_TYPE") is None or env.get("KAGGLE_DATA_PROXY_URL") is None:
        return None
    path = env.get(KAGGLE_NOTEBOOK_TOKEN_PATH)
    token = _read_token_file(path) if path else None
    if token:
        return KaggleCredentials("kaggle_notebook", "the Kaggle notebook's own account", token)
    return None


def _env_token(env, problems: list[tuple]) -> KaggleCredentials | None:
    value = env.get(TOKEN_NAME)
    if not value:
        return None
    if os.path.exists(value):
        token = _read_token_file(value)
        if token:
            return KaggleCredentials("env_token_file", f"the file named by {TOKEN_NAME} ({value})",
                                     token, path=value)
        # kagglesdk stops its token search here (no ~/.kaggle/access_token): so do we.
        problems.append(("empty_token_file", value))
        return None
    return KaggleCredentials("env_token", f"environment variable {TOKEN_NAME}", value.strip())


def _access_token_file(problems: list[tuple]) -> KaggleCredentials | None:
    if any(p[0] == "empty_token_file" for p in problems):
        return None
    for name in ("access_token", "access_token.txt"):
        path = _home() / ".kaggle" / name
        token = _read_token_file(path)
        if token:
            return KaggleCredentials("access_token_file", f"~/.kaggle/{name}", token,
                                     path=str(path), warnings=_permission_warning(path))
    return None


def _env_username_key(env) -> KaggleCredentials | None:
    user, key = env.get(USERNAME_NAME), env.get(KEY_NAME)
    if user and key:
        return KaggleCredentials("env_username_key",
                                 f"environment variables {USERNAME_NAME} + {KEY_NAME}", key, user)
    return None


def kaggle_json_path(env=None) -> Path:
    """Where kagglehub looks for kaggle.json: ``$KAGGLE_CONFIG_DIR`` or ``~/.kaggle``.

    Example:
        >>> kaggle_json_path({"KAGGLE_CONFIG_DIR": "/cfg"})
        PosixPath('/cfg/kaggle.json')
    """
    env = os.environ if env is None else env
    folder = env.get(CONFIG_DIR_NAME)
    return (Path(folder) if folder else _home() / ".kaggle") / "kaggle.json"


_KAGGLE_JSON_SHAPE = ('It must be JSON like {"username": "your_kaggle_name", "key": "…"}: download '
                      f'a fresh one at {API_SETTINGS_URL} ("Create Legacy API Key"), or delete the '
                      f"file and use a {TOKEN_NAME} instead.")


def _kaggle_json(env) -> KaggleCredentials | None:
    path = kaggle_json_path(env)
    if not path.exists():
        return None
    where = f"{path}" + (f" (from ${CONFIG_DIR_NAME})" if env.get(CONFIG_DIR_NAME) else "")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:   # the message has positions only, never the content
        raise MalformedCredentialsFileError(
            f"{where} is not valid JSON (line {err.lineno}, column {err.colno}), so kagglehub "
            f"cannot read it either. {_KAGGLE_JSON_SHAPE}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise MalformedCredentialsFileError(
            f"{where} cannot be read ({type(err).__name__}). {_KAGGLE_JSON_SHAPE}") from None
    if not isinstance(data, dict):
        raise MalformedCredentialsFileError(
            f"{where} holds a JSON {type(data).__name__}, not an object. {_KAGGLE_JSON_SHAPE}")
    missing = [k for k in ("username", "key") if not isinstance(data.get(k), str) or not data[k].strip()]
    if missing:
        raise MalformedCredentialsFileError(
            f"{where} has no usable {' or '.join(repr(m) for m in missing)}. {_KAGGLE_JSON_SHAPE}")
    return KaggleCredentials("kaggle_json", f"kaggle.json at {where}", data["key"].strip(),
                             data["username"].strip(), path=str(path),
                             warnings=_permission_warning(path))


def _get_secret(getter, name: str, problems: list[tuple], label: str) -> str | None:
    """One secret from a notebook secret store; records why it was not available."""
    try:
        value = getter(name)
    except Exception as err:   # noqa: BLE001 - each store has its own exception classes
        kind = type(err).__name__
        if kind == "NotebookAccessError":          # google.colab.userdata
            problems.append(("access", name))
        elif kind != "SecretNotFoundError":
            problems.append(("error", label, name, kind))
        return None
    if value is None:
        return None
    value = str(value).replace("\r", "").replace("\n", "").strip()
    return value or None


def _secret_store(getter, label: str, source_prefix: str, problems: list[tuple]) -> KaggleCredentials | None:
    token = _get_secret(getter, TOKEN_NAME, problems, label)
    if token:
        return KaggleCredentials(f"{source_prefix}_token", f"{label} {TOKEN_NAME}", token)
    user = _get_secret(getter, USERNAME_NAME, problems, label)
    key = _get_secret(getter, KEY_NAME, problems, label)
    if user and key:
        return KaggleCredentials(f"{source_prefix}_username_key",
                                 f"{label}s {USERNAME_NAME} + {KEY_NAME}", key, user)
    if bool(user) != bool(key):
        have, lack = (USERNAME_NAME, KEY_NAME) if user else (KEY_NAME, USERNAME_NAME)
        problems.append(("half", label, have, lack))
    return None


def _colab_secrets(problems: list[tuple]) -> KaggleCredentials | None:
    try:
        from google.colab import userdata  # type: ignore[import-not-found]
    except ImportError:
        return None
    return _secret_store(userdata.get, "Colab secret", "colab", problems)


def _kaggle_secrets(problems: list[tuple]) -> KaggleCredentials | None:
    try:
        from kaggle_secrets import UserSecretsClient  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        client = UserSecretsClient()
    except Exception as err:   # noqa: BLE001
        problems.append(("error", "Kaggle notebook secret", "client", type(err).__name__))
        return None
    return _secret_store(client.get_secret, "Kaggle notebook secret", "kaggle_secrets", problems)


#: (kagglehub credentials object this module set, source_id, source), so that a later lookup
#: still names the original source (e.g. the Colab secret). Holds the object: identity is safe.
_HANDED: list[tuple[object, str, str]] = []


def _hand_to_kagglehub(creds: KaggleCredentials) -> None:
    """Make kagglehub use these credentials (in memory, not in os.environ)."""
    import kagglehub.config as khc

    if creds.kind == "username_key":
        khc.set_kaggle_credentials(creds.username, creds._secret)
    else:
        khc.set_kaggle_api_token(creds._secret)
    _HANDED[:] = [(khc._kaggle_credentials, creds.source_id, creds.source)]


# --------------------------------------------------------------------------- messages

def _platform() -> str:
    from .runtime import detect_platform

    return detect_platform()


def _how_to_add(platform: str) -> str:
    colab = (f"In Colab: create a token at {API_SETTINGS_URL} (Kaggle → Settings → API → "
             "Generate New Token). Click the key icon (Secrets) in the left sidebar → "
             f"'Add new secret': name {TOKEN_NAME}, value the token (a legacy kaggle.json "
             f"instead needs two secrets, {USERNAME_NAME} and {KEY_NAME}). Switch on "
             "'Notebook access' for it, then run this cell again.")
    kaggle = ("In a Kaggle notebook: Add-ons → Secrets → 'Add a new secret' named "
              f"{TOKEN_NAME} (or {USERNAME_NAME} and {KEY_NAME}) with a token from "
              f"{API_SETTINGS_URL}, tick it to attach it to this notebook, then run this cell "
              "again. Or add CodeGemma as notebook input (Add Input → Models).")
    local = (f"Locally: `export {TOKEN_NAME}=<token>` with a token from {API_SETTINGS_URL}, or "
             f"save the legacy kaggle.json as ~/.kaggle/kaggle.json (or in ${CONFIG_DIR_NAME}) "
             "with `chmod 600`, or call find_credentials(interactive=True) to paste a token.")
    order = {"colab": [colab, kaggle, local], "kaggle": [kaggle, colab, local]}.get(
        platform, [local, colab, kaggle])
    return "\n".join(f"  - {line}" for line in order)


def _missing_message(problems: list[tuple], platform: str) -> str:
    notes = []
    for p in problems:
        if p[0] == "half":
            _, label, have, lack = p
            notes.append(f"found the {label} {have} but not {lack}: add {lack} too (or use "
                         f"{TOKEN_NAME} alone).")
        elif p[0] == "empty_token_file":
            notes.append(f"{TOKEN_NAME} names the file {p[1]}, which is empty: put the token "
                         f"in it, or set {TOKEN_NAME} to the token itself.")
        elif p[0] == "error":
            _, label, name, kind = p
            notes.append(f"reading the {label} {name} failed ({kind}); if the secret exists, "
                         "attach it to this notebook.")
    lead = "No Kaggle credentials found (looked in the session, environment variables, " \
           "~/.kaggle, Colab and Kaggle secrets). CodeGemma downloads need them.\n"
    extra = "".join(f"Note: {n}\n" for n in notes)
    return f"{lead}{extra}How to add them:\n{_how_to_add(platform)}"


def _where_to_fix(creds: KaggleCredentials | None) -> str:
    if creds is None:
        return "the place you keep your Kaggle credentials"
    sid = creds.source_id
    if sid.startswith("colab"):
        return f"the Colab secret(s) ({creds.source}; key icon in the left sidebar)"
    if sid.startswith("kaggle_secrets"):
        return f"the Kaggle notebook secret(s) ({creds.source}; Add-ons → Secrets)"
    if creds.path:
        return f"{creds.path}"
    return creds.source


def _who(creds: KaggleCredentials | None) -> str:
    if creds is None:
        return "anonymous (no credentials were found)"
    user = f"'{creds.username}'" if creds.username else "the account of the token"
    return f"{user} (credentials from {creds.source}, key {creds.masked_key})"


def _lookup_quietly() -> KaggleCredentials | None:
    try:
        return find_credentials(apply=False)
    except Exception:   # noqa: BLE001 - only used to enrich a message
        return None


# --------------------------------------------------------------------------- public API

def find_credentials(*, interactive: bool = False, apply: bool = True) -> KaggleCredentials:
    """Find Kaggle credentials in every source kagglehub knows, plus notebook secret stores.

    Args:
        interactive: as a last resort, call ``kagglehub.login()`` (a password prompt, or a
            login box in notebooks: paste the token, click Login, run the cell again).
        apply: hand secrets from Colab/Kaggle secret stores to kagglehub so that its
            downloads use them (kagglehub reads Colab secrets itself only in some cases and
            Kaggle notebook secrets never).

    Returns:
        :class:`KaggleCredentials` (source, username, masked key).

    Raises:
        MalformedCredentialsFileError: kaggle.json is not valid (kagglehub would fail too).
        ColabSecretAccessError: the Colab secret exists, but notebook access is off.
        MissingCredentialsError: nothing anywhere; the message says where to add what.

    Example:
        >>> find_credentials()          # doctest: +SKIP
        KaggleCredentials(source='environment variable KAGGLE_API_TOKEN', username=None, key='…9f3a')
    """
    env = os.environ
    problems: list[tuple] = []
    for finder in (_kagglehub_session_credentials, lambda: _kaggle_notebook_token(env),
                   lambda: _env_token(env, problems), lambda: _access_token_file(problems),
                   lambda: _env_username_key(env), lambda: _kaggle_json(env)):
        creds = finder()
        if creds is not None:
            return creds
    for store in (_colab_secrets, _kaggle_secrets):
        creds = store(problems)
        if creds is not None:
            if apply:
                _hand_to_kagglehub(creds)
            return creds
    if interactive:
        import kagglehub

        kagglehub.login(validate_credentials=False)
        creds = _kagglehub_session_credentials()
        if creds is not None:
            creds.source_id, creds.source = "interactive", "kagglehub.login() (entered now)"
            return creds
        raise MissingCredentialsError(
            "A Kaggle login box is shown above: paste your API token from "
            f"{API_SETTINGS_URL}, click Login, then run this cell again.")
    access = sorted({p[1] for p in problems if p[0] == "access"})
    if access:
        raise ColabSecretAccessError(
            f"The Colab secret(s) {', '.join(access)} exist, but this notebook has no access to "
            "them. Click the key icon (Secrets) in Colab's left sidebar and switch on 'Notebook "
            "access' next to each one (or answer 'Grant access' when Colab asks), then run this "
            "cell again.")
    raise MissingCredentialsError(_missing_message(problems, _platform()))


def check_credentials(credentials: KaggleCredentials | None = None) -> KaggleCredentials:
    """Ask Kaggle who these credentials belong to (``kagglehub.whoami()``); network needed.

    Returns the credentials with ``username`` filled in. Raises
    :class:`InvalidCredentialsError` (401) with the place to fix them, or
    :class:`KaggleCredentialsError` if Kaggle could not be reached.

    Example:
        >>> check_credentials().username       # doctest: +SKIP
        'alice'
    """
    creds = credentials or find_credentials()
    import kagglehub
    from kagglehub.exceptions import UnauthenticatedError

    try:
        answer = kagglehub.whoami(verbose=False)
    except UnauthenticatedError as err:
        cause = err.__cause__
        if cause is not None and not isinstance(cause, UnauthenticatedError):
            import requests

            if isinstance(cause, (requests.ConnectionError, requests.Timeout, OSError)):
                raise KaggleCredentialsError(
                    f"Could not reach kaggle.com to check the credentials ({type(cause).__name__}). "
                    "Check the internet connection (on Kaggle: Session options → Internet on), "
                    "then retry.") from None
        raise InvalidCredentialsError(_invalid_message(creds)) from None
    username = answer.get("username") if isinstance(answer, dict) else None
    if username:
        creds.username = username
    return creds


def _invalid_message(creds: KaggleCredentials | None) -> str:
    return (f"Kaggle rejected the credentials (401 Unauthorized) used by {_who(creds)}. The key "
            "or token is wrong, expired or revoked. Create a new token at "
            f"{API_SETTINGS_URL} and put it in {_where_to_fix(creds)}, then run this cell again.")


def save_credentials(credentials: KaggleCredentials, directory: str | os.PathLike | None = None,
                     *, overwrite: bool = False) -> Path:
    """Write credentials where kagglehub finds them next time, readable only by you (mode 0600).

    Username + key go to ``kaggle.json`` in ``directory`` (default ``$KAGGLE_CONFIG_DIR`` or
    ``~/.kaggle``); an API token goes to ``access_token`` there (kagglehub reads
    ``~/.kaggle/access_token``; elsewhere, point ``KAGGLE_API_TOKEN`` at the file).

    Example:
        >>> save_credentials(find_credentials())      # doctest: +SKIP
        PosixPath('/root/.kaggle/kaggle.json')
    """
    if not isinstance(credentials, KaggleCredentials):
        raise TypeError("save_credentials needs the KaggleCredentials from find_credentials()")
    folder = Path(directory) if directory is not None else kaggle_json_path().parent
    if credentials.kind == "username_key":
        path = folder / "kaggle.json"
        content = json.dumps({"username": credentials.username, "key": credentials._secret})
    else:
        folder = Path(directory) if directory is not None else _home() / ".kaggle"
        path = folder / "access_token"
        content = credentials._secret
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it.")
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (content + "\n").encode("utf-8"))
    finally:
        os.close(fd)
    os.replace(tmp, path)
    os.chmod(path, 0o600)
    return path


_PRESET_IN_TEXT = re.compile(r"codegemma/keras/([A-Za-z0-9_.\-]+?)(?:/\d+)?(?=[`'\"/\s]|$)")


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen and len(seen) < 10:
        seen.append(cur)
        cur = cur.__cause__ or cur.__context__
    return seen


def actionable_error(exc: BaseException, preset: str | None = None,
                     credentials: KaggleCredentials | None = None) -> BaseException:
    """Turn an error from ``load_model``/``from_preset``/kagglehub into one that says what to do.

    Recognises keras-hub's 403 rewrite ("…If this model is gated, accept its terms…"),
    kagglehub's ``KaggleApiHTTPError`` ("…not consented…", 401/403), ``UnauthenticatedError``
    and malformed kaggle.json. Anything else is returned unchanged.

    Example:
        >>> err = FileNotFoundError("`config.json` is not accessible in preset directory "
        ...     "`kaggle://keras/codegemma/keras/code_gemma_2b_en/2`. If this model is gated, "
        ...     "accept its terms on kaggle.com and retry.")
        >>> new = actionable_error(err, credentials=None)
        >>> type(new).__name__, "keras/codegemma/keras/code_gemma_2b_en" in str(new)
        ('TermsNotAcceptedError', True)
    """
    chain = _chain(exc)
    for e in chain:
        if isinstance(e, KaggleCredentialsError):
            return e
    text = "\n".join(f"{type(e).__name__}: {e}" for e in chain)
    low = text.lower()
    if preset is None:
        m = _PRESET_IN_TEXT.search(text)
        preset = m.group(1) if m else None

    def creds() -> KaggleCredentials | None:
        return credentials if credentials is not None else _lookup_quietly()

    if ("not consented" in low or "accept its terms" in low or "403 client error" in low
            or "403 forbidden" in low):
        from .loading import kaggle_model_page

        page = kaggle_model_page(preset) if preset else "https://www.kaggle.com/models/keras/codegemma"
        who = creds()
        what = f"CodeGemma preset {preset}" if preset else "this CodeGemma preset"
        accept = (f"Open {page}, sign in, accept the Gemma license ('Request access' / "
                  "'Acknowledge license'), then run this cell again.")
        if who is None:
            return TermsNotAcceptedError(
                f"Kaggle refused to download {what} (403). No Kaggle credentials were found, so "
                f"the request was anonymous. {accept} Then add credentials of that same "
                f"account:\n{_how_to_add(_platform())}")
        return TermsNotAcceptedError(
            f"Kaggle refused to download {what} (403): the account {_who(who)} has not "
            f"accepted the model's terms. {accept} Accepting with a different account does not "
            "help: the token must belong to the account that accepted.")
    if ("401 client error" in low or "unauthorized" in low
            or any(type(e).__name__ == "UnauthenticatedError" for e in chain)):
        return InvalidCredentialsError(_invalid_message(creds()))
    if "kaggle credentials file" in low or "invalid kaggle credentials" in low:
        path = kaggle_json_path()
        return MalformedCredentialsFileError(f"{path} is not a valid Kaggle credentials file "
                                             f"(kagglehub could not read it). {_KAGGLE_JSON_SHAPE}")
    return exc


@contextmanager
def kaggle_errors_explained(preset: str | None = None) -> Iterator[None]:
    """Re-raise Kaggle access errors from the block as :func:`actionable_error` ones.

    Example:
        >>> with kaggle_errors_explained("code_gemma_7b_en"):      # doctest: +SKIP
        ...     loaded = load_model("code_gemma_7b_en")
    """
    try:
        yield
    except Exception as err:
        better = actionable_error(err, preset)
        if better is err:
            raise
        raise better from err
