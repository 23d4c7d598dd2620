"""Keeps secrets out of the store: env vars, argv, stdout/stderr and params are scrubbed.

A secret becomes ``<redacted:XXXXXXXX>``, the first 8 hex of a keyed BLAKE3 (a MAC)
under a per-store key: the same secret always gives the same marker, so a diff shows that
a secret changed without showing it, and nobody without the key can test guesses against a marker.

Secrets are found three ways:

* by NAME: an env var (or a params key) whose name contains KEY, TOKEN, SECRET, PASSWORD,
  PASSWD, PASSPHRASE, CREDENTIAL, AUTH, PRIVATE, SESSION or COOKIE, or has PASS as a whole
  ``_``-separated part (``DB_PASS``); see `is_secret_name` for the few innocent words that
  are let through (TOKENIZERS_PARALLELISM, GIT_AUTHOR_NAME, XDG_SESSION_TYPE, ...);
* by VALUE: the patterns in `PATTERNS` (AWS key ids, GitHub/GitLab/Slack/OpenAI/Hugging
  Face/Google tokens, JWTs, PEM private keys, the password of ``scheme://user:pw@host``);
* by MEMORY: every secret value of 6+ characters that `Redactor.redact_env` replaced is kept
  in `Redactor.known_secrets` and scrubbed wherever it shows up later (argv, logs, cells).

Scrubbing is built for large logs. Measured on this project's dev VM (AMD EPYC, Python
3.11), 100 MB of ordinary log text: 275 ms with no known secret (~360 MB/s), 330 ms with 3
(~300 MB/s), 610 ms with 20. Python's regex engine searches at GB/s only for a pattern that
starts with a literal and crawls (~170 MB/s) when the first character is one of a set, so
the patterns run as a few passes, each led by the rarest literal of its secret, and each
known secret is one ``in``/``replace`` (a combined alternation of them runs at ~170 MB/s).
"""

from __future__ import annotations

import re
from functools import cache

TYPE_CHECKING = False  # not typing's: importing typing costs ~4 ms (fastpath.py)
if TYPE_CHECKING:  # for annotations only: nothing more to import at run time
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any, AnyStr

#: Replaced values at least this long are remembered and scrubbed from free text later;
#: shorter ones ("1", "true") would wreck ordinary text and reveal little anyway.
MIN_KNOWN_LEN = 6

MARKER_RE = re.compile(r"<redacted:[0-9a-f]{8}>")
_MARKER_RE_RAW = re.compile(MARKER_RE.pattern.encode("ascii"))

