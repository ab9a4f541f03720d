"""The add-a-plugin template project (see README.md and docs/add_a_plugin.md)."""
