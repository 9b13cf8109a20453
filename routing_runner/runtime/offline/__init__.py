"""The embedded offline model: language identification, phrases, the SDK Model that routes."""
