"""papermill imported with rfc3987-syntax's grammars deferred: same format checks, later cost."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytest.importorskip("rfc3987_syntax")

# Run in a fresh interpreter: this one imported jsonschema already (nbval).
CHECK = r"""
import json, sys
from endobench.ablate.papermill_import import papermill
pm = papermill()
import rfc3987_syntax.utils  # a submodule imports under the stand-in as under the real module
utils_name = rfc3987_syntax.utils.__name__
compiled_at_import = "rfc3987_syntax.syntax_helpers" in sys.modules
import jsonschema
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
values = ["http://example.com/a?b#c", "urn:isbn:0451450523", "not an iri", "http://[::1", "", "a b"]
iri = [checker.conforms(v, "iri") for v in values]
iri_reference = [checker.conforms(v, "iri-reference") for v in values]
import rfc3987_syntax
print(json.dumps({
    "utils": utils_name,
    "papermill": pm.__name__,
    "compiled_at_import": compiled_at_import,
    "compiled_after_use": "rfc3987_syntax.syntax_helpers" in sys.modules,
    "real_module_now": getattr(rfc3987_syntax, "__endobench_stand_in__", False) is False,
    "iri": iri,
    "iri_reference": iri_reference,
    "direct": [rfc3987_syntax.is_valid_syntax("iri", v) for v in values],
}))
"""

REFERENCE = r"""
import json
import jsonschema
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
values = ["http://example.com/a?b#c", "urn:isbn:0451450523", "not an iri", "http://[::1", "", "a b"]
print(json.dumps({
    "iri": [checker.conforms(v, "iri") for v in values],
    "iri_reference": [checker.conforms(v, "iri-reference") for v in values],
}))
"""


def _run(code: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_grammars_compile_on_first_iri_check_with_the_same_answers():
    deferred, plain = _run(CHECK), _run(REFERENCE)
    assert deferred["papermill"] == "papermill"
    assert deferred["utils"] == "rfc3987_syntax.utils"
    assert deferred["compiled_at_import"] is False
    assert deferred["compiled_after_use"] is True
    assert deferred["real_module_now"] is True
    assert deferred["iri"] == plain["iri"]
    assert deferred["iri_reference"] == plain["iri_reference"]
    assert deferred["iri"] == deferred["direct"]
    assert deferred["iri"][:2] == [True, True] and deferred["iri"][2] is False
