"""facevae.errors.UserError: a message names the setting that fixes it, and each front end
renders that setting in its own words."""

from __future__ import annotations

import pickle

from facevae.errors import UserError, cli_name, python_name


def test_the_option_is_rendered_by_each_front_end():
    error = UserError("No face found; use the whole image ({option})", option="whole_image", value=True)
    assert str(error) == "No face found; use the whole image (`whole_image=True`)"  # Python's words by default
    assert error.render(cli_name) == "No face found; use the whole image (`--whole-image`)"
    assert error.render(lambda option, value: f"the {option} field") == \
        "No face found; use the whole image (the whole_image field)"
    assert UserError("choose ({option})", option="refine_steps", value=100).render(cli_name) == \
        "choose (`--refine-steps 100`)"
    assert python_name("split", None) == "`split`"


def test_plain_messages_and_pickling_keep_their_text():
    plain = UserError("a {brace} stays as written")
    assert str(plain) == plain.render(cli_name) == "a {brace} stays as written"
    error = UserError("use ({option})", option="split")
    assert str(pickle.loads(pickle.dumps(error))) == str(error) == "use (`split`)"
