"""The secrets corpus (issue 22): more than 60 fake secret values of the shapes people leak,
through every channel a run has (environment, the command line as `--k v`, `--k=v` and
`k=v`, what the program prints to stdout and stderr, notebook cells that print, display and
write to stderr, `vestige.note`, `vestige.param`, `vestige.keep` names, tags, metric names),
then every byte vestige wrote is searched for each raw value and its JSON-escaped forms:
all files of `.vestige/`, a SQLite dump of the index, and an `export` folder of each run.
None may be there. The files the program writes itself (its outputs, what it keeps with
`vestige.keep`) are its own and kept byte for byte: they are named by their hashes in the
manifests, left out of the search, and listed apart.

The values are realistic in length and alphabet but fake (FAKE, deadbeef in them), made
at test time from pieces: this file holds nothing a secret scanner would take for a token.
The program and the notebook get the values they print only hex-encoded, so that the code
vestige keeps holds none either."""

from __future__ import annotations

import base64
import binascii
import json
import random
import sqlite3
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import blake3
import pytest
from conftest import clean_environment, git, vestige

_rng = random.Random(20261205)  # fixed: a failure reproduces with the same values
UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = string.ascii_letters + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def rnd(alphabet: str, n: int) -> str:
    """`n` random characters of `alphabet`."""
    return "".join(_rng.choice(alphabet) for _ in range(n))


def pre(*parts: str) -> str:
    """A token's fixed prefix, spelt in pieces here (never whole in this file)."""
    return "".join(parts)


def jwt() -> str:
    """A JSON Web Token: base64url header and payload (a fake user), random signature."""

    def part(obj: dict[str, str]) -> str:
        raw = json.dumps(obj, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    payload = {"sub": "fake-user-" + rnd(DIGITS, 6), "jti": rnd(ALNUM, 16)}
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(payload)}.{rnd(URLSAFE, 43)}"


def pem(kind: str) -> tuple[str, list[str]]:
    """A PEM private key block and its body lines (the secret material)."""
    body = [rnd(B64, 64) for _ in range(5)]
    head = pre("-----BEGIN ", kind, "PRIVATE ", "KEY-----")
    tail = pre("-----END ", kind, "PRIVATE ", "KEY-----")
    return "\n".join([head, *body, tail]), body


@dataclass
class Secret:
    """One corpus value: `raw` is what must never be stored; `given` is how the run gets
    it (the env var's whole value, a URL around a password...); `channel` where it goes."""

    name: str
    raw: str
    channel: str
    given: str = ""
    pieces: list[str] = field(default_factory=list)  # for a PEM: its body lines

    def needles(self) -> set[str]:
        """The forms searched for: the raw value (or each PEM body line), JSON-escaped too."""
        out: set[str] = set()
        for text in self.pieces or [self.raw]:
            out |= {text, json.dumps(text)[1:-1], json.dumps(text, ensure_ascii=False)[1:-1]}
        return out


CORPUS: list[Secret] = []


def add(name: str, raw: str, channel: str, given: str | None = None,
        pieces: list[str] | None = None) -> Secret:  # fmt: skip
    s = Secret(name, raw, channel, raw if given is None else given, pieces or [])
    CORPUS.append(s)
    return s


