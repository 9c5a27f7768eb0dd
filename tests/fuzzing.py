"""How much the property and contract tests generate: one knob, the `HYPOTHESIS_PROFILE` variable.

`ci` (the default, what `make test` runs): few examples, so the property tests and the schemathesis
contract test stay cheap. `fuzz` (`make fuzz`): many examples per test, minutes per module.
Both keep Hypothesis's example database off: nothing is written into the work tree.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILES = {"ci": 40, "fuzz": 1000}
# Generated requests per API operation in the schemathesis contract test, per profile.
CONTRACT_EXAMPLES = {"ci": 4, "fuzz": 20}

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
if PROFILE not in PROFILES:
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: expected one of {sorted(PROFILES)}")

for _name, _examples in PROFILES.items():
    settings.register_profile(
        _name,
        max_examples=_examples,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        print_blob=True,
    )

# Property tests decorate with `@settings(FUZZ)`: the chosen profile, whatever profile is loaded.
FUZZ = settings.get_profile(PROFILE)
# CONTRACT_EXAMPLES=n overrides the profile's count for one run.
CONTRACT_EXAMPLES_PER_OPERATION = int(os.environ.get("CONTRACT_EXAMPLES") or CONTRACT_EXAMPLES[PROFILE])
