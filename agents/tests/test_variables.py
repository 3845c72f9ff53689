from __future__ import annotations

import pytest

from agents.variables import (
    MissingVariable,
    Placeholder,
    TemplateSyntaxError,
    check_syntax,
    placeholders,
    render,
    required_variables,
    variables_in,
)


def test_render_fills_values_and_defaults():
    text = "Hi {{ customer_name }}, your order {{order_id}} ships {{when|soon}}."
    assert render(text, {"customer_name": "Ana", "order_id": 42}) == "Hi Ana, your order 42 ships soon."
    assert render(text, {"customer_name": "Ana", "order_id": 1, "when": "today"}).endswith("ships today.")


def test_missing_variables_are_all_named_never_read_out():
    with pytest.raises(MissingVariable) as info:
        render("Hello {{customer_name}}, about {{order_id}} and {{customer_name}}", {"order_id": ""}, where="prompt")
    assert info.value.names == ["customer_name", "order_id"]
    assert "customer_name, order_id" in str(info.value) and "prompt" in str(info.value)


def test_malformed_placeholders_are_rejected_with_context():
    for bad in ("Hello {{customer name}}", "Hello {{name", "Hello name}}", "{{1abc}}"):
        with pytest.raises(TemplateSyntaxError, match="malformed placeholder"):
            check_syntax(bad)
    check_syntax("no placeholders { at all }")


def test_variable_listing():
    text = "{{a}} {{b|x}} {{a}} {{c}}"
    assert variables_in(text) == ["a", "b", "c"]
    assert required_variables(text) == ["a", "c"]


def test_placeholders_list_each_variable_once_with_its_default_or_required():
    prompt = "You help {{ customer_name | the caller }} with order {{order_id}}."
    greeting = "Hi {{customer_name|there}}, about {{ topic|your order }}."
    voicemail = "Call {{callback_number}} back, {{customer_name}}."
    assert placeholders(prompt, greeting) == [
        Placeholder("customer_name", "the caller"),  # the first default given, stripped as render applies it
        Placeholder("order_id", None),
        Placeholder("topic", "your order"),
    ]
    # used once without a default anywhere: the call must give a value (render would fail)
    found = {p.name: p for p in placeholders(prompt, greeting, voicemail)}
    assert found["customer_name"].required and found["customer_name"].default is None
    assert found["callback_number"].required and not found["topic"].required
    assert placeholders("", "No variables here.") == []
    assert placeholders("{{a|}}") == [Placeholder("a", "")]  # an empty default is a default
