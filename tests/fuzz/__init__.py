"""The hostile-user fuzz corpus (issue 19): malformed data, configs, checkpoints, disks and signals.

``harness`` runs a case (in-process through ``mtlheads.cli.main``, or as a real ``mtlheads`` process) and
gives its verdict; ``cases`` lists the cases; ``verdicts`` counts the verdicts of a recorded corpus run.
``tests/test_errors_fuzz.py`` runs them as tests; see docs/errors.md for the before/after counts.
"""