_SECRET_WORDS = (
    "KEY",
    "WEBHOOK",
    "CONNECTION_STRING",
    "CONNECTIONSTRING",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "AUTH",
    "PRIVATE",
    "SESSION",
    "COOKIE",
)
#: PASS as a whole part of a name (DB_PASS, smtp-pass), not inside PASSENGER or COMPASS.
_PASS_PART = re.compile(r"(?:^|[^A-Z])PASS(?:[^A-Z]|$)|_PWD(?:[^A-Z]|$)|(?:^|_)DSN(?:_|$)")
#: (MYSQL_PWD and SENTRY_DSN, not the shell's PWD or OLDPWD: the current folder)
#: Words that contain a secret word but name nothing secret; removed before the check, so
#: HF_TOKENIZER_TOKEN still matches through its second TOKEN.
_INNOCENT_WORDS = re.compile(r"TOKENIZ(?:ERS|ER|ED|ING|ATION|E)|AUTHORS?(?![A-Z])|KEYBOARD|KEYMAP")
#: Well-known variables whose values are common words ("wayland", "ubuntu") that would
#: otherwise be remembered as secrets and scrubbed from every log line that mentions them.
_INNOCENT_NAMES = frozenset(
    {"XDG_SESSION_TYPE", "XDG_SESSION_CLASS", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION"}
)


def is_secret_name(name: str) -> bool:
    """True if a variable or key of this name holds a secret (case-insensitive)."""
    upper = name.upper()
    if upper in _INNOCENT_NAMES:
        return False
    upper = _INNOCENT_WORDS.sub("_", upper)
    return any(word in upper for word in _SECRET_WORDS) or _PASS_PART.search(upper) is not None


class SecretPattern:
    """One kind of secret recognised by its value.

    `source` is ASCII-only so that it compiles for both str and bytes. It starts with a
    literal, the rarest in ordinary text that the secret has near its start, because the
    regex engine searches for a leading literal at GB/s but tries a pattern at every
    position otherwise; the `back` characters of the secret before that literal, and the
    "not glued to a word" check, are fixed-width lookbehinds. The whole match (widened
    `back` to the left) is the secret, unless the pattern has a group ``s``: then only that.
    """

    __slots__ = ("back", "doc", "name", "source")

    def __init__(self, name: str, doc: str, source: str, back: int = 0) -> None:
        self.name, self.doc, self.source, self.back = name, doc, source, back

    def __repr__(self) -> str:
        return f"SecretPattern({self.name!r})"


_W = "A-Za-z0-9_"  # word characters: a token must not be glued to them on either side
#: Order matters only for overlaps: PEM blocks go first, they can contain anything.
PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "pem_private_key",
        "PEM private key, BEGIN to END; to the end of the base64 body when END is missing",
        r"BEGIN (?<=-----BEGIN )(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:(?s:.{0,65536}?)-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
        r"|[A-Za-z0-9+/=\s\\]*)",
        back=5,
    ),
    SecretPattern(
        "aws_access_key_id",
        "AWS access key id: AKIA (long-term) or ASIA (temporary) + 16 of [A-Z0-9]",
        r"A(?:KIA|SIA)(?<![A-Za-z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Za-z0-9])",
    ),
    SecretPattern(
        "google_api_key",
        "Google API key (Gemini, Maps, ...): AIza + 35 of [A-Za-z0-9_-]",
        rf"AIza(?<![{_W}-]AIza)[A-Za-z0-9_-]{{35}}(?![{_W}-])",
    ),
    SecretPattern(
        "github_token",
        "GitHub classic token: ghp_/gho_/ghu_/ghs_/ghr_ + 36 or more letters and digits",
        rf"gh[pousr]_(?<![{_W}]gh[pousr]_)[A-Za-z0-9]{{36,}}(?![{_W}])",
    ),
    SecretPattern(
        "github_fine_grained_token",
        "GitHub fine-grained token: github_pat_ + 22 or more of [A-Za-z0-9_]",
        rf"github_pat_(?<![{_W}]github_pat_)[A-Za-z0-9_]{{22,}}",
    ),
    SecretPattern(
        "gitlab_token",
        "GitLab token: glpat- (and gldt-, glrt-, glptt-, glcbt-, ...) + 20 or more, "
        "with the dotted suffix of newer routable tokens",
        rf"gl(?<![{_W}]gl)(?:pat|dt|rt|ptt|cbt|ft|imt|oas|soat|agent|ffct)-"
        r"[A-Za-z0-9_-]{20,}(?:\.[A-Za-z0-9_-]+)*",
    ),
    SecretPattern(
        "slack_token",
        "Slack token: xoxa-/xoxb-/xoxp-/xoxo-/xoxs-/xoxr- + 10 or more of [A-Za-z0-9-]",
        rf"xox[abposr]-(?<![{_W}]xox[abposr]-)[A-Za-z0-9-]{{10,}}",
    ),
    SecretPattern(
        "openai_key",
        "OpenAI-style key (also sk-proj-, sk-ant-, DeepSeek): sk- + 20 or more of "
        "[A-Za-z0-9_-] with a digit and a run of 20 letters/digits, so that a name like "
        "sk-001-experiment-results is not taken for one",
        rf"k-(?<=sk-)(?<![{_W}-]sk-)(?=[A-Za-z0-9_-]*?[A-Za-z0-9]{{20}})"
        r"(?=[A-Za-z0-9_-]*?[0-9])[A-Za-z0-9_-]{20,}",
        back=1,
    ),
    SecretPattern(
        "huggingface_token",
        "Hugging Face token: hf_ + 30 or more letters and digits",
        rf"f_(?<=hf_)(?<![{_W}]hf_)[A-Za-z0-9]{{30,}}(?![{_W}])",
        back=1,
    ),
    SecretPattern(
        "jwt",
        "JSON Web Token: three base64url parts joined by dots, the first starting eyJ",
        r"J(?<=eyJ)(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{8,}",
        back=2,
    ),
    SecretPattern(
        "azure_account_key",
        "Azure storage account key in a connection string: the value of AccountKey=",
        r"AccountKey=(?P<s>[A-Za-z0-9+/]{20,}={0,2})",
    ),
    SecretPattern(
        "azure_shared_access_key",
        "Azure Service Bus / Event Hubs shared access key: the value of SharedAccessKey=",
        r"SharedAccessKey=(?P<s>[A-Za-z0-9+/]{20,}={0,2})",
    ),
    SecretPattern(
        "slack_webhook",
        "Slack incoming webhook: the path after hooks.slack.com/services/",
        r"hooks\.slack\.com/services/(?P<s>[A-Za-z0-9_-]+/[A-Za-z0-9_-]+/[A-Za-z0-9_-]{8,})",
    ),
    SecretPattern(
        "url_password",
        "the password of scheme://user:password@host (only the password is replaced; "
        "the last @ before the path ends it, so p@ss is whole), or a key given as the "
        "user of a URL without a password, 24 or more characters (a Sentry DSN, "
        "https://<32 hex>@o1.ingest.sentry.io/2)",
        r"://(?:[^\s:/?#@<]*:(?P<s>[^\s/?#<]+)|(?P<k>[A-Za-z0-9_-]{24,}))@",
    ),
)


