"""Keeps secrets out of the store: one redaction pass that every record vestige writes goes
through, fed by one set of known secret values per run.

A secret becomes ``<redacted:XXXXXXXX>``, the first 8 hex of a keyed BLAKE3 (a MAC) under
the user's own key: the same secret always gives the same marker, so a diff shows that a
secret changed without showing it, and nobody without the key can test guesses against a marker.

Secrets are found four ways:

* by NAME: an env var (or a params key, an option of the command line, a ``k=v`` argument)
  whose name contains KEY, TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, CREDENTIAL, AUTH,
  PRIVATE, SESSION or COOKIE, has PASS, PAT, JWT, DSN... as a whole ``_``-separated part
  (``DB_PASS``, ``GH_PAT``), or is a standard variable of a common service
  (secret_rules.json, ``variables``); see `is_secret_name` for the innocent words let
  through (TOKENIZERS_PARALLELISM, GIT_AUTHOR_NAME, XDG_SESSION_TYPE, ...);
* by VALUE, vestige's own patterns: `PATTERNS` (AWS key ids, GitHub/GitLab/Slack/OpenAI/
  Hugging Face/Google tokens, JWTs, PEM private keys, the password of
  ``scheme://user:pw@host``, Azure keys, Slack webhooks, Sentry DSNs) and values written
  as ``password=...``, ``Secret: ...``, ``Bearer ...`` (`ASSIGNED_WORDS`);
* by VALUE, a maintained list: gitleaks' rules (about 200 services: Stripe, Twilio,
  SendGrid, npm, PyPI, Databricks, Datadog...), kept as data in secret_rules.json (its
  source, licence and the changes made are said there), loaded and compiled on first use;
* by MEMORY: every secret value of 6+ characters found by any of these, in any channel
  (the environment, the command line, params, logs, cells, notes, names) is kept in
  `Redactor.known_secrets` and replaced wherever it shows up, also where no rule would
  have found it (a program echoing its ``--password``). The run's seal learns from every
  channel before it writes any (recording/seal.py).

Scrubbing is built for large logs. Python's regex engine searches at GB/s only for a
pattern that starts with a literal and crawls (~170 MB/s) when the first character is one
of a set, so vestige's patterns run as a few passes, each led by the rarest literal of its
secret, and each known secret is one ``in``/``replace``. gitleaks' 200 rules would be 200
such passes: instead one ``bytes.translate`` (~1 GB/s) marks the runs of 16 or more token
characters, and only the rules whose keyword starts such a run (``ghp_``, ``SG.``), or
is in the name a value is assigned to (``datadog_api_key = ...``), are tried around it.
Figures: docs/security.md.
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


_NAME_PARTS = re.compile(r"[^A-Z0-9]+")


def is_secret_name(name: str) -> bool:
    """True if a variable or key of this name holds a secret (case-insensitive)."""
    upper = name.upper()
    if upper in _INNOCENT_NAMES:
        return False
    if upper in rules().names:
        return True
    upper = _INNOCENT_WORDS.sub("_", upper)
    if any(word in upper for word in _SECRET_WORDS) or _PASS_PART.search(upper) is not None:
        return True
    parts = _NAME_PARTS.split(upper)  # GH_PAT, CI_JOB_JWT; not PATH, nor PAT alone
    return len(parts) > 1 and not rules().parts.isdisjoint(parts)


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
#: false and *** are not secrets. Also the token of `Bearer <token>` (an Authorization
#: header printed by an HTTP client's debug log), 8 or more characters. The words have no
#: rare leading literal for the regex engine, so they are found by a plain search of a
#: lower-cased copy first (GB/s), and the pattern is tried only where one is.
ASSIGNED_WORDS = ("password", "passwd", "passphrase", "secret", "api_key", "api-key", "apikey",
                  "access_key", "access-key")  # fmt: skip
#: What the search looks for: the start of each word (client_secret, DB_PASSWORD: the word
#: may follow `_` or `-`, not a letter or digit: not "mypassword=" nor "secretary:"); one
#: search per stem, not per word.
_ASSIGNED_STEMS = ("pass", "secret", "api", "access", "bearer")
_ASSIGNED = (
    r"(?:(?:" + "|".join(ASSIGNED_WORDS) + r")[\"']?[ \t]*[=:][ \t]*[\"']?"
    r"|bearer[ \t]+(?=[A-Za-z0-9._~+/=-]{8}))"
    r"(?!(?:none|null|true|false|\*+)(?![^\s\"',;&<>]))"
    r"(?P<s>(?!\\[nrt])[^\s\"',;&<>(\[{](?:(?!\\[nrt])[^\s\"',;&<>]){3,})"  # (not "password:
    # (typed at the prompt)", nor the \r\n of a bytes repr after it)
)


@cache
def _assigned(raw: bool) -> tuple[re.Pattern[Any], tuple[Any, ...]]:
    """The assigned-value pattern (case-insensitive) and the stems to search, for str or bytes."""
    if raw:
        stems = tuple(w.encode() for w in _ASSIGNED_STEMS)
        return re.compile(_ASSIGNED.encode("ascii"), re.I), stems
    return re.compile(_ASSIGNED, re.I), _ASSIGNED_STEMS


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


# -- a maintained rule list (gitleaks'), as data -----------------------------------------------

RULES_FILE = "secret_rules.json"
#: A token a rule of the list can match holds a run of at least this many characters of
#: [A-Za-z0-9_-] (``ghp_`` + 36, ``SG.`` + 22 + ``.`` + 43...): the runs are the candidates.
MIN_RUN = 16
_RUN = b"a" * MIN_RUN
#: [A-Za-z0-9_-] -> "a", anything else -> " ": a run of "a"s is a run of token characters.
_RUN_TABLE = bytes(
    0x61 if (0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A or b in b"_-") else 0x20
    for b in range(256)
)
#: What may stand between a name and the value assigned to it (gitleaks' "name rules").
_SPACING = frozenset(b"`'\" \t=")
_OPERATORS = frozenset(b"=:>,|")
#: The characters of the name a value is assigned to: one word (gitleaks also takes words
#: after the keyword, `adafruit key = x`; one word is what programs print, and a name
#: without the words before it is the same on every line: its rules are looked up once).
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
#: How far around a candidate run a dispatched rule's regex looks for its token.
_WINDOW = 256


class Rule:
    """One rule of secret_rules.json: its regex (compiled for bytes on first use), which
    group is the secret, and the least Shannon entropy a secret must have."""

    __slots__ = ("entropy", "group", "id", "regex", "source")

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.id: str = str(data["id"])
        self.source: str = str(data["regex"])
        self.group: int | None = data.get("secretGroup")
        self.entropy: float = float(data.get("entropy") or 0)
        self.regex: re.Pattern[bytes] | None = None

    def __repr__(self) -> str:
        return f"Rule({self.id!r})"

    def compiled(self) -> re.Pattern[bytes]:
        """The regex, compiled once (most rules of a run are never needed)."""
        if self.regex is None:
            self.regex = re.compile(self.source.encode("ascii"))
        return self.regex

    def secret(self, m: re.Match[bytes]) -> tuple[int, int]:
        """Where the secret of a match is, as gitleaks takes it: `secretGroup` when set,
        else the first group that took part, else the whole match."""
        if self.group is not None and self.group <= (m.re.groups or 0) and m.start(self.group) >= 0:
            return m.span(self.group)
        for i in range(1, (m.re.groups or 0) + 1):
            if m.start(i) >= 0 and m.end(i) > m.start(i):
                return m.span(i)
        return m.span()


def _entropy(data: bytes) -> float:
    """Shannon entropy of `data`, bits per character (gitleaks' `entropy` threshold)."""
    from math import log2

    n = len(data)
    counts = [data.count(c) for c in set(data)]
    return -sum(k / n * log2(k / n) for k in counts) if n else 0.0


class Rules:
    """The rule list of secret_rules.json, indexed by keyword for dispatch.

    `start`: keywords made of token characters, looked for at the start of a candidate
    run (``ghp_``, ``sk_live``, ``xoxb``); `before`: the keywords with other characters,
    which end just before the run (``sg.``, ``dp.pt.``, ``q~``) or straddle its start
    (``v1.0-``); `named`: the keywords of rules
    that find a value assigned to a name holding the keyword (``adafruit_key = ...``),
    looked for in that name. `names` and `parts`: the secret variable names."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.source = str(data.get("source", ""))
        self.rules = [Rule(r) for r in data.get("rules", ())]
        variables = data.get("variables") or {}
        self.names = frozenset(str(n).upper() for n in variables.get("names", ()))
        self.parts = frozenset(str(n).upper() for n in variables.get("parts", ()))
        start: dict[bytes, list[tuple[bytes, tuple[int, ...]]]] = {}
        before: dict[int, list[tuple[bytes, int, tuple[int, ...]]]] = {}
        named: dict[bytes, list[int]] = {}
        by_keyword: dict[tuple[str, bytes], list[int]] = {}
        for i, raw in enumerate(data.get("rules", ())):
            at = "name" if raw.get("at") == "name" else "start"
            for kw in {str(k).lower().encode() for k in raw.get("start") or raw["keywords"]}:
                by_keyword.setdefault((at, kw), []).append(i)
        for (at, kw), ids in by_keyword.items():
            if at == "name":
                named[kw] = ids
                continue
            plain = kw.translate(_RUN_TABLE)
            if b" " not in plain:  # token characters only: at the start of the run
                start.setdefault(kw[:2], []).append((kw, tuple(ids)))
            else:  # ends at, or straddles, the start of the run: after its last joiner
                k = plain.rfind(b" ") + 1
                before.setdefault(kw[k - 1], []).append((kw, k, tuple(ids)))
        #: first two characters -> (keyword, rules), for keywords of token characters
        self.start = {k: tuple(v) for k, v in start.items()}
        #: the character before the run -> (keyword, how far it starts before, rules)
        self.before = {k: tuple(v) for k, v in before.items()}
        self.named = tuple((k, tuple(v)) for k, v in named.items())
        self.longest = max((len(k) for v in start.values() for k, _ in v), default=0)
        self._names_seen: dict[bytes, tuple[int, ...]] = {}

    def find(self, data: bytes) -> set[bytes]:
        """The secrets the rules find in `data`: each run of MIN_RUN or more token
        characters is a candidate, the keywords at its start (or in the name it is
        assigned to) say which rules to try, and those rules' regexes run around it.

        The loop is the hot path on a log full of hashes (one candidate per line): it is
        written out, ~1 µs a candidate."""
        tr = data.translate(_RUN_TABLE)
        pos = tr.find(_RUN)
        found: set[bytes] = set()
        if pos < 0:
            return found
        searched: dict[int, int] = {}  # rule -> end of the last window it searched
        n = len(data)
        start, before, longest = self.start, self.before, self.longest
        while pos >= 0:
            end = tr.find(b" ", pos)
            if end < 0:
                end = n
            hits: list[int] = []
            keywords = start.get(data[pos : pos + 2].lower())
            if keywords:
                head = data[pos : pos + longest].lower()
                for kw, rules in keywords:
                    if head.startswith(kw):
                        hits += rules
            if pos:
                c = data[pos - 1]
                for kw, k, rules in before.get(c, ()):
                    if data[pos - k : pos - k + len(kw)].lower() == kw:
                        hits += rules
                if c in _SPACING or c in _OPERATORS:
                    hits += self._named(data, pos)
            for i in hits:
                if end + MIN_RUN <= searched.get(i, -1):
                    continue  # this run was inside the window the rule searched last
                lo, hi = max(0, pos - _WINDOW), min(n, end + _WINDOW)
                searched[i] = hi
                self._search(self.rules[i], data, lo, hi, found)
            pos = tr.find(_RUN, end)
        return found

    def _named(self, data: bytes, s: int) -> tuple[int, ...]:
        """The name rules whose keyword is in the name a value at `s` is assigned to:
        ``name [ '"]* (= | : | => | ...) [`'" =]*`` just before `s` (gitleaks' shape)."""
        i, k = s, 0
        while i > 0 and k < 5 and data[i - 1] in _SPACING:
            i, k = i - 1, k + 1
        if i == 0 or data[i - 1] not in _OPERATORS:
            i = data.find(b"=", i, s) + 1  # (`name = 'value'`: the = was taken for spacing)
            if not i:
                return ()
        k = 0
        while i > 0 and k < 3 and data[i - 1] in b":=?|>,":
            i, k = i - 1, k + 1
        k = 0
        while i > 0 and k < 3 and data[i - 1] in b" \t'\"":
            i, k = i - 1, k + 1
        j = i
        while j > 0 and i - j < 70 and data[j - 1] in _NAME_CHARS:
            j -= 1
        name = data[j:i].lower()
        rules = self._names_seen.get(name)
        if rules is None:
            hit: set[int] = set()
            for kw, ids in self.named:
                if kw in name:
                    hit.update(ids)
            rules = tuple(hit)
            if len(self._names_seen) > 4096:
                self._names_seen.clear()
            self._names_seen[name] = rules
        return rules

    @staticmethod
    def _search(rule: Rule, data: bytes, lo: int, hi: int, found: set[bytes]) -> None:
        """Add to `found` the secrets `rule` matches in data[lo:hi], except matches cut by
        the window (they are looked at whole from another run, or are no token)."""
        n = len(data)
        for m in rule.compiled().finditer(data, lo, hi):
            if (m.start() == lo and lo > 0) or (m.end() == hi and hi < n):
                continue
            start, end = rule.secret(m)
            secret = data[start:end]
            if len(secret) < 8 or (rule.entropy and _entropy(secret) < rule.entropy):
                continue
            found.add(secret)


@cache
def rules() -> Rules:
    """The rule list, read from secret_rules.json beside this module once per process."""
    import json
    import os

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), RULES_FILE)
    try:
        with open(path, "rb") as f:
            return Rules(json.load(f))
    except (OSError, ValueError, KeyError, TypeError) as e:  # (a broken install: say it, go on)
        from vestige.fastpath import warn

        warn(f"the secret rules ({RULES_FILE}) could not be read ({e}); vestige's own "
             "patterns and names still redact")  # fmt: skip
        return Rules({})


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
    """Replaces secrets with keyed markers, and learns the secrets it finds: one set of
    known secret values per run, fed by every channel it scrubs.

    One Redactor serves one run: `redact_env` and `scrub_argv` first (they learn the
    secret values of the environment and the command line), then `scrub_text`,
    `scrub_bytes`, `scrub_value` and `scrub_manifest` on what the run printed, took and
    made. Every secret a rule finds in any of them is learnt too, and replaced wherever
    it shows up after; `snapshot` and `rescrub` let a caller who scrubbed something before
    a later channel taught a new secret apply it there as well (recording/seal.py).
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
        without the user's key can test a guess), and saves importing hmac/_hashlib
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
        """The marker of a token a pattern found; the token is learnt."""
        self._remember(secret)
        return self.marker(secret)

    def _mark_bytes(self, secret: bytes) -> bytes:
        """`_mark_text` for bytes: the token is learnt (as the str it decodes to)."""
        self._remember(_decode(secret))
        return self._mark_raw(secret).encode("ascii")

    def _mark_assigned_text(self, secret: str) -> str:
        """The marker of a value written as ``password=...``: learnt only if it does not
        look like a plain word (``secret: unknown`` must not redact every "unknown")."""
        if _looks_random(secret):
            self._remember(secret)
        return self.marker(secret)

    def _mark_assigned_bytes(self, secret: bytes) -> bytes:
        """`_mark_assigned_text` for bytes."""
        return self._mark_assigned_text(_decode(secret)).encode("ascii")

    # -- learning --------------------------------------------------------------------------

    def _remember(self, value: str) -> None:
        """Learn `value` as a secret of the run, unless too short to look for in free text."""
        if len(value) >= MIN_KNOWN_LEN and not MARKER_RE.fullmatch(value):
            self.known_secrets.add(value)

    def _remember_named(self, name: str, value: str) -> None:
        """Learn the value of a secret-named variable, option or param: always under a
        name that can only hold a secret (PASSWORD, TOKEN...), else only if it does not
        look like a plain word (``sort_key=timestamp``, ``auth_mode=default``)."""
        if _strong_name(name) or _looks_random(value):
            self._remember(value)

    def snapshot(self) -> frozenset[str]:
        """The known secrets now, to ask `rescrub` later what was learnt since."""
        return frozenset(self.known_secrets)

    def rescrub(self, scrubbed: AnyStr, raw: AnyStr, since: frozenset[str]) -> AnyStr:
        """`scrubbed` (scrubbed when the known secrets were `since`) with the secrets
        learnt since replaced too; from `raw` again when one of them holds an older one
        (that one was replaced first, so the newer one is not found whole any more)."""
        added = self.known_secrets - since
        if not added:
            return scrubbed
        if any(old in new for new in added for old in since):
            return self.scrub_bytes(raw) if isinstance(raw, bytes) else self.scrub_text(raw)
        self._refresh_known()
        if isinstance(scrubbed, bytes):
            known = tuple(sorted({_encode(s) for s in added}, key=lambda b: (-len(b), b)))
            return self._scrub_known(scrubbed, known, self._mark_bytes)
        return self._scrub_known(scrubbed, tuple(sorted(added, key=lambda s: (-len(s), s))),
                                 self._mark_text)  # fmt: skip

    def learn(self, value: object) -> None:
        """Learn the secrets of `value` (str, bytes, or JSON-like) without keeping the
        scrubbed copy: a channel read before others are written (recording/seal.py)."""
        if isinstance(value, str):
            self.scrub_text(value)
        elif isinstance(value, (bytes, bytearray)):
            self.scrub_bytes(bytes(value))
        else:
            self.scrub_value(value)

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
                self._remember_named(name, value)
                self.scrub_text(value)  # (learns the tokens inside: a URL's password)
        for name, value in environ.items():
            if name not in out:
                self.scrub_text(value)  # learn first: a later variable may teach nothing
        for name, value in environ.items():
            if name not in out:
                out[name] = self.scrub_text(value)
        return dict(sorted(out.items()))

    # -- free text -------------------------------------------------------------------------

    def scrub_text(self, text: str) -> str:
        """`text` with known secrets and pattern matches replaced; unchanged text is returned
        as the same object. What the patterns find is learnt, and replaced also where it
        shows up in `text` without a pattern's context."""
        self._refresh_known()
        short = len(text) <= 256
        if short:
            done = self._scrubbed.get(text)
            if done is not None:
                return done
        original = text
        before = len(self.known_secrets)
        text = self._scrub_known(text, self._known_text, self._mark_text)
        for regex, back in _passes(False):
            text = _substitute(text, regex, back, self._mark_text, MARKER_RE)
        text = _scrub_assigned(text, self._mark_assigned_text, MARKER_RE)
        if len(text) >= MIN_RUN:
            for secret in rules().find(_encode(text)):
                self._remember(_decode(secret))
        if len(self.known_secrets) != before:  # learnt here: replace it everywhere in text
            self._refresh_known()
            text = self._scrub_known(text, self._known_text, self._mark_text)
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
        before = len(self.known_secrets)
        data = self._scrub_known(data, self._known_raw, self._mark_bytes)
        for regex, back in _passes(True):
            data = _substitute(data, regex, back, self._mark_bytes, _MARKER_RE_RAW)
        data = _scrub_assigned(data, self._mark_assigned_bytes, _MARKER_RE_RAW)
        for secret in rules().find(data):
            self._remember(_decode(secret))
        if len(self.known_secrets) != before:
            self._refresh_known()
            data = self._scrub_known(data, self._known_raw, self._mark_bytes)
        return data

    def scrub_value(self, value: object) -> object:
        """JSON-like params with secrets scrubbed: keys and str values scrubbed.

        Under a key with a secret name ({"api_key": "abc"}, {"auth": {"user": "x"}}) every
        str is replaced whole by its marker, and learnt; numbers and booleans are kept
        (max_tokens=512). Tuples come back as tuples; anything else that is not a str is
        returned as is.
        """
        return self._scrub_value(value, None)

    def _scrub_value(self, value: object, secret: str | None) -> object:
        if isinstance(value, str):
            if secret is None:
                return self.scrub_text(value)
            if MARKER_RE.fullmatch(value):
                return value
            self._remember_named(secret, value)
            return self.marker(value)
        if isinstance(value, dict):
            out: dict[Any, object] = {}
            for k, v in value.items():
                named = secret if secret is not None or not isinstance(k, str) else (
                    k if is_secret_name(k) else None)  # fmt: skip
                out[self.scrub_text(k) if isinstance(k, str) else k] = self._scrub_value(v, named)
            return out
        if isinstance(value, list):
            return [self._scrub_value(v, secret) for v in value]
        if isinstance(value, tuple):
            return tuple(self._scrub_value(v, secret) for v in value)
        return value

    def scrub_argv(self, argv: Sequence[str]) -> list[str]:
        """A command line with secrets scrubbed, also the values of secret-named options.

        ``--api-key=abc`` becomes ``--api-key=<marker>``, in ``--password abc`` the next
        item is replaced (unless it starts with "-"), and in ``token=abc`` the value:
        values no pattern would recognise. Those values are learnt: a program that echoes
        them has them scrubbed from its output too (a value recognised as secret anywhere
        is redacted everywhere).
        """
        out: list[str] = []
        after: str | None = None  # the secret option whose value comes next
        for item in argv:
            if after is not None and not item.startswith("-"):
                self._remember_named(after, item)
                out.append(item if MARKER_RE.fullmatch(item) else self.marker(item))
                after = None
                continue
            after = None
            name, eq, value = item.lstrip("-").partition("=")
            if item.startswith("-") and name and is_secret_name(name):
                if not eq:
                    after = name
                    out.append(item)
                    continue
            elif not (eq and _ARG_NAME.fullmatch(name) and is_secret_name(name)):
                out.append(self.scrub_text(item))
                continue
            self._remember_named(name, value)  # --api-key=abc, token=abc
            mark = value if MARKER_RE.fullmatch(value) else self.marker(value)
            out.append(item[: len(item) - len(value)] + mark)
        return out

    # -- records ---------------------------------------------------------------------------

    def scrub_manifest(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """A run's manifest (docs/format.md) with every field that holds what the user or
        the program gave scrubbed: the command, params, warnings, artefact names and
        sources, metric names, tags, notes, a sweep's values, a notebook's params. Hashes,
        ids, times and statuses are vestige's own and left alone (a known secret could
        be a substring of a hash). Idempotent: markers are kept. Two passes: what the
        second field teaches (a sweep's values) is replaced in the first (its warnings)."""
        return self._scrub_manifest(self._scrub_manifest(manifest))

    def _scrub_manifest(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        d = dict(manifest)
        if isinstance(d.get("command"), list):
            d["command"] = self.scrub_argv([str(a) for a in d["command"]])
        if isinstance(d.get("params"), dict):
            d["params"] = self.scrub_value(d["params"])
        if isinstance(d.get("warnings"), (list, tuple)):
            d["warnings"] = [self.scrub_text(str(w)) for w in d["warnings"]]
        if isinstance(d.get("tags"), (list, tuple)):
            d["tags"] = _unique(self.scrub_text(str(t)) for t in d["tags"])
        if isinstance(d.get("notes"), (list, tuple)):
            d["notes"] = [{**n, "text": self.scrub_text(str(n.get("text", "")))}
                          if isinstance(n, dict) else n for n in d["notes"]]  # fmt: skip
        if isinstance(d.get("artefacts"), (list, tuple)):
            d["artefacts"] = [self._scrub_artefact(a) if isinstance(a, dict) else a
                              for a in d["artefacts"]]  # fmt: skip
        metrics = d.get("metrics")
        if isinstance(metrics, dict) and isinstance(metrics.get("keys"), dict):
            d["metrics"] = {**metrics, "keys": {self.scrub_text(str(k)): v
                                                for k, v in metrics["keys"].items()}}  # fmt: skip
        sweep = d.get("sweep")
        if isinstance(sweep, dict):
            d["sweep"] = {k: self.scrub_value(v) if k in ("spec", "children", "plan") else v
                          for k, v in sweep.items()}  # fmt: skip
        notebook = d.get("notebook")
        if isinstance(notebook, dict):
            d["notebook"] = {k: self.scrub_value(v) if k in ("params", "path") else v
                             for k, v in notebook.items()}  # fmt: skip
        return d

    def _scrub_artefact(self, artefact: Mapping[str, Any]) -> dict[str, Any]:
        """An artefact record with its name, source, note, figure label and file paths
        scrubbed (its bytes are the program's own, kept as they are)."""
        out = {k: self.scrub_text(v) if k in ("name", "source", "note", "figure")
               and isinstance(v, str) else v for k, v in artefact.items()}  # fmt: skip
        if isinstance(out.get("files"), list):
            out["files"] = [{**f, "path": self.scrub_text(f["path"])}
                            if isinstance(f, dict) and isinstance(f.get("path"), str) else f
                            for f in out["files"]]  # fmt: skip
        return out

    def scrub_notebook(self, data: bytes) -> bytes:
        """A notebook vestige made (the executed notebook) with secrets scrubbed from what
        its cells hold as text: sources, printed streams, errors, text outputs (images are
        left alone: a pattern could match inside base64 and spoil them), metadata. The
        same bytes back when nothing was secret; not JSON: scrubbed as bytes."""
        import json

        try:
            nb = json.loads(data)
        except ValueError:
            return self.scrub_bytes(data)
        if not isinstance(nb, dict):
            return self.scrub_bytes(data)
        clean = dict(nb)
        clean["metadata"] = self.scrub_value(nb.get("metadata"))
        cells = nb.get("cells")
        if isinstance(cells, list):
            clean["cells"] = [self._scrub_cell(c) if isinstance(c, dict) else c for c in cells]
        if clean == nb:
            return data
        text = json.dumps(clean, sort_keys=True, indent=1, ensure_ascii=False)  # (nbformat's)
        return (text + "\n").encode("utf-8", "surrogateescape")

    def _scrub_cell(self, cell: Mapping[str, Any]) -> dict[str, Any]:
        """One cell of a notebook, its text scrubbed (see `scrub_notebook`)."""
        out = {k: self.scrub_value(v) if k in ("source", "metadata") else v
               for k, v in cell.items()}  # fmt: skip
        outputs = cell.get("outputs")
        if isinstance(outputs, list):
            out["outputs"] = []
            for o in outputs:
                if isinstance(o, dict):
                    o = {k: self.scrub_value(v) if k in ("text", "evalue", "traceback", "name",
                                                         "ename") else v
                         for k, v in o.items()}  # fmt: skip
                    data = o.get("data")
                    if isinstance(data, dict):
                        o["data"] = {m: self.scrub_value(v) if m.startswith(_TEXT_MIME) else v
                                     for m, v in data.items()}  # fmt: skip
                out["outputs"].append(o)
        return out

    def scrub_env_record(self, env: Mapping[str, Any]) -> dict[str, Any]:
        """An environment record (capture/env.py) scrubbed again: its variables as
        `redact_env` does, the rest as params (an export of a run recorded by an older
        vestige, or under other secrets, passes through this)."""
        out: dict[str, Any] = {}
        for k, v in env.items():
            if k == "env_vars" and isinstance(v, dict):
                out[k] = self.redact_env({str(n): str(x) for n, x in v.items()})
            else:
                out[k] = self.scrub_value(v)
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


#: The output MIME types of a notebook that hold text a cell printed or displayed.
_TEXT_MIME = ("text/", "application/json", "application/javascript")
#: The name in a ``name=value`` argument: a Python-ish identifier (dots and dashes too).
_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
#: Words that make a name hold nothing but a secret: its value is learnt even if it looks
#: like a plain word (a password can be one).
_STRONG = re.compile(r"PASS|SECRET|TOKEN|PWD|PRIVATE|CREDENTIAL|COOKIE")


def _strong_name(name: str) -> bool:
    """A secret name that holds nothing but a secret (DB_PASSWORD, --token; not sort_key)."""
    return _STRONG.search(name.upper()) is not None and is_secret_name(name)


def _looks_random(value: str) -> bool:
    """Not a plain word: a digit, a symbol, or mixed case inside (hunter2, Tr0ub4dor&3,
    correct-horse; not unknown, Paris, default)."""
    return not value.isalpha() or (value != value.lower() and value != value.capitalize())


def _decode(secret: bytes) -> str:
    """The str a secret found in bytes stands for (undecodable bytes as surrogates, as
    os.environ has them; `_encode` gives the same bytes back)."""
    return secret.decode("utf-8", "surrogateescape")


def _unique(items: Iterable[str]) -> list[str]:
    """`items` without repeats, in first-seen order (tags that scrub to one marker)."""
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


#: Files never copied into the store (only hashed), whatever their size: they usually
#: hold credentials. Matched on the path's last component(s).
SECRET_FILE = re.compile(
    r"(^|/)(\.env(\..*)?|\.netrc|\.pgpass|\.npmrc|\.pypirc|credentials(\.json)?"
    r"|id_(rsa|dsa|ecdsa|ed25519)|[^/]*\.(pem|key|p12|pfx|keystore))$"
)


def is_secret_file(path: str) -> bool:
    """True for a file whose name says it holds credentials (.env, id_rsa, *.pem...)."""
    return SECRET_FILE.search(path) is not None
