"""Replaying transcripts: scripts and their loader, checks, the runner, workers and reports."""