@cache
def _passes(raw: bool) -> tuple[tuple[re.Pattern[Any], int], ...]:
    """The patterns as (regex, back) passes, one per leading literal, in PATTERNS order.

    Patterns that start with the same character share a pass (one scan of the data).
    """
    groups: dict[tuple[str, int], list[str]] = {}
    for pattern in PATTERNS:
        groups.setdefault((pattern.source[0], pattern.back), []).append(pattern.source)
    passes: list[tuple[re.Pattern[Any], int]] = []
    for (_, back), sources in groups.items():
        source = "|".join(sources)
        passes.append((re.compile(source.encode("ascii") if raw else source), back))
    return tuple(passes)


def _secret_span(m: re.Match[Any], back: int) -> tuple[int, int]:
    """Where the secret of a pattern match is: group ``s`` (or ``k``) if it took part, else
    the match."""
    for group in ("s", "k"):
        if group in m.re.groupindex and m.start(group) >= 0:
            return m.span(group)
    return m.start() - back, m.end()


#: A value written as `password=...`, `Secret: ...`, `api_key="..."` (any case, quoted or
#: not): 4 or more characters up to a space, quote, comma or semicolon; none, null, true,
#: false and *** are not secrets. The words have no rare leading literal for the regex
#: engine, so they are found by a plain search of a lower-cased copy first (GB/s), and
#: the pattern is tried only where one is.
ASSIGNED_WORDS = ("password", "passwd", "passphrase", "secret", "api_key", "api-key", "apikey",
                  "access_key", "access-key")  # fmt: skip
#: What the search looks for: the start of each word (client_secret, DB_PASSWORD: the word
#: may follow `_` or `-`, not a letter or digit: not "mypassword=" nor "secretary:").
_ASSIGNED_STEMS = ("pass", "secret", "api", "access")
_ASSIGNED = (
    r"(?:" + "|".join(ASSIGNED_WORDS) + r")[\"']?[ \t]*[=:][ \t]*[\"']?"
    r"(?!(?:none|null|true|false|\*+)(?![^\s\"',;&<>]))"
    r"(?P<s>[^\s\"',;&<>(\[{][^\s\"',;&<>]{3,})"  # (not "password: (typed at the prompt)")
)


