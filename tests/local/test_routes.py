from __future__ import annotations

import pytest

from scanning.errors import ConfigError
from scanning.local.routes import parse_template


def test_literal_segments_match_case_insensitively() -> None:
    assert parse_template("events/list").match("Events/LIST") == {}


def test_parameter_segment_captures_the_decoded_value() -> None:
    assert parse_template("images/{digest}").match("images/sha256%3Aabc") == {
        "digest": "sha256:abc"}


def test_missing_required_parameter_does_not_match() -> None:
    assert parse_template("images/{digest}").match("images") is None


def test_extra_segments_do_not_match() -> None:
    assert parse_template("images/{digest}").match("images/a/b") is None


def test_optional_parameter_may_be_absent() -> None:
    template = parse_template("scans/{id?}")
    assert (template.match("scans"), template.match("scans/7")) == ({}, {"id": "7"})


def test_default_value_fills_an_absent_parameter() -> None:
    assert parse_template("items/{page=1}").match("items") == {"page": "1"}


def test_int_constraint_rejects_non_numbers() -> None:
    template = parse_template("items/{id:int}")
    assert (template.match("items/42"), template.match("items/abc")) == ({"id": "42"}, None)


def test_catch_all_takes_the_rest_of_the_path() -> None:
    assert parse_template("repos/{*name}").match("repos/library/nginx") == {
        "name": "library/nginx"}


def test_literal_routes_sort_before_parameter_routes() -> None:
    templates = sorted((parse_template(text) for text in ("{any}", "health", "{id:int}")),
                       key=lambda template: template.precedence)
    assert [template.template for template in templates] == ["health", "{id:int}", "{any}"]


def test_unknown_constraint_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unsupported route constraint 'nope'"):
        parse_template("items/{id:nope}")


def test_required_segment_after_optional_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="required segment follows an optional one"):
        parse_template("{a?}/b")