# -- secrets in the environment, under secret names (their values say nothing) --------------
az_key = rnd(B64, 86) + "=="
hook_path = f"T{rnd(UPPER + DIGITS, 8)}/B{rnd(UPPER + DIGITS, 10)}/{rnd(ALNUM, 24)}"
dsn_key = "deadbeef" + rnd(HEX, 24)
key_pem, key_pem_body = pem("RSA ")
BY_NAME = {
    "AWS_SECRET_ACCESS_KEY": add("aws secret key", rnd(B64, 40), "env by name"),
    "GITHUB_TOKEN": add("github token (by name)", "FAKE" + rnd(ALNUM, 36), "env by name"),
    "DB_PASSWORD": add("db password", "Tr0ub4dor&3-" + rnd(ALNUM, 8), "env by name"),
    "MYSQL_PWD": add("MYSQL_PWD", "my-" + rnd(ALNUM, 14), "env by name"),
    "PGPASSWORD": add("PGPASSWORD", rnd(ALNUM, 20), "env by name"),
    "GH_PAT": add("GH_PAT (a name part)", rnd(ALNUM, 30), "env by name"),
    "TWILIO_AUTH_TOKEN": add("Twilio auth token", "deadbeef" + rnd(HEX, 24), "env by name"),
    "DD_API_KEY": add("Datadog API key", "deadbeef" + rnd(HEX, 24), "env by name"),
    "MAILGUN_API_KEY": add("Mailgun key", pre("key", "-") + rnd(HEX, 32), "env by name"),
    "SESSION_COOKIE": add("session cookie", rnd(ALNUM, 40), "env by name"),
    "AZURE_STORAGE_CONNECTION_STRING": add(
        "Azure AccountKey (by name)",
        az_key,
        "env by name",
        given=f"DefaultEndpointsProtocol=https;AccountName=fakeacct;AccountKey={az_key};"
        "EndpointSuffix=core.windows.net",
    ),
    "SLACK_WEBHOOK_URL": add(
        "Slack webhook (by name)",
        hook_path,
        "env by name",
        given=pre("https://hooks.", "slack.com/services/") + hook_path,
    ),
    "SENTRY_DSN": add(
        "Sentry DSN key (by name)",
        dsn_key,
        "env by name",
        given=f"https://{dsn_key}@o{rnd(DIGITS, 6)}.ingest.sentry.io/{rnd(DIGITS, 7)}",
    ),
    "DEPLOY_PRIVATE_KEY": add(
        "PEM under a secret name", key_pem, "env by name", pieces=key_pem_body
    ),
}