@cache
def _assigned(raw: bool) -> tuple[re.Pattern[Any], tuple[Any, ...]]:
    """The assigned-value pattern (case-insensitive) and its words, for str or bytes."""
    if raw:
        return re.compile(_ASSIGNED.encode("ascii"), re.I), tuple(
            w.encode() for w in ASSIGNED_WORDS
        )
    return re.compile(_ASSIGNED, re.I), ASSIGNED_WORDS


def _scrub_assigned(data: AnyStr, mark: Callable[[AnyStr], AnyStr], marker_re: Any) -> AnyStr:
    """`data` with the values of `password=...` and the like replaced by mark(value)."""
    raw = isinstance(data, bytes)
    regex, words = _assigned(raw)
    if not raw and not data.isascii():  # (lower() may change a non-ASCII text's length)
        starts = [m.start() for m in regex.finditer(data)]
    else:
        lower = data.lower()
        starts = []
        for word in words:
            at = lower.find(word)
            while at >= 0:
                starts.append(at)
                at = lower.find(word, at + 1)
        if not starts:
            return data
    spans: list[tuple[int, int]] = []
    for start in sorted(set(starts)):
        if start and data[start - 1 : start].isalnum():
            continue  # glued to a word: not the word itself (mypassword=, bypass)
        m = regex.match(data, start)
        if m is None or marker_re.fullmatch(m.group("s")):
            continue
        if not spans or m.start("s") >= spans[-1][1]:
            spans.append(m.span("s"))
    if not spans:
        return data
    pieces: list[AnyStr] = []
    last = 0
    for start, end in spans:
        pieces += [data[last:start], mark(data[start:end])]
        last = end
    pieces.append(data[last:])
    return data[:0].join(pieces)


