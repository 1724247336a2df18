"""Tests for cg_helpers.credentials. No network: Colab/Kaggle modules and kagglehub calls are fakes.

A planted fake key is used everywhere; the ``leaks`` fixture scans everything printed, logged and
every repr/str/message of the watched objects for it.
"""

import itertools
import json
import logging
import os
import pickle
import stat
import sys
import types

import kagglehub
import kagglehub.config as khc
import pytest
from kagglehub.exceptions import KaggleApiHTTPError, UnauthenticatedError

from cg_helpers import credentials as cr
from cg_helpers.loading import kaggle_model_page

FAKE = "PLANTEDkey0123456789abcdefSECRET"       # masked: '…CRET'
FAKE_PARTS = [FAKE, FAKE[:-4], FAKE[4:-4]]        # no visible piece longer than 4 chars


@pytest.fixture
def iso(monkeypatch, tmp_path):
    """No credentials anywhere: fresh HOME, no KAGGLE_*/COLAB_* variables, no secret stores."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for key in list(os.environ):
        if key.startswith(("KAGGLE_", "COLAB_")):
            monkeypatch.delenv(key)
    monkeypatch.setattr(khc, "_kaggle_credentials", None)
    monkeypatch.setattr(khc, "DEFAULT_KAGGLE_CREDENTIALS_FOLDER", str(home / ".kaggle"))
    monkeypatch.setitem(sys.modules, "google.colab", None)          # import -> ImportError
    monkeypatch.setitem(sys.modules, "google.colab.userdata", None)
    monkeypatch.setitem(sys.modules, "kaggle_secrets", None)
    monkeypatch.setattr(cr, "_HANDED", [])
    monkeypatch.setattr(kagglehub, "login", _login_must_not_run)
    return types.SimpleNamespace(home=home, mp=monkeypatch, tmp=tmp_path)


def _login_must_not_run(*a, **k):
    raise AssertionError("kagglehub.login() must only run with interactive=True")


@pytest.fixture
def leaks(capsys, caplog):
    """Watch objects; at the end, no output, log or repr/str/message may contain the fake key."""
    caplog.set_level(logging.DEBUG)
    for name in ("kagglehub", "kagglesdk"):
        logging.getLogger(name).addHandler(caplog.handler)
    watched = []
    yield watched
    for name in ("kagglehub", "kagglesdk"):
        logging.getLogger(name).removeHandler(caplog.handler)
    out = capsys.readouterr()
    texts = [out.out, out.err, caplog.text]
    for obj in watched:
        texts += [repr(obj), str(obj)]
        if hasattr(obj, "_repr_html_"):
            texts.append(obj._repr_html_())
        if isinstance(obj, BaseException):
            texts += [str(e) for e in (obj.__cause__, obj.__context__) if e is not None]
    for text in texts:
        for part in FAKE_PARTS:
            assert part not in text, f"secret leaked into: {text[:200]!r}"


def kagglehub_secret():
    """What kagglehub itself would use (the oracle for the lookup order)."""
    c = khc.get_kaggle_credentials()
    return None if c is None else (c.api_key or c.key)


def write(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------- fakes

def install_colab(mp, secrets, no_access=()):
    userdata = types.ModuleType("google.colab.userdata")

    class SecretNotFoundError(Exception):
        pass

    class NotebookAccessError(Exception):
        pass

    def get(key):
        if key in no_access:
            raise NotebookAccessError(f"Notebook access is not granted for secret {key}")
        if key not in secrets:
            raise SecretNotFoundError(f"Secret {key} does not exist.")
        return secrets[key]

    userdata.SecretNotFoundError = SecretNotFoundError
    userdata.NotebookAccessError = NotebookAccessError
    userdata.get = get
    colab = types.ModuleType("google.colab")
    colab.userdata = userdata
    mp.setitem(sys.modules, "google.colab", colab)
    mp.setitem(sys.modules, "google.colab.userdata", userdata)
    mp.setenv("COLAB_RELEASE_TAG", "release-colab_fake")


def install_kaggle_secrets(mp, secrets):
    mod = types.ModuleType("kaggle_secrets")

    class BackendError(Exception):
        pass

    class UserSecretsClient:
        def get_secret(self, label):
            if label not in secrets:
                raise BackendError("Unexpected response from the service.")
            return secrets[label]

    mod.UserSecretsClient = UserSecretsClient
    mod.BackendError = BackendError
    mp.setitem(sys.modules, "kaggle_secrets", mod)
    mp.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")


# --------------------------------------------------------------------------- each source

def test_env_api_token(iso, leaks):
    iso.mp.setenv("KAGGLE_API_TOKEN", FAKE)
    c = cr.find_credentials()
    leaks.append(c)
    assert c.source_id == "env_token" and c.kind == "api_token" and c.username is None
    assert c.masked_key == "…CRET" and "KAGGLE_API_TOKEN" in repr(c)
    assert c._secret == kagglehub_secret() == FAKE
    print(c, repr(c))


def test_env_api_token_naming_a_file(iso, leaks):
    f = write(iso.tmp / "tok", FAKE + "\n")
    iso.mp.setenv("KAGGLE_API_TOKEN", str(f))
    c = cr.find_credentials()
    leaks.append(c)
    assert c.source_id == "env_token_file" and c._secret == kagglehub_secret() == FAKE


def test_env_api_token_naming_an_empty_file_stops_token_search_like_kagglehub(iso, leaks):
    empty = write(iso.tmp / "empty", "")
    iso.mp.setenv("KAGGLE_API_TOKEN", str(empty))
    write(iso.home / ".kaggle" / "access_token", FAKE)          # kagglesdk skips this now
    assert kagglehub_secret() is None
    with pytest.raises(cr.MissingCredentialsError, match="which is empty") as err:
        cr.find_credentials()
    leaks.append(err.value)
    iso.mp.setenv("KAGGLE_USERNAME", "lee")
    iso.mp.setenv("KAGGLE_KEY", FAKE[::-1])
    assert cr.find_credentials()._secret == kagglehub_secret() == FAKE[::-1]


def test_access_token_file(iso, leaks):
    write(iso.home / ".kaggle" / "access_token", FAKE)
    c = cr.find_credentials()
    leaks.append(c)
    assert c.source_id == "access_token_file" and c._secret == kagglehub_secret() == FAKE


def test_env_username_and_key(iso, leaks):
    iso.mp.setenv("KAGGLE_USERNAME", "alice")
    iso.mp.setenv("KAGGLE_KEY", FAKE)
    c = cr.find_credentials()
    leaks.append(c)
    assert (c.source_id, c.username, c.kind) == ("env_username_key", "alice", "username_key")
    assert c._secret == kagglehub_secret() == FAKE


def test_kaggle_json_in_home_and_in_config_dir(iso, leaks):
    write(iso.home / ".kaggle" / "kaggle.json", json.dumps({"username": "bob", "key": FAKE}))
    c = cr.find_credentials()
    leaks.append(c)
    assert (c.source_id, c.username) == ("kaggle_json", "bob")
    assert c._secret == kagglehub_secret() == FAKE and c.warnings == []
    cfg = iso.tmp / "cfg"
    write(cfg / "kaggle.json", json.dumps({"username": "carol", "key": FAKE[::-1]}), mode=0o644)
    iso.mp.setenv("KAGGLE_CONFIG_DIR", str(cfg))
    c2 = cr.find_credentials()
    leaks.append(c2)
    assert c2.username == "carol" and "KAGGLE_CONFIG_DIR" in c2.source
    assert c2._secret == kagglehub_secret()
    assert any("chmod 600" in w for w in c2.warnings)          # world-readable file flagged


SOURCES = ["env_token", "access_token_file", "env_username_key", "kaggle_json"]


@pytest.mark.parametrize("present", [s for n in range(1, 5) for s in itertools.combinations(SOURCES, n)])
def test_lookup_order_matches_kagglehub(iso, present):
    secrets = {name: f"{name}-secret-{i:02d}-xxxxxxxx" for i, name in enumerate(SOURCES)}
    if "env_token" in present:
        iso.mp.setenv("KAGGLE_API_TOKEN", secrets["env_token"])
    if "access_token_file" in present:
        write(iso.home / ".kaggle" / "access_token", secrets["access_token_file"])
    if "env_username_key" in present:
        iso.mp.setenv("KAGGLE_USERNAME", "u1")
        iso.mp.setenv("KAGGLE_KEY", secrets["env_username_key"])
    if "kaggle_json" in present:
        write(iso.home / ".kaggle" / "kaggle.json",
              json.dumps({"username": "u2", "key": secrets["kaggle_json"]}))
    c = cr.find_credentials()
    assert c.source_id == present[0]                 # SOURCES is in priority order
    assert c._secret == kagglehub_secret() == secrets[present[0]]


def test_session_credentials_come_first(iso, leaks):
    iso.mp.setenv("KAGGLE_API_TOKEN", "other-token-which-loses")
    khc.set_kaggle_api_token(FAKE)
    c = cr.find_credentials()
    leaks.append(c)
    assert c.source_id == "session" and c._secret == kagglehub_secret() == FAKE


def test_kaggle_notebook_own_token(iso, leaks):
    f = write(iso.tmp / "v1token", FAKE)
    iso.mp.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    iso.mp.setenv("KAGGLE_DATA_PROXY_URL", "http://proxy.invalid")
    iso.mp.setenv("KAGGLE_API_V1_TOKEN", str(f))
    c = cr.find_credentials()
    leaks.append(c)
    assert c.source_id == "kaggle_notebook" and c._secret == kagglehub_secret() == FAKE


@pytest.mark.parametrize("secrets,source_id,username", [
    ({"KAGGLE_API_TOKEN": FAKE}, "colab_token", None),
    ({"KAGGLE_USERNAME": "dave", "KAGGLE_KEY": FAKE + "\n"}, "colab_username_key", "dave"),
])
def test_colab_secrets_both_schemes_are_handed_to_kagglehub(iso, leaks, secrets, source_id, username):
    install_colab(iso.mp, secrets)
    c = cr.find_credentials()
    leaks.append(c)
    assert (c.source_id, c.username) == (source_id, username)
    assert c._secret == FAKE
    assert kagglehub_secret() == FAKE                # kagglehub now downloads with them
    again = cr.find_credentials()                    # still reports the real source
    leaks.append(again)
    assert again.source_id == source_id and "Colab secret" in again.source


def test_colab_secrets_not_applied_when_asked(iso):
    install_colab(iso.mp, {"KAGGLE_API_TOKEN": FAKE})
    assert cr.find_credentials(apply=False).source_id == "colab_token"
    assert kagglehub_secret() is None


def test_colab_without_notebook_access(iso, leaks):
    install_colab(iso.mp, {"KAGGLE_API_TOKEN": FAKE}, no_access={"KAGGLE_API_TOKEN"})
    with pytest.raises(cr.ColabSecretAccessError) as err:
        cr.find_credentials()
    leaks.append(err.value)
    msg = str(err.value)
    assert "KAGGLE_API_TOKEN" in msg and "Notebook access" in msg and "key icon" in msg


def test_colab_half_of_the_legacy_pair(iso, leaks):
    install_colab(iso.mp, {"KAGGLE_USERNAME": "erin"})
    with pytest.raises(cr.MissingCredentialsError) as err:
        cr.find_credentials()
    leaks.append(err.value)
    assert "found the Colab secret KAGGLE_USERNAME but not KAGGLE_KEY" in str(err.value)


@pytest.mark.parametrize("secrets,source_id", [
    ({"KAGGLE_API_TOKEN": FAKE}, "kaggle_secrets_token"),
    ({"KAGGLE_USERNAME": "fay", "KAGGLE_KEY": FAKE}, "kaggle_secrets_username_key"),
])
def test_kaggle_notebook_secrets(iso, leaks, secrets, source_id):
    install_kaggle_secrets(iso.mp, secrets)
    c = cr.find_credentials()
    leaks.append(c)
    assert c.source_id == source_id and c._secret == FAKE == kagglehub_secret()


def test_interactive_login_only_when_asked(iso, leaks):
    with pytest.raises(cr.MissingCredentialsError):
        cr.find_credentials()                          # _login_must_not_run would fail
    calls = []

    def fake_login(validate_credentials=True):
        calls.append(validate_credentials)
        khc.set_kaggle_api_token(FAKE)

    iso.mp.setattr(kagglehub, "login", fake_login)
    c = cr.find_credentials(interactive=True)
    leaks.append(c)
    assert c.source_id == "interactive" and calls == [False] and c._secret == FAKE


def test_interactive_login_box_in_notebook(iso, leaks):
    iso.mp.setattr(kagglehub, "login", lambda validate_credentials=True: None)   # widget shown
    with pytest.raises(cr.MissingCredentialsError, match="login box is shown above") as err:
        cr.find_credentials(interactive=True)
    leaks.append(err.value)


# --------------------------------------------------------------------------- failures

@pytest.mark.parametrize("platform_env,expect_first", [
    ({}, "Locally: `export KAGGLE_API_TOKEN"),
    ({"COLAB_RELEASE_TAG": "x"}, "In Colab"),
    ({"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, "In a Kaggle notebook: Add-ons → Secrets"),
])
def test_no_credentials_message_per_platform(iso, leaks, platform_env, expect_first):
    for k, v in platform_env.items():
        iso.mp.setenv(k, v)
    with pytest.raises(cr.MissingCredentialsError) as err:
        cr.find_credentials()
    leaks.append(err.value)
    msg = str(err.value)
    first_tip = msg.split("How to add them:\n")[1].splitlines()[0]
    assert expect_first in first_tip
    for needle in ("key icon", "Notebook access", "Add-ons → Secrets", "~/.kaggle/kaggle.json",
                   "KAGGLE_USERNAME", cr.API_SETTINGS_URL):
        assert needle in msg


@pytest.mark.parametrize("content,needle,kagglehub_rejects", [
    ('{"username": "gus", "key": "' + FAKE + '"', "not valid JSON", True),
    (json.dumps({"username": "gus"}), "'key'", True),
    (json.dumps({"key": FAKE}), "'username'", True),
    # kagglehub accepts these and fails later (blank key: 401; a list: TypeError)
    (json.dumps({"username": "gus", "key": "  "}), "'key'", False),
    (json.dumps(["gus", FAKE]), "JSON list", False),
])
def test_malformed_kaggle_json(iso, leaks, content, needle, kagglehub_rejects):
    path = write(iso.home / ".kaggle" / "kaggle.json", content)
    with pytest.raises(cr.MalformedCredentialsFileError) as err:
        cr.find_credentials()
    leaks.append(err.value)
    msg = str(err.value)
    assert str(path) in msg and needle in msg and '{"username": "your_kaggle_name"' in msg
    assert isinstance(err.value, ValueError)
    if kagglehub_rejects:
        with pytest.raises(ValueError):                # kagglehub rejects it too
            khc.get_kaggle_credentials()


def test_check_credentials_success_and_401(iso, leaks):
    iso.mp.setenv("KAGGLE_USERNAME", "hank")
    iso.mp.setenv("KAGGLE_KEY", FAKE)
    iso.mp.setattr(kagglehub, "whoami", lambda verbose=True: {"username": "hank"})
    c = cr.check_credentials()
    leaks.append(c)
    assert c.username == "hank"

    def reject(verbose=True):
        raise UnauthenticatedError()

    iso.mp.setattr(kagglehub, "whoami", reject)
    with pytest.raises(cr.InvalidCredentialsError) as err:
        cr.check_credentials()
    leaks.append(err.value)
    msg = str(err.value)
    assert "401" in msg and cr.API_SETTINGS_URL in msg and "KAGGLE_USERNAME + KAGGLE_KEY" in msg
    assert "…CRET" in msg and "'hank'" in msg


def test_check_credentials_network_failure(iso, leaks):
    import requests

    iso.mp.setenv("KAGGLE_API_TOKEN", FAKE)

    def offline(verbose=True):
        try:
            raise requests.ConnectionError("no route")
        except requests.ConnectionError as e:
            raise UnauthenticatedError() from e

    iso.mp.setattr(kagglehub, "whoami", offline)
    with pytest.raises(cr.KaggleCredentialsError, match="Could not reach kaggle.com") as err:
        cr.check_credentials()
    assert not isinstance(err.value, cr.InvalidCredentialsError)
    leaks.append(err.value)


KERAS_HUB_403 = ("`config.json` is not accessible in preset directory "
                 "`kaggle://keras/codegemma/keras/code_gemma_7b_en/3`. If this model is gated, "
                 "accept its terms on kaggle.com and retry.")
KAGGLEHUB_403 = ("403 Client Error.\n\nYou don't have permission to access resource at URL: "
                 "https://www.kaggle.com/models/keras/codegemma/keras/code_gemma_1.1_2b_en/2. "
                 "The server reported the following issues: Permission denied: User has not "
                 "consented to terms of use.\nPlease make sure you are authenticated.")


def test_403_from_keras_hub_names_the_model_page(iso, leaks):
    iso.mp.setenv("KAGGLE_USERNAME", "ida")
    iso.mp.setenv("KAGGLE_KEY", FAKE)
    err = cr.actionable_error(FileNotFoundError(KERAS_HUB_403))
    leaks.append(err)
    assert isinstance(err, cr.TermsNotAcceptedError)
    msg = str(err)
    assert kaggle_model_page("code_gemma_7b_en") in msg and "'ida'" in msg and "…CRET" in msg


def test_403_kagglehub_not_consented_chained(iso, leaks):
    iso.mp.setenv("KAGGLE_API_TOKEN", FAKE)
    try:
        try:
            raise KaggleApiHTTPError(KAGGLEHUB_403)
        except KaggleApiHTTPError as inner:
            raise RuntimeError("loading failed") from inner
    except RuntimeError as outer:
        err = cr.actionable_error(outer)
    leaks.append(err)
    assert isinstance(err, cr.TermsNotAcceptedError)
    assert kaggle_model_page("code_gemma_1.1_2b_en") in str(err)
    # an explicit preset wins over the one in the text
    assert kaggle_model_page("code_gemma_2b_en") in str(
        cr.actionable_error(KaggleApiHTTPError(KAGGLEHUB_403), preset="code_gemma_2b_en"))


def test_403_without_any_credentials_also_says_how_to_add_them(iso, leaks):
    err = cr.actionable_error(FileNotFoundError(KERAS_HUB_403))
    leaks.append(err)
    assert isinstance(err, cr.TermsNotAcceptedError)
    assert "anonymous" in str(err) and "Locally: `export KAGGLE_API_TOKEN" in str(err)
    assert kaggle_model_page("code_gemma_7b_en") in str(err)


@pytest.mark.parametrize("exc", [
    KaggleApiHTTPError("401 Client Error.\n\nYou don't have permission to access resource"),
    UnauthenticatedError(),
])
def test_401_becomes_invalid_credentials(iso, leaks, exc):
    write(iso.home / ".kaggle" / "kaggle.json", json.dumps({"username": "jo", "key": FAKE}))
    err = cr.actionable_error(exc)
    leaks.append(err)
    assert isinstance(err, cr.InvalidCredentialsError)
    assert str(iso.home / ".kaggle" / "kaggle.json") in str(err)   # where to fix it


def test_malformed_file_error_from_kagglehub_is_explained(iso, leaks):
    err = cr.actionable_error(ValueError("Kaggle credentials file at /x/kaggle.json is missing 'key' key"))
    leaks.append(err)
    assert isinstance(err, cr.MalformedCredentialsFileError)


def test_unrelated_errors_pass_through(iso):
    e = ValueError("Unknown preset 'foo'")
    assert cr.actionable_error(e) is e
    with pytest.raises(ZeroDivisionError):
        with cr.kaggle_errors_explained("code_gemma_2b_en"):
            1 / 0


def test_context_manager_raises_actionable_error_from_original(iso):
    with pytest.raises(cr.TermsNotAcceptedError) as err:
        with cr.kaggle_errors_explained("code_gemma_7b_en"):
            raise FileNotFoundError(KERAS_HUB_403)
    assert isinstance(err.value.__cause__, FileNotFoundError)


# --------------------------------------------------------------------------- saving, masking

@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_save_kaggle_json_mode_0600(iso, leaks, umask):
    iso.mp.setenv("KAGGLE_USERNAME", "kim")
    iso.mp.setenv("KAGGLE_KEY", FAKE)
    c = cr.find_credentials()
    target = iso.tmp / "cfgdir"
    old = os.umask(umask)
    try:
        path = cr.save_credentials(c, target)
    finally:
        os.umask(old)
    leaks.append(path)
    assert path == target / "kaggle.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"username": "kim", "key": FAKE}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        cr.save_credentials(c, target)
    iso.mp.delenv("KAGGLE_USERNAME")
    iso.mp.delenv("KAGGLE_KEY")
    iso.mp.setenv("KAGGLE_CONFIG_DIR", str(target))
    assert cr.find_credentials()._secret == kagglehub_secret() == FAKE   # found again


def test_save_token_as_access_token_file(iso, leaks):
    install_colab(iso.mp, {"KAGGLE_API_TOKEN": FAKE})
    path = cr.save_credentials(cr.find_credentials(apply=False))
    assert path == iso.home / ".kaggle" / "access_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    iso.mp.setitem(sys.modules, "google.colab", None)
    assert cr.find_credentials().source_id == "access_token_file"
    assert kagglehub_secret() == FAKE


def test_mask_and_no_pickle(iso):
    assert cr.mask_secret(FAKE) == "…CRET" and cr.mask_secret("abc") == "****"
    iso.mp.setenv("KAGGLE_API_TOKEN", FAKE)
    c = cr.find_credentials()
    with pytest.raises(TypeError, match="secret"):
        pickle.dumps(c)
    assert not hasattr(c, "__dict__")               # vars(c) cannot dump the key
