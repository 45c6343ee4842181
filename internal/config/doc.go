// Package config loads Gatehouse's configuration: defaults, then a YAML (or
// JSON) file, then GATEHOUSE_* environment variables, then flags, and
// validates the result, reporting every problem at once as [Problems]:
// each at its line of the file with its key path, or at the environment
// variable or flag that set the value.
//
// Secrets (the key-encryption key, the Postgres DSN) are read only from
// files or *_FILE environment variables, never from flags, so they do not
// show up in process listings or shell history.
package config
