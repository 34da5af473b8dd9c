"""Caption tokenization as pycocoevalcap does it, with Java (its Stanford PTBTokenizer jar) or without.

pycocoevalcap (and so clip_benchmark) runs Stanford CoreNLP 3.4.1's
PTBTokenizer with `-preserveLines -lowerCase` on every caption, then drops the
tokens in `PUNCTUATIONS`. `-lowerCase` also lowercases the bracket tokens, so
`-lrb-` and `-rrb-` survive the filter (it lists `-LRB-`): a quirk kept here.

`python_tokenize` reproduces the tokenizer's rules that captions meet:
lowercasing, splitting off punctuation, brackets, quotes, `$ # % + =`, clitics
(`'s`, `n't`, ...) and the split words (`cannot`, `gonna`, ...), keeping
abbreviations (`u.s.`, `mr.`), numbers (`3.5`, `1,000`), hyphenated words, URLs and
e-mail addresses whole. It matches the jar on the captions of
tests/unit/eval/ptb_golden.json. Known differences from the jar: PTB's
Unicode normalisation (curly quotes, non-breaking spaces, dashes), SGML-like
`<tags>`, and PTB's extra `.` after an abbreviation that ends a caption;
removed punctuation makes the last one moot for the scores.
"""

from __future__ import annotations

import re

# pycocoevalcap.tokenizer.ptbtokenizer.PUNCTUATIONS
PUNCTUATIONS = frozenset(["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-",
                          "--", "...", ";"])

BRACKETS = {"(": "-LRB-", ")": "-RRB-", "{": "-LCB-", "}": "-RCB-", "[": "-LSB-", "]": "-RSB-"}
SPLIT_WORDS = {"cannot": "can not", "gonna": "gon na", "gotta": "got ta", "wanna": "wan na", "lemme": "lem me",
               "gimme": "gim me", "dunno": "du n no", "'tis": "'t is", "'twas": "'t was"}

_WHOLE = re.compile(
    r"(?:https?://|www\.)\S+"  # URLs
    r"|[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # e-mail addresses
    r"|<[A-Za-z/][^<>\s]*>"  # SGML-like tags
    r"|[A-Z]\."  # an initial
    r"|'n'"  # rock 'n' roll
)
_TOKEN = re.compile(
    r"\.\.\.|--|[!?]+"
    r"|\d+(?:[.,:/]\d+)+"  # 3.5, 1,000, 10:30, 1/2
    r"|(?:[A-Za-z]\.){2,}"  # u.s., e.g.
    r"|(?i:(?:mr|mrs|ms|dr|st|jr|sr|prof|inc|ltd|co|corp|vs|etc|mt|ft|ave)\.)(?!\w)"  # PTB's abbreviations
    r"|@?\w+(?:[-/&']\w+)*"  # words, hyphenated or with inner slashes; clitics are split later
    r"|'[sdm]\b|'(?:re|ve|ll)\b"
    r"|\S"
)
_CLITIC = re.compile(r"^(\w+?)(n't|'s|'re|'ve|'ll|'d|'m)$", re.IGNORECASE)


def _split_clitic(word: str) -> list[str]:
    if word.lower() in SPLIT_WORDS:
        return SPLIT_WORDS[word.lower()].split()
    match = _CLITIC.match(word)
    return [match.group(1), match.group(2)] if match else [word]


def _quote(char: str, opening: bool) -> str:
    if char == '"':
        return "``" if opening else "''"
    return "`" if opening else "'"


def _chunk_tokens(chunk: str) -> list[str]:
    if _WHOLE.fullmatch(chunk):
        return [chunk]
    tokens: list[str] = []
    for piece in _TOKEN.findall(chunk):
        if piece in BRACKETS:
            tokens.append(BRACKETS[piece])
        elif piece in ('"', "'"):
            tokens.append(_quote(piece, opening=not tokens or tokens[-1] in BRACKETS.values()))
        else:
            tokens.extend(_split_clitic(piece))
    return tokens


def ptb_tokens(caption: str) -> list[str]:
    """One caption as PTBTokenizer -preserveLines -lowerCase tokenizes it (punctuation still in)."""
    tokens = [token for chunk in caption.replace("\n", " ").split() for token in _chunk_tokens(chunk)]
    return [token.lower() for token in tokens]


def python_tokenize(captions: dict) -> dict:
    """pycocoevalcap's PTBTokenizer.tokenize without Java: {id: [{"caption": str}]} -> {id: [tokenized str]}."""
    return {key: [" ".join(t for t in ptb_tokens(c["caption"]) if t not in PUNCTUATIONS) for c in captions]
            for key, captions in captions.items()}


def java_tokenize(captions: dict) -> dict:
    """pycocoevalcap's own PTBTokenizer (Stanford CoreNLP 3.4.1 jar, needs `java`), as clip_benchmark calls it."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    return PTBTokenizer().tokenize(captions)
