"""Errors the CLI turns into one clear line and an exit code (see README, "Exit codes")."""

from __future__ import annotations


class ExpscoreError(Exception):
    """Base class: an expected failure with a message meant for the operator."""

    exit_code = 1


class InputError(ExpscoreError):
    """Bad input or usage: an unreadable file, a missing column, a bad rules file. Exit 2."""

    exit_code = 2
