"""The guide's five load tests (and open-model twins) as bundled scenario files (TOML)."""
