// Package locallakebase sets up a Lakebase stand-in for the examples' tests
// and for `make demo-lakebase`: the fake Databricks control plane of
// lakebasetest, whose instance points at the local test PostgreSQL (the one
// `make test` starts, with TLS), and whose every minted token becomes the
// password of a real role there. The code under test then runs the real
// Lakebase path: lakebasecred finds the instance and mints tokens through
// databricks-sdk-go, and the connector logs in with them over TLS.
package locallakebase
