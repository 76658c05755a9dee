"""`mlinv tui`: a live terminal dashboard over the same investigations as the CLI.

Nothing is imported here: Textual costs ~0.4 s to import, and `mlinv --help` must not pay it.
The command imports `mlinvestigate.tui.app` when it runs.
"""