# -- secrets in the environment, under innocent names: found by their shape ----------------
ssh_pem, ssh_pem_body = pem("OPENSSH ")
db_pw, cache_pw = "Fake" + rnd(ALNUM, 14), "fake-" + rnd(ALNUM, 12)
sas_key, acct_key = rnd(B64, 43) + "=", rnd(B64, 86) + "=="
hook2 = f"T{rnd(UPPER + DIGITS, 8)}/B{rnd(UPPER + DIGITS, 10)}/{rnd(ALNUM, 24)}"
dsn2 = "deadbeef" + rnd(HEX, 24)
BY_VALUE = {
    "CLOUD_ID": add(
        "AWS access key id", pre("AK", "IA") + "FAKE" + rnd(UPPER + "234567", 12), "env by value"
    ),
    "CLOUD_TEMP_ID": add(
        "AWS temporary key id", pre("AS", "IA") + "FAKE" + rnd(UPPER + "234567", 12), "env by value"
    ),
    "GH_STUFF": add(
        "GitHub classic token", pre("gh", "p_") + "FAKE" + rnd(ALNUM, 32), "env by value"
    ),
    "GH_FINE": add(
        "GitHub fine-grained token",
        pre("github", "_pat_") + "11FAKE" + rnd(ALNUM, 16) + "_" + rnd(ALNUM, 59),
        "env by value",
    ),
    "GH_APP": add("GitHub app token", pre("gh", "s_") + "FAKE" + rnd(ALNUM, 32), "env by value"),
    "GITLAB_THING": add(
        "GitLab token", pre("gl", "pat-") + "FAKE" + rnd(URLSAFE, 16), "env by value"
    ),
    "CHAT_BOT": add(
        "Slack bot token",
        pre("xo", "xb-") + rnd(DIGITS, 11) + "-" + rnd(DIGITS, 12) + "-FAKE" + rnd(ALNUM, 20),
        "env by value",
    ),
    "CHAT_USER": add(
        "Slack user token",
        pre("xo", "xp-") + "-".join(rnd(DIGITS, 11) for _ in range(3)) + "-fake" + rnd(HEX, 28),
        "env by value",
    ),
    "LLM_CONFIG": add(
        "OpenAI key",
        pre("sk", "-proj-") + "FAKE" + rnd(ALNUM, 20) + "7" + rnd(URLSAFE, 27),
        "env by value",
    ),
    "CLAUDE_CONFIG": add(
        "Anthropic key", pre("sk", "-ant-", "api03-") + rnd(URLSAFE, 93) + "AA", "env by value"
    ),
    "HUB_ID": add(
        "Hugging Face token",
        pre("h", "f_") + "FAKE" + rnd(string.ascii_letters, 30),
        "env by value",
    ),
    "BEARER_VALUE": add("JWT", jwt(), "env by value"),
    "MY_CERT": add("PEM under an innocent name", ssh_pem, "env by value", pieces=ssh_pem_body),
    "DATABASE_URL": add(
        "URL password (postgres)",
        db_pw,
        "env by value",
        given=f"postgresql://alice:{db_pw}@db.example.org:5432/lab",
    ),
    "CACHE_URL": add(
        "URL password (redis)",
        cache_pw,
        "env by value",
        given=f"redis://:{cache_pw}@cache.example.org:6379/0",
    ),
    "MAPS_ID": add("Google API key", pre("AI", "za") + "SyFAKE" + rnd(URLSAFE, 29), "env by value"),
    "PAY_CONFIG": add(
        "Stripe live secret key", pre("sk", "_live_") + "FAKE" + rnd(ALNUM, 20), "env by value"
    ),
    "PAY_RESTRICTED": add(
        "Stripe restricted key", pre("rk", "_live_") + "FAKE" + rnd(ALNUM, 20), "env by value"
    ),
    "MAIL_CONFIG": add(
        "SendGrid key",
        pre("S", "G.") + "FAKE" + rnd(URLSAFE, 18) + "." + rnd(URLSAFE, 43),
        "env by value",
    ),
    "REGISTRY_CONFIG": add("npm token", pre("np", "m_") + "FAKE" + rnd(ALNUM, 32), "env by value"),
    "UPLOAD_CONFIG": add(
        "PyPI token", pre("py", "pi-", "AgEIcHlwaS5vcmc") + rnd(URLSAFE, 70), "env by value"
    ),
    "SMS_SID_KEY_ID": add(
        "Twilio API key", pre("S", "K") + "deadbeef" + rnd(HEX, 24), "env by value"
    ),
    "DROPLETS": add(
        "DigitalOcean token", pre("do", "p_v1_") + "deadbeef" + rnd(HEX, 56), "env by value"
    ),
    "WAREHOUSE": add(
        "Databricks token", pre("da", "pi") + "deadbeef" + rnd(HEX, 24), "env by value"
    ),
    "SHOP": add("Shopify token", pre("shp", "at_") + "deadbeef" + rnd(HEX, 24), "env by value"),
    "VAULT_THING": add("Vault token", pre("hv", "s.") + "FAKE" + rnd(URLSAFE, 91), "env by value"),
    "DASHBOARDS": add(
        "Grafana cloud token", pre("gl", "c_") + "FAKE" + rnd(ALNUM, 40), "env by value"
    ),
    "BUS_CONN": add(
        "Azure SharedAccessKey",
        sas_key,
        "env by value",
        given="Endpoint=sb://fake-bus.servicebus.windows.net/;SharedAccessKeyName="
        f"RootManageSharedAccessKey;SharedAccessKey={sas_key}",
    ),
    "BLOB_CONN": add(
        "Azure AccountKey",
        acct_key,
        "env by value",
        given=f"DefaultEndpointsProtocol=https;AccountName=fake;AccountKey={acct_key}",
    ),
    "NOTIFY": add(
        "Slack webhook",
        hook2,
        "env by value",
        given=pre("https://hooks.", "slack.com/services/") + hook2,
    ),
    "ERRORS_TO": add(
        "Sentry DSN key",
        dsn2,
        "env by value",
        given=f"https://{dsn2}@o{rnd(DIGITS, 6)}.ingest.sentry.io/{rnd(DIGITS, 7)}",
    ),
    "FLAGS": add("Doppler token", pre("dp", ".pt.") + "FAKE" + rnd(ALNUM, 39), "env by value"),
    "ISSUES": add("Linear key", pre("lin", "_api_") + "FAKE" + rnd(ALNUM, 36), "env by value"),
    "PLANET": add(
        "PlanetScale token", pre("pscale", "_tkn_") + "FAKE" + rnd(ALNUM, 39), "env by value"
    ),
    "SEARCHER": add("Perplexity key", pre("pp", "lx-") + "FAKE" + rnd(ALNUM, 44), "env by value"),
    "COLLECTION": add(
        "Postman key",
        pre("PM", "AK-") + "deadbeef" + rnd(HEX, 16) + "-" + rnd(HEX, 34),
        "env by value",
    ),
    "WIKI": add(
        "Notion token", pre("nt", "n_") + rnd(DIGITS, 11) + "FAKE" + rnd(ALNUM, 31), "env by value"
    ),
    "DYNO": add("Heroku key", pre("HR", "KU-AA") + "FAKE" + rnd(URLSAFE, 54), "env by value"),
}

