"""Binds every ``*.feature`` file under ``features/`` to pytest: a new feature file needs no
Python, only steps that exist (``docs/bdd.md`` lists them)."""

from pytest_bdd import scenarios

scenarios(".")
