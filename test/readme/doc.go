// Package readme plays the README as a newcomer would, as a script: install
// the binary, `gatehouse dev`, the first tool call, `gatehouse serve` with
// the documented SQLite configuration. The commands and the configuration
// are read from README.md itself, so the README cannot drift from what
// works. It has no code but its test.
package readme