# -- on the command line ----------------------------------------------------------------------
ARGV_PW = add("--password V", "Hunter2-" + rnd(ALNUM, 10), "argv --k v")
ARGV_KEY = add("--api-key=V", "k-" + rnd(ALNUM, 24), "argv --k=v")
ARGV_TOKEN = add("token=V", "tok-" + rnd(ALNUM, 20), "argv k=v")
ARGV_SECRET = add("--secret V", "s3-" + rnd(ALNUM, 16), "argv --k v")
ARGV_URL_PW = add("--db-url with a password", "Fake-" + rnd(ALNUM, 12), "argv --k v")
ARGV_GLPAT = add(
    "token shape as a value", pre("gl", "pat-") + "FAKE" + rnd(ALNUM, 16), "argv --k v"
)
ARGV = ["--password", ARGV_PW.raw, f"--api-key={ARGV_KEY.raw}", f"token={ARGV_TOKEN.raw}",
        "--secret", ARGV_SECRET.raw, "--db-url",
        f"postgresql://bob:{ARGV_URL_PW.raw}@db.example.org/x", "--repo-token-ish",
        ARGV_GLPAT.raw]  # fmt: skip

# -- printed only (the program gets them hex-encoded), and through the in-code API ----------
P = {
    "assigned_pw": add("printed password=", "Pw" + rnd(ALNUM, 10) + "!x", "stderr"),
    "client_secret": add("printed client_secret:", rnd(ALNUM, 32), "stdout"),
    "bearer": add("printed Bearer token", rnd(ALNUM, 24) + "." + rnd(URLSAFE, 16), "stdout"),
    "datadog": add(
        "printed datadog_access_token = (a name rule)", rnd(LOWER + DIGITS, 40), "stdout"
    ),
    "mailgun": add("printed mailgun key (a name rule)", pre("ke", "y-") + rnd(HEX, 32), "stdout"),
    "stripe_test": add(
        "printed Stripe test key", pre("sk", "_test_") + "FAKE" + rnd(ALNUM, 24), "stdout"
    ),
    "azure_ad": add(
        "printed Azure AD client secret",
        rnd(ALNUM, 3) + "8" + pre("Q", "~") + rnd(ALNUM, 34),
        "stdout",
    ),
    "jwt_err": add("JWT on stderr", jwt(), "stderr"),
    "cross": add(
        "found in stdout, bare on stderr, in a note, a param",
        "Xc" + rnd(ALNUM, 18),
        "cross-channel",
    ),
    "note_token": add("vestige.note", pre("gh", "p_") + "FAKE" + rnd(ALNUM, 32), "note"),
    "param_secret": add("vestige.param secret name", "Pp-" + rnd(ALNUM, 16), "param"),
    "param_url_pw": add("vestige.param URL password", "Fake" + rnd(ALNUM, 12), "param"),
    "keep_token": add(
        "vestige.keep name", pre("gl", "pat-") + "FAKE" + rnd(ALNUM, 16), "keep name"
    ),
    "tag_token": add(
        "vestige.tag",
        pre("xo", "xb-") + rnd(DIGITS, 11) + "-" + rnd(DIGITS, 12) + "-FAKE" + rnd(ALNUM, 20),
        "tag",
    ),
    "metric_token": add("metric name", pre("np", "m_") + "FAKE" + rnd(ALNUM, 32), "metric name"),
}
#: Written by the program into its own files: kept as they are, not redacted.
USER_FILE = "ufile-" + rnd(ALNUM, 20)
USER_KEEP = "ukeep-" + rnd(ALNUM, 20)

