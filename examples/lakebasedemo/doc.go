// Package lakebasedemo holds the conversation of `make demo` through the real
// Lakebase code path, offline. It is a test (TestLakebaseDemo), because its
// Databricks control plane is the lakebasetest fake, made for tests:
//
//   - the fake serves the instance "demo-instance", whose hostname is the
//     local PostgreSQL (with TLS) that `make test` and `make demo-lakebase`
//     start;
//   - lakebasecred finds the instance and the current user through
//     databricks-sdk-go, and mints OAuth tokens through it; the fake makes
//     each minted token the password of a real role on that PostgreSQL;
//   - the connector logs every new connection in with the current token, over
//     TLS checked against the server's certificate;
//   - bunstore stores the sessions there, behind the agent server's handler.
//
// Run it with:
//
//	make demo-lakebase
//
// which starts the throwaway PostgreSQL and runs
//
//	go test -count=1 -v -run '^TestLakebaseDemo$' ./lakebasedemo
//
// printing the three answers (the third from the get_weather tool), the
// stored rows with their ids and created_at (one batch per turn), the tokens
// minted and the connections they opened.
package lakebasedemo
