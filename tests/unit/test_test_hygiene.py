"""The suite waits for states with events, conditions or the job store, never with sleep().

A sleep that waits for another task (a job to finish, a request to start polling, a connection to
close) is slow when generous and flaky when not. Tests outside tests/support (whose fake upstreams
may be slow on purpose) may name a sleep function only where the sleep is the behaviour itself,
listed below with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
SLEEPING_MODULES = {"time", "asyncio", "anyio", "trio"}

# (file under tests/, enclosing function) -> why its sleep is not a wait for another task.
ALLOWED = {
    ("unit/test_http_pool.py", "http_server.serve"): (
        "the fake server's latency, which keeps a burst's requests in flight together"
    ),
    ("unit/test_budgets.py", "test_racing_requests_never_overspend.request"): (
        "sleep(0) yields a random number of times to interleave the racing requests"
    ),
}


def sleeps(source: str) -> list[tuple[str, int]]:
    """(enclosing function, line) of every use of a sleep function, called or passed on."""
    tree = ast.parse(source)
    modules: set[str] = set()  # local names of time, asyncio, ...
    functions: set[str] = set()  # local names bound to their sleep
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules |= {
                alias.asname or alias.name for alias in node.names if alias.name in SLEEPING_MODULES
            }
        elif isinstance(node, ast.ImportFrom) and node.module in SLEEPING_MODULES:
            functions |= {
                alias.asname or alias.name for alias in node.names if alias.name == "sleep"
            }

    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, scope: tuple[str, ...]) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            scope = (*scope, node.name)
        used = (
            isinstance(node, ast.Attribute)
            and node.attr == "sleep"
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
        ) or (isinstance(node, ast.Name) and node.id in functions)
        if used:
            found.append((".".join(scope), getattr(node, "lineno", 0)))
        for child in ast.iter_child_nodes(node):
            visit(child, scope)

    visit(tree, ())
    return found


def _test_modules() -> list[Path]:
    support = TESTS / "support"
    return sorted(path for path in TESTS.rglob("*.py") if support not in path.parents)


def test_no_test_sleeps_to_wait_for_another_task() -> None:
    offenders = []
    for path in _test_modules():
        name = path.relative_to(TESTS).as_posix()
        for function, line in sleeps(path.read_text(encoding="utf-8")):
            if (name, function) not in ALLOWED:
                offenders.append(f"tests/{name}:{line} in {function or '<module>'}")
    assert offenders == [], (
        "sleep() in tests: wait on an event, a condition, the job store (support/jobs.py) "
        "instead, or add the sleep to ALLOWED with why it is the behaviour under test"
    )


def test_every_allowed_sleep_still_exists() -> None:
    used = {
        (path.relative_to(TESTS).as_posix(), function)
        for path in _test_modules()
        for function, _ in sleeps(path.read_text(encoding="utf-8"))
    }
    assert sorted(set(ALLOWED) - used) == []


def test_the_check_finds_the_ways_a_test_can_sleep() -> None:
    source = """
import asyncio
import time as clock
from anyio import sleep as nap

def test_polls(client):
    while client.get("/job").json()["status"] != "succeeded":
        clock.sleep(0.01)

async def test_waits(task):
    await asyncio.sleep(0.2)
    assert not task.done()

class TestThreads:
    async def test_hands_it_on(self):
        await asyncio.to_thread(clock.sleep, 1)
        await nap(1)
"""
    assert sleeps(source) == [
        ("test_polls", 8),
        ("test_waits", 11),
        ("TestThreads.test_hands_it_on", 16),
        ("TestThreads.test_hands_it_on", 17),
    ]


def test_fakes_named_sleep_are_not_sleeps() -> None:
    source = """
class Time:
    async def sleep(self, seconds):
        self.now += seconds

def retrying(time):
    return Retrying(sleep=time.sleep)
"""
    assert sleeps(source) == []
