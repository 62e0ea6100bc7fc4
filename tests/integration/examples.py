"""The example inventories operators copy (inventories/production, inventories/staging), as the tests
feed them: throw-away values for every vault_* variable an example's vault.yml documents. Used by the
integration tests and by the full-stack scenario's render test (molecule/default/tests/test_3_examples.py)."""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = ["production", "staging"]


def vault_values(example):
    """{vault_name: throw-away value} for the vault variables the example's vault.yml documents."""
    with open(os.path.join(ROOT, "inventories", example, "group_vars", "all", "vault.yml"), encoding="utf-8") as fh:
        names = re.findall(r"^# (vault_[a-z0-9_]+):", fh.read(), flags=re.MULTILINE)
    assert names, "the example's vault.yml documents no vault_* variable"
    return {name: f"throwaway-{name}-0123456789abcdef" for name in names}
