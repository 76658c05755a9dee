"""Automatic diagnosis: onsets of trouble, their ranked candidate causes, postmortem reports,
and accuracy from delayed labels. See docs/diagnose.md."""