# -- a notebook run --------------------------------------------------------------------------
NB_ENV = add("notebook: env by name, printed", rnd(ALNUM, 32), "notebook print")
N = {
    "print": add(
        "notebook: printed token", pre("gl", "pat-") + "FAKE" + rnd(ALNUM, 16), "notebook print"
    ),
    "stderr": add(
        "notebook: stderr token", pre("sk", "_live_") + "FAKE" + rnd(ALNUM, 20), "notebook stderr"
    ),
    "result": add(
        "notebook: displayed result", pre("gh", "p_") + "FAKE" + rnd(ALNUM, 32), "notebook display"
    ),
    "display": add(
        "notebook: display()",
        pre("S", "G.") + "FAKE" + rnd(URLSAFE, 18) + "." + rnd(URLSAFE, 43),
        "notebook display",
    ),
    "cross": add(
        "notebook: api_key= printed, then displayed bare",
        "Nc" + rnd(ALNUM, 18),
        "notebook cross-channel",
    ),
    "note": add(
        "notebook: vestige.note",
        pre("h", "f_") + "FAKE" + rnd(string.ascii_letters, 30),
        "notebook note",
    ),
}
NB_PARAM = add("notebook: -p api_key=V", "nbp-" + rnd(ALNUM, 20), "notebook -p")

ENV = {name: s.given for name, s in {**BY_NAME, **BY_VALUE}.items()}
ENV["NB_API_TOKEN"] = NB_ENV.raw


def hexed(obj: object) -> str:
    return binascii.hexlify(json.dumps(obj).encode()).decode()


SCRIPT = """\
import binascii, json, os, sys
import vestige

e = os.environ
p = json.loads(binascii.unhexlify(e["CORPUS_DATA"]))
for name in sorted(p["echo"]):  # every secret of the environment, echoed
    print(name, e[name])
print("argv:", " ".join(sys.argv[1:]), file=sys.stderr)
print("connecting with password=" + p["assigned_pw"], file=sys.stderr)
print("client_secret: " + p["client_secret"])
print("GET /v1/data Authorization: Bearer " + p["bearer"])
print("datadog_access_token = '" + p["datadog"] + "'")
print("MAILGUN_API_KEY=" + p["mailgun"])
print("charging with", p["stripe_test"])
print("tenant secret", p["azure_ad"])
print("session", p["jwt_err"], file=sys.stderr)
print("api_key=" + p["cross"])  # found here by its context...
print("retrying with", p["cross"], file=sys.stderr)  # ...and so also here, bare
vestige.note("deployed with " + p["note_token"] + " after " + p["cross"])
vestige.param(api_token=p["param_secret"], plain=p["cross"],
              endpoint="postgresql://carol:" + p["param_url_pw"] + "@db.example.org/x")
vestige.keep({"ok": 1}, "model-" + p["keep_token"])
vestige.tag(p["tag_token"])
vestige.log({"loss/" + p["metric_token"]: 0.5})
with open("creds_dump.txt", "w") as f:  # the program's own file: kept as it is
    f.write(p["user_file"] + "\\n")
vestige.keep("user notes " + p["user_keep"], "user-notes.txt")  # its own bytes too
"""

NOTEBOOK_CELLS = [
    "import binascii, json, os, sys\nd = json.loads(binascii.unhexlify(os.environ['NB_DATA']))",
    "print('token', os.environ['NB_API_TOKEN'])\nprint('pushing with', d['print'])",
    "print('warning: key', d['stderr'], file=sys.stderr)",
    "from IPython.display import display\ndisplay('hub ' + d['display'])",
    "print('api_key=' + d['cross'])",
    "display(d['cross'])",
    "import vestige\nvestige.note('nb ' + d['note'])",
    "{'token': d['result']}",
]


@dataclass
class Recorded:
    root: Path
    exports: list[Path]
    manifests: list[dict[str, object]]

    @property
    def store(self) -> Path:
        return self.root / ".vestige"


