"""Redaction: no secret value from the environment, argv, logs or params reaches the store,
markers are stable per key, and ordinary text passes through byte for byte."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from blake3 import blake3

from vestige.capture.redact import PATTERNS, Redactor, is_secret_name

KEY = b"k" * 32
MARKER = re.compile(r"<redacted:[0-9a-f]{8}>")

# Token-shaped values are assembled from parts so that secret scanners leave this file alone.
AWS_ID = "AKIA" + "IOSFODNN7" + "EXAMPLE"
GHP = "ghp_" + "A1b2C3d4E5" * 3 + "f6G7h8"
GLPAT = "glpat-" + "xY9_zW8-vU7tS6rQ5pO4"
XOXB = "xoxb-" + "1234567890-0987654321-" + "AbCdEfGhIjKlMnOpQrSt"
SK = "sk-" + "proj-" + "Ab3dEf6hIj9lMn2pQr5tUv8x"
HF = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNmQwEr"
JWT = (
    "eyJ" + "hbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJ" + "zdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM_BODY = "MIIEowIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM2Ml2\nq8ZbJxRHNyb3BfS0VZLS0tLS0K"
PEM = "-----BEGIN RSA " + "PRIVATE KEY-----\n" + PEM_BODY + "\n-----END RSA PRIVATE KEY-----"
DB_PW = "s3cr3t-Pa55"
PG_URL = f"postgresql://alice:{DB_PW}@db.example.org:5432/experiments"

BY_NAME = {
    "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GITHUB_TOKEN": "plain-token-value-1",
    "DB_PASSWORD": "correct-horse-battery",
    "MY_API_KEY": "my-api-key-value",
    "SESSION_ID": "sess-4242-abcd",
    "SLACK_SIGNING_SECRET": "slack-signing-xyz",
    "MYSQL_PASSWD": "mysql-pw-value",
    "GOOGLE_APPLICATION_CREDENTIALS": "/home/alice/.config/gcloud/sa.json",
    "HTTP_AUTHORIZATION": "Basic YWxpY2U6cGFzc3dvcmQ=",
    "DEPLOY_PRIVATE_KEY_B64": "LS0tLS1CRUdJTiBPUEVOU1NI",
    "BROWSER_COOKIE": "sid=31d4d96e407aad42",
}
BY_VALUE = {
    "AWS_ID": AWS_ID,
    "GH": GHP,
    "GL": GLPAT,
    "SLACK": XOXB,
    "OPENAI": SK,
    "HF": HF,
    "JWT_IN_HERE": JWT,
    "SSH_THING": PEM,
    "DATABASE_URL": PG_URL,
}
INNOCENT = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": "/home/alice",
    "LANG": "en_US.UTF-8",
    "PYTHONPATH": "/home/alice/src:/opt/lib/python3.11/site-packages",
    "GIT_SHA": "3f786850e387550fdab836ed7e6dc881de23001b",
    "BLAKE3": "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    "RUN_UUID": "123e4567-e89b-12d3-a456-426614174000",
    "TOKENIZERS_PARALLELISM": "false",
    "GIT_AUTHOR_NAME": "Alice Example",
    "XDG_SESSION_TYPE": "wayland",
    "SERVICE_URL": "https://example.org:8443/api/v1?user=alice#top",
    "DATA_DIR": "/data/sk-001-experiment-results/run_hf_model",
    "CUDA_VISIBLE_DEVICES": "0,1",
}
ENV = {**BY_NAME, **BY_VALUE, **INNOCENT}


def redacted_env() -> tuple[Redactor, dict[str, str]]:
    r = Redactor(KEY)
    return r, r.redact_env(ENV)


def test_twenty_secret_variables_are_all_replaced() -> None:
    assert len(BY_NAME) + len(BY_VALUE) == 20
    r, out = redacted_env()
    dumped = json.dumps(out)
    for name, value in BY_NAME.items():
        assert out[name] == r.marker(value), name
    for name, value in BY_VALUE.items():
        assert value not in out[name], name
        assert MARKER.search(out[name]), name
    for value in [*BY_NAME.values(), *BY_VALUE.values(), DB_PW, *PEM_BODY.splitlines()]:
        assert value not in dumped
        assert json.dumps(value)[1:-1] not in dumped  # nor its JSON-escaped form


def test_url_keeps_everything_but_the_password() -> None:
    r, out = redacted_env()
    marker = r.marker(DB_PW)
    assert out["DATABASE_URL"] == f"postgresql://alice:{marker}@db.example.org:5432/experiments"


def test_innocent_variables_untouched_and_output_sorted() -> None:
    _, out = redacted_env()
    for name, value in INNOCENT.items():
        assert out[name] == value, name
    assert list(out) == sorted(ENV)


def test_known_secrets_hold_replaced_values_of_six_or_more() -> None:
    r = Redactor(KEY)
    r.redact_env({"API_TOKEN": "abc", "DB_PASSWORD": "hunter22", "U": PG_URL, "G": GHP})
    assert r.known_secrets == {"hunter22", DB_PW, GHP}
    assert r.redact_env({"API_TOKEN": "abc"})["API_TOKEN"] == r.marker("abc")  # short: replaced


def test_secret_reused_under_an_innocent_name_is_scrubbed() -> None:
    r = Redactor(KEY)
    out = r.redact_env({"MY_CMD": "deploy --pw correct-horse-battery", **BY_NAME})
    assert out["MY_CMD"] == "deploy --pw " + r.marker("correct-horse-battery")


def test_redacting_twice_changes_nothing() -> None:
    r, out = redacted_env()
    assert r.redact_env(out) == out


def test_marker_is_keyed_stable_and_short() -> None:
    a, b = Redactor(KEY), Redactor(KEY)
    other = Redactor(b"another key of 32 bytes........")
    assert a.marker("hunter2") == b.marker("hunter2")
    assert a.marker("hunter2") != other.marker("hunter2")
    assert a.marker("hunter2") != a.marker("hunter3")
    key = KEY if len(KEY) == 32 else blake3(KEY).digest()
    expected = blake3("pässwörd".encode(), key=key).hexdigest()[:8]
    assert a.marker("pässwörd") == f"<redacted:{expected}>"  # keyed BLAKE3 of the UTF-8 bytes
    assert MARKER.fullmatch(a.marker("ünïcode ✓"))
    with pytest.raises(ValueError):
        Redactor(b"")


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("API_KEY", True),
        ("github_token", True),
        ("Db_Password", True),
        ("MYSQL_PASSWD", True),
        ("DB_PASS", True),
        ("smtp-pass", True),
        ("GPG_PASSPHRASE", True),
        ("AWS_SESSION_TOKEN", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
        ("HTTP_AUTHORIZATION", True),
        ("PRIVATE_KEY", True),
        ("COOKIE_JAR", True),
        ("HF_TOKENIZER_TOKEN", True),
        ("client_secret", True),
        ("MYSQL_PWD", True),
        ("AZURE_STORAGE_CONNECTION_STRING", True),
        ("SLACK_WEBHOOK_URL", True),
        ("SENTRY_DSN", True),
        ("PATH", False),
        ("OLDPWD", False),
        ("DSNAME", False),
        ("HOME", False),
        ("PWD", False),
        ("PASSENGER_COUNT", False),
        ("COMPASS_DIR", False),
        ("TOKENIZERS_PARALLELISM", False),
        ("tokenizer", False),
        ("GIT_AUTHOR_EMAIL", False),
        ("XDG_SESSION_TYPE", False),
        ("learning_rate", False),
    ],
)
def test_is_secret_name(name: str, secret: bool) -> None:
    assert is_secret_name(name) is secret


# -- value patterns -------------------------------------------------------------------------

POSITIVE = {
    "aws_access_key_id": [AWS_ID, "ASIA" + "Y34FZKBOKMUTVV7A"],
    "google_api_key": ["AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"],
    "github_token": [GHP, "ghs_" + "x" * 36],
    "github_fine_grained_token": ["github_pat_" + "11ABCDEFG0" * 3 + "_" + "aB3" * 20],
    "gitlab_token": [GLPAT, "glpat-" + "AbCdEfGhIjKlMnOpQrSt" + ".01.abcd123"],
    "slack_token": [XOXB, "xoxp-" + "1111-2222-3333-abcdef"],
    "openai_key": [SK, "sk-" + "T3BlbkFJ" * 6, "sk-" + "0123456789abcdef" * 2],
    "huggingface_token": [HF],
    "jwt": [JWT],
    "pem_private_key": [
        PEM,
        "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQIB\n-----END PRIVATE KEY-----",
        "-----BEGIN OPENSSH "
        + "PRIVATE KEY-----\r\nb3BlbnNzaC1r\r\n-----END OPENSSH PRIVATE KEY-----",
        "-----BEGIN " + "PRIVATE KEY-----\\nMIIEvQIB\\n-----END PRIVATE KEY-----",  # JSON-escaped
    ],
}


#: Patterns whose secret is a part of what they match: (text, the secret in it).
IN_CONTEXT = {
    "azure_account_key": (
        "DefaultEndpointsProtocol=https;AccountName=lab;AccountKey={};EndpointSuffix=x.net",
        "Zm9vYmFyYmF6cXV4" * 5 + "==",
    ),
    "azure_shared_access_key": (
        "Endpoint=sb://lab.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={}",
        "aB3dE5" * 7 + "=",
    ),
    "slack_webhook": (
        "posting to https://hooks.slack.com/services/{} now",
        "T0123ABCD/B0456EFGH/" + "x1Y2z3" * 4,
    ),
    "url_password (a Sentry DSN)": ("https://{}@o123.ingest.sentry.io/456", "0123456789abcdef" * 2),
    "assigned: password=": ("connecting with password={} to db", "hunter2!x"),
    "assigned: DB_PASSWORD": ("export DB_PASSWORD='{}'", "Tr0ub4dor-3"),
    "assigned: Secret:": ("Client Secret: {}", "abc123xyz789"),
    "assigned: api-key": ('{{"api-key": "{}"}}', "k-0123456789"),
}


@pytest.mark.parametrize(("name", "case"), IN_CONTEXT.items(), ids=list(IN_CONTEXT))
def test_a_secret_in_its_context_is_replaced_and_only_it(name: str, case: tuple[str, str]) -> None:
    template, secret = case
    r = Redactor(KEY)
    text = template.format(secret)
    assert r.scrub_text(text) == template.format(r.marker(secret)), name
    assert r.scrub_bytes(text.encode()) == template.format(r.marker(secret)).encode()


@pytest.mark.parametrize("text", [
    "password: (typed at the prompt)", "secret: none", "password=***", "bypass=1234567",
    "mypassword=zzzzzz", "secretary: bob", "max token: 4096", "pwd = /home/me",
    "api_key=None", "the password is strong",
])  # fmt: skip
def test_what_only_looks_like_an_assigned_secret_is_left(text: str) -> None:
    r = Redactor(KEY)
    assert r.scrub_text(text) == text and r.scrub_bytes(text.encode()) == text.encode()


def test_every_pattern_has_positive_examples() -> None:
    names = {p.name for p in PATTERNS} - {"url_password"}
    assert names == set(POSITIVE) | {n for n in IN_CONTEXT if " " not in n}
    assert all(p.doc and p.source.isascii() for p in PATTERNS)


@pytest.mark.parametrize(
    "secret", [s for examples in POSITIVE.values() for s in examples], ids=lambda s: s[:12]
)
def test_pattern_found_inside_longer_text(secret: str) -> None:
    r = Redactor(KEY)
    for before, after in [("", ""), ("token=", "\n"), ('{"key": "', '"}'), ("Bearer ", ". ok")]:
        text = f"INFO {before}{secret}{after} done"
        scrubbed = r.scrub_text(text)
        assert scrubbed == f"INFO {before}{r.marker(secret)}{after} done"
        assert r.scrub_bytes(text.encode()) == scrubbed.encode()


def test_pem_without_end_line_loses_its_body() -> None:
    r = Redactor(KEY)
    text = "key:\n-----BEGIN EC " + "PRIVATE KEY-----\nMHcCAQEEIIrYSSNQ\nFaB3R9qe\n"
    assert "MHcCAQEEIIrYSSNQ" not in r.scrub_text(text)
    assert "FaB3R9qe" not in r.scrub_bytes(text.encode()).decode()


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgres://bob:hunter2@db/x", "hunter2"),
        ("redis://:only-a-password@cache:6379/0", "only-a-password"),
        ("mysql://u:p@ss:w0rd@host/db", "p@ss:w0rd"),
        ("https://x-access-token:abc%40def@github.com/o/r.git", "abc%40def"),
    ],
)
def test_url_password_only(url: str, password: str) -> None:
    r = Redactor(KEY)
    expected = url.replace(password, r.marker(password))
    assert r.scrub_text(f"connecting to {url} now") == f"connecting to {expected} now"


ORDINARY = """\
2026-11-10 12:00:01,123 INFO [train.py:42] epoch 3 step 1200 loss=0.1234 lr=3e-4
commit 3f786850e387550fdab836ed7e6dc881de23001b (HEAD -> main, origin/main)
blake3 af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262 data/train.csv
run 123e4567-e89b-12d3-a456-426614174000 saved to /home/alice/results/sk-001-experiment/out.png
see https://example.org:8443/docs?x=1#y and mail bob@example.org; http://host:8080/a@b
from sklearn import svm; task-abcdefghijklmnopqrstuvwxyz012345; import hf_hub_download
AKIA is short, ghp_short, xoxb- alone, eyJ alone, my_hf_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef
TOKENIZERS_PARALLELISM=false; password: (typed at the prompt); -----BEGIN CERTIFICATE-----
MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTESMBAGA1UE
tqdm: 100%|██████████| 50/50 [00:01<00:00, 42.00it/s] ünïcödé ✓ \t tabs
"""


def test_ordinary_text_is_left_byte_identical() -> None:
    r, _ = redacted_env()
    assert r.scrub_text(ORDINARY) == ORDINARY
    raw = ORDINARY.encode() + b"\xff\xfe not utf-8 \x00\n"
    assert r.scrub_bytes(raw) == raw


def test_known_secrets_scrubbed_from_text_and_bytes() -> None:
    r, _ = redacted_env()
    line = "2026-11-10 INFO connecting with password=correct-horse-battery to db (user alice)\n"
    expected = line.replace("correct-horse-battery", r.marker("correct-horse-battery"))
    assert r.scrub_text(line) == expected
    assert r.scrub_bytes(b"\xff" + line.encode() * 3) == b"\xff" + expected.encode() * 3


def test_log_line_printing_tokens_is_scrubbed() -> None:
    r, _ = redacted_env()
    log = f"DEBUG headers={{'Authorization': 'token {GHP}'}} url={PG_URL}\nkey id {AWS_ID}\n"
    out = r.scrub_bytes(log.encode()).decode()
    for secret in (GHP, DB_PW, AWS_ID):
        assert secret not in out
        assert r.marker(secret) in out
    assert out.startswith("DEBUG headers={'Authorization': 'token <redacted:")


def test_longest_known_secret_wins() -> None:
    r = Redactor(KEY)
    r.redact_env({"SHORT_TOKEN": "abcdef", "LONG_TOKEN": "abcdefghij"})
    assert r.scrub_text("x abcdefghij y abcdef z") == (
        f"x {r.marker('abcdefghij')} y {r.marker('abcdef')} z"
    )


def test_known_secrets_added_later_are_used() -> None:
    r = Redactor(KEY)
    assert r.scrub_text("the value 12345678") == "the value 12345678"
    r.known_secrets.add("12345678")
    assert r.scrub_text("the value 12345678") == f"the value {r.marker('12345678')}"


def test_scrubbing_is_idempotent() -> None:
    r, _ = redacted_env()
    text = f"{GHP} {PG_URL} {PEM} {JWT} correct-horse-battery"
    once = r.scrub_text(text)
    assert r.scrub_text(once) == once
    assert r.scrub_bytes(once.encode()) == once.encode()


def test_scrub_value_nested_params() -> None:
    r, _ = redacted_env()
    params = {
        "api_key": "abc",
        "lr": 0.1,
        "epochs": 3,
        "use_amp": True,
        "max_tokens": 512,
        "tokenizer": "bert-base-uncased",
        "model": {"name": "resnet50", "auth": {"user": "bob", "scopes": ["read", "write"]}},
        "urls": [PG_URL, "https://example.org/data.csv"],
        "notes": f"pushed with {GHP}",
        "pair": ("x", "correct-horse-battery"),
        "nothing": None,
    }
    out = r.scrub_value(params)
    assert out == {
        "api_key": r.marker("abc"),
        "lr": 0.1,
        "epochs": 3,
        "use_amp": True,
        "max_tokens": 512,
        "tokenizer": "bert-base-uncased",
        "model": {
            "name": "resnet50",
            "auth": {"user": r.marker("bob"), "scopes": [r.marker("read"), r.marker("write")]},
        },
        "urls": [PG_URL.replace(DB_PW, r.marker(DB_PW)), "https://example.org/data.csv"],
        "notes": f"pushed with {r.marker(GHP)}",
        "pair": ("x", r.marker("correct-horse-battery")),
        "nothing": None,
    }
    assert "abc" not in r.known_secrets  # (too short to look for in free text)
    assert "correct-horse-battery" in r.known_secrets  # params teach, as env and argv do


def test_scrub_argv_secret_options() -> None:
    r, _ = redacted_env()
    argv = ["train.py", "--api-key=abc", "--password", "pw", "--lr", "0.1", "--token", "--x"]
    argv += [f"--repo={PG_URL}", "--tokenizer", "gpt2"]
    assert r.scrub_argv(argv) == [
        "train.py",
        f"--api-key={r.marker('abc')}",
        "--password",
        r.marker("pw"),
        "--lr",
        "0.1",
        "--token",
        "--x",
        f"--repo={PG_URL.replace(DB_PW, r.marker(DB_PW))}",
        "--tokenizer",
        "gpt2",
    ]


# -- the maintained rule list (gitleaks', as data) -----------------------------------------


def test_the_rule_list_is_data_with_its_source_and_every_rule_compiles() -> None:
    from vestige.capture.redact import rules

    r = rules()
    assert len(r.rules) >= 200 and "gitleaks" in r.source
    assert all(rule.compiled() for rule in r.rules)  # Python re takes every translated regex
    assert len({rule.id for rule in r.rules}) == len(r.rules)
    data = json.loads(
        (Path(__file__).parents[1] / "src/vestige/capture/secret_rules.json").read_text()
    )
    assert data["licence"] == "MIT" and "Copyright" in data["licence_text"]


HEX = "0123456789abcdef"
#: Tokens only the maintained list knows, in the context a program prints them: (text, secret).
LISTED = {
    "stripe": ("charging with {}", "sk_" + "live_" + "FAKE" + "aB3dE5" * 4),
    "sendgrid": ("key {} ok", "S" + "G." + "FAKEaB3dE5fG7hI9jK1lM2." + "nO4pQ6rS8t" * 4 + "uV0"),
    "npm": ("//registry/:_authToken={}", "np" + "m_" + "FAKE" + "aB3dE5fG7h" * 3 + "iJ"),
    "pypi": ("password: {}", "py" + "pi-" + "AgEIcHlwaS5vcmc" + "FAKEaB3dE5fG7hI9" * 4),
    "twilio api key": ("sid {}", "S" + "K" + "deadbeef" + HEX * 1 + "01234567"),
    "digitalocean": ("do {}", "do" + "p_v1_" + "deadbeef" * 2 + HEX * 3),
    "databricks": ("host token {}", "da" + "pi" + "deadbeef" + HEX + "01234567"),
    "doppler (keyword before the run)": ("DOPPLER={}", "dp" + ".pt." + "FAKEaB3dE5fG7h" * 3 + "i"),
    "azure ad client secret": ("tenant {}", "abc8" + "Q~" + "FAKEaB3dE5fG7hI9jK1lM2nO4pQ6rS8tU"),
    "vault": ("VAULT {}", "hv" + "s." + "FAKEaB3dE5fG7hI9jK1lM2nO4pQ6rS8t" * 3),
    "datadog (name rule)": ("datadog_key = '{}'", "v69ssm2gy78xmybs6o4" + "g6ntb8v4vpopkrjlwlf9a"),
    "mailgun (a name rule)": ("MAILGUN_API_KEY={}", "ke" + "y-" + HEX + "0123456789abcdef"),
}  # fmt: skip


@pytest.mark.parametrize(("name", "case"), LISTED.items(), ids=list(LISTED))
def test_tokens_of_the_maintained_list(name: str, case: tuple[str, str]) -> None:
    template, secret = case
    r = Redactor(KEY)
    text = template.format(secret)
    assert r.scrub_text(text) == template.format(r.marker(secret)), name
    assert r.scrub_bytes(text.encode()) == template.format(r.marker(secret)).encode()
    assert secret in r.known_secrets  # learnt: replaced wherever it shows up after


ML_LOG = """\
2026-11-10 INFO model.encoder.layers.11.self_attention.query_key_value.weight: [4096, 1024]
loaded /data/shards/train-00042-of-00128.parquet sha=9b810e766ec9d28663ca828dd5f4b3b2 rows=1024
{'run': '123e4567-e89b-12d3-a456-426614174000', 'hash': '3f786850e387550fdab836ed7e6dc881de23001b'}
checkpoint_key = "TransformerEncoderLayerWithRotaryEmbeddings" token: 50256 keys=['a', 'b']
sk_learn_pipeline_standardscaler_fit_transform_params, sklearn-1.4.2, xgboost==2.0.3
"""


def test_a_training_log_full_of_long_names_and_hashes_is_left_alone() -> None:
    r = Redactor(KEY)
    assert r.scrub_text(ML_LOG) == ML_LOG
    assert r.scrub_bytes(ML_LOG.encode()) == ML_LOG.encode()
    assert r.known_secrets == set()


def test_standard_variables_of_common_services_are_secret_names() -> None:
    from vestige.capture.redact import rules

    names = rules().names
    assert {"MYSQL_PWD", "SENTRY_DSN", "AZURE_STORAGE_CONNECTION_STRING", "DD_API_KEY"} <= names
    assert all(is_secret_name(n) for n in names)
    for name in ("GH_PAT", "CI_JOB_JWT", "AZURE_STORAGE_SAS", "DB_PW", "WIFI_PSK"):
        assert is_secret_name(name), name
    for name in ("PAT", "PATH", "PWD", "SAS_VERSION_X", "PATTERN", "JWT"):
        assert not is_secret_name(name) or name == "SAS_VERSION_X", name


# -- one set of known secrets, fed by every channel ------------------------------------------


def test_a_value_found_by_its_context_is_learnt_and_replaced_bare() -> None:
    r = Redactor(KEY)
    secret = "Xc9" + "kUwiHsGa68Z8VKq"
    text = f"retrying with {secret}\napi_key={secret}\n"
    assert r.scrub_text(text) == text.replace(secret, r.marker(secret))  # the earlier one too
    assert r.scrub_bytes(f"stderr: {secret}".encode()) == f"stderr: {r.marker(secret)}".encode()


def test_a_plain_word_given_as_a_secret_is_redacted_in_place_only() -> None:
    r = Redactor(KEY)
    assert r.scrub_text("secret: unknown") == f"secret: {r.marker('unknown')}"
    assert r.scrub_text("status unknown") == "status unknown"  # not every "unknown" after
    r.scrub_argv(["train.py", "--sort-key", "timestamp", "--password", "correcthorse"])
    assert r.known_secrets == {"correcthorse"}  # a password may be a word; a sort key is not


def test_name_equals_value_arguments_and_params_teach() -> None:
    r = Redactor(KEY)
    out = r.scrub_argv(["run.py", "token=tok-abc123", "lr=0.1", "-p", "api_key=nbp-xyz789"])
    assert out == ["run.py", f"token={r.marker('tok-abc123')}", "lr=0.1", "-p",
                   f"api_key={r.marker('nbp-xyz789')}"]  # fmt: skip
    r.scrub_value({"db_password": "Pp-4242abcd", "plain": "visible"})
    assert {"tok-abc123", "nbp-xyz789", "Pp-4242abcd"} <= r.known_secrets
    assert "visible" not in r.known_secrets


def test_rescrub_applies_what_was_learnt_later() -> None:
    r = Redactor(KEY)
    raw = b"echo Yq7-secret-42 done"
    scrubbed = r.scrub_bytes(raw)
    since = r.snapshot()
    assert scrubbed == raw and r.rescrub(scrubbed, raw, since) == raw
    r.scrub_text("password=Yq7-secret-42")  # another channel teaches it
    assert r.rescrub(scrubbed, raw, since) == raw.replace(
        b"Yq7-secret-42", r.marker("Yq7-secret-42").encode()
    )


def test_scrub_manifest_scrubs_what_the_user_gave_not_hashes() -> None:
    r = Redactor(KEY)
    r.known_secrets.add("deadbeef42")
    digest = "ab" + "deadbeef42" + "c" * 52
    manifest = {
        "id": "01J000", "status": "ok", "env": digest, "command": ["x.py", "--token", "T0k3n-x"],
        "params": {"password": "pw123456", "lr": 0.1}, "warnings": ["saw deadbeef42"],
        "tags": ["deadbeef42", "baseline"], "notes": [{"t": 1.0, "text": "deadbeef42"}],
        "artefacts": [{"name": "model-deadbeef42", "files": [{"path": "m-deadbeef42.json",
                                                              "hash": digest}]}],
        "metrics": {"object": digest, "keys": {"loss/deadbeef42": {"count": 1}}},
        "sweep": {"children": [{"values": {"password": "a1b2c3d4"}, "run_id": "01J001"}]},
        "notebook": {"cells": digest, "params": {"api_key": "k1k2k3k4"}},
        "stdout": {"hash": digest},
    }  # fmt: skip
    out = r.scrub_manifest(manifest)
    text = json.dumps(out)
    for secret in ("deadbeef42", "T0k3n-x", "pw123456", "a1b2c3d4", "k1k2k3k4"):
        assert text.count(secret) == text.count(digest) * (secret == "deadbeef42"), secret
    assert out["env"] == out["stdout"]["hash"] == out["metrics"]["object"] == digest
    assert out["tags"][1] == "baseline" and out["params"]["lr"] == 0.1
    assert r.scrub_manifest(out) == out


def test_scrub_notebook_scrubs_text_keeps_images_and_unchanged_bytes() -> None:
    r = Redactor(KEY)
    png = base64_png = "iVBORw0KGgo" + "ghp_" + "x" * 36
    nb = {"cells": [{"cell_type": "code", "source": ["print(t)"], "metadata": {},
                     "outputs": [{"output_type": "stream", "name": "stdout", "text": [GHP]},
                                 {"output_type": "display_data", "metadata": {},
                                  "data": {"image/png": png, "text/plain": [GHP]}}]}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}  # fmt: skip
    data = json.dumps(nb, indent=1).encode()
    out = json.loads(r.scrub_notebook(data))
    outputs = out["cells"][0]["outputs"]
    assert outputs[0]["text"] == [r.marker(GHP)] and outputs[1]["data"]["text/plain"] == [
        r.marker(GHP)
    ]
    assert outputs[1]["data"]["image/png"] == base64_png
    clean = json.dumps({"cells": [], "metadata": {}}).encode()
    assert r.scrub_notebook(clean) is clean


def test_bearer_tokens_are_redacted() -> None:
    r = Redactor(KEY)
    token = "aB3" + "dE5fG7hI9jK1.lM2_nO4"
    line = f"send: b'GET / HTTP/1.1\\r\\nAuthorization: Bearer {token}\\r\\n'"
    assert r.scrub_text(line) == line.replace(token, r.marker(token))
    assert r.scrub_text("the Bearer scheme") == "the Bearer scheme"
