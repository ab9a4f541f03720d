"""The MGCA baseline project (see README.md); the plugin package is ``projects.mgca.mgca``."""
