"""`rules:if` expressions, table-driven from the examples of GitLab's CI/CD variable
expression reference (`==`, `!=`, `=~`, `!~`, `&&`, `||`, parentheses, null, regexes)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alloy_runner.pipeline.expressions import ExpressionError, evaluate

VARIABLES = {
    "CI_COMMIT_BRANCH": "main",
    "CI_DEFAULT_BRANCH": "main",
    "CI_PIPELINE_SOURCE": "merge_request_event",
    "CI_COMMIT_MESSAGE": "Fix the build\n\n[skip docs]",
    "CI_COMMIT_REF_NAME": "feature/login",
    "EMPTY": "",
    "VARIABLE": "value",
    "PATTERN": "/^feat/",
    "RELEASE": "staging",
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        # Equality and null
        ("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", True),
        ('$CI_PIPELINE_SOURCE == "merge_request_event"', True),
        ("$CI_PIPELINE_SOURCE == 'push'", False),
        ('$VARIABLE != "other"', True),
        ("$UNDEFINED == null", True),
        ("$VARIABLE == null", False),
        ("$UNDEFINED != null", False),
        ('$EMPTY == ""', True),
        ("$EMPTY == null", False),
        ('$UNDEFINED == ""', False),
        ('"value" == $VARIABLE', True),
        # Presence: a variable alone is true when it is set and not empty
        ("$VARIABLE", True),
        ("$EMPTY", False),
        ("$UNDEFINED", False),
        ("${VARIABLE}", True),
        # Regex matching, with flags and against a variable holding a pattern
        ("$CI_COMMIT_REF_NAME =~ /^feature/", True),
        ("$CI_COMMIT_REF_NAME =~ /^FEATURE/", False),
        ("$CI_COMMIT_REF_NAME =~ /^FEATURE/i", True),
        ("$CI_COMMIT_REF_NAME !~ /^feature/", False),
        ("$CI_COMMIT_REF_NAME =~ /login$/", True),
        ("$CI_COMMIT_MESSAGE =~ /\\[skip docs\\]/", True),
        ("$CI_COMMIT_REF_NAME =~ /feature\\/login/", True),
        ("$CI_COMMIT_REF_NAME =~ $PATTERN", True),
        ("$UNDEFINED =~ /.*/", False),
        ("$UNDEFINED !~ /.*/", True),
        # Conjunction, disjunction, precedence (&& before ||), parentheses
        ('$VARIABLE && $CI_PIPELINE_SOURCE == "merge_request_event"', True),
        ("$VARIABLE && $UNDEFINED", False),
        ("$UNDEFINED || $VARIABLE", True),
        ("$UNDEFINED && $EMPTY || $VARIABLE", True),
        ("$VARIABLE || $UNDEFINED && $EMPTY", True),
        ("($VARIABLE || $UNDEFINED) && $EMPTY", False),
        ('$RELEASE == "staging" || $RELEASE == "production"', True),
        ('($CI_COMMIT_BRANCH == "main" || $CI_COMMIT_BRANCH == "develop") && $VARIABLE', True),
        ("(($VARIABLE))", True),
    ],
)
def test_gitlab_expression_examples(expression: str, expected: bool) -> None:
    assert evaluate(expression, VARIABLES) is expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("", "empty"),
        ("$A ==", "ends too early"),
        ("$A = 'x'", "unexpected"),
        ("($A", "ends too early"),
        ("$A)", "unexpected ')'"),
        ("$A =~ 'x'", "needs a /regex/"),
        ("$A =~ /(/", "regex"),
        ("$A =~ /x/q", "flag 'q'"),
        ("$A && && $B", "unexpected '&&'"),
        ("$A $B", "unexpected"),
    ],
)
def test_invalid_expressions_are_refused(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, VARIABLES)
    assert message in str(caught.value)


@given(st.text(max_size=60))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    """No input crashes the parser: it evaluates to a bool or raises ExpressionError."""
    try:
        result = evaluate(text, VARIABLES)
    except ExpressionError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert result in (True, False)


def test_references_inside_quoted_strings_are_expanded() -> None:
    """GitLab: `$FILE_PATH == "path/to/$FILE_NAME"` compares with the expanded string."""
    values = {"FILE_NAME": "example.txt", "FILE_PATH": "path/to/example.txt"}
    assert evaluate('$FILE_PATH == "path/to/$FILE_NAME"', values) is True
    assert evaluate("$FILE_PATH == 'path/to/${FILE_NAME}'", values) is True
