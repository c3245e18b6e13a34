"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis): whatever a
signed-in researcher sends, the answer is never a server error.

Bounded for CI: a few examples per operation, a fixed seed (derandomized), no deadline. Runs
against the WSGI app in-process, on the test database.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import running_in_ci

try:
    import schemathesis
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis import strategies as st
    from schemathesis.checks import not_a_server_error
except ImportError:  # pragma: no cover - the [dev] extra installs it; CI must not skip
    if running_in_ci():
        raise
    pytest.skip("schemathesis is not installed (pip install -e '.[dev]')", allow_module_level=True)

pytestmark = pytest.mark.django_db

# Raise locally for a deeper search: FUZZ_MAX_EXAMPLES=200 pytest tests/test_api_fuzz.py
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "8"))


def api_schema():
    """The schema drf-spectacular serves, calling the WSGI app in-process."""
    from django.core.wsgi import get_wsgi_application
    from drf_spectacular.generators import SchemaGenerator

    # Valid and invalid inputs alike (negative mode): a wrong type or a missing field must be
    # a 4xx, never a 500.
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {"generation": {"mode": os.environ.get("FUZZ_MODE", "all")}}
    )
    loaded = schemathesis.openapi.from_dict(
        SchemaGenerator().get_schema(request=None, public=True), config=config
    )
    loaded.app = get_wsgi_application()
    return loaded


schema = api_schema()
FUZZ_STUDY = "fuzz-study"


@schema.hook
def flatmap_path_parameters(context, path_parameters):
    """Half the generated study slugs name a real study, so the fuzzing gets past the 404."""
    if path_parameters and "slug" in path_parameters:
        return st.sampled_from([path_parameters, {**path_parameters, "slug": FUZZ_STUDY}])
    return st.just(path_parameters)


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """The WSGI handler closes database connections when a request ends; Django's own test
    client switches that off (the test's transaction lives on the connection), so do we."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def researcher_token(researcher, rater) -> str:
    from rest_framework.authtoken.models import Token

    from tests.factories import make_study

    make_study(items=4, overlap=2, raters=[rater], slug=FUZZ_STUDY, owner=researcher)
    return Token.objects.create(user=researcher).key


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_input_gets_a_server_error(case, researcher_token) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Token {researcher_token}"}, checks=[not_a_server_error]
    )
