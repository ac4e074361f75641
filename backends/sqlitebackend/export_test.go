package sqlitebackend

import "regexp"

// SchemaBeforeChecks is the schema without its CHECK constraints, as files
// created before them hold it, for tests that damage rows the way only such
// a file (or a writer ignoring the checks) lets through.
func SchemaBeforeChecks() string {
	return regexp.MustCompile(` CHECK \((?:[^()]|\([^()]*\))*\)`).ReplaceAllString(schema, "")
}
