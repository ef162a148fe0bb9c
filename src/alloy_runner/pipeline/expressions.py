"""GitLab's CI/CD variable expressions, as `rules:if`, `only:variables` and `except:variables`
write them: `$VAR`, "strings", 'strings', /regex/flags, null, ==, !=, =~, !~, &&, ||, ( ).

`&&` binds tighter than `||`; a lone variable is true when it is set and not empty;
an undefined variable equals `null`; `=~` matches anywhere in the value unless anchored.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from alloy_runner.build.expand import expand
from alloy_runner.exceptions import ExpressionError

__all__ = ["ExpressionError", "compile_expression", "evaluate", "regex_literal"]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<var>\$[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\})
    |(?P<str>"[^"]*"|'[^']*')
    |(?P<re>/(?:\\.|[^/\\])*/[a-z]*)
    |(?P<null>null\b)
    |(?P<op>==|!=|=~|!~|&&|\|\||\(|\))
    )""",
    re.VERBOSE,
)
_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL, "x": re.VERBOSE}
_COMPARE = ("==", "!=", "=~", "!~")


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


Node = tuple[Any, ...]
Lookup = Callable[[str], str | None]


def _tokens(text: str) -> list[_Token]:
    out, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            rest = text[pos:].strip()
            raise ExpressionError(f"unexpected {rest[:20]!r} at character {pos + 1}")
        kind = match.lastgroup or ""
        out.append(_Token(kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens, self.pos = tokens, 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise ExpressionError("the expression ends too early")
        self.pos += 1
        return token

    def parse(self) -> Node:
        if not self.tokens:
            raise ExpressionError("the expression is empty")
        node = self.either()
        if self.peek() is not None:
            raise ExpressionError(f"unexpected {self.take().text!r}")
        return node

    def either(self) -> Node:
        node = self.both()
        while (token := self.peek()) is not None and token.text == "||":
            self.pos += 1
            node = ("or", node, self.both())
        return node

    def both(self) -> Node:
        node = self.compare()
        while (token := self.peek()) is not None and token.text == "&&":
            self.pos += 1
            node = ("and", node, self.compare())
        return node

    def compare(self) -> Node:
        left = self.term()
        token = self.peek()
        if token is None or token.text not in _COMPARE:
            return left
        self.pos += 1
        right = self.term()
        if token.text in ("=~", "!~") and right[0] not in ("re", "var"):
            raise ExpressionError(f"{token.text} needs a /regex/ or a variable on its right")
        return (token.text, left, right)

    def term(self) -> Node:
        token = self.take()
        if token.text == "(":
            node = self.either()
            if self.take().text != ")":
                raise ExpressionError("a '(' is not closed")
            return node
        if token.kind == "var":
            return ("var", token.text.strip("${}"))
        if token.kind == "str":
            return ("str", token.text[1:-1])
        if token.kind == "null":
            return ("null",)
        if token.kind == "re":
            return ("re", regex_literal(token.text))
        raise ExpressionError(f"unexpected {token.text!r}")


def regex_literal(text: str) -> re.Pattern[str]:
    """Compile `/body/flags`; raise ExpressionError when it is not a valid regex."""
    body, _, flags = text[1:].rpartition("/")
    mode = 0
    for flag in flags:
        if flag not in _FLAGS:
            raise ExpressionError(f"regex flag {flag!r} is not one of i, m, s, x")
        mode |= _FLAGS[flag]
    try:
        return re.compile(body, mode)
    except re.error as exc:
        raise ExpressionError(f"regex {text}: {exc}") from None


@lru_cache(maxsize=4096)
def compile_expression(text: str) -> Node:
    """Parse `text`; raise ExpressionError (without file or line) when it is not valid."""
    return _Parser(_tokens(text)).parse()


def _value(node: Node, lookup: Lookup) -> Any:
    kind = node[0]
    if kind == "var":
        return lookup(node[1])
    if kind == "str":  # GitLab expands references inside a quoted string: "path/to/$NAME"
        return expand(node[1], lookup) if "$" in node[1] else node[1]
    if kind == "re":
        return node[1]
    if kind == "null":
        return None
    return _truth(node, lookup)


def _as_pattern(value: Any) -> re.Pattern[str] | None:
    if isinstance(value, re.Pattern):
        return value
    if isinstance(value, str) and len(value) >= 2 and value.startswith("/"):
        try:
            return regex_literal(value)
        except ExpressionError:
            return None
    return None


def _truth(node: Node, lookup: Lookup) -> bool:
    kind = node[0]
    if kind == "or":
        return _truth(node[1], lookup) or _truth(node[2], lookup)
    if kind == "and":
        return _truth(node[1], lookup) and _truth(node[2], lookup)
    if kind in ("==", "!="):
        same = _value(node[1], lookup) == _value(node[2], lookup)
        return same if kind == "==" else not same
    if kind in ("=~", "!~"):
        text, pattern = _value(node[1], lookup), _as_pattern(_value(node[2], lookup))
        found = isinstance(text, str) and pattern is not None and bool(pattern.search(text))
        return found if kind == "=~" else not found
    value = _value(node, lookup)
    return bool(value) if not isinstance(value, re.Pattern) else True


def evaluate(text: str, variables: Mapping[str, str]) -> bool:
    """Evaluate the expression `text` against `variables`; raise ExpressionError if invalid."""
    return _truth(compile_expression(text), variables.get)
