"""The browser harness's fixtures (defined with the first browser test) for every browser test,
and background exports run in-process for the tests that press an export button."""

import pytest

from tests.browser.test_browser_rating import (  # noqa: F401
    _fast_password_hashing,
    browser,
    page,
)


@pytest.fixture
def exports_in_process(settings, tmp_path):
    """Exports built in the request that starts them (also where CI configures a broker), into
    a folder of this test's own."""
    from evalplatform.celery import app

    settings.EXPORT_ROOT = tmp_path / "exports"
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        yield
    finally:
        app.conf.task_always_eager = previous
