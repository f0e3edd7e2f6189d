"""Compatibility alias of :mod:`dashtam_api_test_support` for test files that still load it by path.

New code imports the support module directly (``import dashtam_api_test_support as support``);
this file goes away once no test loads ``test_data_support.py`` any more.
"""

from dashtam_api_test_support import *  # noqa: F403
