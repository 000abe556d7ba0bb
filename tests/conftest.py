"""Settings shared by every test."""

from __future__ import annotations

import os

from hypothesis import settings

# CI runs the same examples every time (a red build must be reproducible, and the
# machine's speed must not fail a test by deadline); developers' runs keep exploring new
# ones, and what they find goes into the example tables.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
