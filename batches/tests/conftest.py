from calls.tests.calls_fixtures import *  # noqa: F401,F403 - carrier fakes wired into org A