def write_notebook(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.cells = [nbformat.v4.new_code_cell(source) for source in NOTEBOOK_CELLS]
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A script run with every channel, a notebook run, and an export of each."""
    pytest.importorskip("nbclient")
    base = tmp_path_factory.mktemp("corpus")
    with pytest.MonkeyPatch.context() as mp:
        clean_environment(mp, base)
        root = base / "proj"
        root.mkdir()
        git(root, "init", "-q", "-b", "main")
        (root / "leaky.py").write_text(SCRIPT)
        write_notebook(root / "nb.ipynb")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "start")
        data = {"echo": sorted(ENV), **{k: s.raw for k, s in P.items()},
                "user_file": USER_FILE, "user_keep": USER_KEEP}  # fmt: skip
        env = {
            **ENV,
            "CORPUS_DATA": hexed(data),
            "NB_DATA": hexed({k: s.raw for k, s in N.items()}),
        }
        done = vestige("run", "leaky.py", *ARGV, cwd=root, env=env)
        assert done.returncode == 0, done.stderr.decode()
        assert BY_VALUE["GH_STUFF"].raw.encode() in done.stdout  # its output is untouched
        done = vestige("run", "nb.ipynb", "-p", f"api_key={NB_PARAM.raw}", cwd=root, env=env,
                       timeout=300)  # fmt: skip
        assert done.returncode == 0, done.stderr.decode()
        exports = []
        for seq in ("1", "2"):
            to = base / f"export-{seq}"
            done = vestige("export", seq, "--to", str(to), cwd=root)
            assert done.returncode == 0, done.stderr.decode()
            exports.append(to)
        refs = root / ".vestige" / "refs" / "runs"
        manifests = [json.loads(obj(root / ".vestige", r.read_text().strip()))
                     for r in sorted(refs.iterdir())]  # fmt: skip
        assert [m["seq"] for m in manifests] == [1, 2]
        yield Recorded(root, exports, manifests)


def obj(store: Path, digest: str) -> bytes:
    return (store / "objects" / digest[:2] / digest[2:]).read_bytes()


def user_objects(manifests: list[dict[str, object]]) -> dict[str, str]:
    """The program's own files, by hash: what it wrote (outputs) and what it kept with
    vestige.keep (artefacts), but not the executed notebook, which vestige made."""
    own: dict[str, str] = {}
    for m in manifests:
        notebook = m.get("notebook") or {}
        executed = (
            (notebook.get("executed") or {}).get("hash") if isinstance(notebook, dict) else None
        )
        for f in m.get("outputs") or []:  # type: ignore[union-attr]
            if f.get("hash"):
                own[f["hash"]] = f"output {f['path']} of run #{m['seq']}"
        for a in m.get("artefacts") or []:  # type: ignore[union-attr]
            for f in a.get("files") or []:
                if f.get("hash") and f["hash"] != executed:
                    own[f["hash"]] = f"artefact {f['path']} of run #{m['seq']}"
    return own


def searched(rec: Recorded) -> Iterator[tuple[str, bytes]]:
    """(where, bytes) of everything searched: the store's files (the program's own objects
    left out), the index as SQL text, the export folders (the program's files left out)."""
    own = user_objects(rec.manifests)
    for path in sorted(rec.store.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(rec.store).as_posix()
        if rel.startswith("objects/") and rel.replace("/", "")[len("objects") :] in own:
            continue
        yield f".vestige/{rel}", path.read_bytes()
    with sqlite3.connect(rec.store / "index.sqlite") as db:
        yield "index dump", "\n".join(db.iterdump()).encode("utf-8", "surrogateescape")
    for folder in rec.exports:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                if blake3.blake3(data).hexdigest() not in own:
                    yield f"{folder.name}/{path.relative_to(folder).as_posix()}", data


def found_raw(rec: Recorded) -> dict[str, list[str]]:
    """Corpus value -> where its raw (or JSON-escaped) form was found."""
    needles = {s.name: [n.encode("utf-8") for n in s.needles()] for s in CORPUS}
    found: dict[str, list[str]] = {}
    for where, data in searched(rec):
        for name, forms in needles.items():
            if any(form in data for form in forms):
                found.setdefault(name, []).append(where)
    return found


# -- the tests -------------------------------------------------------------------------------


def test_the_corpus_is_large_and_distinct() -> None:
    raws = [s.raw for s in CORPUS]
    assert len(set(raws)) == len(raws) >= 60
    channels = {s.channel for s in CORPUS}
    assert {"env by name", "env by value", "argv --k v", "argv --k=v", "argv k=v", "stdout",
            "stderr", "notebook print", "notebook display", "notebook stderr", "note", "param",
            "keep name", "tag", "metric name", "cross-channel"} <= channels  # fmt: skip


def test_no_raw_value_in_the_store_the_index_or_an_export(recorded: Recorded) -> None:
    found = found_raw(recorded)
    assert not found, f"{len(found)} of {len(CORPUS)} raw values found: " + "; ".join(
        f"{name}: {', '.join(sorted(set(w)))}" for name, w in sorted(found.items())
    )


def test_the_search_reads_what_it_should(recorded: Recorded) -> None:
    """The search does read the objects, the dump and the exports: what is no secret in the
    logs is found, markers are where the secrets were, and the user's own files left out
    are exactly its outputs and its kept artefacts, holding its values byte for byte."""
    parts = dict(searched(recorded))
    assert any(w.startswith(".vestige/objects/") for w in parts)
    assert "index dump" in parts and any(w.startswith("export-2/") for w in parts)
    everything = b"\n".join(parts.values())
    assert b"@db.example.org:5432/lab" in everything  # a URL keeps all but its password
    assert b"connecting with password=<redacted:" in everything
    assert b"Authorization: Bearer <redacted:" in everything
    own = user_objects(recorded.manifests)
    kept = {h: obj(recorded.store, h) for h in own}
    holders = {own[h] for h, data in kept.items() if USER_FILE.encode() in data or
               USER_KEEP.encode() in data}  # fmt: skip
    assert holders == {"output creds_dump.txt of run #1", "artefact user-notes.txt of run #1"}


def test_a_value_found_in_one_channel_is_redacted_in_all(recorded: Recorded) -> None:
    """`api_key=X` printed to stdout makes X known: its bare echo on stderr, the note,
    the param under an innocent name and the notebook's bare display carry its marker."""
    script, notebook = recorded.manifests
    stderr = obj(recorded.store, script["stderr"]["hash"])  # type: ignore[index]
    notes = json.dumps(script["notes"])
    assert b"retrying with <redacted:" in stderr and "<redacted:" in notes
    assert str(script["params"]["plain"]).startswith("<redacted:")  # type: ignore[index]
    cells = json.loads(obj(recorded.store, notebook["notebook"]["cells"]))  # type: ignore[index]
    bare = next(c for c in cells["cells"] if c["source"] == "display(d['cross'])")
    assert bare["outputs"][0]["text"].startswith("'<redacted:"), bare


def test_names_tags_and_metric_keys_are_redacted_where_they_are_kept(recorded: Recorded) -> None:
    script = recorded.manifests[0]
    assert [t for t in script["tags"]] and all(t.startswith("<redacted:") for t in script["tags"])  # type: ignore[union-attr]
    names = [a["name"] for a in script["artefacts"]]  # type: ignore[union-attr]
    assert any(n.startswith("model-<redacted:") for n in names), names
    keys = list(script["metrics"]["keys"])  # type: ignore[index]
    assert keys and keys[0].startswith("loss/<redacted:"), keys
    ls = vestige("ls", "--json", cwd=recorded.root)
    assert ls.returncode == 0 and b"<redacted:" in ls.stdout


def test_a_script_that_writes_its_own_secrets_keeps_them(recorded: Recorded) -> None:
    """docs/security.md: files the program writes are kept byte for byte (its outputs in
    `vestige cat`, its kept artefacts), the one place the store holds a raw value."""
    cat = vestige("cat", "1", "creds_dump.txt", cwd=recorded.root)
    assert cat.returncode == 0 and cat.stdout == (USER_FILE + "\n").encode()