def _encode(value: str) -> bytes:
    """The bytes a str stands for: os.environ decodes undecodable bytes as surrogates."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return value.encode("utf-8", "surrogatepass")


def _substitute(
    data: AnyStr,
    regex: re.Pattern[AnyStr],
    back: int,
    mark: Callable[[AnyStr], AnyStr],
    marker_re: re.Pattern[AnyStr],
) -> AnyStr:
    """`data` with the secret of every match replaced by mark(secret).

    Returns `data` itself when nothing matches; a secret that is already a marker is kept,
    so scrubbing twice changes nothing.
    """
    first = regex.search(data)
    if first is None:
        return data
    pieces: list[AnyStr] = []
    last = 0
    for m in regex.finditer(data, first.start()):
        start, end = _secret_span(m, back)
        start = max(start, last)  # a PEM fallback body may have run into the next BEGIN
        secret = data[start:end]
        if marker_re.fullmatch(secret):
            continue
        pieces.append(data[last:start])
        pieces.append(mark(secret))
        last = end
    if not pieces:
        return data
    pieces.append(data[last:])
    return data[:0].join(pieces)


class Redactor:
    """Replaces secrets with keyed markers; remembers the secrets it saw in the environment.

    One Redactor serves one run: `redact_env` first (it learns the secret values), then
    `scrub_text`/`scrub_bytes`/`scrub_value`/`scrub_argv` on what the run printed and took.
    """

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the redaction key must not be empty")
        key = bytes(key)
        if len(key) != 32:  # BLAKE3's keyed mode takes exactly 32 bytes
            from blake3 import blake3

            key = blake3(key).digest()
        self._key = key
        self.known_secrets: set[str] = set()
        self._marks: dict[bytes, str] = {}
        self._snapshot: frozenset[str] = frozenset()
        #: scrub_text's answers for short texts while the known secrets stay the same (a
        #: sweep scrubs the same command words and parameter names for every child)
        self._scrubbed: dict[str, str] = {}
        self._known_text: tuple[str, ...] = ()
        self._known_raw: tuple[bytes, ...] = ()

    # -- markers ---------------------------------------------------------------------------

    def marker(self, value: str) -> str:
        """``<redacted:XXXXXXXX>``: 8 hex of the keyed BLAKE3 of the value (UTF-8).

        BLAKE3's keyed mode is a MAC with the same guarantee as HMAC-SHA256 here (no one
        without the store's key can test a guess), and saves importing hmac/_hashlib
        (~5 ms) on every run."""
        return self._mark_raw(_encode(value))

    def _mark_raw(self, data: bytes) -> str:
        mark = self._marks.get(data)
        if mark is None:
            if len(self._marks) > 65536:  # a log full of distinct tokens: keep memory flat
                self._marks.clear()
            from blake3 import blake3

            digest = blake3(data, key=self._key).digest()
            mark = self._marks[data] = f"<redacted:{digest[:4].hex()}>"
        return mark

    def _mark_text(self, secret: str) -> str:
        return self.marker(secret)

    def _mark_bytes(self, secret: bytes) -> bytes:
        return self._mark_raw(secret).encode("ascii")

    # -- the environment -------------------------------------------------------------------

    def redact_env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """The environment with secrets replaced by markers, sorted by name.

        Values under a secret name are replaced whole; elsewhere only the parts that match
        a pattern (for a URL, only its password). Names are done first, so that a secret
        value that reappears under an innocent name (MY_CMD="--token $TOKEN") is scrubbed.
        A value that is already exactly a marker is kept, so redacting twice is harmless.
        """
        out: dict[str, str] = {}
        for name, value in environ.items():
            if MARKER_RE.fullmatch(value):
                out[name] = value
            elif is_secret_name(name):
                out[name] = self.marker(value)
                self._remember(value)
                self._remember_all(self._pattern_secrets(value))
        for name, value in environ.items():
            if name not in out:
                self._remember_all(self._pattern_secrets(value))
                out[name] = self.scrub_text(value)
        return dict(sorted(out.items()))

    def _remember(self, value: str) -> None:
        if len(value) >= MIN_KNOWN_LEN and not MARKER_RE.fullmatch(value):
            self.known_secrets.add(value)

    def _remember_all(self, values: Iterable[str]) -> None:
        for value in values:
            self._remember(value)

    @staticmethod
    def _pattern_secrets(value: str) -> list[str]:
        """The secrets the value patterns find in `value`."""
        found: list[str] = []
        for regex, back in _passes(False):
            for m in regex.finditer(value):
                start, end = _secret_span(m, back)
                found.append(value[start:end])
        return found

    # -- free text -------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """`text` with known secrets and pattern matches replaced; unchanged text is returned
        as the same object."""
        self._refresh_known()
        short = len(text) <= 256
        if short:
            done = self._scrubbed.get(text)
            if done is not None:
                return done
        original = text
        text = self._scrub_known(text, self._known_text, self._mark_text)
        for regex, back in _passes(False):
            text = _substitute(text, regex, back, self._mark_text, MARKER_RE)
        text = _scrub_assigned(text, self._mark_text, MARKER_RE)
        if short:
            if len(self._scrubbed) >= 4096:
                self._scrubbed.clear()
            self._scrubbed[original] = text
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        """Same as `scrub_text` for captured stdout/stderr; fast on large ordinary logs."""
        if not isinstance(data, bytes):
            data = bytes(data)
        self._refresh_known()
        data = self._scrub_known(data, self._known_raw, self._mark_bytes)
        for regex, back in _passes(True):
            data = _substitute(data, regex, back, self._mark_bytes, _MARKER_RE_RAW)
        return _scrub_assigned(data, self._mark_bytes, _MARKER_RE_RAW)

    def scrub_value(self, value: object) -> object:
        """JSON-like params with secrets scrubbed: keys kept, str values scrubbed.

        Under a key with a secret name ({"api_key": "abc"}, {"auth": {"user": "x"}}) every
        str is replaced whole by its marker; numbers and booleans are kept (max_tokens=512).
        Tuples come back as tuples; anything else that is not a str is returned as is.
        """
        return self._scrub_value(value, False)

    def _scrub_value(self, value: object, secret: bool) -> object:
        if isinstance(value, str):
            return self.marker(value) if secret else self.scrub_text(value)
        if isinstance(value, dict):
            return {
                k: self._scrub_value(v, secret or (isinstance(k, str) and is_secret_name(k)))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._scrub_value(v, secret) for v in value]
        if isinstance(value, tuple):
            return tuple(self._scrub_value(v, secret) for v in value)
        return value

    def scrub_argv(self, argv: Sequence[str]) -> list[str]:
        """A command line with secrets scrubbed, also the values of secret-named options.

        ``--api-key=abc`` becomes ``--api-key=<marker>``, and in ``--password abc`` the next
        item is replaced (unless it starts with "-"): values no pattern would recognise.
        Those values are remembered: a program that echoes them has them scrubbed from its
        output too (a value recognised as secret anywhere is redacted everywhere).
        """
        out: list[str] = []
        after_secret_option = False
        for item in argv:
            if after_secret_option and not item.startswith("-"):
                self._remember(item)
                out.append(item if MARKER_RE.fullmatch(item) else self.marker(item))
                after_secret_option = False
                continue
            after_secret_option = False
            if item.startswith("-") and item.lstrip("-"):
                name, eq, value = item.lstrip("-").partition("=")
                if is_secret_name(name):
                    if eq:
                        self._remember(value)
                        mark = value if MARKER_RE.fullmatch(value) else self.marker(value)
                        out.append(item[: len(item) - len(value)] + mark)
                        continue
                    after_secret_option = True
            out.append(self.scrub_text(item))
        return out

    # -- known secrets ---------------------------------------------------------------------

    def _refresh_known(self) -> None:
        """Recompute the ordered known secrets when `known_secrets` changed (longest first)."""
        if self._snapshot == self.known_secrets:
            return
        snapshot = frozenset(self.known_secrets)
        secrets = [s for s in snapshot if s]  # an empty secret would match everywhere
        self._known_text = tuple(sorted(secrets, key=lambda s: (-len(s), s)))
        self._known_raw = tuple(sorted({_encode(s) for s in secrets}, key=lambda b: (-len(b), b)))
        self._snapshot = snapshot
        self._scrubbed = {}

    def _scrub_known(
        self, data: AnyStr, known: tuple[AnyStr, ...], mark: Callable[[AnyStr], AnyStr]
    ) -> AnyStr:
        """`data` with the known secrets replaced, longest first (a secret inside a longer
        one is replaced as part of the longer one).

        One ``in``/``replace`` per secret: these search for a literal at GB/s, while the regex
        engine scans a combined alternation of literals at ~170 MB/s (its first-character-set
        search is the slow part; measured 0.6 s per 100 MB with 10 secrets).
        """
        for secret in known:
            if secret in data:
                data = data.replace(secret, mark(secret))
        return data


#: Files never copied into the store (only hashed), whatever their size: they usually
#: hold credentials. Matched on the path's last component(s).
SECRET_FILE = re.compile(
    r"(^|/)(\.env(\..*)?|\.netrc|\.pgpass|\.npmrc|\.pypirc|credentials(\.json)?"
    r"|id_(rsa|dsa|ecdsa|ed25519)|[^/]*\.(pem|key|p12|pfx|keystore))$"
)


def is_secret_file(path: str) -> bool:
    """True for a file whose name says it holds credentials (.env, id_rsa, *.pem...)."""
    return SECRET_FILE.search(path) is not None
