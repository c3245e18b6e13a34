"""The browser harness's fixtures (defined with the first browser test) for every browser test."""

from tests.browser.test_browser_rating import (  # noqa: F401
    _fast_password_hashing,
    browser,
    page,
)
